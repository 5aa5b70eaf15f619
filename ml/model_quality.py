"""Processing job, two modes: the served model's quality on labelled production records (ground truth).

`split`: reads every ground-truth `*.csv` under --ground-truth-dir (a header naming at least the baseline's
features, from baseline.json in --baseline-dir, and the --label-column; any column order), and writes the features
in payload order without header or label to `<--features-dir>/features.csv`, for the batch transform, and the
labels of the same rows, in the same order, to `<--labels-dir>/labels.csv` with `split.json` (what was read and
rejected). A row whose label is missing or not 0/1, or with a feature cell that is not a number, is rejected and
counted, not fatal; a file without the needed columns is fatal, naming the file and the columns.

`score`: reads the transform's output under --predictions-dir (`<input file>.out`, one `score,label` line per
record, as ml/inference.py answers `text/csv`) and the labels under --labels-dir, computes --metric (the quality
gate's metric, mlcore.classification_metrics) of the scores against the labels and writes `model_quality_report.json`
to --output-dir (schema in docs/interfaces.md). Fewer than --min-records labelled rows, or labels of one class only
(the metric needs both), is status "insufficient_data" with the reason: no verdict, not a failure.

Exit code 1 and `ERROR: ...` on stderr for bad input or arguments; the state machine catches and notifies it.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlcore import (
    BINARY_LABELS,
    MlInputError,
    classification_metrics,
    fail_processing_job,
    find_csv_files,
    read_csv_file,
    write_json,
)
from monitor import load_baseline

FEATURES_FILE_NAME = "features.csv"
LABELS_FILE_NAME = "labels.csv"
SPLIT_SUMMARY_FILE_NAME = "split.json"
REPORT_FILE_NAME = "model_quality_report.json"
REPORT_VERSION = 1
# What a batch transform appends to the name of each input file it writes the results of.
TRANSFORM_OUTPUT_SUFFIX = ".out"
METRICS = ("auc", "accuracy", "f1", "precision", "recall", "logloss")
# Rejected rows quoted in split.json and the report, with file and data row; the rest are only counted.
REJECTION_EXAMPLES = 5
DEFAULT_MIN_RECORDS = 50


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    split = modes.add_parser("split", help="split labelled records into the transform's input and the labels")
    split.add_argument("--ground-truth-dir", type=Path, required=True)
    split.add_argument("--baseline-dir", type=Path, required=True, help="baseline.json names the payload's features")
    split.add_argument("--label-column", required=True)
    split.add_argument("--features-dir", type=Path, required=True)
    split.add_argument("--labels-dir", type=Path, required=True)
    split.add_argument("--min-records", type=int, default=DEFAULT_MIN_RECORDS)
    score = modes.add_parser("score", help="score the transform's predictions against the labels")
    score.add_argument("--predictions-dir", type=Path, required=True)
    score.add_argument("--labels-dir", type=Path, required=True)
    score.add_argument("--metric", required=True, choices=METRICS)
    score.add_argument("--min-records", type=int, default=DEFAULT_MIN_RECORDS)
    score.add_argument("--output-dir", type=Path, required=True)
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        if args.min_records < 2:
            raise MlInputError(f"--min-records {args.min_records} must be at least 2.")
        if args.mode == "split":
            summary = split(args.ground_truth_dir, args.baseline_dir, args.label_column)
            check_enough_accepted(summary, args.min_records)
            write_split(summary, args.features_dir, args.labels_dir)
            print(
                f"ground truth: {summary['records']['read']} records read, {summary['records']['rejected']} rejected, "
                f"{len(summary['labels'])} written to {args.features_dir / FEATURES_FILE_NAME}"
            )
            return 0
        report = score(args.predictions_dir, args.labels_dir, args.metric, args.min_records)
    except MlInputError as error:
        return fail_processing_job(error)
    write_json(args.output_dir / REPORT_FILE_NAME, report)
    shown = f"{report['metric']} = {report['value']:.4f}" if report["status"] == "ok" else report["reason"]
    print(f"model quality {report['status']} on {report['records']['scored']} records: {shown}")
    return 0


# ---- split ---------------------------------------------------------------------------------------------------


def split(ground_truth_dir: Path, baseline_dir: Path, label_column: str) -> dict[str, Any]:
    """The accepted rows' features (payload order) and labels, and what was read and rejected, over every file."""
    features = load_baseline(baseline_dir).names
    if label_column in features:
        raise MlInputError(f"--label-column {label_column!r} is one of the model's features {features}.")
    kept_features: list[np.ndarray] = []
    kept_labels: list[np.ndarray] = []
    read = rejected = 0
    examples: list[str] = []
    files = find_csv_files(ground_truth_dir)
    for path in files:
        frame = read_csv_file(path)
        missing = [name for name in [*features, label_column] if name not in frame.columns]
        if missing:
            raise MlInputError(
                f"{path} lacks the column(s) {missing}: a ground-truth file needs a header naming the model's "
                f"features {features} and the label column {label_column!r} (docs/interfaces.md, Ground truth)."
            )
        values = frame[features].apply(pd.to_numeric, errors="coerce")
        # A cell that was not empty but did not read as a number; an empty cell is a missing value the model handles.
        not_numbers = values.isna() & frame[features].notna()
        labels = pd.to_numeric(frame[label_column], errors="coerce")
        bad_label = ~labels.isin(BINARY_LABELS)
        bad = bad_label.to_numpy() | not_numbers.any(axis=1).to_numpy()
        for row in np.flatnonzero(bad)[: max(0, REJECTION_EXAMPLES - len(examples))]:
            why = (
                _label_problem(frame[label_column].iloc[row])
                if bad_label.iloc[row]
                else f"non-numeric cell(s) in {[n for n in features if not_numbers[n].iloc[row]]}"
            )
            examples.append(f"{path.name} data row {row + 1}: {why}")
        read += len(frame)
        rejected += int(bad.sum())
        kept_features.append(values.to_numpy(dtype=float)[~bad])
        kept_labels.append(labels.to_numpy()[~bad].astype(int))
    return {
        "features": features,
        "label_column": label_column,
        "files": len(files),
        "records": {"read": read, "rejected": rejected, "rejection_examples": examples},
        "rows": np.concatenate(kept_features) if kept_features else np.empty((0, len(features))),
        "labels": np.concatenate(kept_labels) if kept_labels else np.empty(0, dtype=int),
    }


