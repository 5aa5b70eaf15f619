"""Fixtures for the ml/ tests: breast-cancer data, and each script run in a child process as SageMaker runs it."""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
import pytest

from contract.pipeline_config import load_pipeline_config
from emulator.sagemaker_local.containers import job_python

ML_DIR = Path(__file__).resolve().parents[3] / "ml"
# The interpreter the scripts run with as child processes: the job environment's by default (the container's Python
# and packages, as the twin's jobs run); ML_PYTHON names another. The in-process tests use the dev venv's.
ML_PYTHON = os.environ.get("ML_PYTHON")
LABEL_COLUMN = "target"
# A child process that hangs must fail the test, not the whole run.
SCRIPT_TIMEOUT_SECONDS = 120


@dataclass(frozen=True)
class TrainingRun:
    """One training job: its /opt/ml root, where the model went, and what the process did."""

    opt_ml_root: Path
    model_dir: Path
    process: subprocess.CompletedProcess[str]

    @property
    def metrics(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads((self.opt_ml_root / "output" / "data" / "metrics.json").read_text())
        return loaded

    @property
    def failure(self) -> str:
        return (self.opt_ml_root / "output" / "failure").read_text()


def run_ml_script(
    script: str, args: list[str], env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs `ml/<script>` with the job environment (or ML_PYTHON), as a container runs `python3 <script>`."""
    return subprocess.run(
        [ML_PYTHON or job_python(), str(ML_DIR / script), *args],
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **(env or {})},
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT_SECONDS,
        check=False,
    )


def run_training(opt_ml_root: Path, data_dir: Path, hyperparameters: Mapping[str, Any]) -> TrainingRun:
    """A training job on preprocess outputs in `data_dir`, hyperparameters JSON-encoded as framework estimators do."""
    args = [part for name, value in hyperparameters.items() for part in (f"--{name}", json.dumps(value))]
    model_dir = opt_ml_root / "model"
    env = {
        "OPT_ML_ROOT": str(opt_ml_root),
        "SM_CHANNEL_TRAIN": str(data_dir / "train"),
        "SM_CHANNEL_VALIDATION": str(data_dir / "validation"),
        "SM_MODEL_DIR": str(model_dir),
        "SM_OUTPUT_DATA_DIR": str(opt_ml_root / "output" / "data"),
        "SM_NUM_CPUS": "2",
    }
    return TrainingRun(opt_ml_root, model_dir, run_ml_script("train.py", args, env))


def preprocess_args(input_dir: Path, output_dir: Path, *extra: str) -> list[str]:
    """preprocess.py's arguments as the training workflow passes them (pipeline.toml's split settings)."""
    data = load_pipeline_config().data
    return [
        "--input-dir",
        str(input_dir),
        "--output-dir",
        str(output_dir),
        "--label-column",
        LABEL_COLUMN,
        "--test-fraction",
        str(data.test_fraction),
        "--validation-fraction",
        str(data.validation_fraction),
        "--seed",
        str(data.split_seed),
        *extra,
    ]


@pytest.fixture(scope="session")
def breast_cancer() -> pd.DataFrame:
    """scikit-learn's bundled breast-cancer set: 569 rows, 30 numeric features, 0/1 label `target`."""
    from sklearn.datasets import load_breast_cancer

    frame: pd.DataFrame = load_breast_cancer(as_frame=True).frame
    return frame


@pytest.fixture(scope="session")
def breast_cancer_dir(tmp_path_factory: pytest.TempPathFactory, breast_cancer: pd.DataFrame) -> Path:
    """A processing input folder holding the breast-cancer CSV."""
    input_dir = tmp_path_factory.mktemp("breast_cancer")
    breast_cancer.to_csv(input_dir / "breast_cancer.csv", index=False)
    return input_dir


@pytest.fixture(scope="session")
def prepared_data(tmp_path_factory: pytest.TempPathFactory, breast_cancer_dir: Path) -> Path:
    """preprocess.py's output folder for the breast-cancer data."""
    output_dir = tmp_path_factory.mktemp("prepared")
    process = run_ml_script("preprocess.py", preprocess_args(breast_cancer_dir, output_dir))
    assert process.returncode == 0, process.stderr
    return output_dir


@pytest.fixture(scope="session")
def pipeline_hyperparameters() -> dict[str, Any]:
    """pipeline.toml's training hyperparameters, what the training workflow sends."""
    return dict(load_pipeline_config().training.hyperparameters)


@pytest.fixture(scope="session")
def trained_model(
    tmp_path_factory: pytest.TempPathFactory, prepared_data: Path, pipeline_hyperparameters: dict[str, Any]
) -> TrainingRun:
    """A training job with pipeline.toml's hyperparameters plus the ones SageMaker's script mode adds."""
    hyperparameters = {
        **pipeline_hyperparameters,
        "sagemaker_program": "train.py",
        "sagemaker_submit_directory": "/opt/ml/input/data/code/sourcedir.tar.gz",
    }
    run = run_training(tmp_path_factory.mktemp("opt_ml"), prepared_data, hyperparameters)
    assert run.process.returncode == 0, run.process.stderr
    return run


@pytest.fixture(scope="session")
def model_archive(tmp_path_factory: pytest.TempPathFactory, trained_model: TrainingRun) -> Path:
    """A folder holding model.tar.gz made from the model folder, as SageMaker uploads it after training."""
    archive_dir = tmp_path_factory.mktemp("model_archive")
    with tarfile.open(archive_dir / "model.tar.gz", "w:gz") as tar:
        for path in sorted(trained_model.model_dir.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(trained_model.model_dir)), recursive=False)
    return archive_dir


