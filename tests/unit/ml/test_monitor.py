"""monitor.py: capture parsing in every encoding, data-quality findings, the drift tests and the report's verdicts."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import distance

FEATURE_COUNT = 30


def capture_line(payload: str, content_type: str, encoding: str, event_id: str, inference_time: str) -> str:
    """One SageMaker data capture record (one JSON line) whose endpoint input is `payload`."""
    data = base64.b64encode(payload.encode()).decode() if encoding == "BASE64" else payload
    record = {
        "captureData": {
            "endpointInput": {"observedContentType": content_type, "mode": "INPUT", "data": data, "encoding": encoding},
            "endpointOutput": {
                "observedContentType": "application/json",
                "mode": "OUTPUT",
                "data": '{"predictions": [{"score": 0.5, "label": 1}]}',
                "encoding": "JSON",
            },
        },
        "eventMetadata": {"eventId": event_id, "inferenceTime": inference_time},
        "eventVersion": "0",
    }
    return json.dumps(record)


def csv_payload(rows: np.ndarray) -> str:
    return "\n".join(",".join("" if np.isnan(value) else repr(float(value)) for value in row) for row in rows)


def json_payload(rows: np.ndarray) -> str:
    return json.dumps({"instances": [[None if np.isnan(value) else float(value) for value in row] for row in rows]})


def write_capture(
    directory: Path, rows: np.ndarray, encoding: str = "CSV", content_type: str = "text/csv", per_record: int = 1
) -> Path:
    """A capture file of `rows`, `per_record` rows in each request, under an hour folder of `directory`."""
    folder = directory / "endpoint" / "AllTraffic" / "2026" / "12" / "01" / "09"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"capture-{encoding}-{content_type.replace('/', '-')}.jsonl"
    with path.open("a") as handle:
        for number, start in enumerate(range(0, len(rows), per_record)):
            part = rows[start : start + per_record]
            payload = json_payload(part) if content_type == "application/json" else csv_payload(part)
            second = number % 60
            handle.write(
                capture_line(payload, content_type, encoding, f"event-{number}", f"2026-12-01T09:00:{second:02d}Z")
                + "\n"
            )
    return path


@pytest.fixture
def monitor(ml_module: Callable[[str], ModuleType]) -> ModuleType:
    return ml_module("monitor")


@pytest.fixture
def features(breast_cancer: pd.DataFrame) -> pd.DataFrame:
    """The breast-cancer features in payload order (the label dropped), shuffled with a fixed seed."""
    return breast_cancer.drop(columns=["target"]).sample(frac=1.0, random_state=7).reset_index(drop=True)


@pytest.fixture
def reference(features: pd.DataFrame) -> pd.DataFrame:
    return features.iloc[:285]


@pytest.fixture
def held_out(features: pd.DataFrame) -> np.ndarray:
    return features.iloc[285:].to_numpy()


@pytest.fixture
def baseline_dir(tmp_path: Path, monitor: ModuleType, reference: pd.DataFrame) -> Path:
    directory = tmp_path / "baseline"
    statistics = monitor.baseline_statistics(reference, [], ["worst radius", "worst concave points"])
    monitor.write_baseline(directory, reference, statistics)
    return directory


@pytest.fixture
def analyze(monitor: ModuleType, baseline_dir: Path) -> Callable[..., dict[str, Any]]:
    """The report for every capture file under a folder, against the breast-cancer baseline."""

    def run(capture_dir: Path, **settings: Any) -> dict[str, Any]:
        baseline = monitor.load_baseline(baseline_dir)
        report: dict[str, Any] = monitor.analyze(baseline, monitor.find_capture_files(capture_dir), **settings)
        return report

    return run


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in report["features"]}


# --- capture records ---


@pytest.mark.parametrize(
    ("encoding", "content_type"),
    [("CSV", "text/csv"), ("JSON", "application/json"), ("BASE64", "text/csv"), ("BASE64", "application/json")],
)
def test_each_capture_encoding_gives_the_same_report(
    tmp_path: Path, analyze: Callable[..., dict[str, Any]], held_out: np.ndarray, encoding: str, content_type: str
) -> None:
    rows = held_out.copy()
    rows[0, 3] = np.nan  # a missing value travels as an empty CSV cell or a JSON null
    write_capture(tmp_path / "plain", rows, per_record=3)
    write_capture(tmp_path / "encoded", rows, encoding=encoding, content_type=content_type, per_record=3)

    plain, encoded = analyze(tmp_path / "plain"), analyze(tmp_path / "encoded")

    assert encoded["status"] == "ok"
    assert encoded["records"]["read"] == encoded["records"]["read"] == -(-len(rows) // 3)
    assert encoded["records"]["rejected"] == 0
    assert encoded["rows"] == {"read": len(rows), "analyzed": len(rows)}
    assert encoded["data_quality"]["findings"]["missing_values"] == 1
    assert encoded["features"] == plain["features"]
    assert encoded["window"]["first_inference_time"] == "2026-12-01T09:00:00Z"


def test_malformed_capture_lines_are_counted_and_reported_not_fatal(
    tmp_path: Path, analyze: Callable[..., dict[str, Any]], held_out: np.ndarray
) -> None:
    path = write_capture(tmp_path, held_out)
    good = path.read_text().splitlines()
    bad_lines = [
        "{not json",
        json.dumps({"eventMetadata": {"eventId": "x"}}),
        capture_line("1,2", "text/csv", "UTF-16", "e1", "2026-12-01T09:00:00Z"),
        capture_line("1,2", "application/x-npy", "BASE64", "e2", "2026-12-01T09:00:00Z"),
        capture_line("[[1, 2", "application/json", "JSON", "e3", "2026-12-01T09:00:00Z"),
        capture_line("@@", "text/csv", "CSV", "e4", "t").replace('"encoding": "CSV"', '"encoding": "BASE64"', 1),
    ]
    path.write_text("\n".join([good[0], *bad_lines, *good[1:]]) + "\n")
    with path.open("ab") as handle:
        handle.write(b'{"captureData": "\xff\xfe"}\n')
    bad_lines.append("a line that is not UTF-8")

    report = analyze(tmp_path)

    assert report["records"]["read"] == len(good) + len(bad_lines)
    assert report["records"]["rejected"] == len(bad_lines)
    assert sum(report["records"]["rejections"].values()) == len(bad_lines)
    assert report["records"]["rejections"]["not a JSON object"] == 1
    assert report["records"]["rejections"]["not UTF-8 text"] == 1
    assert report["records"]["rejection_examples"][0] == {"file": str(path), "line": 2, "reason": "not a JSON object"}
    assert report["rows"]["analyzed"] == len(held_out)
    assert report["status"] == "ok"


def test_an_empty_window_is_no_data_and_the_job_succeeds(
    tmp_path: Path, baseline_dir: Path, ml_script: Callable[..., Any]
) -> None:
    capture_dir = tmp_path / "capture"
    capture_dir.mkdir()
    output_dir = tmp_path / "output"

    process = ml_script(
        "monitor.py",
        ["--baseline-dir", str(baseline_dir), "--capture-dir", str(capture_dir), "--output-dir", str(output_dir)],
    )

    assert process.returncode == 0, process.stderr
    report = json.loads((output_dir / "monitoring_report.json").read_text())
    assert report["status"] == "no_data"
    assert report["dataset_drift"] is False
    assert report["drifted_share"] is None
    assert report["records"]["read"] == 0
    assert report["features"] == []
    assert "status: no_data" in process.stdout


def test_a_window_of_only_malformed_lines_is_no_data(tmp_path: Path, analyze: Callable[..., dict[str, Any]]) -> None:
    (tmp_path / "hour").mkdir()
    (tmp_path / "hour" / "capture.jsonl").write_text("garbage\n{}\n")

    report = analyze(tmp_path)

    assert report["status"] == "no_data"
    assert report["records"] == {**report["records"], "read": 2, "rejected": 2}
    assert report["dataset_drift"] is False


# --- too few records ---


def test_fewer_records_than_the_minimum_is_insufficient_data_not_drift(
    tmp_path: Path, analyze: Callable[..., dict[str, Any]], held_out: np.ndarray
) -> None:
    write_capture(tmp_path, held_out[:10] * 3.0)

    report = analyze(tmp_path, min_records=30)

    assert report["status"] == "insufficient_data"
    assert report["dataset_drift"] is False
    assert report["drifted_share"] is None
    assert {entry["status"] for entry in report["features"]} == {"insufficient_data"}
    assert all(entry["score"] is None and entry["drifted"] is False for entry in report["features"])
    assert report["features"][0]["current_size"] == 10


def test_a_feature_mostly_missing_is_insufficient_while_the_others_are_tested(
    tmp_path: Path, analyze: Callable[..., dict[str, Any]], held_out: np.ndarray
) -> None:
    rows = held_out.copy()
    rows[20:, 0] = np.nan
    write_capture(tmp_path, rows)

    report = analyze(tmp_path, min_records=30)
    entries = by_name(report)

    assert entries["mean radius"]["status"] == "insufficient_data"
    assert entries["mean radius"]["current_size"] == 20
    assert report["features_tested"] == FEATURE_COUNT - 1
    assert report["data_quality"]["per_feature"]["mean radius"]["missing_values"] == len(rows) - 20


# --- data quality ---


def test_rows_with_missing_or_extra_columns_are_counted_and_left_out(
    tmp_path: Path, analyze: Callable[..., dict[str, Any]], held_out: np.ndarray
) -> None:
    write_capture(tmp_path, held_out)
    short = csv_payload(held_out[:3, :-1])
    long = json.dumps({"instances": [[*row, 1.0] for row in held_out[:2].tolist()]})
    with (tmp_path / "extra.jsonl").open("w") as handle:
        handle.write(capture_line(short, "text/csv", "CSV", "s", "2026-12-01T09:10:00Z") + "\n")
        handle.write(capture_line(long, "application/json", "JSON", "l", "2026-12-01T09:11:00Z") + "\n")

    report = analyze(tmp_path)

    assert report["data_quality"]["findings"]["missing_columns"] == 3
    assert report["data_quality"]["findings"]["extra_columns"] == 2
    assert report["rows"] == {"read": len(held_out) + 5, "analyzed": len(held_out)}
    assert report["window"]["last_inference_time"] == "2026-12-01T09:11:00Z"


def test_out_of_range_non_numeric_and_missing_values_are_counted_per_feature(
    tmp_path: Path, analyze: Callable[..., dict[str, Any]], reference: pd.DataFrame
) -> None:
    # Rows of the reference sample itself: inside its range but for the values changed here.
    in_range = reference.to_numpy()
    rows = [[repr(float(value)) for value in row] for row in in_range[:40]]
    rows[0][0] = repr(float(reference["mean radius"].max()) + 1.0)
    rows[1][0] = "-5"
    rows[2][1] = "abc"
    rows[3][1] = ""
    rows[4][2] = "inf"
    payload = "\n".join(",".join(row) for row in rows)
    (tmp_path / "h").mkdir()
    (tmp_path / "h" / "c.jsonl").write_text(capture_line(payload, "text/csv", "CSV", "e", "t") + "\n")
    json_rows = in_range[:2].tolist()
    json_rows[0][5] = "1.0"  # a string is not a number, even when it reads as one
    json_rows[1][5] = True
    (tmp_path / "h" / "j.jsonl").write_text(
        capture_line(json.dumps(json_rows), "application/json", "JSON", "j", "t") + "\n"
    )

    report = analyze(tmp_path)
    per_feature = report["data_quality"]["per_feature"]

    assert per_feature["mean radius"] == {"missing_values": 0, "non_numeric_values": 0, "out_of_range_values": 2}
    assert per_feature["mean texture"] == {"missing_values": 1, "non_numeric_values": 1, "out_of_range_values": 0}
    assert per_feature["mean perimeter"]["out_of_range_values"] == 1
    assert per_feature["mean smoothness"]["non_numeric_values"] == 0
    assert per_feature["mean compactness"]["non_numeric_values"] == 2
    assert report["data_quality"]["findings"] == {
        "missing_columns": 0,
        "extra_columns": 0,
        "missing_values": 1,
        "non_numeric_values": 3,
        "out_of_range_values": 3,
    }
    # inf is out of range and, like a missing value, left out of the drift test.
    assert by_name(report)["mean perimeter"]["current_size"] == 41


def test_a_value_outside_the_known_categories_is_out_of_range(
    tmp_path: Path, monitor: ModuleType, analyze: Callable[..., dict[str, Any]]
) -> None:
    rng = np.random.default_rng(3)
    reference = pd.DataFrame({"code": rng.integers(0, 3, 200).astype(float), "x": rng.normal(size=200)})
    monitor.write_baseline(tmp_path / "b", reference, monitor.baseline_statistics(reference, ["code"], []))
    current = reference.to_numpy()[:50].copy()
    current[:4, 0] = 7.0
    write_capture(tmp_path / "c", current)

    report = monitor.analyze(monitor.load_baseline(tmp_path / "b"), monitor.find_capture_files(tmp_path / "c"))

    assert report["data_quality"]["per_feature"]["code"]["out_of_range_values"] == 4
    assert by_name(report)["code"]["test"] == "chisquare"


# --- drift verdicts on the breast-cancer features ---


def test_unshifted_held_out_data_does_not_drift(
    tmp_path: Path, analyze: Callable[..., dict[str, Any]], held_out: np.ndarray
) -> None:
    write_capture(tmp_path, held_out, per_record=5)

    report = analyze(tmp_path)

    assert report["status"] == "ok"
    assert report["features_tested"] == FEATURE_COUNT
    assert {entry["test"] for entry in report["features"]} == {"ks"}
    assert report["drifted_share"] < report["drift_share_threshold"]
    assert report["critical_features_drifted"] == []
    assert report["dataset_drift"] is False


def test_shifted_data_drifts(tmp_path: Path, analyze: Callable[..., dict[str, Any]], held_out: np.ndarray) -> None:
    write_capture(tmp_path, held_out * 1.3, per_record=5)

    report = analyze(tmp_path)

    assert report["drifted_share"] >= 0.5
    assert report["dataset_drift"] is True
    assert set(report["critical_features_drifted"]) == {"worst radius", "worst concave points"}


def test_a_drifted_critical_feature_alone_is_dataset_drift(
    tmp_path: Path, analyze: Callable[..., dict[str, Any]], held_out: np.ndarray, features: pd.DataFrame
) -> None:
    rows = held_out.copy()
    rows[:, list(features.columns).index("worst radius")] *= 1.5
    write_capture(tmp_path, rows)

    report = analyze(tmp_path)

    assert "worst radius" in report["drifted_features"]
    assert report["drifted_share"] < 0.5
    assert report["critical_features_drifted"] == ["worst radius"]
    assert report["dataset_drift"] is True


def test_reading_in_small_chunks_gives_the_same_report(
    tmp_path: Path, analyze: Callable[..., dict[str, Any]], held_out: np.ndarray
) -> None:
    write_capture(tmp_path, held_out * 1.1, per_record=2)
    write_capture(tmp_path, held_out[:50], encoding="JSON", content_type="application/json", per_record=4)

    whole, chunked = analyze(tmp_path), analyze(tmp_path, chunk_lines=7)

    assert chunked == whole


# --- the tests themselves, against scipy computed by hand ---


def test_each_drift_test_matches_scipy_by_hand(monitor: ModuleType) -> None:
    rng = np.random.default_rng(11)
    reference, current = rng.normal(size=400).astype(np.float32), rng.normal(0.2, size=300).astype(np.float32)
    ref64, cur64 = reference.astype(float), current.astype(float)
    codes_ref = rng.integers(0, 4, 400).astype(np.float32)
    codes_cur = rng.choice(4, 300, p=[0.4, 0.3, 0.2, 0.1]).astype(np.float32)
    binary_ref, binary_cur = (codes_ref > 1).astype(np.float32), (codes_cur > 1).astype(np.float32)

    assert monitor.run_test("ks", reference, current) == pytest.approx(stats.ks_2samp(ref64, cur64).pvalue)
    assert monitor.run_test("wasserstein", reference, current) == pytest.approx(
        stats.wasserstein_distance(ref64, cur64) / np.std(ref64)
    )
    ref_counts = np.bincount(codes_ref.astype(int), minlength=4)
    cur_counts = np.bincount(codes_cur.astype(int), minlength=4)
    assert monitor.run_test("chisquare", codes_ref, codes_cur) == pytest.approx(
        stats.chisquare(cur_counts, ref_counts * 300 / 400).pvalue
    )
    assert monitor.run_test("jensenshannon", codes_ref, codes_cur) == pytest.approx(
        distance.jensenshannon(ref_counts / 400, cur_counts / 300)
    )
    p1, p2 = binary_ref.mean(), binary_cur.mean()
    pooled = (binary_ref.sum() + binary_cur.sum()) / 700
    z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1 / 400 + 1 / 300))
    assert monitor.run_test("z", binary_ref, binary_cur) == pytest.approx(2 * (1 - stats.norm.cdf(abs(z))))
    same = np.ones(50, dtype=np.float32)
    assert monitor.run_test("z", same, same) == 1.0


@pytest.mark.parametrize(
    ("reference_size", "feature_type", "unique_values", "expected"),
    [
        (1000, "numerical", 6, "ks"),
        (1000, "numerical", 5, "chisquare"),
        (1000, "numerical", 2, "z"),
        (1000, "categorical", 3, "chisquare"),
        (1000, "categorical", 2, "z"),
        (1001, "numerical", 6, "wasserstein"),
        (1001, "numerical", 5, "jensenshannon"),
        (1001, "categorical", 40, "jensenshannon"),
    ],
)
def test_the_test_is_chosen_as_evidently_chooses_it(
    monitor: ModuleType, reference_size: int, feature_type: str, unique_values: int, expected: str
) -> None:
    reference = (np.arange(reference_size) % (unique_values - 1)).astype(np.float32)
    # The last unique value appears only in the current sample: the count is of both samples together.
    current = np.full(10, unique_values - 1, dtype=np.float32)

    assert monitor.choose_test(reference, current, feature_type) == expected


@pytest.mark.parametrize(
    ("test", "score", "drifted"),
    [
        ("ks", 0.05, True),
        ("chisquare", 0.05, False),
        ("z", 0.0499, True),
        ("wasserstein", 0.1, True),
        ("jensenshannon", 0.0999, False),
    ],
)
def test_verdicts_compare_as_evidently_does(monitor: ModuleType, test: str, score: float, drifted: bool) -> None:
    assert monitor.is_drifted(test, score, monitor.DEFAULT_THRESHOLDS[test]) is drifted


# --- the job's failures ---


def test_a_missing_baseline_fails_the_job_with_one_error_line(tmp_path: Path, ml_script: Callable[..., Any]) -> None:
    (tmp_path / "capture").mkdir()

    process = ml_script(
        "monitor.py",
        ["--baseline-dir", str(tmp_path / "baseline"), "--capture-dir", str(tmp_path / "capture")],
    )

    assert process.returncode == 1
    assert process.stderr.startswith("ERROR: ")
    assert "baseline.csv does not exist" in process.stderr
    assert len(process.stderr.strip().splitlines()) == 1


def test_a_baseline_whose_files_disagree_is_refused(
    tmp_path: Path, monitor: ModuleType, reference: pd.DataFrame
) -> None:
    statistics = monitor.baseline_statistics(reference, [], [])
    monitor.write_baseline(tmp_path, reference.iloc[:, ::-1], statistics)

    with pytest.raises(monitor.MlInputError, match="payload order"):
        monitor.load_baseline(tmp_path)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--threshold", "kolmogorov=0.1"], "names no test"),
        (["--threshold", "ks=high"], "is not a number"),
        (["--drift-share", "0"], "--drift-share 0.0 must be above 0"),
        (["--min-records", "0"], "--min-records 0 must be at least 1"),
    ],
)
def test_bad_settings_are_refused_with_what_to_fix(
    monitor: ModuleType,
    baseline_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    arguments: list[str],
    message: str,
) -> None:
    exit_code = monitor.main(["--baseline-dir", str(baseline_dir), "--capture-dir", str(tmp_path), *arguments])

    assert exit_code == 1
    assert message in capsys.readouterr().err
