"""The ASL policy walker (mlops/asl_policy.py) on the committed files, on fresh builds, and on broken copies."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import workflows.deploy
import workflows.training
from contract.pipeline_config import PipelineConfig
from contract.project import PROJECT_ROOT
from mlops.asl_policy import check_statemachines, find_asl_violations
from mlops.checks import asl_problems, fill_placeholders
from workflows.deploy import build_deploy_definition
from workflows.export import render_json
from workflows.policies import retry_for
from workflows.sdk import steps
from workflows.training import build_training_definition

STATEMACHINES_DIR = PROJECT_ROOT / "statemachines"
Mutation = Callable[[dict[str, Any]], None]


def test_committed_statemachines_follow_the_policy() -> None:
    assert check_statemachines(STATEMACHINES_DIR) == []


@pytest.mark.parametrize("build", [build_training_definition, build_deploy_definition])
def test_definitions_built_from_the_authoring_code_follow_the_policy(
    build: Callable[[PipelineConfig], dict[str, Any]], config: PipelineConfig
) -> None:
    # Runs on what the Python builds, not on the committed JSON: dropping a KMS key or a Catch in
    # workflows/ fails here even before anyone re-exports.
    assert find_asl_violations(build(config), "built") == []


def test_policy_catches_authoring_code_that_forgets_the_catch(
    monkeypatch: pytest.MonkeyPatch, config: PipelineConfig
) -> None:
    def guard_without_catch(task: steps.Task, failure: object, retry: Any) -> steps.Task:
        task.add_retry(retry_for(task, retry))
        return task

    monkeypatch.setattr(workflows.training, "guard", guard_without_catch)
    violations = find_asl_violations(build_training_definition(config), "training")
    assert "training: state Train: Task without Catch" in violations
    assert "training: state RegisterModelPackage: Task without Catch" in violations


def test_policy_catches_authoring_code_that_forgets_a_kms_key(
    monkeypatch: pytest.MonkeyPatch, config: PipelineConfig
) -> None:
    monkeypatch.setattr(workflows.deploy, "KMS_KEY_ARN", "")
    violations = find_asl_violations(build_deploy_definition(config), "deploy")
    assert violations == [
        "deploy: state CreateEndpointConfig: SageMaker createEndpointConfig must set KmsKeyId = ${KmsKeyArn}",
        "deploy: state CreateEndpointConfig: SageMaker createEndpointConfig must set "
        "DataCaptureConfig.KmsKeyId = ${KmsKeyArn}",
    ]


def _delete(path: str) -> Mutation:
    """Deletes a dotted path under a state, e.g. "Train.Parameters.ResourceConfig.VolumeKmsKeyId"."""

    def mutate(definition: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = definition["States"]
        for key in parents:
            node = node[key]
        del node[last]

    return mutate


def _set(path: str, value: Any) -> Mutation:
    def mutate(definition: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = definition["States"]
        for key in parents:
            node = node[key]
        node[last] = value

    return mutate


def _drop_tag(state: str, key: str) -> Mutation:
    def mutate(definition: dict[str, Any]) -> None:
        parameters = definition["States"][state]["Parameters"]
        parameters["Tags"] = [tag for tag in parameters["Tags"] if tag["Key"] != key]

    return mutate


TRAINING_MUTATIONS: list[tuple[str, Mutation, str]] = [
    (
        "training volume key",
        _delete("Train.Parameters.ResourceConfig.VolumeKmsKeyId"),
        "state Train: SageMaker createTrainingJob must set ResourceConfig.VolumeKmsKeyId = ${KmsKeyArn}",
    ),
    (
        "processing output key",
        _delete("Preprocess.Parameters.ProcessingOutputConfig.KmsKeyId"),
        "state Preprocess: SageMaker createProcessingJob must set ProcessingOutputConfig.KmsKeyId = ${KmsKeyArn}",
    ),
    (
        "network isolation off",
        _set("Train.Parameters.EnableNetworkIsolation", False),
        "state Train: SageMaker createTrainingJob must set EnableNetworkIsolation = true",
    ),
    (
        "tuning inter-container encryption",
        _delete("Tune.Parameters.TrainingJobDefinition.EnableInterContainerTrafficEncryption"),
        "state Tune: SageMaker createHyperParameterTuningJob must set "
        "TrainingJobDefinition.EnableInterContainerTrafficEncryption = true",
    ),
    (
        "subnets not from the stack",
        _set("Evaluate.Parameters.NetworkConfig.VpcConfig", {"Subnets": ["a"], "SecurityGroupIds": ["b"]}),
        "state Evaluate: SageMaker createProcessingJob must set NetworkConfig.VpcConfig with Subnets.$/"
        "SecurityGroupIds.$ split from ${SubnetIds}/${SecurityGroupIds}",
    ),
    (
        "missing Project tag",
        _drop_tag("Evaluate", "Project"),
        "state Evaluate: SageMaker createProcessingJob must set Tags with Project=${ProjectTag} and "
        "Environment=${EnvironmentTag}",
    ),
    ("missing Catch", _delete("EvaluationReport.Catch"), "state EvaluationReport: Task without Catch"),
    (
        "missing Retry",
        _delete("RegisterModelPackage.Retry"),
        "state RegisterModelPackage: Task without Retry for throttling and transient errors",
    ),
    (
        "Catch skips the notification",
        _set("Train.Catch", [{"ErrorEquals": ["States.ALL"], "Next": "TrainingFailed"}]),
        "state Train: Catch goes to TrainingFailed, which is not a notify Task (arn:${Partition}:states:::sns:publish)",
    ),
    (
        "Catch for some errors only",
        _set("Train.Catch", [{"ErrorEquals": ["States.Timeout"], "Next": "NotifyTrainingFailed"}]),
        "state Train: no Catch for States.ALL: an uncaught error would end the execution without a notification",
    ),
    (
        "notification not followed by a Fail",
        _set("NotifyTrainingFailed.Next", "ModelRegistered"),
        "state Train: Catch goes to NotifyTrainingFailed, which must be followed by a Fail, not 'ModelRegistered'",
    ),
    (
        "literal partition",
        _set("Train.Resource", "arn:aws:states:::sagemaker:createTrainingJob.sync"),
        "state Train: Resource 'arn:aws:states:::sagemaker:createTrainingJob.sync' must start with "
        "arn:${Partition}:states:::",
    ),
    (
        "literal bucket",
        _set("Train.Parameters.OutputDataConfig.S3OutputPath", "s3://my-models/"),
        "state Train: a bucket name in 's3://my-models/': use a ${Placeholder} filled by DefinitionSubstitutions",
    ),
    (
        "literal account",
        _set("Train.Parameters.RoleArn", "arn:${Partition}:iam::123456789012:role/training"),
        "state Train: an account id in 'arn:${Partition}:iam::123456789012:role/training': use a ${Placeholder} "
        "filled by DefinitionSubstitutions",
    ),
    (
        "literal region",
        _set("Train.Parameters.AlgorithmSpecification.TrainingImage", "${ImageUri}-us-gov-west-1"),
        "state Train: a region in '${ImageUri}-us-gov-west-1': use a ${Placeholder} filled by DefinitionSubstitutions",
    ),
    (
        "unknown placeholder",
        _set("Train.Parameters.RoleArn", "${TrainingRoleArn}"),
        "state Train: unknown placeholder ${TrainingRoleArn}: template.yaml does not substitute it",
    ),
    (
        "variables the local engine lacks",
        _set("MergeInputDefaults.Assign", {"tune": "$.tune"}),
        "state MergeInputDefaults: Assign: the local engine has no variables; pass values in the state's JSON",
    ),
    (
        "Choice on a context path",
        _set("TuneOrTrain.Choices", [{"Variable": "$$.Execution.Input.tune", "BooleanEquals": True, "Next": "Tune"}]),
        "state TuneOrTrain: Choice on context path $$.Execution.Input.tune: copy it into the state input first",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [pytest.param(mutate, expected, id=case) for case, mutate, expected in TRAINING_MUTATIONS],
)
def test_walker_reports_each_broken_rule_with_its_state(
    training_definition: dict[str, Any], mutate: Mutation, expected: str
) -> None:
    broken = copy.deepcopy(training_definition)
    mutate(broken)
    assert f"training.asl.json: {expected}" in find_asl_violations(broken, "training.asl.json")


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(
            _delete("CreateEndpointConfig.Parameters.DataCaptureConfig.KmsKeyId"),
            "state CreateEndpointConfig: SageMaker createEndpointConfig must set "
            "DataCaptureConfig.KmsKeyId = ${KmsKeyArn}",
            id="data capture key",
        ),
        pytest.param(
            _delete("CreateModel.Parameters.EnableNetworkIsolation"),
            "state CreateModel: SageMaker createModel must set EnableNetworkIsolation = true",
            id="model isolation",
        ),
        pytest.param(
            _set("NotifyDeployed.Catch", [{"ErrorEquals": ["States.ALL"], "Next": "Deployed"}]),
            "state NotifyDeployed: a notification's Catch must go to a Fail, not to Deployed",
            id="notification caught into success",
        ),
        pytest.param(
            _set("CreateModel.Resource", "arn:${Partition}:states:::sagemaker:createCompilationJob"),
            "state CreateModel: SageMaker createCompilationJob has no security policy in mlops/asl_policy.py: add one",
            id="unchecked SageMaker create",
        ),
    ],
)
def test_walker_checks_the_deploy_definition_too(
    deploy_definition: dict[str, Any], mutate: Mutation, expected: str
) -> None:
    broken = copy.deepcopy(deploy_definition)
    mutate(broken)
    assert f"deploy.asl.json: {expected}" in find_asl_violations(broken, "deploy.asl.json")


def test_walker_descends_into_parallel_branches_and_map_iterators(training_definition: dict[str, Any]) -> None:
    uncaught_task = {"Type": "Task", "Resource": "arn:${Partition}:states:::lambda:invoke", "End": True}
    broken = copy.deepcopy(training_definition)
    broken["States"]["Fanout"] = {
        "Type": "Parallel",
        "Branches": [{"StartAt": "Inner", "States": {"Inner": dict(uncaught_task)}}],
        "End": True,
    }
    broken["States"]["ForEach"] = {
        "Type": "Map",
        "ItemProcessor": {"StartAt": "PerItem", "States": {"PerItem": dict(uncaught_task)}},
        "End": True,
    }
    violations = find_asl_violations(broken, "training")
    assert "training: Fanout/branch 0: state Inner: Task without Catch" in violations
    assert "training: ForEach/ItemProcessor: state PerItem: Task without Retry for throttling and transient errors" in (
        violations
    )


def test_check_statemachines_reports_invalid_json_and_an_empty_folder(tmp_path: Path) -> None:
    assert check_statemachines(tmp_path) == [f"{tmp_path}: no *.asl.json files: run `mlops export`"]
    (tmp_path / "broken.asl.json").write_text("{", encoding="utf-8")
    [violation] = check_statemachines(tmp_path)
    assert violation.startswith("broken.asl.json: not valid JSON")


@pytest.mark.parametrize("build", [build_training_definition, build_deploy_definition])
def test_asl_validators_accept_each_built_definition(
    build: Callable[[PipelineConfig], dict[str, Any]], config: PipelineConfig
) -> None:
    # statelint and cfn-lint reject `${...}` where they expect an ARN: validate a filled copy, as `mlops check` does.
    assert asl_problems(json.loads(fill_placeholders(render_json(build(config))))) == []


def test_asl_validators_reject_a_transition_to_a_missing_state(training_definition: dict[str, Any]) -> None:
    broken = copy.deepcopy(training_definition)
    broken["States"]["Train"]["Next"] = "NoSuchState"
    problems = asl_problems(json.loads(fill_placeholders(render_json(broken))))
    assert any("NoSuchState" in problem for problem in problems), problems