@pytest.fixture
def served_model_dir(tmp_path: Path, model_archive: Path) -> Path:
    """model.tar.gz unpacked as an endpoint unpacks it into /opt/ml/model."""
    with tarfile.open(model_archive / "model.tar.gz") as tar:
        for member in tar.getmembers():
            assert not member.name.startswith(("/", "..")), member.name
        tar.extractall(tmp_path)  # noqa: S202 (members checked above; the archive is the test's own)
    return tmp_path


@contextlib.contextmanager
def imported_from(directory: Path) -> Iterator[Callable[[str], ModuleType]]:
    """Imports flat modules from `directory` as a container does (the folder on sys.path), then forgets them.

    The ml/ modules have plain names (`train`, `inference`, `mlcore`); dropping them afterwards keeps one test's
    copy (say, the artifact's code/) from standing in for another's.
    """
    before = set(sys.modules)
    sys.path.insert(0, str(directory))
    try:

        def load(name: str) -> ModuleType:
            module = importlib.import_module(name)
            assert Path(module.__file__ or "").parent == directory, f"{name} came from {module.__file__}"
            return module

        yield load
    finally:
        sys.path.remove(str(directory))
        for name in set(sys.modules) - before:
            if Path(getattr(sys.modules[name], "__file__", None) or "/").parent == directory:
                del sys.modules[name]


@pytest.fixture
def inference(served_model_dir: Path) -> Iterator[ModuleType]:
    """The artifact's own code/inference.py, imported as the serving toolkit imports it (code/ on sys.path)."""
    with imported_from(served_model_dir / "code") as load:
        yield load("inference")


@pytest.fixture
def ml_module() -> Iterator[Callable[[str], ModuleType]]:
    """Imports an ml/ script in this process, to call its functions directly (much faster than a child process)."""
    with imported_from(ML_DIR) as load:
        yield load


@pytest.fixture
def run_preprocess(
    tmp_path: Path, ml_module: Callable[[str], ModuleType], capsys: pytest.CaptureFixture[str]
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Runs preprocess.py's `main` in this process on `input_dir` into `<tmp_path>/output`; extra arguments follow.

    What a child process would give: the exit code and the printed output. (The `prepared_data` fixture and a
    failure test run the script as a real child process.)
    """
    main = ml_module("preprocess").main

    def run(input_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        args = preprocess_args(input_dir, tmp_path / "output", *extra)
        exit_code = main(args)
        printed = capsys.readouterr()
        return subprocess.CompletedProcess(args, exit_code, printed.out, printed.err)

    return run


@pytest.fixture(scope="session")
def train_job(prepared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., TrainingRun]:
    """Runs a training job on the prepared breast-cancer data; pass `opt_ml_root` to reuse a job's checkpoints."""

    def run(hyperparameters: Mapping[str, Any], opt_ml_root: Path | None = None) -> TrainingRun:
        return run_training(opt_ml_root or tmp_path_factory.mktemp("opt_ml"), prepared_data, hyperparameters)

    return run


@pytest.fixture(scope="session")
def ml_script() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Runs `ml/<script>` with arguments and extra environment variables, as a container would."""
    return run_ml_script
