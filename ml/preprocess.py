"""Processing job: check and clean new labelled CSV data, split it, and record what a valid request looks like.

Reads every CSV under --input-dir (a header row, a 0/1 label column, numeric features), fails early with a message
that says what to fix, drops rows without a label and exact duplicate rows, splits stratified by label into train,
validation and test (label first), and writes the constraints of the training split, its pre-training bias metrics
(bias.py: class imbalance and difference in proportions of labels of the configured facet) and a few feature rows
for the endpoint's smoke test. (The drift baseline is evaluate.py's: it needs the trained model's feature attributions.)
Exit code 1 and `ERROR: ...` on stderr is how a processing job fails.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from bias import BIAS_REPORT_FILE_NAME, FacetConfig, facet_config_from_environment, pretraining_bias, sensitive_rows
from mlcore import MlInputError, encode_binary_labels, fail_processing_job, find_csv_files, read_csv_files, write_json
from sklearn.model_selection import train_test_split

DEFAULT_SAMPLE_ROWS = 5
_EXAMPLES_SHOWN = 3


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The job's arguments; paths default to the processing container's."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-dir", type=Path, default=Path("/opt/ml/processing/input/data"))
    parser.add_argument("--output-dir", type=Path, default=Path("/opt/ml/processing/output"))
    parser.add_argument("--label-column", required=True, help="name of the 0/1 label column in the CSV header")
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--validation-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=42, help="seed of the stratified split")
    parser.add_argument("--sample-rows", type=int, default=DEFAULT_SAMPLE_ROWS, help="test rows in sample/sample.csv")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    """Runs the job; returns the process exit code."""
    args = parse_args(argv)
    try:
        _check_fractions(args.test_fraction, args.validation_fraction)
        files = find_csv_files(args.input_dir)
        raw = read_csv_files(files)
        cleaned, report = clean(raw, args.label_column, f"{len(files)} file(s) under {args.input_dir}")
        splits = split(cleaned, args.label_column, args.test_fraction, args.validation_fraction, args.seed)
        bias = training_split_bias(splits["train"], args.label_column, facet_config_from_environment())
    except MlInputError as error:
        return fail_processing_job(error)
    write_outputs(args.output_dir, splits, args.label_column, args.sample_rows)
    write_json(args.output_dir / "baseline" / BIAS_REPORT_FILE_NAME, bias)
    _print_summary(files, report, splits, args.label_column, args.output_dir)
    return 0


def clean(frame: pd.DataFrame, label_column: str, source: str) -> tuple[pd.DataFrame, dict[str, int]]:
    """The rows fit to train on, label first and as 0/1, and counts of what was dropped.

    Fails on a missing label column, labels other than 0/1, non-numeric features and features with no values.
    """
    if label_column not in frame.columns:
        raise MlInputError(
            f"label column {label_column!r} is not in the header of {source}; the columns are: "
            f"{', '.join(map(str, frame.columns))}. Pass the right name with --label-column."
        )
    feature_columns = [column for column in frame.columns if column != label_column]
    if not feature_columns:
        raise MlInputError(f"{source} has only the label column {label_column!r}: add feature columns.")
    if frame.empty:
        raise MlInputError(f"{source} has a header but no data rows.")
    rows_read = len(frame)
    labelled = frame[frame[label_column].notna()]
    labels = encode_binary_labels(labelled[label_column], source)
    features = _numeric_features(labelled[feature_columns], source)
    _check_no_empty_features(features, source)
    cleaned = pd.concat([pd.Series(labels, index=labelled.index, name=label_column), features], axis=1)
    deduplicated = cleaned.drop_duplicates().reset_index(drop=True)
    report = {
        "rows_read": rows_read,
        "rows_without_label": rows_read - len(labelled),
        "duplicate_rows": len(cleaned) - len(deduplicated),
        "rows_kept": len(deduplicated),
    }
    return deduplicated, report


def split(
    frame: pd.DataFrame, label_column: str, test_fraction: float, validation_fraction: float, seed: int
) -> dict[str, pd.DataFrame]:
    """Train, validation and test sets, each stratified by label so every one holds both classes."""
    _check_rows_per_class(frame[label_column], test_fraction, validation_fraction)
    rest, test = train_test_split(frame, test_size=test_fraction, stratify=frame[label_column], random_state=seed)
    # The validation share is of the whole data set, so it is rescaled to the part left after the test split.
    train, validation = train_test_split(
        rest,
        test_size=validation_fraction / (1.0 - test_fraction),
        stratify=rest[label_column],
        random_state=seed,
    )
    splits = {"train": train, "validation": validation, "test": test}
    for name, part in splits.items():
        missing = sorted(set(frame[label_column].unique().tolist()) - set(part[label_column].unique().tolist()))
        if missing:
            raise MlInputError(
                f"the {name} split got no rows of class {missing} from {len(frame)} rows: add rows of that class "
                "or change --test-fraction/--validation-fraction."
            )
    return splits


def baseline_constraints(data: pd.DataFrame, label_column: str) -> dict[str, Any]:
    """What a valid request looks like: feature order, types, completeness and sign, and the label set."""
    features = []
    for name in data.columns.drop(label_column):
        present = data[name].dropna().to_numpy(dtype=float)
        features.append(
            {
                "name": name,
                "inferred_type": _inferred_type(present),
                "completeness": float(data[name].notna().mean()),
                "num_constraints": {"is_non_negative": bool(len(present) and (present >= 0).all())},
            }
        )
    return {
        "label": {"name": label_column, "values": sorted(int(v) for v in data[label_column].unique())},
        "feature_order": [str(name) for name in data.columns.drop(label_column)],
        "features": features,
    }


def training_split_bias(train: pd.DataFrame, label_column: str, facet: FacetConfig) -> dict[str, Any]:
    """The pre-training bias report of the split the model learns from: the facet, then CI and DPL."""
    if not facet.configured:
        return {"facet": None, "reason": "no facet configured (pipeline.toml [bias] facet_column is empty)"}
    if facet.facet_column not in train.columns or facet.facet_column == label_column:
        raise MlInputError(
            f"the bias facet {facet.facet_column!r} is not a feature of the data; its features are "
            f"{[str(c) for c in train.columns.drop(label_column)]}. Fix pipeline.toml [bias] or the training input."
        )
    facet_d = sensitive_rows(train[facet.facet_column].to_numpy(), facet, "the training split")
    return {"facet": facet.describe(), "pretraining": pretraining_bias(train[label_column].to_numpy(), facet_d)}


def write_outputs(output_dir: Path, splits: dict[str, pd.DataFrame], label_column: str, sample_rows: int) -> None:
    """The split CSVs, the constraints and the smoke test's sample rows, in the layout of docs/interfaces.md."""
    for name, part in splits.items():
        (output_dir / name).mkdir(parents=True, exist_ok=True)
        part.to_csv(output_dir / name / f"{name}.csv", index=False)
    train = splits["train"]
    write_json(output_dir / "baseline" / "constraints.json", baseline_constraints(train, label_column))
    (output_dir / "sample").mkdir(parents=True, exist_ok=True)
    sample = splits["test"].drop(columns=[label_column]).head(sample_rows)
    sample.to_csv(output_dir / "sample" / "sample.csv", index=False, header=False)