def _label_problem(value: Any) -> str:
    if pd.isna(value):
        return "label missing"
    shown = value.item() if isinstance(value, np.generic) else value
    return f"label {shown!r} is not 0 or 1"


def check_enough_accepted(summary: dict[str, Any], min_records: int) -> None:
    """The window held enough records (monitoring_window counted them) but too many were rejected to score any:
    a data problem to tell someone about, so the job fails naming it instead of transforming a near-empty file."""
    accepted = len(summary["labels"])
    if accepted < min_records:
        records = summary["records"]
        raise MlInputError(
            f"{records['rejected']} of {records['read']} ground-truth records were rejected, leaving {accepted}, fewer "
            f"than --min-records {min_records}; e.g. {records['rejection_examples']}. Fix the labelling export "
            "(docs/interfaces.md, Ground truth)."
        )


def write_split(summary: dict[str, Any], features_dir: Path, labels_dir: Path) -> None:
    """features.csv (no header, no label: what ml/inference.py reads as text/csv), labels.csv and split.json."""
    features_dir.mkdir(parents=True, exist_ok=True)
    labels_dir.mkdir(parents=True, exist_ok=True)
    with (features_dir / FEATURES_FILE_NAME).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        # repr() keeps every float exactly; a missing value is an empty cell.
        writer.writerows([[repr(float(v)) if np.isfinite(v) else "" for v in row] for row in summary["rows"]])
    labels = "".join(f"{int(label)}\n" for label in summary["labels"])
    (labels_dir / LABELS_FILE_NAME).write_text(summary["label_column"] + "\n" + labels, encoding="utf-8")
    document = {key: summary[key] for key in ("features", "label_column", "files", "records")}
    write_json(labels_dir / SPLIT_SUMMARY_FILE_NAME, {**document, "records_written": len(summary["labels"])})


