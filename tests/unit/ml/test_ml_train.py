"""train.py as a SageMaker training job: hyperparameters, determinism, spot checkpoints and the failure file."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

TrainJob = Callable[..., Any]
# Small and quick; subsampling on so the seed matters.
QUICK = {"num_round": 20, "max_depth": 3, "eta": 0.3, "subsample": 0.8, "colsample_bytree": 0.8, "seed": 7}
# Without sampling, boosting continued from a checkpoint builds exactly the trees an uninterrupted run builds.
NO_SAMPLING = {**QUICK, "subsample": 1.0, "colsample_bytree": 1.0, "checkpoint_frequency": 5}


@pytest.fixture(scope="module")
def quick_run(train_job: TrainJob) -> Any:
    """One small training job that several tests compare against."""
    run = train_job(QUICK)
    assert run.process.returncode == 0, run.process.stderr
    return run


def model_bytes(run: Any) -> bytes:
    data: bytes = (run.model_dir / "xgboost-model").read_bytes()
    return data


def rounds_printed(run: Any) -> list[int]:
    return [int(number) for number in re.findall(r"^\[(\d+)\] ", run.process.stdout, flags=re.MULTILINE)]


def test_same_seed_trains_the_same_model_whatever_platform_hyperparameters_come_along(
    train_job: TrainJob, quick_run: Any
) -> None:
    # GIVEN the hyperparameters SageMaker itself adds to a script-mode or tuning job
    platform = {
        "sagemaker_program": "train.py",
        "sagemaker_submit_directory": "/opt/ml/input/data/code/sourcedir.tar.gz",
        "sagemaker_region": "us-east-1",
        "_tuning_objective_metric": "validation:auc",
    }

    # WHEN the same training runs again with them
    again = train_job({**QUICK, **platform})

    # THEN they are ignored and the seed gives the very same model
    assert again.process.returncode == 0, again.process.stderr
    assert model_bytes(again) == model_bytes(quick_run)


def test_another_seed_trains_another_model(train_job: TrainJob, quick_run: Any) -> None:
    reseeded = train_job({**QUICK, "seed": 8})

    assert reseeded.process.returncode == 0, reseeded.process.stderr
    assert model_bytes(reseeded) != model_bytes(quick_run)


def test_plain_and_json_encoded_hyperparameter_values_mean_the_same(
    quick_run: Any, prepared_data: Path, ml_script: Callable[..., Any], tmp_path: Path
) -> None:
    # GIVEN the hyperparameters of the JSON-encoded quick run (as framework estimators send them), now plain
    plain_args = [part for name, value in QUICK.items() for part in (f"--{name}", str(value))]
    env = {
        "OPT_ML_ROOT": str(tmp_path),
        "SM_CHANNEL_TRAIN": str(prepared_data / "train"),
        "SM_CHANNEL_VALIDATION": str(prepared_data / "validation"),
        "SM_MODEL_DIR": str(tmp_path / "model"),
        "SM_OUTPUT_DATA_DIR": str(tmp_path / "output"),
        "SM_NUM_CPUS": "1",
    }

    # WHEN both are trained
    plain = ml_script("train.py", plain_args, env)

    # THEN the models are the same, and the thread count came from SM_NUM_CPUS
    assert plain.returncode == 0, plain.stderr
    assert "1 thread(s)" in plain.stdout
    assert (tmp_path / "model" / "xgboost-model").read_bytes() == model_bytes(quick_run)


def test_interrupted_training_resumes_from_the_newest_checkpoint(train_job: TrainJob, tmp_path: Path) -> None:
    # GIVEN a job that checkpointed 10 rounds before it stopped, as a reclaimed spot instance does
    opt_ml_root = tmp_path / "opt_ml"
    interrupted = train_job({**NO_SAMPLING, "num_round": 10}, opt_ml_root)
    assert sorted(path.name for path in (opt_ml_root / "checkpoints").iterdir()) == ["xgboost-checkpoint.10"]

    # WHEN the job restarts with its checkpoint folder
    resumed = train_job({**NO_SAMPLING, "num_round": 25}, opt_ml_root)

    # THEN it trains only the missing rounds and ends with the model an uninterrupted job builds
    uninterrupted = train_job({**NO_SAMPLING, "num_round": 25})
    assert interrupted.process.returncode == resumed.process.returncode == uninterrupted.process.returncode == 0
    assert "resuming from checkpoint: 10 of 25 rounds already trained" in resumed.process.stdout
    assert rounds_printed(resumed) == list(range(10, 25))
    assert resumed.metrics["resumed_from_round"] == 10
    assert resumed.metrics["rounds_trained"] == 25
    assert model_bytes(resumed) == model_bytes(uninterrupted)
    assert sorted(path.name for path in (opt_ml_root / "checkpoints").iterdir()) == ["xgboost-checkpoint.25"]


def test_checkpoint_of_other_hyperparameters_is_not_resumed(train_job: TrainJob, tmp_path: Path) -> None:
    opt_ml_root = tmp_path / "opt_ml"
    train_job({**NO_SAMPLING, "num_round": 10}, opt_ml_root)

    retuned = train_job({**NO_SAMPLING, "num_round": 10, "eta": 0.1}, opt_ml_root)

    assert retuned.process.returncode == 0, retuned.process.stderr
    assert "ignoring checkpoint" in retuned.process.stdout
    assert rounds_printed(retuned) == list(range(10))
    assert retuned.metrics["resumed_from_round"] is None


def test_early_stopping_state_survives_a_resume(train_job: TrainJob, tmp_path: Path) -> None:
    # GIVEN a checkpoint written at round 40 of a run whose best validation logloss came long before
    stopping = {**NO_SAMPLING, "eta": 0.5, "eval_metric": "logloss", "early_stopping_rounds": 5}
    uninterrupted = train_job({**stopping, "num_round": 200})
    best = uninterrupted.metrics["best_iteration"]
    assert uninterrupted.metrics["stopped_early"] is True
    opt_ml_root = tmp_path / "opt_ml"
    checkpoint_round = best + 2
    train_job({**stopping, "num_round": checkpoint_round, "checkpoint_frequency": checkpoint_round}, opt_ml_root)

    # WHEN the job resumes with its full budget
    resumed = train_job({**stopping, "num_round": 200, "checkpoint_frequency": checkpoint_round}, opt_ml_root)

    # THEN it stops where the uninterrupted job stopped and keeps the same best round
    assert resumed.metrics["rounds_trained"] == uninterrupted.metrics["rounds_trained"]
    assert resumed.metrics["best_iteration"] == best
    assert model_bytes(resumed) == model_bytes(uninterrupted)


def test_unknown_hyperparameter_fails_the_job_naming_it(train_job: TrainJob) -> None:
    run = train_job({**QUICK, "learning_rat": 0.1})

    assert run.process.returncode == 1
    assert "unknown hyperparameter(s) ['learning_rat']" in run.failure
    assert "'eta'" in run.failure
    assert "ERROR: unknown hyperparameter(s)" in run.process.stderr
    assert not (run.model_dir / "xgboost-model").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--num_round", "0"], "hyperparameter num_round is 0: it must be a whole number of at least 1"),
        (["--max_depth", "2.5"], "hyperparameter max_depth is 2.5: it must be a whole number"),
        (["--eta", '"fast"'], "hyperparameter eta is 'fast': it must be a number"),
        (["--objective", "reg:squarederror"], "it must be 'binary:logistic'"),
        (["--early_stopping_rounds", "-1"], "it must be a whole number of at least 0"),
        (["--eval_metric", '""'], "hyperparameter eval_metric is empty"),
        (["--eta"], "hyperparameter --eta has no value"),
        (["eta", "0.1"], "expected a hyperparameter name like --eta, got 'eta'"),
    ],
)
def test_invalid_hyperparameters_are_rejected_naming_the_value(
    ml_module: Callable[[str], ModuleType], argv: list[str], message: str
) -> None:
    parse_hyperparameters = ml_module("train").parse_hyperparameters

    with pytest.raises(ValueError, match=re.escape(message)):
        parse_hyperparameters(argv)


def test_hyperparameters_accept_both_argument_forms_and_default_the_rest(
    ml_module: Callable[[str], ModuleType],
) -> None:
    settings = ml_module("train").parse_hyperparameters(
        ["--eta=0.2", "--max_depth", '"5"', "--eval_metric", "auc,logloss"]
    )

    assert settings.booster_params == {
        "objective": "binary:logistic",
        "tree_method": "hist",
        "seed": 0,
        "eta": 0.2,
        "max_depth": 5,
    }
    assert settings.eval_metrics == ["auc", "logloss"]
    assert (settings.num_round, settings.early_stopping_rounds, settings.checkpoint_frequency) == (100, 0, 10)


def test_missing_validation_channel_fails_the_job_naming_the_folder(
    prepared_data: Path, ml_script: Callable[..., Any], tmp_path: Path
) -> None:
    env = {
        "OPT_ML_ROOT": str(tmp_path),
        "SM_CHANNEL_TRAIN": str(prepared_data / "train"),
        "SM_CHANNEL_VALIDATION": str(tmp_path / "no-such-channel"),
    }

    process = ml_script("train.py", ["--num_round", "5"], env)

    assert process.returncode == 1
    failure = (tmp_path / "output" / "failure").read_text()
    assert f"input directory {tmp_path / 'no-such-channel'} does not exist" in failure


def test_metrics_file_records_the_run(quick_run: Any) -> None:
    metrics = quick_run.metrics
    assert metrics["rounds_trained"] == metrics["model_rounds"] == QUICK["num_round"]
    assert metrics["stopped_early"] is False
    assert metrics["hyperparameters"]["eta"] == QUICK["eta"]
    assert set(metrics["final_metrics"]) == {"train:auc", "train:logloss", "validation:auc", "validation:logloss"}
