"""The `monitoring` definition: its shape, every path on the engine (drift and model quality), failures caught and
notified, the policy."""

from __future__ import annotations

from typing import Any

import pytest
from stubbed_engine import run_stubbed

from contract.pipeline_config import PipelineConfig
from mlops.asl_policy import find_asl_violations
from workflows.monitoring import build_monitoring_definition, model_quality_metric_name

EXECUTION = "monitoring-0123456789abcdef"
ENDPOINT = "mlops-dev-endpoint"
RUN = f"s3://mlops-dev-artifactbucket-1a2b3c4d5e6f/runs/{EXECUTION}/monitoring/"
GROUND_TRUTH_SKIPPED = {
    "Status": "Skipped",
    "Reason": "3 labelled record(s) in 1 file(s) under s3://data/ground-truth/ ..., fewer than the 50 needed",
    "Records": 3,
    "Files": 1,
    "MinRecords": 50,
}
GROUND_TRUTH_READY = {
    "Status": "Ready",
    "ManifestS3Uri": f"{RUN}ground-truth.manifest",
    "ModelName": "deploy-0123-model",
    "FeaturesS3Uri": f"{RUN}quality/features/",
    "LabelsS3Uri": f"{RUN}quality/labels/",
    "PredictionsS3Uri": f"{RUN}quality/predictions/",
    "ReportS3Uri": f"{RUN}quality/report/",
    "Records": 80,
    "Files": 2,
    "MinRecords": 50,
}
READY = {
    "Status": "Ready",
    "BaselineS3Uri": "s3://bucket/runs/training-1/evaluation/baseline/",
    "CaptureManifestS3Uri": f"{RUN}capture.manifest",
    "ReportS3Uri": f"{RUN}report/",
    "ModelPackageArn": "arn:aws:sagemaker:us-east-1:123456789012:model-package/mlops-dev-breast-cancer/3",
    "WindowStart": "2026-12-01T11:00:00Z",
    "WindowEnd": "2026-12-01T12:00:00Z",
    "CaptureFiles": 2,
    "GroundTruth": GROUND_TRUTH_SKIPPED,
}
INPUT = {"EndpointName": ENDPOINT, "WindowEnd": "2026-12-01T12:00:00Z"}


@pytest.fixture(scope="module")
def definition(config: PipelineConfig) -> dict[str, Any]:
    return build_monitoring_definition(config)


def _window(status: str, ground_truth: dict[str, Any] | None = None) -> dict[str, Any]:
    if status == "Ready":
        payload = {**READY, "GroundTruth": ground_truth or GROUND_TRUTH_SKIPPED}
    elif status == "NoData":
        no_capture = {key: value for key, value in READY.items() if key not in ("CaptureManifestS3Uri", "ReportS3Uri")}
        payload = {**no_capture, "Status": "NoData", "GroundTruth": ground_truth or GROUND_TRUTH_SKIPPED}
    else:
        payload = {"Status": status}
    return {"MonitoringWindow": {"Payload": payload}}


def test_the_exported_definition_follows_the_project_policy(definition: dict[str, Any]) -> None:
    assert find_asl_violations(definition, "monitoring.asl.json") == []


@pytest.mark.parametrize("status", ["NoEndpoint", "NoData"])
def test_no_endpoint_and_no_data_end_in_succeed_states_of_their_names(definition: dict[str, Any], status: str) -> None:
    run = run_stubbed(definition, _window(status), INPUT, EXECUTION)

    assert run.status == "SUCCEEDED"
    assert run.visited[-1] == status
    assert definition["States"][status]["Type"] == "Succeed"
    assert "MonitorDrift" not in run.visited
    assert "PublishMonitoringMetrics" not in run.visited
    assert "TransformGroundTruth" not in run.visited


