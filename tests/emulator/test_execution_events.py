"""The twin sends Step Functions' "Execution Status Change" events, in AWS's shape, for every STANDARD execution."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from emulator.execution_events import ExecutionStatusEvents

ROLE = "arn:aws:iam::123456789012:role/sfn"
PASSING = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "Result": {"ok": True}, "End": True}}}
ROLLED_BACK = {
    "StartAt": "EndpointRolledBack",
    "States": {"EndpointRolledBack": {"Type": "Fail", "Error": "EndpointRolledBack", "Cause": "alarm fired"}},
}


@pytest.fixture
def emitted() -> Iterator[list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):  # type: ignore[arg-type]
        hook = ExecutionStatusEvents(events.append)
        hook.install()
        try:
            yield events
        finally:
            hook.uninstall()


def _run(definition: dict[str, Any], name: str, machine_type: str = "STANDARD") -> str:
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    machine = sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE, type=machine_type)
    arn = sfn.start_execution(stateMachineArn=machine["stateMachineArn"], name="run-1", input='{"n": 1}')
    for _ in range(100):
        if sfn.describe_execution(executionArn=arn["executionArn"])["status"] != "RUNNING":
            break
        time.sleep(0.05)
    return str(arn["executionArn"])


def test_a_succeeding_execution_sends_running_then_succeeded_with_describe_executions_fields(emitted) -> None:
    execution_arn = _run(PASSING, "passing")

    running, succeeded = emitted
    described = boto3.client("stepfunctions", region_name="us-east-1").describe_execution(executionArn=execution_arn)
    for event in (running, succeeded):
        assert (event["source"], event["detail-type"]) == ("aws.states", "Step Functions Execution Status Change")
        assert event["resources"] == [execution_arn]
        assert event["detail"]["executionArn"] == execution_arn
        assert event["detail"]["stateMachineArn"] == described["stateMachineArn"]
        assert event["detail"]["name"] == "run-1"
        assert json.loads(event["detail"]["input"]) == {"n": 1}
        assert event["detail"]["startDate"] == int(described["startDate"].timestamp() * 1000)
    assert (running["detail"]["status"], running["detail"]["stopDate"], running["detail"]["output"]) == (
        "RUNNING",
        None,
        None,
    )
    assert succeeded["detail"]["status"] == "SUCCEEDED"
    assert json.loads(succeeded["detail"]["output"]) == {"ok": True}
    assert succeeded["detail"]["stopDate"] == int(described["stopDate"].timestamp() * 1000)


def test_a_failed_execution_names_its_error_and_cause(emitted) -> None:
    _run(ROLLED_BACK, "rolling-back")

    final = emitted[-1]["detail"]
    assert (final["status"], final["error"], final["cause"], final["output"]) == (
        "FAILED",
        "EndpointRolledBack",
        "alarm fired",
        None,
    )
    assert [event["detail"]["status"] for event in emitted] == ["RUNNING", "FAILED"]


def test_uninstalled_the_engine_sends_nothing(emitted) -> None:
    hook = ExecutionStatusEvents(emitted.append)
    hook.uninstall()
    ExecutionStatusEvents(lambda event: None)  # a second, never installed, changes nothing either

    _run(PASSING, "before-uninstall")

    assert len(emitted) == 2
