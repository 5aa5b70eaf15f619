"""The twin's wait_for_execution on an execution a client started without a name (AWS names it with a UUID)."""

from __future__ import annotations

import uuid
from pathlib import Path

import boto3
import pytest
from twin_runtime import stand_in_twin

pytestmark = pytest.mark.e2e

NAME_ECHO = {
    "StartAt": "Name",
    "States": {"Name": {"Type": "Pass", "Parameters": {"n.$": "$$.Execution.Name"}, "End": True}},
}


def test_wait_for_execution_reads_an_execution_started_without_a_name(tmp_path: Path) -> None:
    with stand_in_twin(tmp_path, NAME_ECHO, NAME_ECHO) as twin:
        machine = twin.stack.state_machine("training")
        arn = boto3.client("stepfunctions").start_execution(stateMachineArn=machine.arn, input="{}")["executionArn"]

        result = twin.wait_for_execution(arn, timeout=60)  # KeyError: 'name' before

    assert result.status == "SUCCEEDED"
    assert str(uuid.UUID(result.name)) == result.name
    assert result.output == {"n": result.name}