def test_a_ready_window_runs_the_analyzer_then_publishes(definition: dict[str, Any], config: PipelineConfig) -> None:
    run = run_stubbed(definition, _window("Ready"), INPUT, EXECUTION)

    assert run.status == "SUCCEEDED"
    assert run.visited[-6:] == [
        "MonitorDrift",
        "PublishMonitoringMetrics",
        "GroundTruthStatus",
        "ModelQualitySkipped",
        "MonitoringOutcome",
        "Monitored",
    ]
    assert run.requests["MonitoringWindow"]["Payload"] == {
        "EndpointName": ENDPOINT,
        "WindowEnd": "2026-12-01T12:00:00Z",
        "WindowMinutes": config.monitoring.window_minutes,
        "RunS3Uri": RUN,
        "GroundTruthS3Uri": f"s3://mlops-dev-databucket-1a2b3c4d5e6f/{config.monitoring.ground_truth_prefix}",
        "GroundTruthMinRecords": config.monitoring.ground_truth_min_records,
    }
    job = run.requests["MonitorDrift"]
    assert job["ProcessingJobName"] == f"{EXECUTION}-mon"
    inputs = {entry["InputName"]: entry["S3Input"] for entry in job["ProcessingInputs"]}
    assert inputs["baseline"]["S3Uri"] == READY["BaselineS3Uri"]
    assert inputs["baseline"]["S3DataType"] == "S3Prefix"
    assert inputs["capture"]["S3Uri"] == READY["CaptureManifestS3Uri"]
    assert inputs["capture"]["S3DataType"] == "ManifestFile"
    assert job["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"] == READY["ReportS3Uri"]
    arguments = job["AppSpecification"]["ContainerArguments"]
    assert arguments[arguments.index("--min-records") + 1] == str(config.monitoring.min_records)
    # The stack's DriftShareThreshold (a representative value here), which its alarm uses too.
    assert arguments[arguments.index("--drift-share") + 1] == "0.5"
    assert run.requests["PublishMonitoringMetrics"]["Payload"] == {
        "EndpointName": ENDPOINT,
        "ReportS3Uri": READY["ReportS3Uri"],
        "ModelPackageArn": READY["ModelPackageArn"],
        "WindowStart": READY["WindowStart"],
        "WindowEnd": READY["WindowEnd"],
    }


def test_too_few_labelled_records_skip_model_quality_and_the_output_says_why(definition: dict[str, Any]) -> None:
    run = run_stubbed(definition, _window("Ready", GROUND_TRUTH_SKIPPED), INPUT, EXECUTION)

    assert run.status == "SUCCEEDED"
    assert not {"SplitGroundTruth", "TransformGroundTruth", "ScoreModelQuality", "PublishModelQuality"} & set(
        run.visited
    )
    assert run.output is not None
    assert run.output["model_quality"] == {
        "Status": "Skipped",
        "Reason": GROUND_TRUTH_SKIPPED["Reason"],
        "MinRecords": 50,
    }


