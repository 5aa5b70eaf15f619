"""ASL feature battery on the pinned moto engine with the twin's integrations: a moto upgrade must keep it green."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

FLAKY_HANDLER = """
import json, os
from pathlib import Path

class TransientError(Exception):
    pass

class PermanentError(Exception):
    pass

def handler(event, context):
    counter = Path(os.environ["COUNTER_FILE"])
    calls = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(calls))
    if event.get("mode") == "permanent":
        raise PermanentError("this input can never succeed")
    if calls <= int(event.get("failures", 0)):
        raise TransientError(f"attempt {calls} failed")
    return {"calls": calls, "function": context.function_name}
"""


@pytest.fixture
def flaky_function(runtime: Any, tmp_path: Path) -> Path:
    code_dir = tmp_path / "battery_functions"
    code_dir.mkdir()
    (code_dir / "battery_flaky.py").write_text(FLAKY_HANDLER)
    counter = tmp_path / "calls.txt"
    runtime.lambdas.register("battery-flaky", "battery_flaky.handler", code_dir, {"COUNTER_FILE": str(counter)}, 30)
    return counter


def single_choice(choice_rule: dict[str, Any]) -> dict[str, Any]:
    return {
        "StartAt": "Decide",
        "States": {
            "Decide": {"Type": "Choice", "Choices": [{**choice_rule, "Next": "Yes"}], "Default": "No"},
            "Yes": {"Type": "Pass", "Result": {"branch": "yes"}, "End": True},
            "No": {"Type": "Pass", "Result": {"branch": "no"}, "End": True},
        },
    }


CHOICE_CASES = [
    ({"Variable": "$.s", "StringEquals": "train"}, {"s": "train"}, "yes"),
    ({"Variable": "$.s", "StringEquals": "train"}, {"s": "tune"}, "no"),
    ({"Variable": "$.s", "StringMatches": "run-*-2026"}, {"s": "run-abc-2026"}, "yes"),
    ({"Variable": "$.s", "StringLessThan": "b"}, {"s": "a"}, "yes"),
    ({"Variable": "$.s", "StringGreaterThanEquals": "b"}, {"s": "a"}, "no"),
    ({"Variable": "$.n", "NumericGreaterThanEquals": 0.93}, {"n": 0.95}, "yes"),
    ({"Variable": "$.n", "NumericLessThan": 0.93}, {"n": 0.95}, "no"),
    ({"Variable": "$.n", "NumericEquals": 3}, {"n": 3}, "yes"),
    ({"Variable": "$.n", "NumericGreaterThanEqualsPath": "$.threshold"}, {"n": 0.9, "threshold": 0.93}, "no"),
    ({"Variable": "$.b", "BooleanEquals": True}, {"b": True}, "yes"),
    ({"Variable": "$.t", "TimestampLessThan": "2026-01-01T00:00:00Z"}, {"t": "2025-06-01T00:00:00Z"}, "yes"),
    ({"Variable": "$.champion", "IsPresent": True}, {"champion": None}, "yes"),
    ({"Variable": "$.champion", "IsPresent": True}, {}, "no"),
    ({"Variable": "$.champion", "IsNull": True}, {"champion": None}, "yes"),
    ({"Variable": "$.n", "IsNumeric": True}, {"n": "1"}, "no"),
    ({"Variable": "$.s", "IsString": True}, {"s": "1"}, "yes"),
    (
        {"And": [{"Variable": "$.n", "NumericGreaterThan": 0.9}, {"Variable": "$.beats", "BooleanEquals": True}]},
        {"n": 0.95, "beats": True},
        "yes",
    ),
    (
        {"And": [{"Variable": "$.n", "NumericGreaterThan": 0.9}, {"Variable": "$.beats", "BooleanEquals": True}]},
        {"n": 0.95, "beats": False},
        "no",
    ),
    (
        {"Or": [{"Variable": "$.tune", "BooleanEquals": True}, {"Variable": "$.s", "StringEquals": "tune"}]},
        {"tune": False, "s": "tune"},
        "yes",
    ),
    ({"Not": {"Variable": "$.s", "StringEquals": "train"}}, {"s": "tune"}, "yes"),
    (
        {"And": [{"Variable": "$.warm", "IsPresent": True}, {"Not": {"Variable": "$.warm", "IsNull": True}}]},
        {"warm": "tuning-1"},
        "yes",
    ),
]


@pytest.mark.parametrize(("rule", "execution_input", "expected"), CHOICE_CASES)
def test_choice_operators_route_as_on_aws(
    runtime: Any, rule: dict[str, Any], execution_input: Any, expected: str
) -> None:
    outcome = runtime.run(single_choice(rule), execution_input)

    assert outcome.status == "SUCCEEDED", outcome.cause
    assert outcome.output == {"branch": expected}


def test_choice_without_a_match_or_default_fails_with_no_choice_matched(runtime: Any) -> None:
    definition = {
        "StartAt": "Decide",
        "States": {
            "Decide": {"Type": "Choice", "Choices": [{"Variable": "$.s", "StringEquals": "x", "Next": "Done"}]},
            "Done": {"Type": "Succeed"},
        },
    }

    outcome = runtime.run(definition, {"s": "y"})

    assert (outcome.status, outcome.error) == ("FAILED", "States.NoChoiceMatched")


def test_intrinsic_functions_the_project_uses_and_a_broad_sample(runtime: Any) -> None:
    definition = {
        "StartAt": "Compute",
        "States": {
            "Compute": {
                "Type": "Pass",
                "Parameters": {
                    "format.$": "States.Format('s3://{}/runs/{}/', $.bucket, $$.Execution.Name)",
                    "json_to_string.$": "States.JsonToString($.metrics)",
                    "string_to_json.$": "States.StringToJson('3')",
                    "split.$": "States.StringSplit('subnet-a,subnet-b', ',')",
                    "contains.$": "States.ArrayContains($.names, 'endpoint')",
                    "math_add.$": "States.MathAdd($.polls, 1)",
                    "md5.$": "States.Hash($$.Execution.Name, 'MD5')",
                    "sha256.$": "States.Hash('abc', 'SHA-256')",
                    "merged.$": "States.JsonMerge($.defaults, $.given, false)",
                    "array.$": "States.Array('a', 1, true)",
                    "partition.$": "States.ArrayPartition($.numbers, 2)",
                    "range.$": "States.ArrayRange(1, 9, 4)",
                    "item.$": "States.ArrayGetItem($.numbers, 1)",
                    "length.$": "States.ArrayLength($.numbers)",
                    "unique.$": "States.ArrayUnique($.duplicates)",
                    "base64.$": "States.Base64Encode('model')",
                    "decoded.$": "States.Base64Decode('bW9kZWw=')",
                    "random.$": "States.MathRandom(1, 5)",
                    "uuid.$": "States.UUID()",
                },
                "End": True,
            }
        },
    }
    execution_input = {
        "bucket": "artifacts",
        "metrics": {"auc": 0.97},
        "names": ["other", "endpoint"],
        "polls": 4,
        "defaults": {"tune": False, "trigger": {"type": "manual"}},
        "given": {"tune": True},
        "numbers": [1, 2, 3],
        "duplicates": [1, 1, 2],
    }

    outcome = runtime.run(definition, execution_input, name="intrinsics-1")

    assert outcome.status == "SUCCEEDED", outcome.cause
    out = outcome.output
    assert out["format"] == "s3://artifacts/runs/intrinsics-1/"
    assert out["json_to_string"] == '{"auc":0.97}'
    assert out["string_to_json"] == 3
    assert out["split"] == ["subnet-a", "subnet-b"]
    assert out["contains"] is True
    assert out["math_add"] == 5
    assert out["md5"] == hashlib.md5(b"intrinsics-1").hexdigest()  # noqa: S324 (the ASL's own hash)
    assert out["sha256"] == hashlib.sha256(b"abc").hexdigest()
    assert out["merged"] == {"tune": True, "trigger": {"type": "manual"}}
    assert out["array"] == ["a", 1, True]
    assert out["partition"] == [[1, 2], [3]]
    assert out["range"] == [1, 5, 9]
    assert out["item"] == 2
    assert out["length"] == 3
    assert out["unique"] == [1, 2]
    assert out["base64"] == base64.b64encode(b"model").decode()
    assert out["decoded"] == "model"
    assert 1 <= out["random"] <= 5
    assert len(out["uuid"]) == 36


def test_map_runs_every_item_with_item_selector_and_keeps_order(runtime: Any) -> None:
    definition = {
        "StartAt": "EachObject",
        "States": {
            "EachObject": {
                "Type": "Map",
                "ItemsPath": "$.objects",
                "MaxConcurrency": 2,
                "ItemSelector": {
                    "key.$": "$$.Map.Item.Value.key",
                    "index.$": "$$.Map.Item.Index",
                    "bucket.$": "$.bucket",
                },
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "INLINE"},
                    "StartAt": "Describe",
                    "States": {
                        "Describe": {
                            "Type": "Pass",
                            "Parameters": {"uri.$": "States.Format('s3://{}/{}#{}', $.bucket, $.key, $.index)"},
                            "End": True,
                        }
                    },
                },
                "ResultPath": "$.uris",
                "End": True,
            }
        },
    }

    outcome = runtime.run(
        definition, {"bucket": "data", "objects": [{"key": "a.csv"}, {"key": "b.csv"}, {"key": "c.csv"}]}
    )

    assert outcome.status == "SUCCEEDED", outcome.cause
    assert [item["uri"] for item in outcome.output["uris"]] == [
        "s3://data/a.csv#0",
        "s3://data/b.csv#1",
        "s3://data/c.csv#2",
    ]


def test_parallel_branches_each_see_the_input_and_return_in_branch_order(runtime: Any) -> None:
    definition = {
        "StartAt": "Both",
        "States": {
            "Both": {
                "Type": "Parallel",
                "Branches": [
                    {
                        "StartAt": "Slow",
                        "States": {
                            "Slow": {"Type": "Wait", "Seconds": 60, "Next": "SlowDone"},
                            "SlowDone": {"Type": "Pass", "Parameters": {"branch": "slow", "x.$": "$.x"}, "End": True},
                        },
                    },
                    {
                        "StartAt": "Fast",
                        "States": {
                            "Fast": {"Type": "Pass", "Parameters": {"branch": "fast", "x.$": "$.x"}, "End": True}
                        },
                    },
                ],
                "End": True,
            }
        },
    }

    outcome = runtime.run(definition, {"x": 7})

    assert outcome.status == "SUCCEEDED", outcome.cause
    assert outcome.output == [{"branch": "slow", "x": 7}, {"branch": "fast", "x": 7}]


def test_retry_backs_off_through_the_fast_clock_then_succeeds(runtime: Any, flaky_function: Path) -> None:
    definition = {
        "StartAt": "Flaky",
        "States": {
            "Flaky": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "battery-flaky", "Payload": {"failures": 2}},
                "ResultSelector": {"calls.$": "$.Payload.calls", "function.$": "$.Payload.function"},
                "Retry": [
                    {"ErrorEquals": ["TransientError"], "IntervalSeconds": 20, "BackoffRate": 3, "MaxAttempts": 3}
                ],
                "End": True,
            }
        },
    }
    virtual_start = runtime.clock.now()

    outcome = runtime.run(definition)

    assert outcome.status == "SUCCEEDED", outcome.cause
    assert outcome.output == {"calls": 3, "function": "battery-flaky"}
    assert runtime.clock.now() - virtual_start >= timedelta(seconds=20 + 60), "backoff: 20 s then 60 s of virtual time"
    assert outcome.seconds < 20, "the retry intervals did not sleep in real time"
    assert outcome.event_types().count("TaskFailed") == 2


def test_retry_gives_up_after_max_attempts_and_catch_keeps_input_with_result_path(
    runtime: Any, flaky_function: Path
) -> None:
    definition = {
        "StartAt": "Flaky",
        "States": {
            "Flaky": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "battery-flaky", "Payload": {"mode.$": "$.mode"}},
                "Retry": [
                    {"ErrorEquals": ["TransientError"], "IntervalSeconds": 1, "MaxAttempts": 5},
                    {"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1, "MaxAttempts": 1},
                ],
                "Catch": [{"ErrorEquals": ["PermanentError"], "ResultPath": "$.error", "Next": "Notify"}],
                "Next": "Unreachable",
            },
            "Notify": {"Type": "Pass", "End": True},
            "Unreachable": {"Type": "Fail", "Error": "Unexpected"},
        },
    }

    outcome = runtime.run(definition, {"mode": "permanent", "run": "r1"})

    assert outcome.status == "SUCCEEDED", outcome.cause
    assert outcome.output["run"] == "r1"
    assert outcome.output["error"]["Error"] == "PermanentError"
    assert "this input can never succeed" in outcome.output["error"]["Cause"]
    assert flaky_function.read_text() == "2", "States.ALL retried once, then the Catch took over"


def test_fail_state_ends_with_its_error_and_cause(runtime: Any) -> None:
    definition = {
        "StartAt": "Gate",
        "States": {"Gate": {"Type": "Fail", "Error": "QualityGateFailed", "Cause": "auc 0.80 < 0.93"}},
    }

    outcome = runtime.run(definition)

    assert (outcome.status, outcome.error, outcome.cause) == ("FAILED", "QualityGateFailed", "auc 0.80 < 0.93")


def test_context_object_gives_execution_name_input_and_state_name(runtime: Any) -> None:
    definition = {
        "StartAt": "Names",
        "States": {
            "Names": {
                "Type": "Pass",
                "Parameters": {
                    "job.$": "States.Format('{}-train', $$.Execution.Name)",
                    "state.$": "$$.State.Name",
                    "original.$": "$$.Execution.Input.data_uri",
                    "machine.$": "$$.StateMachine.Name",
                },
                "End": True,
            }
        },
    }

    outcome = runtime.run(definition, {"data_uri": "s3://data/incoming/"}, name="run-2026-11-23")

    assert outcome.status == "SUCCEEDED", outcome.cause
    assert outcome.output["job"] == "run-2026-11-23-train"
    assert outcome.output["state"] == "Names"
    assert outcome.output["original"] == "s3://data/incoming/"
    assert outcome.output["machine"].startswith("test-")


def test_wait_seconds_and_timestamp_path_pass_on_the_fast_clock(runtime: Any) -> None:
    wake_at = (runtime.clock.now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    definition = {
        "StartAt": "Hour",
        "States": {
            "Hour": {"Type": "Wait", "Seconds": 3600, "Next": "Until"},
            "Until": {"Type": "Wait", "TimestampPath": "$.wake_at", "End": True},
        },
    }
    virtual_start = runtime.clock.now()
    real_start = time.monotonic()

    outcome = runtime.run(definition, {"wake_at": wake_at})

    assert outcome.status == "SUCCEEDED", outcome.cause
    assert runtime.clock.now() - virtual_start >= timedelta(hours=1)
    assert time.monotonic() - real_start < 15, "an hour of Wait took minutes of real time"


def test_task_timeout_is_a_states_timeout_that_catch_can_route(runtime: Any, tmp_path: Path) -> None:
    code_dir = tmp_path / "slow_functions"
    code_dir.mkdir()
    (code_dir / "battery_slow.py").write_text(
        "import time\ndef handler(event, context):\n    time.sleep(3)\n    return 1\n"
    )
    runtime.lambdas.register("battery-slow", "battery_slow.handler", code_dir, {}, 30)
    definition = {
        "StartAt": "Slow",
        "States": {
            "Slow": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "battery-slow", "Payload": {}},
                "TimeoutSeconds": 1,
                "Catch": [{"ErrorEquals": ["States.Timeout"], "ResultPath": "$.error", "Next": "TimedOut"}],
                "End": True,
            },
            "TimedOut": {"Type": "Pass", "End": True},
        },
    }

    outcome = runtime.run(definition)

    assert outcome.status == "SUCCEEDED", outcome.cause
    assert outcome.output["error"]["Error"] == "States.Timeout"


def test_sns_publish_reaches_moto(runtime: Any) -> None:
    topic = boto3.client("sns", region_name="us-east-1").create_topic(Name="twin-notifications")["TopicArn"]
    definition = {
        "StartAt": "Notify",
        "States": {
            "Notify": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sns:publish",
                "Parameters": {"TopicArn": topic, "Subject": "training", "Message.$": "$"},
                "End": True,
            }
        },
    }

    outcome = runtime.run(definition, {"status": "registered"})

    assert outcome.status == "SUCCEEDED", outcome.cause
    assert "MessageId" in outcome.output


def test_sqs_send_message_reaches_moto(runtime: Any) -> None:
    sqs = boto3.client("sqs", region_name="us-east-1")
    queue = sqs.create_queue(QueueName="twin-queue")["QueueUrl"]
    definition = {
        "StartAt": "Enqueue",
        "States": {
            "Enqueue": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage",
                "Parameters": {"QueueUrl": queue, "MessageBody.$": "$"},
                "End": True,
            }
        },
    }

    outcome = runtime.run(definition, {"object": "incoming/a.csv"})

    assert outcome.status == "SUCCEEDED", outcome.cause
    message = sqs.receive_message(QueueUrl=queue)["Messages"][0]
    assert json.loads(message["Body"]) == {"object": "incoming/a.csv"}


def test_execution_dates_and_history_timestamps_are_on_the_twins_clock(runtime: Any) -> None:
    # One timeline, as on AWS: the functions and the alarms read the same clock (a fast one, here advanced a day).
    runtime.clock.advance(24 * 3600)
    definition = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}

    outcome = runtime.run(definition, {})

    stamps = [event["timestamp"] for event in outcome.events]
    assert stamps
    assert all(abs((stamp - runtime.clock.now()).total_seconds()) < 120 for stamp in stamps)
