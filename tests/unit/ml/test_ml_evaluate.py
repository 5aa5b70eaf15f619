"""evaluate.py's refusals: a missing or wrong model archive and test data that does not fit the model."""

from __future__ import annotations

import io
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

RunEvaluate = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run_evaluate(
    tmp_path: Path, ml_module: Callable[[str], ModuleType], capsys: pytest.CaptureFixture[str]
) -> RunEvaluate:
    """evaluate.py's `main` in this process; returns the exit code and what it printed."""
    main = ml_module("evaluate").main

    def run(model_dir: Path, test_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        train_dir = test_dir.parent / "train"
        args = ["--model-dir", str(model_dir), "--test-dir", str(test_dir), "--train-dir", str(train_dir)]
        args += ["--pretraining-bias-dir", str(test_dir.parent / "baseline")]
        args += ["--output-dir", str(tmp_path / "report"), *extra]
        exit_code = main(args)
        printed = capsys.readouterr()
        return subprocess.CompletedProcess(args, exit_code, printed.out, printed.err)

    return run


def assert_fails_with(process: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert process.returncode == 1
    assert process.stderr.startswith("ERROR: "), process.stderr
    for fragment in fragments:
        assert fragment in process.stderr


def test_fails_when_the_model_archive_is_missing(
    tmp_path: Path, prepared_data: Path, run_evaluate: RunEvaluate
) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "model.tgz").write_bytes(b"")

    process = run_evaluate(model_dir, prepared_data / "test")

    assert_fails_with(process, f"{model_dir / 'model.tar.gz'} does not exist", "['model.tgz']")


def test_fails_when_the_archive_holds_no_model(tmp_path: Path, prepared_data: Path, run_evaluate: RunEvaluate) -> None:
    with tarfile.open(tmp_path / "model.tar.gz", "w:gz") as tar:
        readme = b"not a model"
        member = tarfile.TarInfo("README")
        member.size = len(readme)
        tar.addfile(member, io.BytesIO(readme))

    process = run_evaluate(tmp_path, prepared_data / "test")

    assert_fails_with(process, "holds no xgboost-model")


def test_fails_when_the_test_columns_differ_from_the_training_columns(
    tmp_path: Path, prepared_data: Path, model_archive: Path, run_evaluate: RunEvaluate
) -> None:
    test = pd.read_csv(prepared_data / "test" / "test.csv")
    renamed_dir = tmp_path / "test"
    renamed_dir.mkdir()
    test.rename(columns={"mean radius": "radius"}).to_csv(renamed_dir / "test.csv", index=False)

    process = run_evaluate(model_archive, renamed_dir)

    assert_fails_with(process, "differ from the columns the model was trained on", "evaluate with the test split")
    assert not (tmp_path / "report").exists()