def _check_fractions(test_fraction: float, validation_fraction: float) -> None:
    if not (0 < test_fraction < 1 and 0 < validation_fraction < 1 and test_fraction + validation_fraction < 1):
        raise MlInputError(
            f"--test-fraction {test_fraction} and --validation-fraction {validation_fraction} must each be between "
            "0 and 1 and leave rows for training (their sum below 1)."
        )


def _numeric_features(features: pd.DataFrame, source: str) -> pd.DataFrame:
    problems = []
    for name in features.columns:
        column = features[name]
        if pd.api.types.is_numeric_dtype(column):
            continue
        numeric = pd.to_numeric(column, errors="coerce")
        bad = column[numeric.isna() & column.notna()]
        if len(bad):
            shown = ", ".join(repr(value) for value in bad.unique()[:_EXAMPLES_SHOWN].tolist())
            problems.append(f"{name!r} (e.g. {shown})")
    if problems:
        raise MlInputError(
            f"{source} has non-numeric feature values in column(s) {'; '.join(problems)}: XGBoost needs numbers. "
            "Encode categories as numbers or drop those columns; leave missing values empty."
        )
    return features.apply(pd.to_numeric, errors="coerce").astype(float)


def _check_no_empty_features(features: pd.DataFrame, source: str) -> None:
    empty = [str(name) for name in features.columns if features[name].isna().all()]
    if empty:
        raise MlInputError(
            f"feature column(s) {empty} in {source} have no values in any labelled row: drop them or fill them in."
        )


def _check_rows_per_class(labels: pd.Series, test_fraction: float, validation_fraction: float) -> None:
    # Each of the three splits needs at least one row of each class, so the smallest share sets the minimum.
    smallest_share = min(test_fraction, validation_fraction, 1.0 - test_fraction - validation_fraction)
    needed = int(np.ceil(1.0 / smallest_share))
    counts = labels.value_counts()
    for label in (0, 1):
        found = int(counts.get(label, 0))
        if found < needed:
            raise MlInputError(
                f"class {label} has {found} row(s) after cleaning; a stratified train/validation/test split with "
                f"shares down to {smallest_share:g} needs at least {needed} rows of each class. Add labelled rows."
            )


def _inferred_type(values: np.ndarray) -> str:
    return "Integral" if len(values) and bool(np.all(np.mod(values, 1) == 0)) else "Fractional"


def _print_summary(
    files: list[Path], report: dict[str, int], splits: dict[str, pd.DataFrame], label_column: str, output_dir: Path
) -> None:
    print(f"read {report['rows_read']} rows from {len(files)} file(s)")
    print(f"dropped {report['rows_without_label']} rows without a label and {report['duplicate_rows']} duplicate rows")
    for name, part in splits.items():
        counts = part[label_column].value_counts().sort_index()
        by_class = ", ".join(f"class {label}: {count}" for label, count in counts.items())
        print(f"{name}: {len(part)} rows ({by_class})")
    print(f"features: {splits['train'].shape[1] - 1}; outputs written to {output_dir}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
