"""Helpers the ml/ scripts share: labelled CSV loading, label checks, the model file format and metrics.

Everything here runs in two places: SageMaker's XGBoost framework container 3.0-5 (Python 3.10, xgboost 3.0.5,
pandas 2.2, numpy 2.1, scikit-learn 1.5; the twin's jobs run in a job environment with exactly its packages) and,
for ml/'s in-process unit tests, the project's virtualenv (Python 3.11, xgboost 3.2, pandas 3.x). So: no syntax
or library call newer than the oldest of these (ruff's py310 target and `mlops check --only ml-python` refuse
Python 3.11's), and type hints only as postponed annotations.
"""

from __future__ import annotations

import codecs
import csv
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn import metrics as skmetrics

# The file name SageMaker's XGBoost containers look for inside model.tar.gz.
MODEL_FILE_NAME = "xgboost-model"
# Booster attribute holding the training columns' names: the model file itself stays free of feature names, so
# any CSV header works (xgboost rejects names with '[', ']' or '<') and prediction needs no names.
FEATURE_NAMES_ATTRIBUTE = "feature_names"
# Probability at or above which a row is predicted as the positive class; evaluation and inference agree on it.
DECISION_THRESHOLD = 0.5
BINARY_LABELS = (0, 1)
# How many offending values an error message quotes.
_EXAMPLES_SHOWN = 3
# XGBoost stores features as 32-bit floats, and so does the drift baseline (monitor.py): a larger magnitude becomes
# infinite there. The largest finite float32 is the bound every feature value must respect.
FEATURE_VALUE_LIMIT = float(np.finfo(np.float32).max)
# Data files are read in pieces of this size to find where a non-UTF-8 byte is without holding the file twice.
_DECODE_CHUNK_BYTES = 1 << 20
# The encoding data files are read with: UTF-8, with a byte order mark (as spreadsheet exports write) skipped.
CSV_ENCODING = "utf-8-sig"


class MlInputError(ValueError):
    """The data, model or request cannot be used; the message names the bad value and says what to do."""


def fail_processing_job(error: MlInputError) -> int:
    """Reports `error` as SageMaker processing jobs do (the exit code and stderr); returns the exit code."""
    print(f"ERROR: {error}", file=sys.stderr)
    return 1


def find_csv_files(directory: Path) -> list[Path]:
    """Every `*.csv` under `directory`, in a stable order; S3 prefixes arrive as nested folders."""
    if not directory.is_dir():
        raise MlInputError(f"input directory {directory} does not exist: stage the CSV files there.")
    files = sorted(path for path in directory.rglob("*.csv") if path.is_file())
    if not files:
        raise MlInputError(f"no CSV files under {directory}: upload at least one .csv file with a header row.")
    return files