# ---- score ---------------------------------------------------------------------------------------------------


def read_labels(labels_dir: Path) -> tuple[np.ndarray, dict[str, Any]]:
    path = labels_dir / LABELS_FILE_NAME
    summary_path = labels_dir / SPLIT_SUMMARY_FILE_NAME
    if not path.is_file() or not summary_path.is_file():
        raise MlInputError(
            f"{labels_dir} lacks {LABELS_FILE_NAME} or {SPLIT_SUMMARY_FILE_NAME}: stage the split job's labels output."
        )
    lines = path.read_text(encoding="utf-8").splitlines()
    try:
        labels = np.array([int(line) for line in lines[1:] if line.strip()], dtype=int)
    except ValueError as error:
        raise MlInputError(f"{path} holds a label that is not an integer: {error}") from None
    return labels, json.loads(summary_path.read_text(encoding="utf-8"))


def read_scores(predictions_dir: Path) -> np.ndarray:
    """The positive-class scores of every record, in input order: the first cell of each `score,label` line."""
    files = sorted(path for path in predictions_dir.rglob(f"*{TRANSFORM_OUTPUT_SUFFIX}") if path.is_file())
    if len(files) != 1:
        raise MlInputError(
            f"{predictions_dir} holds {len(files)} transform output files ({[f.name for f in files]}), expected "
            f"one: the {FEATURES_FILE_NAME}{TRANSFORM_OUTPUT_SUFFIX} of the split's single features file."
        )
    scores = []
    text = files[0].read_text(encoding="utf-8")
    for number, cells in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not cells:
            continue
        try:
            scores.append(float(cells[0]))
        except ValueError:
            raise MlInputError(
                f"{files[0]} line {number} is {','.join(cells)[:80]!r}, not `score,label`: the transform must ask "
                "the model for text/csv (Accept)."
            ) from None
    return np.array(scores, dtype=float)


def score(predictions_dir: Path, labels_dir: Path, metric: str, min_records: int) -> dict[str, Any]:
    """The report: `metric` of the transform's scores against the split's labels, or why there is no verdict."""
    labels, split_summary = read_labels(labels_dir)
    report: dict[str, Any] = {
        "report_version": REPORT_VERSION,
        "metric": metric,
        "min_records": min_records,
        "records": {
            "read": int(split_summary["records"]["read"]),
            "rejected": int(split_summary["records"]["rejected"]),
            "rejection_examples": list(split_summary["records"]["rejection_examples"]),
            "scored": 0,
        },
        "files": int(split_summary["files"]),
    }
    if len(labels) < min_records:
        reason = f"{len(labels)} labelled records after rejections, fewer than the {min_records} the metric needs"
        return {**report, "status": "insufficient_data", "value": None, "reason": reason}
    present = sorted(set(labels.tolist()))
    if present != list(BINARY_LABELS):
        reason = f"the labels hold only class {present}: {metric} needs records of both classes 0 and 1"
        return {**report, "status": "insufficient_data", "value": None, "reason": reason}
    scores = read_scores(predictions_dir)
    if len(scores) != len(labels):
        raise MlInputError(
            f"the transform returned {len(scores)} predictions for {len(labels)} labelled records: each record of "
            f"{FEATURES_FILE_NAME} needs one line of output (SplitType Line, AssembleWith Line)."
        )
    metrics = classification_metrics(labels, scores)
    report["records"]["scored"] = len(labels)
    return {**report, "status": "ok", "value": metrics[metric], "reason": None, "metrics": metrics}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
