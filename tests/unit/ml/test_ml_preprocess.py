"""preprocess.py: cleaning, the stratified split and the baseline, and each early failure with the message it prints."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

RunPreprocess = Callable[..., subprocess.CompletedProcess[str]]
SPLITS = ("train", "validation", "test")


def write_csv(directory: Path, frame: pd.DataFrame, name: str = "data.csv", **options: object) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    frame.to_csv(directory / name, index=False, **options)
    return directory


def assert_fails_with(process: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert process.returncode == 1, process.stdout
    assert process.stderr.startswith("ERROR: "), process.stderr
    for fragment in fragments:
        assert fragment in process.stderr


def read_splits(output_dir: Path) -> dict[str, pd.DataFrame]:
    return {name: pd.read_csv(output_dir / name / f"{name}.csv") for name in SPLITS}


# --- what a good run writes ---


def test_splits_are_stratified_disjoint_and_label_first(prepared_data: Path, breast_cancer: pd.DataFrame) -> None:
    splits = read_splits(prepared_data)
    everything = pd.concat(splits.values(), ignore_index=True)
    positive_share = breast_cancer["target"].mean()

    assert [part.columns[0] for part in splits.values()] == ["target"] * 3
    assert len(everything) == len(breast_cancer)
    assert not everything.duplicated().any()
    assert len(splits["test"]) == pytest.approx(0.2 * len(breast_cancer), abs=1)
    assert len(splits["validation"]) == pytest.approx(0.2 * len(breast_cancer), abs=1)
    for part in splits.values():
        assert part["target"].mean() == pytest.approx(positive_share, abs=0.02)


def test_preprocess_leaves_the_drift_baseline_to_evaluation(prepared_data: Path) -> None:
    # The drift baseline needs the trained model's attributions, so evaluate.py writes it (test_ml_baseline.py).
    assert sorted(path.name for path in (prepared_data / "baseline").iterdir()) == ["bias.json", "constraints.json"]


def test_baseline_constraints_name_the_features_in_order_and_the_labels(prepared_data: Path) -> None:
    train = pd.read_csv(prepared_data / "train" / "train.csv")
    constraints = json.loads((prepared_data / "baseline" / "constraints.json").read_text())

    assert constraints["label"] == {"name": "target", "values": [0, 1]}
    assert constraints["feature_order"] == list(train.columns[1:])
    assert {feature["completeness"] for feature in constraints["features"]} == {1.0}
    assert {feature["inferred_type"] for feature in constraints["features"]} <= {"Integral", "Fractional"}


def test_sample_rows_are_test_features_without_header_or_label(prepared_data: Path) -> None:
    sample = pd.read_csv(prepared_data / "sample" / "sample.csv", header=None)
    test = pd.read_csv(prepared_data / "test" / "test.csv")

    assert len(sample) == 5
    np.testing.assert_allclose(sample.to_numpy(), test.drop(columns="target").head(5).to_numpy())


def test_rows_without_label_and_duplicates_are_dropped_and_counted(
    tmp_path: Path, breast_cancer: pd.DataFrame, run_preprocess: RunPreprocess
) -> None:
    # GIVEN the data set with 7 rows repeated and 3 extra rows that have no label
    unlabelled = breast_cancer.head(3).assign(target=np.nan)
    messy = pd.concat([breast_cancer, breast_cancer.tail(7), unlabelled], ignore_index=True)
    input_dir = write_csv(tmp_path / "input", messy)

    # WHEN it is preprocessed
    process = run_preprocess(input_dir)

    # THEN the summary counts what went and the splits hold each original row once
    assert process.returncode == 0, process.stderr
    assert f"read {len(messy)} rows" in process.stdout
    assert "dropped 3 rows without a label and 7 duplicate rows" in process.stdout
    assert sum(len(part) for part in read_splits(tmp_path / "output").values()) == len(breast_cancer)


def test_every_csv_under_the_input_folder_is_read_whatever_its_column_order(
    tmp_path: Path, breast_cancer: pd.DataFrame, run_preprocess: RunPreprocess
) -> None:
    input_dir = tmp_path / "input"
    write_csv(input_dir, breast_cancer.iloc[:300], "first.csv")
    write_csv(input_dir / "later" / "batch-2", breast_cancer.iloc[300:, ::-1], "second.csv")

    process = run_preprocess(input_dir)

    assert process.returncode == 0, process.stderr
    assert "from 2 file(s)" in process.stdout
    splits = read_splits(tmp_path / "output")
    assert sum(len(part) for part in splits.values()) == len(breast_cancer)
    assert list(splits["train"].columns) == ["target", *breast_cancer.columns.drop("target")]


def test_same_seed_gives_the_same_split_and_another_seed_a_different_one(
    breast_cancer_dir: Path, prepared_data: Path, tmp_path: Path, run_preprocess: RunPreprocess
) -> None:
    same_seed = run_preprocess(breast_cancer_dir)
    same_seed_test = (tmp_path / "output" / "test" / "test.csv").read_text()
    other_seed = run_preprocess(breast_cancer_dir, "--seed", "7")
    other_seed_test = (tmp_path / "output" / "test" / "test.csv").read_text()

    assert same_seed.returncode == other_seed.returncode == 0
    assert same_seed_test == (prepared_data / "test" / "test.csv").read_text()
    assert other_seed_test != same_seed_test


# --- early failures: exit code 1 and a message that says what to fix ---


def test_fails_when_the_input_folder_has_no_csv(tmp_path: Path, run_preprocess: RunPreprocess) -> None:
    (tmp_path / "input").mkdir()
    (tmp_path / "input" / "notes.txt").write_text("not data")

    assert_fails_with(run_preprocess(tmp_path / "input"), "no CSV files under", "upload at least one .csv")


def test_fails_when_a_file_has_no_header(
    tmp_path: Path, breast_cancer: pd.DataFrame, ml_script: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    # Run as a child process, as the processing job runs it: the exit code and stderr are what SageMaker sees.
    input_dir = write_csv(tmp_path / "input", breast_cancer, header=False)
    args = ["--input-dir", str(input_dir), "--output-dir", str(tmp_path / "output"), "--label-column", "target"]

    process = ml_script("preprocess.py", args)

    assert_fails_with(process, "has no header", "Add a header row")
    assert not (tmp_path / "output").exists()


def test_fails_when_a_file_is_empty(tmp_path: Path, run_preprocess: RunPreprocess) -> None:
    (tmp_path / "input").mkdir()
    (tmp_path / "input" / "empty.csv").write_text("")

    assert_fails_with(run_preprocess(tmp_path / "input"), "empty.csv is empty")


def test_fails_when_the_label_column_is_missing(
    tmp_path: Path, breast_cancer: pd.DataFrame, run_preprocess: RunPreprocess
) -> None:
    input_dir = write_csv(tmp_path / "input", breast_cancer.rename(columns={"target": "diagnosis"}))

    assert_fails_with(
        run_preprocess(input_dir), "label column 'target' is not in the header", "diagnosis", "--label-column"
    )


def test_fails_when_labels_are_not_binary(
    tmp_path: Path, breast_cancer: pd.DataFrame, run_preprocess: RunPreprocess
) -> None:
    three_classes = breast_cancer.assign(target=breast_cancer["target"].where(breast_cancer.index % 10 != 0, 2))
    input_dir = write_csv(tmp_path / "input", three_classes)

    assert_fails_with(run_preprocess(input_dir), "holds [0, 1, 2]", "binary classifier")


def test_fails_when_labels_are_not_numbers(
    tmp_path: Path, breast_cancer: pd.DataFrame, run_preprocess: RunPreprocess
) -> None:
    named = breast_cancer.assign(target=breast_cancer["target"].map({0: "malignant", 1: "benign"}))
    input_dir = write_csv(tmp_path / "input", named)

    assert_fails_with(run_preprocess(input_dir), "values that are not numbers", "'malignant'", "encode the positive")


def test_fails_when_labels_are_not_whole_numbers(
    tmp_path: Path, breast_cancer: pd.DataFrame, run_preprocess: RunPreprocess
) -> None:
    input_dir = write_csv(tmp_path / "input", breast_cancer.assign(target=breast_cancer["target"] * 0.5))

    assert_fails_with(run_preprocess(input_dir), "holds [0, 0.5]")


def test_fails_when_a_feature_is_not_numeric(
    tmp_path: Path, breast_cancer: pd.DataFrame, run_preprocess: RunPreprocess
) -> None:
    text_feature = breast_cancer.astype({"mean radius": object})
    text_feature.loc[5, "mean radius"] = "large"
    input_dir = write_csv(tmp_path / "input", text_feature)

    assert_fails_with(run_preprocess(input_dir), "non-numeric feature values", "'mean radius' (e.g. 'large')")


def test_fails_when_a_feature_column_has_no_values(
    tmp_path: Path, breast_cancer: pd.DataFrame, run_preprocess: RunPreprocess
) -> None:
    input_dir = write_csv(tmp_path / "input", breast_cancer.assign(**{"mean area": np.nan}))

    assert_fails_with(run_preprocess(input_dir), "['mean area']", "have no values")


def test_fails_when_a_class_has_too_few_rows_for_the_split(
    tmp_path: Path, breast_cancer: pd.DataFrame, run_preprocess: RunPreprocess
) -> None:
    # Splits of 20 % need at least 5 rows of each class so every split gets one.
    rare_negatives = pd.concat(
        [breast_cancer[breast_cancer["target"] == 1], breast_cancer[breast_cancer["target"] == 0].head(4)]
    )
    input_dir = write_csv(tmp_path / "input", rare_negatives)

    assert_fails_with(run_preprocess(input_dir), "class 0 has 4 row(s)", "needs at least 5 rows of each class")


def test_fails_when_files_have_different_columns(
    tmp_path: Path, breast_cancer: pd.DataFrame, run_preprocess: RunPreprocess
) -> None:
    input_dir = write_csv(tmp_path / "input", breast_cancer.iloc[:300], "a.csv")
    write_csv(input_dir, breast_cancer.iloc[300:].drop(columns="mean area"), "b.csv")

    assert_fails_with(run_preprocess(input_dir), "b.csv has different columns", "missing ['mean area']")


def test_fails_when_the_split_fractions_leave_no_training_rows(
    breast_cancer_dir: Path, run_preprocess: RunPreprocess
) -> None:
    process = run_preprocess(breast_cancer_dir, "--test-fraction", "0.5", "--validation-fraction", "0.5")

    assert_fails_with(process, "--test-fraction 0.5 and --validation-fraction 0.5")
