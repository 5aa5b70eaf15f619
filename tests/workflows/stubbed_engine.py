"""Runs a definition on moto's Step Functions engine with every Task replaced by two Pass states.

The first Pass evaluates the Task's own `Parameters` (so every path and intrinsic function in them runs on
the pinned engine, with representative placeholder values) and keeps the request at `$.requests.<Task>`;
the second puts a canned result where the Task's `ResultPath` would. Wait states wait 0 seconds. That tests
the definitions' data flow and Choice routing on the engine the local twin uses, without any service.

A Task named in `failing` instead calls an SQS queue that does not exist, so it fails as a service error
would and the Task's own Catch decides where the execution goes (its Retry is dropped: retrying could
only repeat the same failure).
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import boto3
from moto import mock_aws

from mlops.checks import fill_placeholders

REQUESTS = "requests"
_RESULT_SUFFIX = "~result"
_ROLE_ARN = "arn:aws:iam::123456789012:role/stubbed-engine"
_FAILING_RESOURCE = "arn:aws:states:::aws-sdk:sqs:getQueueUrl"
# The engine logs every handled task failure at ERROR with a long repr; the tests read the history instead.
logging.getLogger("moto.stepfunctions.parser").setLevel(logging.CRITICAL)


@dataclass(frozen=True)
class StubbedRun:
    status: str
    error: str | None
    output: dict[str, Any] | None
    visited: list[str]
    # The request each stubbed Task evaluated, also on runs that end in a Fail (which have no output).
    requests: dict[str, Any]
    cause: str | None = None


def stub_tasks(definition: dict[str, Any], results: dict[str, Any], failing: Collection[str] = ()) -> dict[str, Any]:
    """The definition with Tasks replaced as the module docstring says; `results` maps Task name to result."""
    stubbed = copy.deepcopy(definition)
    states = stubbed["States"]
    for name, state in list(states.items()):
        if state["Type"] == "Wait":
            state["Seconds"] = 0
        if state["Type"] != "Task":
            continue
        exit_field = {"Next": state["Next"]} if "Next" in state else {"End": True}
        if name in failing:
            states[name] = {
                "Type": "Task",
                "Resource": _FAILING_RESOURCE,
                "Parameters": {"QueueName": f"stubbed-failure-{name}"},
                "Catch": state["Catch"],
                **exit_field,
            }
            continue
        states[name] = {
            "Type": "Pass",
            "Parameters": state.get("Parameters", {}),
            "ResultPath": f"$.{REQUESTS}.{name}",
            "Next": name + _RESULT_SUFFIX,
        }
        states[name + _RESULT_SUFFIX] = {
            "Type": "Pass",
            "Result": results.get(name, {}),
            "ResultPath": state.get("ResultPath", "$"),
            **exit_field,
        }
    return stubbed


def run_stubbed(
    definition: dict[str, Any],
    results: dict[str, Any],
    execution_input: dict[str, Any],
    execution_name: str,
    failing: Collection[str] = (),
) -> StubbedRun:
    """Runs the stubbed definition to its end; `visited` lists the original state names in order."""
    text = fill_placeholders(json.dumps(stub_tasks(definition, results, failing)))
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        client = boto3.client("stepfunctions", region_name="us-east-1")
        arn = client.create_state_machine(name="stubbed", definition=text, roleArn=_ROLE_ARN)["stateMachineArn"]
        execution = client.start_execution(stateMachineArn=arn, name=execution_name, input=json.dumps(execution_input))[
            "executionArn"
        ]
        deadline = time.monotonic() + 60
        description = client.describe_execution(executionArn=execution)
        while description["status"] == "RUNNING":
            assert time.monotonic() < deadline, "the stubbed execution did not finish in 60 s"
            time.sleep(0.05)
            description = client.describe_execution(executionArn=execution)
        events = client.get_execution_history(executionArn=execution, maxResults=1000)["events"]
    visited = [
        event["stateEnteredEventDetails"]["name"]
        for event in events
        if "stateEnteredEventDetails" in event
        and not event["stateEnteredEventDetails"]["name"].endswith(_RESULT_SUFFIX)
    ]
    requests: dict[str, Any] = {}
    for event in events:
        exited = event.get("stateExitedEventDetails")
        if exited and not exited["name"].endswith(_RESULT_SUFFIX):
            requests.update(json.loads(exited.get("output") or "{}").get(REQUESTS, {}))
    output = json.loads(description["output"]) if description.get("output") else None
    return StubbedRun(
        status=description["status"],
        error=description.get("error"),
        output=output,
        visited=visited,
        requests=requests,
        cause=description.get("cause"),
    )