def check_utf8(path: Path) -> None:
    """Fails naming the byte offset of the first byte of `path` that is not UTF-8 (a Latin-1 export, for example)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with path.open("rb") as handle:
        while True:
            chunk = handle.read(_DECODE_CHUNK_BYTES)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as error:
                # The decoder's offsets count from the bytes it still held from the previous chunk.
                held = len(error.object) - len(chunk)
                position = offset - held + error.start
                raise MlInputError(
                    f"{path} is not UTF-8 at byte {position} (0x{error.object[error.start]:02x}): save it as UTF-8 "
                    "(spreadsheets: CSV UTF-8)."
                ) from None
            if not chunk:
                return
            offset += len(chunk)


def check_finite_values(frame: pd.DataFrame, path: Path) -> None:
    """Fails naming the column, the data row (1 = the row after the header) and the value of the first cell that is
    a number but infinite or beyond FEATURE_VALUE_LIMIT; missing and non-numeric cells are left to other checks."""
    for name in frame.columns:
        numeric = pd.to_numeric(frame[name], errors="coerce")
        values = numeric.to_numpy(dtype=float)
        present = ~np.isnan(values)
        bad = present & ~(np.abs(np.where(present, values, 0.0)) <= FEATURE_VALUE_LIMIT)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            value = values[row]
            problem = "is infinite" if math.isinf(value) else f"is beyond +/-{FEATURE_VALUE_LIMIT:.4g}"
            raise MlInputError(
                f"{path}: column {name!r}, data row {row + 1}: {float(value)!r} {problem} "
                f"({int(bad.sum())} such cell(s) in the column). XGBoost stores 32-bit floats: "
                "replace or drop such values, leave unknown ones empty."
            )


def read_header(path: Path) -> list[str]:
    """The column names in the first row of `path`; fails when the file is empty or the row is data, not names."""
    check_utf8(path)
    with path.open(newline="", encoding=CSV_ENCODING) as handle:
        header = next(csv.reader(handle), [])
    names = [name.strip() for name in header]
    if not names or names == [""]:
        raise MlInputError(f"{path} is empty: it needs a header row naming the columns, then data rows.")
    if all(_is_number(name) for name in names):
        shown = ", ".join(names[:_EXAMPLES_SHOWN])
        raise MlInputError(
            f"{path} has no header: its first row is all numbers ({shown}, ...). "
            "Add a header row naming the columns, one of them the label."
        )
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise MlInputError(f"{path} repeats the column names {duplicates}: give every column a distinct name.")
    return names


def read_csv_file(path: Path) -> pd.DataFrame:
    """One data file as a frame: UTF-8 (a BOM is skipped), a header row of distinct names, finite numbers.

    The one check of a data file, shared by the processing jobs and by `mlops run --data` before it starts.
    """
    names = read_header(path)
    try:
        frame = pd.read_csv(path, skipinitialspace=True, encoding=CSV_ENCODING)
    except pd.errors.ParserError as error:
        raise MlInputError(
            f"{path} is not a well-formed CSV: {error}. Give every row as many cells as the header."
        ) from None
    frame.columns = names
    check_finite_values(frame, path)
    return frame


def read_csv_files(files: list[Path]) -> pd.DataFrame:
    """The rows of every file, in the first file's column order; all files must have the same columns."""
    columns = read_header(files[0])
    frames = []
    for path in files:
        names = read_header(path)
        if set(names) != set(columns):
            missing = sorted(set(columns) - set(names))
            extra = sorted(set(names) - set(columns))
            raise MlInputError(
                f"{path} has different columns from {files[0]} (missing {missing}, extra {extra}): "
                "every file of a data set needs the same header."
            )
        frames.append(read_csv_file(path)[columns])
    return pd.concat(frames, ignore_index=True)


def encode_binary_labels(labels: pd.Series, source: str) -> np.ndarray:
    """The labels as an int array of 0 and 1; fails unless every value is 0 or 1 (as a number).

    `labels` must hold no missing values. `source` names where the labels came from, for the message.
    """
    numeric = pd.to_numeric(labels, errors="coerce")
    not_numbers = labels[numeric.isna()]
    if len(not_numbers):
        raise MlInputError(
            f"label column {labels.name!r} in {source} holds values that are not numbers, e.g. "
            f"{_examples(not_numbers)}: encode the positive class as 1 and the negative class as 0."
        )
    values = numeric.to_numpy(dtype=float)
    found = sorted(set(values.tolist()))
    if any(value not in BINARY_LABELS for value in found):
        raise MlInputError(
            f"label column {labels.name!r} in {source} holds {_format_values(found)}; this pipeline trains a "
            "binary classifier: encode the positive class as 1 and the negative class as 0."
        )
    return values.astype(int)


