"""The lifecycle's input data: the bundled breast-cancer set by default, or a user's CSV checked before any job runs."""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pandas as pd

from contract.project import ML_DIR

DEFAULT_LABEL_COLUMN = "target"
DEFAULT_DATASET_FILE = "breast_cancer.csv"
# How many bad values an error quotes: enough to see the pattern, short enough to read.
_EXAMPLES_SHOWN = 3


class DatasetError(ValueError):
    """The CSV cannot be trained on; the message names the file, the problem and what to do."""


@dataclass(frozen=True)
class Dataset:
    """A CSV ready for upload: a header, a label column and numeric features."""

    path: Path
    label_column: str
    feature_columns: tuple[str, ...]
    n_rows: int


def write_default_dataset(directory: Path) -> Dataset:
    """Writes scikit-learn's bundled breast-cancer data set (569 rows, 30 features, label `target`) as a CSV."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / DEFAULT_DATASET_FILE
    frame.to_csv(path, index=False)
    return _describe(path, frame, DEFAULT_LABEL_COLUMN)


def load_user_dataset(path: Path, label_column: str) -> Dataset:
    """Checks a user's CSV: it exists, has a header, holds `label_column` and only numeric features."""
    if not path.is_file():
        raise DatasetError(f"data file not found: {path}. Pass an existing CSV with --data.")
    mlcore = _ml_core()
    try:
        frame = mlcore.read_csv_file(path)
    except mlcore.MlInputError as exc:
        raise DatasetError(str(exc)) from exc
    if label_column not in frame.columns:
        raise DatasetError(
            f"label column {label_column!r} is not in {path}; its columns are: {', '.join(map(str, frame.columns))}. "
            "Pass the right one with --label-column."
        )
    if frame.empty:
        raise DatasetError(f"{path} has a header but no data rows.")
    _check_numeric_features(path, frame, label_column)
    _check_label(path, frame, label_column)
    return _describe(path, frame, label_column)


@functools.cache
def _ml_core() -> ModuleType:
    """ml/mlcore.py, loaded from its file: ml/ is the containers' code folder, not a package of the project."""
    spec = importlib.util.spec_from_file_location("mlcore", ML_DIR / "mlcore.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {ML_DIR / 'mlcore.py'}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check_numeric_features(path: Path, frame: pd.DataFrame, label_column: str) -> None:
    problems = []
    for column in frame.columns.drop(label_column):
        values = frame[column]
        as_numbers = pd.to_numeric(values, errors="coerce")
        bad = values[as_numbers.isna() & values.notna()]
        if not bad.empty:
            examples = ", ".join(repr(v) for v in bad.unique()[:_EXAMPLES_SHOWN])
            problems.append(f"{column!r} (e.g. {examples})")
    if problems:
        raise DatasetError(
            f"{path}: features must be numeric, these columns are not: {'; '.join(problems)}. "
            "Encode them as numbers or drop them before running."
        )


def _check_label(path: Path, frame: pd.DataFrame, label_column: str) -> None:
    # The pipeline trains a binary classifier (pipeline.toml [model] problem_type); preprocess drops unlabelled rows.
    labels = frame[label_column].dropna()
    numeric = pd.to_numeric(labels, errors="coerce")
    others = labels[(numeric != 0) & (numeric != 1)]
    if not others.empty:
        examples = ", ".join(repr(v) for v in others.unique()[:_EXAMPLES_SHOWN])
        raise DatasetError(
            f"{path}: label column {label_column!r} must hold 0 and 1, found {examples}. "
            "Encode the positive class as 1 and the other as 0."
        )
    if numeric.nunique() < 2:
        raise DatasetError(
            f"{path}: label column {label_column!r} holds a single class; a classifier needs rows of both 0 and 1."
        )


def with_pipeline_label(dataset: Dataset, pipeline_label: str, directory: Path) -> Path:
    """The CSV to upload: `dataset` itself, or a copy whose label column is renamed to the pipeline's.

    The training workflow passes pipeline.toml's label column to preprocessing, so a user's CSV with another
    label name is uploaded under that name rather than failing inside the first job.
    """
    if dataset.label_column == pipeline_label:
        return dataset.path
    if pipeline_label in dataset.feature_columns:
        raise DatasetError(
            f"{dataset.path}: the pipeline's label column is {pipeline_label!r} (pipeline.toml [model] label_column) "
            f"but that name is a feature column here while the label is {dataset.label_column!r}. Rename one of them."
        )
    frame = pd.read_csv(dataset.path, skipinitialspace=True, encoding=_ml_core().CSV_ENCODING).rename(
        columns={dataset.label_column: pipeline_label}
    )
    directory.mkdir(parents=True, exist_ok=True)
    staged = directory / dataset.path.name
    frame.to_csv(staged, index=False)
    return staged


def _describe(path: Path, frame: pd.DataFrame, label_column: str) -> Dataset:
    return Dataset(
        path=path,
        label_column=label_column,
        feature_columns=tuple(str(c) for c in frame.columns.drop(label_column)),
        n_rows=len(frame),
    )
