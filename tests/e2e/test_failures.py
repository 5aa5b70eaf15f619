"""End to end on the local twin: a raising training script and a failed quality gate end in their named Fail states."""

from __future__ import annotations

import dataclasses
import io
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from ml_code_publisher import publisher
from moto.sns.models import sns_backends

from contract.local_account import LOCAL_ACCOUNT_ID, LOCAL_REGION
from contract.pipeline_config import PipelineConfig, load_pipeline_config
from contract.project import PROJECT_ROOT
from emulator.commands.datasets import write_default_dataset
from emulator.commands.lifecycle import LifecycleError, LifecycleOutcome, run_lifecycle, started_twin
from emulator.history import CAUGHT, SUCCEEDED
from emulator.sagemaker_local.s3io import split_s3_uri
from emulator.twin import ExecutionResult, LocalTwin
from workflows.export import render_statemachines

pytestmark = pytest.mark.e2e

RAISING_TRAIN_SCRIPT = 'raise RuntimeError("injected failure: the training script raised")\n'
# Above anything a model can reach: the gate metric (AUC) is at most 1.0 and this model does not reach it exactly.
UNREACHABLE_THRESHOLD = 1.0


@dataclass
class FailedRun:
    """What a lifecycle run that stopped in `training` left behind, gathered before its twin closed.

    Each scenario closes its twin before the next starts: two twins cannot share one process's moto.
    """

    training: ExecutionResult
    failure: str
    notifications: list[tuple[str | None, str]]  # (subject, message) published on the stack's topic
    model_packages: list[dict[str, Any]]


def _run_until_failure(twin: LocalTwin, data_dir: Path, config: PipelineConfig) -> FailedRun:
    dataset = write_default_dataset(data_dir)
    outcome = LifecycleOutcome()
    with pytest.raises(LifecycleError) as raised:
        run_lifecycle(twin, dataset.path, config, tune=False, outcome=outcome, out=io.StringIO())
    [training] = outcome.executions
    topic = sns_backends[LOCAL_ACCOUNT_ID][LOCAL_REGION].topics[twin.stack.outputs["NotificationTopicArn"]]
    packages = boto3.client("sagemaker").list_model_packages(
        ModelPackageGroupName=twin.stack.outputs["ModelPackageGroupName"]
    )["ModelPackageSummaryList"]
    return FailedRun(
        training=training.result,
        failure=str(raised.value),
        notifications=[(subject, message) for _, message, subject, *_ in topic.sent_notifications],
        model_packages=packages,
    )


def _sourcedir_with_raising_training(tmp: Path) -> bytes:
    code = tmp / "ml"
    shutil.copytree(PROJECT_ROOT / "ml", code, ignore=shutil.ignore_patterns("__pycache__"))
    (code / "train.py").write_text(RAISING_TRAIN_SCRIPT)
    return publisher.build_sourcedir_tarball(code)


@pytest.fixture(scope="module")
def raising_training(tmp_path_factory: pytest.TempPathFactory) -> FailedRun:
    work = tmp_path_factory.mktemp("raising-training")
    with started_twin(work / "twin", io.StringIO()) as twin:
        # GIVEN the code the stack published has a train.py that raises
        bucket, key = split_s3_uri(twin.stack.outputs["SourceDirUri"])
        boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=_sourcedir_with_raising_training(work))
        return _run_until_failure(twin, work / "data", load_pipeline_config())


@pytest.fixture(scope="module")
def unreachable_gate(tmp_path_factory: pytest.TempPathFactory) -> FailedRun:
    work = tmp_path_factory.mktemp("unreachable-gate")
    config = load_pipeline_config()
    # GIVEN state machines exported from a pipeline config whose gate threshold the model cannot reach
    gated = dataclasses.replace(
        config, quality_gate=dataclasses.replace(config.quality_gate, threshold=UNREACHABLE_THRESHOLD)
    )
    statemachines = work / "statemachines"
    statemachines.mkdir()
    for name, content in render_statemachines(gated).items():
        (statemachines / name).write_text(content)
    with started_twin(work / "twin", io.StringIO(), statemachines_dir=statemachines) as twin:
        return _run_until_failure(twin, work / "data", gated)


def _statuses(result: ExecutionResult) -> dict[str, str]:
    return {run.name: run.status for run in result.runs if run.depth == 0}


def test_raising_training_script_takes_the_catch_and_ends_in_training_failed(raising_training: FailedRun) -> None:
    result = raising_training.training
    statuses = _statuses(result)

    assert result.status == "FAILED"
    assert result.error == "TrainingFailed"
    assert statuses["Preprocess"] == SUCCEEDED
    assert statuses["Train"] == CAUGHT
    assert statuses["NotifyTrainingFailed"] == SUCCEEDED
    assert result.runs[-1].name == "TrainingFailed"
    assert "RegisterModelPackage" not in statuses


def test_training_failure_is_published_to_the_stack_topic_with_the_scripts_error(raising_training: FailedRun) -> None:
    [(subject, message)] = raising_training.notifications

    assert subject == "training: TrainingFailed"
    assert "injected failure: the training script raised" in message


def test_training_failure_names_the_fail_state_and_the_scripts_error(raising_training: FailedRun) -> None:
    assert "in TrainingFailed (Fail)" in raising_training.failure
    assert "after Train failed with States.TaskFailed" in raising_training.failure
    assert "injected failure: the training script raised" in raising_training.failure


def test_unreachable_gate_ends_in_quality_gate_failed(unreachable_gate: FailedRun) -> None:
    result = unreachable_gate.training
    statuses = _statuses(result)
    report = next(run for run in result.runs if run.name == "EvaluationReport").task_output["Payload"]

    assert report["metric_value"] < UNREACHABLE_THRESHOLD, "precondition: the model stays below the threshold"
    assert result.status == "FAILED"
    assert result.error == "QualityGateFailed"
    assert statuses["QualityGate"] == SUCCEEDED
    assert statuses["NotifyQualityGateFailed"] == SUCCEEDED
    assert result.runs[-1].name == "QualityGateFailed"


def test_unreachable_gate_registers_no_model_package_and_notifies(unreachable_gate: FailedRun) -> None:
    assert unreachable_gate.model_packages == []
    assert "RegisterModelPackage" not in _statuses(unreachable_gate.training)
    assert [subject for subject, _ in unreachable_gate.notifications] == ["training: QualityGateFailed"]
