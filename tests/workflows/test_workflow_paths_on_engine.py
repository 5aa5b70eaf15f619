"""Each path of the built definitions on moto's engine with stubbed tasks (see stubbed_engine.py)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from stubbed_engine import REQUESTS, run_stubbed

from workflows.deploy import build_deploy_definition

EXECUTION = "drift-0123456789abcdef"
DATA_URI = "s3://mlops-dev-databucket-1a2b3c4d5e6f/incoming/"
MODEL_ARTIFACT = "s3://mlops-dev-artifactbucket-1a2b3c4d5e6f/models/job/output/model.tar.gz"
PACKAGE_ARN = "arn:aws:sagemaker:us-east-1:123456789012:model-package/mlops-dev-breast-cancer/3"
ENDPOINT = "mlops-dev-endpoint"  # the representative value of ${EndpointName}
# A session of the approver role named by the representative ${ApproverSessionArnPrefix}.
APPROVER_SESSION_ARN = "arn:aws:sts::123456789012:assumed-role/mlops-dev-ApproverRole-1A2B3C4D5E6F/jane"
SAMPLE_URI = f"s3://mlops-dev-artifactbucket-1a2b3c4d5e6f/runs/{EXECUTION}/preprocess/sample/sample.csv"
MANIFEST_URI = f"s3://mlops-dev-governancebucket-1a2b3c4d5e6f/lineage/mlops-dev-breast-cancer/{EXECUTION}/manifest.json"


def _training_results(
    metric_value: float, beats_champion: bool = True, bias_gate: dict[str, Any] | None = None
) -> dict[str, Any]:
    trained = {"TrainingJobName": f"{EXECUTION}-train", "ModelArtifacts": {"S3ModelArtifacts": MODEL_ARTIFACT}}
    return {
        "Train": trained,
        "Tune": {"BestTrainingJob": {"TrainingJobName": "best-job"}},
        "TuneWithWarmStart": {"BestTrainingJob": {"TrainingJobName": "best-job"}},
        "DescribeBestTrainingJob": {**trained, "TrainingJobName": "best-job"},
        "EvaluationReport": {
            "Payload": {
                "metric_name": "auc",
                "metric_value": metric_value,
                "champion_value": None if beats_champion else 0.995,
                "beats_champion": beats_champion,
                "bias_gate": bias_gate or {"passed": True, "reason": "no facet assessed: none configured"},
            }
        },
        "SnapshotTrainingData": {"Payload": {"snapshot_uri": f"s3://a/runs/{EXECUTION}/data/", "object_count": 1}},
        "WriteLineageManifest": {
            "Payload": {"manifest_uri": MANIFEST_URI, "manifest_sha256": "ab" * 32, "manifest_version_id": "v1"}
        },
        "RegisterModelPackage": {"ModelPackageArn": PACKAGE_ARN},
        "CreateModelCard": {"Payload": {"model_card_name": "mlops-dev-breast-cancer-1", "action": "created"}},
    }


def test_training_without_tuning_registers_a_model_that_passes_the_gate(training_definition: dict[str, Any]) -> None:
    run = run_stubbed(
        training_definition,
        _training_results(0.97),
        {"data_uri": DATA_URI, "trigger": {"type": "drift", "detail": {}}},
        EXECUTION,
    )
    assert run.status == "SUCCEEDED"
    assert run.visited == [
        "ApplyInputDefaults",
        "MergeInputDefaults",
        "SnapshotTrainingData",
        "Preprocess",
        "TuneOrTrain",
        "Train",
        "Evaluate",
        "EvaluationReport",
        "QualityGate",
        "BiasGate",
        "WriteLineageManifest",
        "RegisterModelPackage",
        "CreateModelCard",
        "NotifyModelRegistered",
        "ModelRegistered",
    ]
    assert run.output is not None
    requests = run.output[REQUESTS]
    assert requests["Preprocess"]["ProcessingJobName"] == f"{EXECUTION}-prep"
    assert requests["Train"]["TrainingJobName"] == f"{EXECUTION}-train"
    assert requests["Train"]["VpcConfig"]["Subnets"] == ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]
    assert requests["Evaluate"]["ProcessingInputs"][1]["S3Input"]["S3Uri"] == MODEL_ARTIFACT
    lineage = requests["RegisterModelPackage"]["CustomerMetadataProperties"]
    assert lineage["metric_value"] == "0.97"
    assert lineage["trigger_type"] == "drift"
    assert lineage["data_uri"] == DATA_URI
    assert lineage["sample_uri"] == SAMPLE_URI
    assert lineage["training_job"] == f"{EXECUTION}-train"
    assert lineage["lineage_manifest_uri"] == MANIFEST_URI
    assert lineage["lineage_manifest_sha256"] == "ab" * 32
    assert requests["SnapshotTrainingData"]["Payload"] == {
        "data_uri": DATA_URI,
        "execution_name": EXECUTION,
        "data_versions": [],
    }
    data = requests["Preprocess"]["ProcessingInputs"][1]["S3Input"]["S3Uri"]
    assert data == f"s3://mlops-dev-artifactbucket-1a2b3c4d5e6f/runs/{EXECUTION}/data/"


def test_training_input_defaults_fill_what_the_input_leaves_out(training_definition: dict[str, Any]) -> None:
    run = run_stubbed(training_definition, _training_results(0.97), {}, EXECUTION)
    assert run.status == "SUCCEEDED"
    assert run.output is not None
    preprocess_inputs = {i["InputName"]: i["S3Input"] for i in run.output[REQUESTS]["Preprocess"]["ProcessingInputs"]}
    # The default data_uri is snapshotted; preprocessing reads the snapshot's copies.
    assert run.output[REQUESTS]["SnapshotTrainingData"]["Payload"]["data_uri"] == DATA_URI
    assert preprocess_inputs["data"]["S3Uri"] == f"s3://mlops-dev-artifactbucket-1a2b3c4d5e6f/runs/{EXECUTION}/data/"
    assert run.output[REQUESTS]["RegisterModelPackage"]["CustomerMetadataProperties"]["trigger_type"] == "manual"


@pytest.mark.parametrize(
    ("metric_value", "beats_champion", "explain", "reason"),
    [
        (0.5, True, "ExplainGateWithoutChampion", "auc = 0.5; the gate needs >= 0.9"),
        (0.99, False, "ExplainGateAgainstChampion", "auc = 0.99; the gate needs >= 0.9"),
    ],
    ids=["below threshold", "worse than champion"],
)
def test_training_that_fails_the_gate_notifies_and_fails_without_registering(
    training_definition: dict[str, Any],
    config: Any,
    metric_value: float,
    beats_champion: bool,
    explain: str,
    reason: str,
) -> None:
    run = run_stubbed(
        training_definition, _training_results(metric_value, beats_champion), {"data_uri": DATA_URI}, EXECUTION
    )
    assert run.status == "FAILED"
    assert run.error == "QualityGateFailed"
    assert run.visited[-5:] == [
        "QualityGate",
        "ExplainQualityGateFailure",
        explain,
        "NotifyQualityGateFailed",
        "QualityGateFailed",
    ]
    assert "RegisterModelPackage" not in run.visited
    # The cause and the notification name the metric, its value, the threshold and the champion's value.
    assert config.quality_gate.threshold == 0.9
    assert run.cause is not None
    assert run.cause.startswith(reason)
    assert ("whose value is 0.995" in run.cause) is not beats_champion
    assert ("no champion yet" in run.cause) is beats_champion
    message = run.requests["NotifyQualityGateFailed"]["Message"]
    assert f"Why: {run.cause}." in message


def test_tuning_with_warm_start_uses_the_parent_job_and_evaluates_the_best_job(
    training_definition: dict[str, Any],
) -> None:
    run = run_stubbed(
        training_definition,
        _training_results(0.97),
        {"data_uri": DATA_URI, "tune": True, "warm_start_tuning_job": "a1b2c3"},
        EXECUTION,
    )
    assert run.status == "SUCCEEDED"
    assert run.visited[4:9] == [
        "TuneOrTrain",
        "WarmStartOrNot",
        "TuneWithWarmStart",
        "DescribeBestTrainingJob",
        "Evaluate",
    ]
    assert run.output is not None
    tuning = run.output[REQUESTS]["TuneWithWarmStart"]
    assert tuning["HyperParameterTuningJobName"] == hashlib.md5(EXECUTION.encode()).hexdigest()  # noqa: S324
    assert tuning["WarmStartConfig"]["ParentHyperParameterTuningJobs"] == [{"HyperParameterTuningJobName": "a1b2c3"}]
    assert run.output[REQUESTS]["DescribeBestTrainingJob"] == {"TrainingJobName": "best-job"}
    assert run.output[REQUESTS]["RegisterModelPackage"]["CustomerMetadataProperties"]["training_job"] == "best-job"


def test_tuning_without_a_parent_job_starts_cold(training_definition: dict[str, Any]) -> None:
    run = run_stubbed(training_definition, _training_results(0.97), {"data_uri": DATA_URI, "tune": True}, EXECUTION)
    assert run.status == "SUCCEEDED"
    assert run.visited[4:7] == ["TuneOrTrain", "WarmStartOrNot", "Tune"]


def _deploy_results(existing: list[str], status: str, config_name: str) -> dict[str, Any]:
    return {
        "DescribeModelPackage": {
            "CustomerMetadataProperties": {"sample_uri": SAMPLE_URI},
            "ModelApprovalStatus": "Approved",
            "ApprovalDescription": "reviewed the evaluation report",
            "LastModifiedBy": {"IamIdentity": {"Arn": APPROVER_SESSION_ARN}},
        },
        "RecordApproval": {
            "Payload": {"approved_by": APPROVER_SESSION_ARN, "reason": "reviewed the evaluation report"}
        },
        "FindExistingEndpoint": {"Endpoints": [{"EndpointName": name} for name in existing]},
        "DescribeEndpoint": {
            "EndpointArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{ENDPOINT}",
            "EndpointStatus": status,
            "EndpointConfigName": config_name,
            **(
                {"FailureReason": "the model container did not pass the ping health check"}
                if status == "Failed"
                else {}
            ),
        },
    }


def test_deploy_creates_a_missing_endpoint_then_scales_smoke_tests_and_tags(
    deploy_definition: dict[str, Any],
) -> None:
    results = _deploy_results([f"{ENDPOINT}-canary"], "InService", f"{EXECUTION}-cfg")
    run = run_stubbed(deploy_definition, results, {"ModelPackageArn": PACKAGE_ARN}, EXECUTION)
    assert run.status == "SUCCEEDED"
    assert "CreateEndpoint" in run.visited
    assert "UpdateEndpoint" not in run.visited
    assert run.visited[-6:] == [
        "RegisterScalableTarget",
        "PutScalingPolicy",
        "SmokeTest",
        "TagEndpoint",
        "NotifyDeployed",
        "Deployed",
    ]
    assert run.output is not None
    requests = run.output[REQUESTS]
    assert requests["CreateModel"]["ModelName"] == f"{EXECUTION}-model"
    assert requests["CreateModel"]["PrimaryContainer"] == {"ModelPackageName": PACKAGE_ARN}
    [variant] = requests["CreateEndpointConfig"]["ProductionVariants"]
    assert variant["InitialInstanceCount"] == 2  # a number, from the "2" of ${EndpointInstanceCount}
    assert requests["CreateEndpoint"]["EndpointConfigName"] == f"{EXECUTION}-cfg"
    assert requests["SmokeTest"]["Payload"] == {"endpoint_name": ENDPOINT, "sample_uri": SAMPLE_URI}
    assert requests["TagEndpoint"]["Tags"] == [
        {"Key": "mlops:model-package-arn", "Value": PACKAGE_ARN},
        {"Key": "mlops:approved-by", "Value": APPROVER_SESSION_ARN},
        {"Key": "mlops:approval-reason", "Value": "reviewed the evaluation report"},
    ]


def test_deploy_updates_an_existing_endpoint_blue_green(deploy_definition: dict[str, Any]) -> None:
    results = _deploy_results([ENDPOINT], "InService", f"{EXECUTION}-cfg")
    run = run_stubbed(deploy_definition, results, {"ModelPackageArn": PACKAGE_ARN}, EXECUTION)
    assert run.status == "SUCCEEDED"
    assert "UpdateEndpoint" in run.visited
    assert "CreateEndpoint" not in run.visited
    assert run.output is not None
    assert run.output[REQUESTS]["UpdateEndpoint"]["EndpointConfigName"] == f"{EXECUTION}-cfg"


def test_deploy_fails_as_rolled_back_when_the_endpoint_returns_to_its_old_config(
    deploy_definition: dict[str, Any],
) -> None:
    results = _deploy_results([ENDPOINT], "InService", "previous-run-cfg")
    run = run_stubbed(deploy_definition, results, {"ModelPackageArn": PACKAGE_ARN}, EXECUTION)
    assert run.status == "FAILED"
    assert run.error == "EndpointRolledBack"
    assert "RegisterScalableTarget" not in run.visited


def test_deploy_fails_when_the_endpoint_fails(deploy_definition: dict[str, Any]) -> None:
    run = run_stubbed(
        deploy_definition,
        _deploy_results([], "Failed", f"{EXECUTION}-cfg"),
        {"ModelPackageArn": PACKAGE_ARN},
        EXECUTION,
    )
    assert run.status == "FAILED"
    assert run.error == "EndpointFailed"


def test_deploy_stops_polling_after_the_configured_number_of_polls(config_with: Any) -> None:
    definition = build_deploy_definition(config_with(deploy={"max_wait_polls": 3}))
    results = _deploy_results([], "Creating", f"{EXECUTION}-cfg")
    run = run_stubbed(definition, results, {"ModelPackageArn": PACKAGE_ARN}, EXECUTION)
    assert run.status == "FAILED"
    assert run.error == "EndpointWaitTimedOut"
    assert run.visited.count("DescribeEndpoint") == 3


TRAINING_FAILURES = [
    ("Preprocess", {}, "PreprocessingFailed"),
    ("Train", {}, "TrainingFailed"),
    ("Tune", {"tune": True}, "TrainingFailed"),
    ("TuneWithWarmStart", {"tune": True, "warm_start_tuning_job": "a1b2c3"}, "TrainingFailed"),
    ("DescribeBestTrainingJob", {"tune": True}, "TrainingFailed"),
    ("Evaluate", {}, "EvaluationFailed"),
    ("EvaluationReport", {}, "EvaluationFailed"),
    ("WriteLineageManifest", {}, "LineageFailed"),
    ("RegisterModelPackage", {}, "RegistrationFailed"),
    ("CreateModelCard", {}, "ModelCardFailed"),
]


@pytest.mark.parametrize(("task", "execution_input", "fail"), TRAINING_FAILURES, ids=[t[0] for t in TRAINING_FAILURES])
def test_a_failing_training_task_is_notified_with_its_error_then_fails_by_name(
    training_definition: dict[str, Any], task: str, execution_input: dict[str, Any], fail: str
) -> None:
    run = run_stubbed(training_definition, _training_results(0.97), execution_input, EXECUTION, failing=[task])
    assert run.status == "FAILED"
    assert run.error == fail
    explained = (
        [f"Explain{fail}", f"Explain{fail}FromError"]
        if fail not in ("RegistrationFailed", "LineageFailed", "ModelCardFailed")
        else []
    )
    assert run.visited[-3 - len(explained) :] == [task, *explained, f"Notify{fail}", fail]
    # A short message: what failed, the caught error's name, the execution; no state, so no ARNs of resources.
    notification = run.requests[f"Notify{fail}"]
    assert notification["Subject"] == f"training: {fail}"
    assert notification["Message"] == (
        f"training failed at {fail}: {training_definition['States'][fail]['Cause']}. "
        "Why: error sqs.QueueDoesNotExistException. "
        f"Execution (details in its history): arn:aws:states:us-east-1:123456789012:execution:stubbed:{EXECUTION}"
    )


def test_a_failing_success_notification_fails_the_training_as_notification_failed(
    training_definition: dict[str, Any],
) -> None:
    run = run_stubbed(training_definition, _training_results(0.97), {}, EXECUTION, failing=["NotifyModelRegistered"])
    assert run.error == "NotificationFailed"
    assert run.visited[-3:] == ["CreateModelCard", "NotifyModelRegistered", "NotificationFailed"]


def test_a_failing_failure_notification_still_ends_in_the_named_fail(training_definition: dict[str, Any]) -> None:
    run = run_stubbed(
        training_definition, _training_results(0.97), {}, EXECUTION, failing=["Train", "NotifyTrainingFailed"]
    )
    assert run.error == "TrainingFailed"
    assert run.visited[-5:] == [
        "Train",
        "ExplainTrainingFailed",
        "ExplainTrainingFailedFromError",
        "NotifyTrainingFailed",
        "TrainingFailed",
    ]


DEPLOY_FAILURES = [
    ("DescribeModelPackage", [], "DeploymentFailed"),
    ("RecordApproval", [], "DeploymentFailed"),
    ("CreateModel", [], "DeploymentFailed"),
    ("CreateEndpointConfig", [], "DeploymentFailed"),
    ("FindExistingEndpoint", [], "DeploymentFailed"),
    ("CreateEndpoint", [], "DeploymentFailed"),
    ("UpdateEndpoint", [ENDPOINT], "DeploymentFailed"),
    ("DescribeEndpoint", [], "DeploymentFailed"),
    ("RegisterScalableTarget", [], "AutoScalingFailed"),
    ("PutScalingPolicy", [], "AutoScalingFailed"),
    ("SmokeTest", [], "SmokeTestFailed"),
    ("TagEndpoint", [], "DeploymentFailed"),
]


@pytest.mark.parametrize(("task", "existing", "fail"), DEPLOY_FAILURES, ids=[t[0] for t in DEPLOY_FAILURES])
def test_a_failing_deploy_task_is_notified_then_fails_by_name(
    deploy_definition: dict[str, Any], task: str, existing: list[str], fail: str
) -> None:
    results = _deploy_results(existing, "InService", f"{EXECUTION}-cfg")
    run = run_stubbed(deploy_definition, results, {"ModelPackageArn": PACKAGE_ARN}, EXECUTION, failing=[task])
    assert run.status == "FAILED"
    assert run.error == fail
    assert run.visited[-3:] == [task, f"Notify{fail}", fail]


def test_a_model_that_fails_the_bias_gate_is_notified_and_fails_as_bias_gate_failed_unregistered(
    training_definition: dict[str, Any],
) -> None:
    reason = "disparate impact of facet sex_female in [1.0] is 0.610, outside the gate's band [0.8, 1.25]"
    run = run_stubbed(
        training_definition,
        _training_results(0.97, bias_gate={"passed": False, "reason": reason}),
        {"data_uri": DATA_URI, "bias": {"facet_column": "sex_female", "sensitive_values": [1]}},
        EXECUTION,
    )
    assert run.status == "FAILED"
    assert run.error == "BiasGateFailed"
    assert run.cause == reason
    assert run.visited[-3:] == ["BiasGate", "NotifyBiasGateFailed", "BiasGateFailed"]
    assert "RegisterModelPackage" not in run.visited