@pytest.mark.parametrize(("capture", "end"), [("Ready", "Monitored"), ("NoData", "NoData")])
def test_enough_labelled_records_split_transform_score_and_publish_with_or_without_capture(
    definition: dict[str, Any], config: PipelineConfig, capture: str, end: str
) -> None:
    run = run_stubbed(definition, _window(capture, GROUND_TRUTH_READY), INPUT, EXECUTION)

    assert run.status == "SUCCEEDED"
    assert run.visited[-7:] == [
        "GroundTruthStatus",
        "SplitGroundTruth",
        "TransformGroundTruth",
        "ScoreModelQuality",
        "PublishModelQuality",
        "MonitoringOutcome",
        end,
    ]
    assert ("MonitorDrift" in run.visited) == (capture == "Ready")
    split = run.requests["SplitGroundTruth"]
    assert split["ProcessingJobName"] == f"{EXECUTION}-gtspl"
    inputs = {entry["InputName"]: entry["S3Input"] for entry in split["ProcessingInputs"]}
    assert (inputs["ground-truth"]["S3Uri"], inputs["ground-truth"]["S3DataType"]) == (
        GROUND_TRUTH_READY["ManifestS3Uri"],
        "ManifestFile",
    )
    assert inputs["baseline"]["S3Uri"] == READY["BaselineS3Uri"]
    outputs = {entry["OutputName"]: entry["S3Output"]["S3Uri"] for entry in split["ProcessingOutputConfig"]["Outputs"]}
    assert outputs == {"features": GROUND_TRUTH_READY["FeaturesS3Uri"], "labels": GROUND_TRUTH_READY["LabelsS3Uri"]}
    arguments = split["AppSpecification"]["ContainerArguments"]
    assert arguments[0] == "split"
    assert arguments[arguments.index("--label-column") + 1] == config.model.label_column
    transform = run.requests["TransformGroundTruth"]
    assert transform["TransformJobName"] == f"{EXECUTION}-gtxfm"
    assert transform["ModelName"] == GROUND_TRUTH_READY["ModelName"]
    assert transform["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == GROUND_TRUTH_READY["FeaturesS3Uri"]
    assert (transform["TransformInput"]["ContentType"], transform["TransformInput"]["SplitType"]) == (
        "text/csv",
        "Line",
    )
    assert transform["TransformOutput"]["S3OutputPath"] == GROUND_TRUTH_READY["PredictionsS3Uri"]
    assert (transform["TransformOutput"]["Accept"], transform["TransformOutput"]["AssembleWith"]) == (
        "text/csv",
        "Line",
    )
    score = run.requests["ScoreModelQuality"]
    arguments = score["AppSpecification"]["ContainerArguments"]
    assert arguments[0] == "score"
    assert arguments[arguments.index("--metric") + 1] == config.quality_gate.metric
    assert score["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"] == GROUND_TRUTH_READY["ReportS3Uri"]
    assert run.requests["PublishModelQuality"]["Payload"] == {
        "Report": "model_quality",
        "MetricName": model_quality_metric_name(config.quality_gate.metric),
        "EndpointName": ENDPOINT,
        "ReportS3Uri": GROUND_TRUTH_READY["ReportS3Uri"],
        "ModelPackageArn": READY["ModelPackageArn"],
        "WindowStart": READY["WindowStart"],
        "WindowEnd": READY["WindowEnd"],
    }


def test_the_transform_job_is_encrypted_with_the_stack_key_and_tagged(definition: dict[str, Any]) -> None:
    state = definition["States"]["TransformGroundTruth"]
    parameters = state["Parameters"]

    assert state["Resource"] == "arn:${Partition}:states:::sagemaker:createTransformJob.sync"
    assert parameters["TransformResources"]["VolumeKmsKeyId"] == "${KmsKeyArn}"
    assert parameters["TransformOutput"]["KmsKeyId"] == "${KmsKeyArn}"
    assert parameters["TransformResources"]["InstanceType"] == "${EndpointInstanceType}"
    assert {tag["Key"] for tag in parameters["Tags"]} == {"Project", "Environment"}


@pytest.mark.parametrize(
    "task", ["SplitGroundTruth", "TransformGroundTruth", "ScoreModelQuality", "PublishModelQuality"]
)
def test_any_model_quality_error_is_notified_and_ends_in_model_quality_failed_without_publishing_it(
    definition: dict[str, Any], task: str
) -> None:
    run = run_stubbed(definition, _window("Ready", GROUND_TRUTH_READY), INPUT, EXECUTION, failing={task})

    assert (run.status, run.error) == ("FAILED", "ModelQualityFailed")
    assert run.visited[-2:] == ["NotifyModelQualityFailed", "ModelQualityFailed"]
    message = run.requests["NotifyModelQualityFailed"]["Message"]
    assert message.startswith("monitoring failed at ModelQualityFailed: scoring the served model on the ground truth")
    assert message.endswith(f"execution:stubbed:{EXECUTION}")
    assert "PublishModelQuality" not in run.requests


def test_an_unknown_ground_truth_status_fails_instead_of_succeeding(definition: dict[str, Any]) -> None:
    run = run_stubbed(definition, _window("Ready", {"Status": "Perhaps"}), INPUT, EXECUTION)

    assert (run.status, run.error) == ("FAILED", "ModelQualityFailed")
    assert "Why: error UnknownGroundTruthStatus." in run.requests["NotifyModelQualityFailed"]["Message"]


def test_window_end_defaults_to_the_execution_start(definition: dict[str, Any]) -> None:
    # Not run on the engine: moto 5.2.5 holds $$.Execution.StartTime as a datetime it cannot serialize.
    defaults = definition["States"]["ApplyInputDefaults"]["Parameters"]["defaults"]
    merge = definition["States"]["MergeInputDefaults"]

    assert defaults == {"WindowEnd.$": "$$.Execution.StartTime"}
    assert merge["Parameters"] == {"request.$": "States.JsonMerge($.defaults, $.request, false)"}
    assert definition["States"]["MonitoringWindow"]["Parameters"]["Payload"]["WindowEnd.$"] == "$.WindowEnd"


def test_the_analyzer_job_is_isolated_encrypted_in_the_vpc_and_tagged(definition: dict[str, Any]) -> None:
    parameters = definition["States"]["MonitorDrift"]["Parameters"]

    assert (
        definition["States"]["MonitorDrift"]["Resource"]
        == "arn:${Partition}:states:::sagemaker:createProcessingJob.sync"
    )
    assert parameters["NetworkConfig"]["EnableNetworkIsolation"] is True
    assert parameters["NetworkConfig"]["EnableInterContainerTrafficEncryption"] is True
    assert set(parameters["NetworkConfig"]["VpcConfig"]) == {"Subnets.$", "SecurityGroupIds.$"}
    assert parameters["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == "${KmsKeyArn}"
    assert parameters["ProcessingOutputConfig"]["KmsKeyId"] == "${KmsKeyArn}"
    assert parameters["AppSpecification"]["ImageUri"] == "${ImageUri}"
    assert "monitor.py" in parameters["AppSpecification"]["ContainerEntrypoint"][2]
    assert {tag["Key"] for tag in parameters["Tags"]} == {"Project", "Environment"}


@pytest.mark.parametrize("task", ["MonitoringWindow", "MonitorDrift", "PublishMonitoringMetrics"])
def test_any_task_error_is_notified_and_ends_in_monitoring_failed_without_publishing(
    definition: dict[str, Any], task: str
) -> None:
    run = run_stubbed(definition, _window("Ready"), INPUT, EXECUTION, failing={task})

    assert (run.status, run.error) == ("FAILED", "MonitoringFailed")
    assert run.visited[-2:] == ["NotifyMonitoringFailed", "MonitoringFailed"]
    message = run.requests["NotifyMonitoringFailed"]["Message"]
    assert message.startswith("monitoring failed at MonitoringFailed:")
    assert message.endswith(f"execution:stubbed:{EXECUTION}")
    assert "PublishMonitoringMetrics" not in run.requests


def test_an_unknown_window_status_fails_instead_of_succeeding(definition: dict[str, Any]) -> None:
    run = run_stubbed(definition, _window("Maybe"), INPUT, EXECUTION)

    assert (run.status, run.error) == ("FAILED", "MonitoringFailed")
    assert "Why: error UnknownWindowStatus." in run.requests["NotifyMonitoringFailed"]["Message"]


def test_every_task_retries_and_catches_into_the_failure_path(definition: dict[str, Any]) -> None:
    tasks = {name: state for name, state in definition["States"].items() if state["Type"] == "Task"}

    drift = ("MonitoringWindow", "MonitorDrift", "PublishMonitoringMetrics")
    quality = ("SplitGroundTruth", "TransformGroundTruth", "ScoreModelQuality", "PublishModelQuality")

    assert set(tasks) == {*drift, *quality, "NotifyMonitoringFailed", "NotifyModelQualityFailed"}
    for names, entry in ((drift, "ExplainMonitoringFailed"), (quality, "ExplainModelQualityFailed")):
        for name in names:
            assert tasks[name]["Retry"], name
            assert tasks[name]["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": entry}], (
                name
            )
