"""The `monitoring` definition: its shape, every path on the engine, failures caught and notified, the policy."""

from __future__ import annotations

from typing import Any

import pytest
from stubbed_engine import run_stubbed

from contract.pipeline_config import PipelineConfig
from mlops.asl_policy import find_asl_violations
from workflows.monitoring import build_monitoring_definition

EXECUTION = "monitoring-0123456789abcdef"
ENDPOINT = "mlops-dev-endpoint"
RUN = f"s3://mlops-dev-artifactbucket-1a2b3c4d5e6f/runs/{EXECUTION}/monitoring/"
READY = {
    "Status": "Ready",
    "BaselineS3Uri": "s3://bucket/runs/training-1/evaluation/baseline/",
    "CaptureManifestS3Uri": f"{RUN}capture.manifest",
    "ReportS3Uri": f"{RUN}report/",
    "ModelPackageArn": "arn:aws:sagemaker:us-east-1:123456789012:model-package/mlops-dev-breast-cancer/3",
    "WindowStart": "2026-12-01T11:00:00Z",
    "WindowEnd": "2026-12-01T12:00:00Z",
    "CaptureFiles": 2,
}
INPUT = {"EndpointName": ENDPOINT, "WindowEnd": "2026-12-01T12:00:00Z"}


@pytest.fixture(scope="module")
def definition(config: PipelineConfig) -> dict[str, Any]:
    return build_monitoring_definition(config)


def _window(status: str) -> dict[str, Any]:
    return {"MonitoringWindow": {"Payload": READY if status == "Ready" else {"Status": status}}}


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


def test_a_ready_window_runs_the_analyzer_then_publishes(definition: dict[str, Any], config: PipelineConfig) -> None:
    run = run_stubbed(definition, _window("Ready"), INPUT, EXECUTION)

    assert run.status == "SUCCEEDED"
    assert run.visited[-3:] == ["MonitorDrift", "PublishMonitoringMetrics", "Monitored"]
    assert run.requests["MonitoringWindow"]["Payload"] == {
        "EndpointName": ENDPOINT,
        "WindowEnd": "2026-12-01T12:00:00Z",
        "WindowMinutes": config.monitoring.window_minutes,
        "RunS3Uri": RUN,
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

    assert set(tasks) == {"MonitoringWindow", "MonitorDrift", "PublishMonitoringMetrics", "NotifyMonitoringFailed"}
    for name in ("MonitoringWindow", "MonitorDrift", "PublishMonitoringMetrics"):
        assert tasks[name]["Retry"], name
        assert tasks[name]["Catch"] == [
            {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "ExplainMonitoringFailed"}
        ], name
