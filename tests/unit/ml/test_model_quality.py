"""model_quality.py: ground truth split into the transform's input and the labels, and the gate's metric scored."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest
from conftest import run_ml_script
from sklearn.metrics import f1_score, roc_auc_score

FEATURES = ["radius", "texture", "area"]


@pytest.fixture
def model_quality(ml_module: Callable[[str], ModuleType]) -> ModuleType:
    return ml_module("model_quality")


@pytest.fixture
def baseline_dir(tmp_path: Path, ml_module: Callable[[str], ModuleType]) -> Path:
    monitor = ml_module("monitor")
    reference = pd.DataFrame(np.random.default_rng(3).normal(size=(50, len(FEATURES))), columns=FEATURES)
    directory = tmp_path / "baseline"
    monitor.write_baseline(directory, reference, monitor.baseline_statistics(reference, [], []))
    return directory


def _labelled(path: Path, header: list[str], rows: list[list[object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [",".join(header), *(",".join("" if v is None else str(v) for v in row) for row in rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_split_writes_features_in_payload_order_without_label_and_the_labels_in_the_same_order(
    tmp_path: Path, model_quality: ModuleType, baseline_dir: Path
) -> None:
    ground_truth = tmp_path / "ground-truth"
    # Columns in another order, the label in the middle, one missing feature value, an extra column.
    _labelled(
        ground_truth / "2026/12/01/11/05-00-a.csv",
        ["area", "target", "note", "radius", "texture"],
        [[3.0, 1, "x", 1.0, 2.0], [6.0, 0, "y", 4.0, None]],
    )
    _labelled(ground_truth / "2026/12/01/11/30-00-b.csv", [*FEATURES, "target"], [[7.0, 8.0, 9.0, 1]])

    summary = model_quality.split(ground_truth, baseline_dir, "target")
    model_quality.write_split(summary, tmp_path / "features", tmp_path / "labels")

    assert (tmp_path / "features" / "features.csv").read_text() == "1.0,2.0,3.0\n4.0,,6.0\n7.0,8.0,9.0\n"
    assert (tmp_path / "labels" / "labels.csv").read_text() == "target\n1\n0\n1\n"
    written = json.loads((tmp_path / "labels" / "split.json").read_text())
    assert written["records"] == {"read": 3, "rejected": 0, "rejection_examples": []}
    assert (written["files"], written["records_written"], written["features"]) == (2, 3, FEATURES)


def test_rows_with_a_bad_label_or_a_non_numeric_feature_are_rejected_and_counted(
    tmp_path: Path, model_quality: ModuleType, baseline_dir: Path
) -> None:
    ground_truth = tmp_path / "ground-truth"
    rows: list[list[object]] = [[1.0, 2.0, 3.0, 1], [1.0, 2.0, 3.0, 2], [1.0, "big", 3.0, 0], [1.0, 2.0, 3.0, None]]
    _labelled(ground_truth / "a.csv", [*FEATURES, "target"], rows)

    summary = model_quality.split(ground_truth, baseline_dir, "target")

    assert summary["labels"].tolist() == [1]
    assert (summary["records"]["read"], summary["records"]["rejected"]) == (4, 3)
    assert summary["records"]["rejection_examples"] == [
        "a.csv data row 2: label 2.0 is not 0 or 1",
        "a.csv data row 3: non-numeric cell(s) in ['texture']",
        "a.csv data row 4: label missing",
    ]


def test_a_file_without_a_feature_or_the_label_is_a_clear_error(
    tmp_path: Path, model_quality: ModuleType, baseline_dir: Path
) -> None:
    _labelled(tmp_path / "gt" / "a.csv", ["radius", "area", "target"], [[1.0, 3.0, 1]])

    with pytest.raises(model_quality.MlInputError, match=r"a\.csv lacks the column\(s\) \['texture'\]"):
        model_quality.split(tmp_path / "gt", baseline_dir, "target")


def test_too_many_rejections_fail_the_split_naming_them(
    tmp_path: Path, baseline_dir: Path, capsys: pytest.CaptureFixture[str], model_quality: ModuleType
) -> None:
    _labelled(tmp_path / "gt" / "a.csv", [*FEATURES, "target"], [[1.0, 2.0, 3.0, "yes"]] * 4 + [[1.0, 2.0, 3.0, 1]])
    args = [
        "split",
        *("--ground-truth-dir", str(tmp_path / "gt"), "--baseline-dir", str(baseline_dir)),
        *("--label-column", "target", "--features-dir", str(tmp_path / "f"), "--labels-dir", str(tmp_path / "l")),
        *("--min-records", "3"),
    ]

    assert model_quality.main(args) == 1
    assert "4 of 5 ground-truth records were rejected, leaving 1, fewer than --min-records 3" in capsys.readouterr().err
    assert not (tmp_path / "f" / "features.csv").exists()


def _scored(tmp_path: Path, scores: np.ndarray, labels: np.ndarray) -> tuple[Path, Path]:
    predictions, labels_dir = tmp_path / "predictions", tmp_path / "labels"
    predictions.mkdir(parents=True)
    labels_dir.mkdir(parents=True)
    # As ml/inference.py answers text/csv, one `score,label` line per record.
    (predictions / "features.csv.out").write_text("".join(f"{float(s)!r},{int(s >= 0.5)}\n" for s in scores))
    (labels_dir / "labels.csv").write_text("target\n" + "".join(f"{label}\n" for label in labels))
    split = {"features": FEATURES, "label_column": "target", "files": 1, "records_written": len(labels)}
    records = {"read": len(labels) + 2, "rejected": 2, "rejection_examples": ["a.csv data row 1: ..."]}
    (labels_dir / "split.json").write_text(json.dumps({**split, "records": records}))
    return predictions, labels_dir


@pytest.mark.parametrize("metric", ["auc", "f1"])
def test_score_computes_the_gates_metric_of_the_scores_against_the_labels(
    tmp_path: Path, model_quality: ModuleType, metric: str
) -> None:
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 2, size=80)
    scores = np.clip(labels * 0.3 + rng.uniform(size=80) * 0.7, 0, 1)
    expected = roc_auc_score(labels, scores) if metric == "auc" else f1_score(labels, (scores >= 0.5).astype(int))

    report = model_quality.score(*_scored(tmp_path, scores, labels), metric, min_records=50)

    assert (report["status"], report["metric"]) == ("ok", metric)
    assert report["value"] == pytest.approx(expected)
    assert report["records"] == {
        "read": 82,
        "rejected": 2,
        "rejection_examples": ["a.csv data row 1: ..."],
        "scored": 80,
    }


def test_labels_of_one_class_or_too_few_records_have_no_verdict(tmp_path: Path, model_quality: ModuleType) -> None:
    one_class = model_quality.score(*_scored(tmp_path / "a", np.full(60, 0.7), np.ones(60, dtype=int)), "auc", 50)
    too_few = model_quality.score(*_scored(tmp_path / "b", np.array([0.2, 0.8]), np.array([0, 1])), "auc", 50)

    assert (one_class["status"], one_class["value"]) == ("insufficient_data", None)
    assert "only class [1]" in one_class["reason"]
    assert (too_few["status"], too_few["value"]) == ("insufficient_data", None)
    assert "2 labelled records after rejections, fewer than the 50" in too_few["reason"]


def test_predictions_that_do_not_match_the_labels_are_a_clear_error(tmp_path: Path, model_quality: ModuleType) -> None:
    predictions, labels_dir = _scored(tmp_path, np.array([0.1, 0.9, 0.3]), np.array([0, 1, 0]))
    (predictions / "features.csv.out").write_text("0.1,0\n0.9,1\n")

    with pytest.raises(model_quality.MlInputError, match="returned 2 predictions for 3 labelled records"):
        model_quality.score(predictions, labels_dir, "auc", min_records=2)


def test_the_script_runs_both_modes_as_the_container_does(tmp_path: Path, baseline_dir: Path) -> None:
    rng = np.random.default_rng(9)
    rows = [[*rng.normal(size=3).round(4).tolist(), int(label)] for label in rng.integers(0, 2, size=40)]
    _labelled(tmp_path / "gt" / "a.csv", [*FEATURES, "target"], rows)
    split = run_ml_script(
        "model_quality.py",
        [
            "split",
            *("--ground-truth-dir", str(tmp_path / "gt"), "--baseline-dir", str(baseline_dir)),
            *("--label-column", "target", "--features-dir", str(tmp_path / "features")),
            *("--labels-dir", str(tmp_path / "labels"), "--min-records", "10"),
        ],
    )
    assert split.returncode == 0, split.stderr
    # The transform's stand-in: a score per line, the logistic of the first feature.
    lines = (tmp_path / "features" / "features.csv").read_text().splitlines()
    scores = [1 / (1 + np.exp(-float(line.split(",")[0]))) for line in lines]
    (tmp_path / "predictions").mkdir()
    (tmp_path / "predictions" / "features.csv.out").write_text("".join(f"{float(s)!r},0\n" for s in scores))

    scored = run_ml_script(
        "model_quality.py",
        [
            "score",
            *("--predictions-dir", str(tmp_path / "predictions"), "--labels-dir", str(tmp_path / "labels")),
            *("--metric", "auc", "--min-records", "10", "--output-dir", str(tmp_path / "report")),
        ],
    )

    assert scored.returncode == 0, scored.stderr
    report = json.loads((tmp_path / "report" / "model_quality_report.json").read_text())
    expected = roc_auc_score([row[3] for row in rows], [1 / (1 + np.exp(-row[0])) for row in rows])
    assert report["value"] == pytest.approx(expected)
