"""GetExecutionHistory pages, orders and trims its events as Step Functions does."""

from __future__ import annotations

import threading
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from emulator.execution_history import history_page
from emulator.twin import _events_after

# 60 Pass states: 2 events each, plus the execution's start and end, so more than one default page of 100.
CHAIN_LENGTH = 60


def _chain() -> dict[str, Any]:
    names = [f"Step{index}" for index in range(CHAIN_LENGTH)]
    states: dict[str, Any] = {
        name: {"Type": "Pass", "Result": {"step": index}, "ResultPath": f"$.step{index}", "Next": following}
        for index, (name, following) in enumerate(zip(names, [*names[1:], None], strict=True))
    }
    del states[names[-1]]["Next"]
    states[names[-1]]["End"] = True
    return {"StartAt": names[0], "States": states}


@pytest.fixture
def finished(runtime: Any) -> tuple[Any, str, list[dict[str, Any]]]:
    """A stepfunctions client, a finished execution's ARN and its whole history as the engine holds it."""
    outcome = runtime.run(_chain(), {"input": "secret"}, name="long-chain")
    assert outcome.status == "SUCCEEDED"
    client = boto3.client("stepfunctions", region_name=runtime.region)
    arn = client.list_executions(stateMachineArn=_machine_arn(client))["executions"][0]["executionArn"]
    return client, arn, outcome.events


def _machine_arn(client: Any) -> str:
    return str(client.list_state_machines()["stateMachines"][-1]["stateMachineArn"])


def test_a_history_comes_in_pages_of_100_by_default_and_the_token_continues_it(finished: Any) -> None:
    client, arn, events = finished
    first = client.get_execution_history(executionArn=arn)
    second = client.get_execution_history(executionArn=arn, nextToken=first["nextToken"])

    assert len(events) == 2 * CHAIN_LENGTH + 2
    assert [event["id"] for event in first["events"]] == list(range(1, 101))
    assert [event["id"] for event in second["events"]] == list(range(101, len(events) + 1))
    assert "nextToken" not in second
    assert first["events"] + second["events"] == events


def test_pages_of_any_size_newest_first_cover_the_history_once(finished: Any) -> None:
    client, arn, events = finished
    pages = client.get_paginator("get_execution_history").paginate(
        executionArn=arn, reverseOrder=True, PaginationConfig={"PageSize": 7}
    )
    read = [event for page in pages for event in page["events"]]

    assert read == events[::-1]
    last = client.get_execution_history(executionArn=arn, reverseOrder=True, maxResults=1)["events"]
    assert [event["type"] for event in last] == ["ExecutionSucceeded"]


def test_without_execution_data_no_event_carries_input_or_output(finished: Any) -> None:
    client, arn, events = finished
    trimmed = client.get_execution_history(executionArn=arn, includeExecutionData=False, maxResults=1000)["events"]

    assert [event["id"] for event in trimmed] == [event["id"] for event in events]
    assert "input" in events[0]["executionStartedEventDetails"]
    for event in trimmed:
        for key, details in event.items():
            if key.endswith("EventDetails"):
                assert not {"input", "output"} & set(details), (event["type"], details)
    assert trimmed[0]["executionStartedEventDetails"]["roleArn"] == events[0]["executionStartedEventDetails"]["roleArn"]


@pytest.mark.parametrize(
    ("parameters", "code"),
    [
        ({"nextToken": "not-a-token"}, "InvalidToken"),
        ({"nextToken": "eyJhcm4iOiJvdGhlciIsInJldmVyc2UiOmZhbHNlLCJzdGFydCI6MTAwfQ=="}, "InvalidToken"),
        ({"maxResults": 1001}, "ValidationException"),
    ],
    ids=["malformed token", "another execution's token", "page over 1000"],
)
def test_a_bad_token_or_page_size_is_refused_naming_it(finished: Any, parameters: dict[str, Any], code: str) -> None:
    client, arn, _events = finished
    with pytest.raises(ClientError) as refused:
        client.get_execution_history(executionArn=arn, **parameters)
    assert refused.value.response["Error"]["Code"] == code


def test_a_token_for_one_order_is_refused_in_the_other(finished: Any) -> None:
    client, arn, _events = finished
    token = client.get_execution_history(executionArn=arn, maxResults=5)["nextToken"]
    with pytest.raises(ClientError) as refused:
        client.get_execution_history(executionArn=arn, maxResults=5, reverseOrder=True, nextToken=token)
    assert refused.value.response["Error"]["Code"] == "InvalidToken"


@pytest.mark.parametrize("known", [0, 1, 50, 2 * CHAIN_LENGTH + 1, 2 * CHAIN_LENGTH + 2])
@pytest.mark.parametrize("expected", [1, 3, 500])
def test_the_twin_reads_only_the_events_after_those_it_has(finished: Any, known: int, expected: int) -> None:
    client, arn, events = finished
    assert events[:known] + _events_after(client, arn, known, expected) == events


class _GrowingHistory:
    """An engine's event manager whose history gains events between pages, as a running execution's does."""

    def __init__(self, count: int) -> None:
        self._mutex = threading.Lock()
        self._history_event_list = [{"id": number} for number in range(1, count + 1)]

    def add(self, count: int) -> None:
        start = len(self._history_event_list)
        self._history_event_list += [{"id": start + number} for number in range(1, count + 1)]


@pytest.mark.parametrize("reverse", [True, False], ids=["newest first", "oldest first"])
def test_pages_of_a_growing_history_neither_repeat_nor_skip_an_event(reverse: bool) -> None:
    manager = _GrowingHistory(20)
    read: list[int] = []
    position = None
    while True:
        events, position = history_page(manager, position, 5, reverse)
        read += [event["id"] for event in events]
        manager.add(3)
        if position is None:
            break

    if reverse:
        assert read == list(range(20, 0, -1)), "from the newest event the first page saw, back to the first"
    else:
        assert read == list(range(1, len(manager._history_event_list) - 2)), "on until a page reaches the end"
