"""End to end on the local twin: a raising training script, a failed quality gate and a failed bias gate end in their
named Fail states."""

from __future__ import annotations

import dataclasses
import io
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pandas as pd
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


def _run_until_failure(twin: LocalTwin, data: Path, config: PipelineConfig) -> FailedRun:
    outcome = LifecycleOutcome()
    with pytest.raises(LifecycleError) as raised:
        run_lifecycle(twin, data, config, tune=False, outcome=outcome, out=io.StringIO())
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
        return _run_until_failure(twin, write_default_dataset(work / "data").path, load_pipeline_config())


@pytest.fixture(scope="module")
def unreachable_gate(tmp_path_factory: pytest.TempPathFactory) -> FailedRun:
    work = tmp_path_factory.mktemp("unreachable-gate")
    config = load_pipeline_config()
    # GIVEN state machines exported from a pipeline config whose gate threshold the model cannot reach
    gated = dataclasses.replace(
        config, quality_gate=dataclasses.replace(config.quality_gate, threshold=UNREACHABLE_THRESHOLD)
    )
    with started_twin(work / "twin", io.StringIO(), statemachines_dir=_exported(gated, work)) as twin:
        return _run_until_failure(twin, write_default_dataset(work / "data").path, gated)


def _exported(config: PipelineConfig, work: Path) -> Path:
    statemachines = work / "statemachines"
    statemachines.mkdir()
    for name, content in render_statemachines(config).items():
        (statemachines / name).write_text(content)
    return statemachines


@pytest.fixture(scope="module")
def biased_model(tmp_path_factory: pytest.TempPathFactory) -> FailedRun:
    work = tmp_path_factory.mktemp("biased-model")
    # GIVEN data whose facet column `group` is 1 for every negative row and a tenth of the positive ones: facet d
    # gets few positive predictions and facet a only positive ones, so its disparate impact is far below 0.8 while
    # the other features keep the AUC above the quality gate
    frame = pd.read_csv(write_default_dataset(work / "data").path)
    some_positives = frame["target"].eq(1) & (np.arange(len(frame)) % 10 == 0)
    frame.insert(0, "group", (frame["target"].eq(0) | some_positives).astype(int))
    biased = work / "biased.csv"
    frame.to_csv(biased, index=False)
    config = load_pipeline_config(overrides={"bias": {"facet_column": "group", "sensitive_values": [1]}})
    with started_twin(work / "twin", io.StringIO(), statemachines_dir=_exported(config, work)) as twin:
        return _run_until_failure(twin, biased, config)


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


def test_a_model_built_to_fail_the_bias_gate_ends_in_bias_gate_failed_unregistered(biased_model: FailedRun) -> None:
    result = biased_model.training
    statuses = _statuses(result)
    gate = next(run for run in result.runs if run.name == "EvaluationReport").task_output["Payload"]["bias_gate"]

    assert gate["passed"] is False
    assert gate["bias"]["posttraining"]["metrics"]["DI"] < 0.8
    assert result.status == "FAILED"
    assert result.error == "BiasGateFailed"
    assert statuses["QualityGate"] == SUCCEEDED
    assert result.runs[-1].name == "BiasGateFailed"
    assert biased_model.model_packages == []
    [(subject, message)] = biased_model.notifications
    assert subject == "training: BiasGateFailed"
    assert "disparate impact of facet group in [1.0]" in message
    assert "outside the gate's band [0.8, 1.25]" in message