def read_labelled_split(directory: Path, what: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Features, labels and feature names of a split written by preprocess.py (header, label first)."""
    frame = read_csv_files(find_csv_files(directory))
    if frame.shape[1] < 2:
        raise MlInputError(f"the {what} data in {directory} has no feature columns: expected the label, then features.")
    if frame.empty:
        raise MlInputError(f"the {what} data in {directory} has a header but no rows.")
    label = frame.iloc[:, 0]
    if label.isna().any():
        raise MlInputError(
            f"the {what} data in {directory} has {int(label.isna().sum())} rows without a label in its first "
            f"column {label.name!r}: run preprocess.py, which drops them."
        )
    labels = encode_binary_labels(label, f"the {what} data in {directory}")
    features = frame.iloc[:, 1:].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    return features, labels, [str(name) for name in frame.columns[1:]]


def save_booster(booster: xgb.Booster, path: Path) -> None:
    """Writes the model as JSON, which xgboost 1.7 and 3.x both read whatever the file is called."""
    path.write_bytes(bytes(booster.save_raw(raw_format="json")))


def load_booster(model_bytes: bytes) -> xgb.Booster:
    """The model saved by `save_booster`, from its bytes."""
    booster = xgb.Booster()
    booster.load_model(bytearray(model_bytes))
    return booster


def booster_feature_names(booster: xgb.Booster) -> list[str]:
    """The training columns' names recorded by train.py."""
    recorded = booster.attr(FEATURE_NAMES_ATTRIBUTE)
    if recorded is None:
        raise MlInputError(
            f"the model does not record its feature names (booster attribute {FEATURE_NAMES_ATTRIBUTE!r}): "
            "use a model trained by train.py."
        )
    names: list[str] = json.loads(recorded)
    return names


def classification_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """AUC, accuracy, F1, precision, recall and log loss of positive-class probabilities against 0/1 labels."""
    present = sorted(set(labels.tolist()))
    if present != list(BINARY_LABELS):
        raise MlInputError(
            f"the labels hold only {present}: AUC needs rows of both classes 0 and 1; use a larger, stratified split."
        )
    predicted = predicted_labels(scores)
    return {
        "auc": float(skmetrics.roc_auc_score(labels, scores)),
        "accuracy": float(skmetrics.accuracy_score(labels, predicted)),
        "f1": float(skmetrics.f1_score(labels, predicted, zero_division=0)),
        "precision": float(skmetrics.precision_score(labels, predicted, zero_division=0)),
        "recall": float(skmetrics.recall_score(labels, predicted, zero_division=0)),
        "logloss": float(skmetrics.log_loss(labels, scores, labels=list(BINARY_LABELS))),
    }


def per_class_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, dict[str, Any]]:
    """Precision, recall, F1 and support of each class, keyed by the class label as a string."""
    precision, recall, f1, support = skmetrics.precision_recall_fscore_support(
        labels, predicted_labels(scores), labels=list(BINARY_LABELS), zero_division=0
    )
    return {
        str(label): {
            "precision": float(precision[index]),
            "recall": float(recall[index]),
            "f1": float(f1[index]),
            "support": int(support[index]),
        }
        for index, label in enumerate(BINARY_LABELS)
    }


def predicted_labels(scores: np.ndarray) -> np.ndarray:
    """0/1 predictions from positive-class probabilities."""
    return (scores >= DECISION_THRESHOLD).astype(int)


def write_json(path: Path, document: dict[str, Any]) -> None:
    """Writes `document` as indented JSON, creating the folder; NaN is refused because JSON has no NaN."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from a file another job wrote; anything else is refused naming the file."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise MlInputError(f"{path} is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise MlInputError(f"{path} holds {type(document).__name__}, not a JSON object")
    return document


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _examples(values: pd.Series) -> str:
    return ", ".join(repr(value) for value in values.unique()[:_EXAMPLES_SHOWN].tolist())


def _format_values(values: list[float]) -> str:
    shown = [int(value) if float(value).is_integer() else value for value in values[: _EXAMPLES_SHOWN + 2]]
    more = ", ..." if len(values) > len(shown) else ""
    return "[" + ", ".join(str(value) for value in shown) + more + "]"
