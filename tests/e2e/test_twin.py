"""LocalTwin end to end on the real template and functions, with small stand-in state machines so that routing,
execution results and progress are checked in seconds (the real workflows run in the lifecycle tests)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from twin_runtime import stand_in_twin

from emulator.twin import LocalTwin, ProgressEvent

pytestmark = pytest.mark.e2e

# Stand-ins with the real file names, so the template's DefinitionUri and substitutions apply to them.
TRAINING_ASL = {
    "StartAt": "RecordInput",
    "States": {
        "RecordInput": {
            "Type": "Pass",
            "Parameters": {"input.$": "$", "data_bucket": "${DataBucket}", "execution.$": "$$.Execution.Name"},
            "End": True,
        }
    },
}
DEPLOY_ASL = {
    "StartAt": "ReadPackage",
    "States": {
        "ReadPackage": {"Type": "Pass", "Parameters": {"arn.$": "$.ModelPackageArn"}, "Next": "NoEndpointHere"},
        "NoEndpointHere": {"Type": "Fail", "Error": "Local.NoEndpoint", "Cause": "stand-in deploy for ${EndpointName}"},
    },
}


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTwin]:
    with stand_in_twin(tmp_path_factory.mktemp("statemachines"), TRAINING_ASL, DEPLOY_ASL) as started:
        yield started


def _csv(directory: Path, name: str) -> Path:
    path = directory / name
    path.write_text("feature,target\n1.0,0\n2.0,1\n", encoding="utf-8")
    return path


def test_an_upload_into_the_data_bucket_starts_exactly_one_training_execution(twin: LocalTwin, tmp_path: Path) -> None:
    # GIVEN the twin, and progress recorded
    events: list[ProgressEvent] = []
    twin.on_progress = events.append
    before = {e["executionArn"] for e in twin.list_executions("training")}
    # WHEN a CSV is uploaded under the data prefix and the queue's batch reaches its function
    twin.upload(_csv(tmp_path, "upload.csv"), "DataBucket", "incoming/upload.csv")
    twin.drain_queues()
    # THEN one training execution runs, named after the object, with the object in its input
    started = [e for e in twin.list_executions("training") if e["executionArn"] not in before]
    assert len(started) == 1
    result = twin.wait_for_execution(started[0]["executionArn"], timeout=60)
    assert result.succeeded
    assert result.output["data_bucket"] == twin.stack.resources["DataBucket"]
    assert result.output["execution"] == result.name
    assert [o["key"] for o in result.output["input"]["objects"]] == ["incoming/upload.csv"]
    assert result.states_entered() == ["RecordInput"]
    assert [(e.phase, e.state_name) for e in events] == [("entered", "RecordInput"), ("exited", "RecordInput")]


def test_a_burst_of_uploads_coalesces_into_one_execution(twin: LocalTwin, tmp_path: Path) -> None:
    before = {e["executionArn"] for e in twin.list_executions("training")}
    keys = [f"incoming/burst/part-{index}.csv" for index in range(3)]
    for key in keys:
        twin.upload(_csv(tmp_path, key.rsplit("/", 1)[1]), "DataBucket", key)
    twin.drain_queues()
    started = [e for e in twin.list_executions("training") if e["executionArn"] not in before]
    assert len(started) == 1
    result = twin.wait_for_execution(started[0]["executionArn"], timeout=60)
    assert sorted(o["key"] for o in result.output["input"]["objects"]) == keys


def test_uploads_outside_the_data_prefix_start_nothing(twin: LocalTwin, tmp_path: Path) -> None:
    before = len(twin.list_executions("training"))
    twin.upload(_csv(tmp_path, "elsewhere.csv"), "DataBucket", "archive/elsewhere.csv")
    assert twin.drain_queues() == []
    assert len(twin.list_executions("training")) == before


def test_an_approved_model_package_event_starts_deploy_with_the_package_arn(twin: LocalTwin) -> None:
    # GIVEN the registry's approval event for the stack's model package group
    group = twin.stack.outputs["ModelPackageGroupName"]
    package_arn = f"arn:aws:sagemaker:us-east-1:123456789012:model-package/{group}/1"
    detail = {"ModelPackageGroupName": group, "ModelApprovalStatus": "Approved", "ModelPackageArn": package_arn}
    # WHEN it is put on the bus
    results = twin.put_events(
        [
            {
                "Source": "aws.sagemaker",
                "DetailType": "SageMaker Model Package State Change",
                "Detail": json.dumps(detail),
            }
        ]
    )
    # THEN the approval rule started deploy with {"ModelPackageArn": ...}, and the result names its Fail state
    assert "EventId" in results[0]
    (execution,) = twin.list_executions("deploy")
    result = twin.wait_for_execution(execution["executionArn"], timeout=60)
    assert result.input == {"ModelPackageArn": package_arn}
    assert result.status == "FAILED"
    assert result.error == "Local.NoEndpoint"
    assert result.cause == f"stand-in deploy for {twin.stack.stack_name}-endpoint"
    assert [(run.name, run.status) for run in result.runs] == [
        ("ReadPackage", "succeeded"),
        ("NoEndpointHere", "failed"),
    ]


def test_functions_run_in_process_by_handler_module_with_the_stacks_environment(twin: LocalTwin) -> None:
    result = twin.invoke_function("retrain_on_new_data", {"Records": []})
    assert result == {"batchItemFailures": []}


def test_boto3_clients_see_the_twin(twin: LocalTwin) -> None:
    machines = boto3.client("stepfunctions").list_state_machines()["stateMachines"]
    assert {m["stateMachineArn"] for m in machines} == {m.arn for m in twin.stack.state_machines.values()}
    assert twin.stack.skipped, "the template has types moto cannot create; the twin must list them"


def test_the_reapers_schedule_fires_on_the_twins_clock(twin: LocalTwin) -> None:
    twin.fire_schedules()  # whatever fell due while the other tests ran
    twin.clock.advance(2 * 3600)
    deliveries = twin.fire_schedules()
    reaper = twin.stack.functions["EndpointReaperFunction"].function_arn
    drift_recheck = twin.stack.functions["RetrainOnDriftFunction"].function_arn
    monitoring = twin.stack.state_machine("monitoring").arn
    assert len(deliveries) >= 3
    # the reaper, the drift re-check and monitoring: the retraining schedule is off by default
    # (RetrainingScheduleEnabled)
    assert {d.target_arn for d in deliveries} == {reaper, drift_recheck, monitoring}
    assert [d.error for d in deliveries] == [None] * len(deliveries)


def test_describing_an_unchanged_execution_again_does_not_read_its_history_through_the_api(
    twin: LocalTwin, monkeypatch: pytest.MonkeyPatch
) -> None:
    arn = twin.start_execution("training", {"objects": []}, name="described-twice")
    waited = twin.wait_for_execution(arn, timeout=60)
    assert waited.history[-1]["type"] == "ExecutionSucceeded", "the wait returns the whole history"
    first = twin.describe_execution(arn)

    def no_api_call(*args: object, **kwargs: object) -> None:
        raise AssertionError("an unchanged execution was read through the Step Functions API again")

    monkeypatch.setattr(boto3, "client", no_api_call)
    again = twin.describe_execution(arn)

    assert (again.status, again.output, again.states_entered()) == (first.status, first.output, ["RecordInput"])
    assert again.history == first.history
    assert again.runs is not first.runs, "each caller gets lists of its own"


def test_the_monitoring_schedule_starts_a_run_for_the_window_ending_at_its_time(twin: LocalTwin) -> None:
    twin.fire_schedules()
    twin.clock.advance(3600)
    [delivery] = [d for d in twin.fire_schedules() if d.target_arn == twin.stack.state_machine("monitoring").arn]
    assert delivery.error is None

    [newest, *_] = twin.list_executions("monitoring")
    result = twin.wait_for_execution(newest["executionArn"], timeout=120)
    # No endpoint is deployed in this twin: the run ends quietly.
    assert result.status == "SUCCEEDED", result.cause
    assert result.states_entered()[-1] == "NoEndpoint"
    assert set(result.input) == {"EndpointName", "WindowEnd"}
    assert result.input["EndpointName"] == f"{twin.stack.stack_name}-endpoint"
