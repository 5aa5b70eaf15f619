"""ASL feature battery on the pinned moto engine with the twin's integrations: a moto upgrade must keep it green."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import time
import uuid
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from contract.project import STATEMACHINES_DIR

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


# ---- Engine gaps the twin corrects or refuses (docs/local-twin.md, the support table) ---------

AWS_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def test_execution_start_time_is_aws_timestamp_text_in_the_output_and_in_states_format(runtime: Any) -> None:
    definition = {
        "StartAt": "Stamp",
        "States": {
            "Stamp": {
                "Type": "Pass",
                "Parameters": {
                    "started.$": "$$.Execution.StartTime",
                    "line.$": "States.Format('started at {}', $$.Execution.StartTime)",
                },
                "End": True,
            }
        },
    }

    before = runtime.clock.now()
    outcome = runtime.run(definition)  # DescribeExecution raised on the datetime before
    after = runtime.clock.now()

    assert outcome.status == "SUCCEEDED", outcome.cause
    assert AWS_TIMESTAMP.match(outcome.output["started"]), outcome.output["started"]
    assert outcome.output["line"] == f"started at {outcome.output['started']}"
    started = datetime.fromisoformat(outcome.output["started"])
    # Read from the twin's clock (milliseconds: the start may round down below `before`).
    assert before - timedelta(milliseconds=1) <= started <= after


def test_state_entered_time_is_aws_timestamp_text(runtime: Any) -> None:
    definition = {
        "StartAt": "First",
        "States": {
            "First": {
                "Type": "Pass",
                "Parameters": {"entered.$": "$$.State.EnteredTime"},
                "ResultPath": "$.first",
                "Next": "Second",
            },
            "Second": {
                "Type": "Pass",
                "QueryLanguage": "JSONata",
                "Output": {
                    "first": "{% $states.input.first.entered %}",
                    "second": "{% $states.context.State.EnteredTime %}",
                },
                "End": True,
            },
        },
    }

    outcome = runtime.run(definition)

    assert outcome.status == "SUCCEEDED", outcome.cause
    assert AWS_TIMESTAMP.match(outcome.output["first"]), outcome.output["first"]
    assert AWS_TIMESTAMP.match(outcome.output["second"]), outcome.output["second"]
    assert outcome.output["first"] <= outcome.output["second"]


def test_intrinsic_string_literals_take_the_specs_escapes(runtime: Any) -> None:
    definition = {
        "StartAt": "Escape",
        "States": {
            "Escape": {
                "Type": "Pass",
                "Parameters": {
                    "format.$": r"States.Format('\{literal\} {} it\'s a\\b {}', $.x, $.y)",
                    "split.$": r"States.StringSplit('it\'s,a\\b', ',')",
                    "array.$": r"States.Array('\{\}')",
                    "from_path.$": "States.Format($.template, $.x)",
                },
                "End": True,
            }
        },
    }

    outcome = runtime.run(definition, {"x": 1, "y": "z", "template": "{x}={}"})

    assert outcome.status == "SUCCEEDED", outcome.cause
    assert outcome.output["format"] == "{literal} 1 it's a\\b z"
    assert outcome.output["split"] == ["it's", "a\\b"]
    assert outcome.output["array"] == ["{}"]
    assert outcome.output["from_path"] == "{x}=1", "a template read from a path fills only its {}"


def test_states_format_with_more_placeholders_than_values_fails_with_intrinsic_failure(runtime: Any) -> None:
    definition = {
        "StartAt": "Short",
        "States": {"Short": {"Type": "Pass", "Parameters": {"s.$": "States.Format('{}-{}', $.x)"}, "End": True}},
    }

    outcome = runtime.run(definition, {"x": 1})

    assert (outcome.status, outcome.error) == ("FAILED", "States.IntrinsicFailure")
    assert "2 placeholder(s)" in outcome.cause
    assert "1 value(s)" in outcome.cause


def _lambda_role() -> str:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    iam = boto3.client("iam", region_name="us-east-1")
    return str(iam.create_role(RoleName="battery-fn", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"])


def _zip(files: dict[str, str]) -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        for name, source in files.items():
            zipped.writestr(name, source)
    return archive.getvalue()


ZIPPED_HANDLER = """
import os

def handler(event, context):
    return {"event": event, "colour": os.environ["COLOUR"], "function": context.function_name}
"""


def test_a_lambda_created_from_a_zip_runs_its_own_handler(runtime: Any) -> None:
    lambda_client = boto3.client("lambda", region_name="us-east-1")
    lambda_client.create_function(
        FunctionName="battery-zipped",
        Runtime="python3.12",
        Role=_lambda_role(),
        Handler="app.main.handler",
        Code={"ZipFile": _zip({"app/__init__.py": "", "app/main.py": ZIPPED_HANDLER})},
        Environment={"Variables": {"COLOUR": "blue"}},
    )
    definition = {
        "StartAt": "Call",
        "States": {
            "Call": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "battery-zipped", "Payload": {"n": 1}},
                "OutputPath": "$.Payload",
                "End": True,
            }
        },
    }

    direct = lambda_client.invoke(FunctionName="battery-zipped", Payload=json.dumps({"n": 0}))
    outcome = runtime.run(definition)

    assert json.loads(direct["Payload"].read()) == {"event": {"n": 0}, "colour": "blue", "function": "battery-zipped"}
    assert outcome.status == "SUCCEEDED", outcome.cause
    assert outcome.output == {"event": {"n": 1}, "colour": "blue", "function": "battery-zipped"}


def test_a_zip_lambda_runs_its_new_code_and_variables_after_an_update(runtime: Any) -> None:
    lambda_client = boto3.client("lambda", region_name="us-east-1")
    lambda_client.create_function(
        FunctionName="battery-updated",
        Runtime="python3.11",
        Role=_lambda_role(),
        Handler="version_one.handler",
        Code={"ZipFile": _zip({"version_one.py": "def handler(event, context):\n    return 1\n"})},
    )
    assert json.loads(lambda_client.invoke(FunctionName="battery-updated")["Payload"].read()) == 1

    lambda_client.update_function_code(FunctionName="battery-updated", ZipFile=_zip({"version_one.py": ZIPPED_HANDLER}))
    lambda_client.update_function_configuration(
        FunctionName="battery-updated", Environment={"Variables": {"COLOUR": "green"}}
    )
    answer = json.loads(lambda_client.invoke(FunctionName="battery-updated", Payload=b"{}")["Payload"].read())

    assert answer == {"event": {}, "colour": "green", "function": "battery-updated"}


def test_a_lambda_with_a_runtime_the_twin_cannot_run_is_refused_at_creation_naming_it(runtime: Any) -> None:
    lambda_client = boto3.client("lambda", region_name="us-east-1")

    with pytest.raises(ClientError) as refused:
        lambda_client.create_function(
            FunctionName="battery-node",
            Runtime="nodejs20.x",
            Role=_lambda_role(),
            Handler="index.handler",
            Code={"ZipFile": _zip({"index.js": "exports.handler = async () => 1;"})},
        )

    assert refused.value.response["Error"]["Code"] == "InvalidParameterValueException"
    assert "'nodejs20.x'" in refused.value.response["Error"]["Message"]


def test_an_execution_started_without_a_name_gets_a_uuid_name_as_on_aws(runtime: Any) -> None:
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    definition = {
        "StartAt": "Name",
        "States": {"Name": {"Type": "Pass", "Parameters": {"n.$": "$$.Execution.Name"}, "End": True}},
    }
    machine = sfn.create_state_machine(
        name="battery-unnamed", definition=json.dumps(definition), roleArn=runtime.role_arn
    )["stateMachineArn"]

    arn = sfn.start_execution(stateMachineArn=machine)["executionArn"]
    while (description := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        time.sleep(0.01)

    name = description["name"]
    assert str(uuid.UUID(name)) == name
    assert arn.endswith(f":{name}")
    assert json.loads(description["output"]) == {"n": name}


BARRIER_HANDLER = """
import barrier_of_three

def handler(event, context):
    # Returns only once all three branches' calls are inside their handlers at the same time.
    barrier_of_three.BARRIER.wait(timeout=30)
    return {"branch": event["branch"]}
"""


def _lambda_branch(function_name: str, index: int) -> dict[str, Any]:
    call = {"FunctionName": function_name, "Payload": {"branch": index}}
    return {
        "StartAt": "Call",
        "States": {
            "Call": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": call,
                "OutputPath": "$.Payload",
                "End": True,
            }
        },
    }


def test_parallel_lambda_branches_run_at_the_same_time_and_return_in_branch_order(runtime: Any, tmp_path: Path) -> None:
    # One barrier for the three functions, each with code of its own (as three functions of a stack or three zips).
    shared = tmp_path / "barrier_shared"
    shared.mkdir()
    (shared / "barrier_of_three.py").write_text("import threading\nBARRIER = threading.Barrier(3)\n")
    names = []
    for index in range(3):
        code_dir = tmp_path / f"barrier_function_{index}"
        code_dir.mkdir()
        (code_dir / f"battery_barrier_{index}.py").write_text(
            f"import sys\nsys.path.insert(0, {str(shared)!r})\n" + BARRIER_HANDLER
        )
        names.append(f"battery-barrier-{index}")
        runtime.lambdas.register(names[-1], f"battery_barrier_{index}.handler", code_dir, {"I": str(index)}, 60)
    branches = [_lambda_branch(name, index) for index, name in enumerate(names)]
    definition = {"StartAt": "All", "States": {"All": {"Type": "Parallel", "Branches": branches, "End": True}}}

    outcome = runtime.run(definition, timeout=90)  # one after another, the first call breaks the barrier: fails

    assert outcome.status == "SUCCEEDED", outcome.cause
    assert outcome.output == [{"branch": 0}, {"branch": 1}, {"branch": 2}]


TWO_SECOND_HANDLER = """
import time

def handler(event, context):
    started = time.monotonic()
    time.sleep(event["seconds"])
    return {"branch": event["branch"], "started": started, "ended": time.monotonic()}
"""


def test_three_2s_branches_of_functions_sharing_a_code_directory_finish_in_about_2s(
    runtime: Any, tmp_path: Path
) -> None:
    # As the stack's functions share functions/: each invocation runs in an execution environment of its own.
    code_dir = tmp_path / "shared_functions"
    code_dir.mkdir()
    (code_dir / "battery_two_seconds.py").write_text(TWO_SECOND_HANDLER)
    for index in range(3):
        runtime.lambdas.register(f"battery-two-seconds-{index}", "battery_two_seconds.handler", code_dir, {}, 60)
    runtime.lambdas.init_functions()  # the import is Lambda's init, outside the invocations' duration
    branches = []
    for index in range(3):
        call = {"FunctionName": f"battery-two-seconds-{index}", "Payload": {"branch": index, "seconds.$": "$.seconds"}}
        branches.append(
            {
                "StartAt": "Call",
                "States": {"Call": runtime.task("arn:aws:states:::lambda:invoke", call, OutputPath="$.Payload")},
            }
        )
    definition = {"StartAt": "All", "States": {"All": {"Type": "Parallel", "Branches": branches, "End": True}}}
    # A first execution of no work: a fresh process's first execution pays the ASL parser's warm-up (about 2 s here).
    assert runtime.run(definition, {"seconds": 0}, timeout=90).status == "SUCCEEDED"

    outcome = runtime.run(definition, {"seconds": 2}, timeout=90)

    assert outcome.status == "SUCCEEDED", outcome.cause
    assert [result["branch"] for result in outcome.output] == [0, 1, 2]
    # All three were inside their handlers at one moment (whatever the machine's load)...
    started = [result["started"] for result in outcome.output]
    ended = [result["ended"] for result in outcome.output]
    assert max(started) < min(ended)
    # ... the three branches' work took about one branch's 2 s, where taking turns takes 6 s and more (the 2.5 s of
    # slack are for starting three threads and invocations on a loaded 2-core machine)...
    assert max(ended) - min(started) < 4.5
    # ... and the whole execution less than taking turns would take for the handlers alone. Not 4.5 s: starting the
    # execution and its Parallel state takes another second or more on a loaded machine (1.1 s measured at load 6.7).
    assert outcome.seconds < 6


MAP_ITEM_HANDLER = """
import time
import map_concurrency

def handler(event, context):
    with map_concurrency.LOCK:
        map_concurrency.ACTIVE[0] += 1
        map_concurrency.MOST[0] = max(map_concurrency.MOST[0], map_concurrency.ACTIVE[0])
    try:
        # Two items at once, or the wait times out and the item fails.
        map_concurrency.PAIR.wait(timeout=30)
        time.sleep(0.3)
    finally:
        with map_concurrency.LOCK:
            map_concurrency.ACTIVE[0] -= 1
    return {"item": event["item"], "most_at_once": map_concurrency.MOST[0]}
"""


def test_a_map_over_one_function_runs_its_items_concurrently_up_to_max_concurrency(
    runtime: Any, tmp_path: Path
) -> None:
    # The counters live in a module of their own outside the function's code, as an outside service would.
    shared = tmp_path / "map_shared"
    shared.mkdir()
    (shared / "map_concurrency.py").write_text(
        "import threading\nLOCK = threading.Lock()\nACTIVE = [0]\nMOST = [0]\nPAIR = threading.Barrier(2)\n"
    )
    code_dir = tmp_path / "map_function"
    code_dir.mkdir()
    (code_dir / "battery_map_item.py").write_text(
        f"import sys\nsys.path.insert(0, {str(shared)!r})\n" + MAP_ITEM_HANDLER
    )
    runtime.lambdas.register("battery-map-item", "battery_map_item.handler", code_dir, {}, 60)
    call = {"FunctionName": "battery-map-item", "Payload": {"item.$": "$"}}
    definition = {
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "MaxConcurrency": 2,
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "INLINE"},
                    "StartAt": "Call",
                    "States": {
                        "Call": runtime.task("arn:aws:states:::lambda:invoke", call, OutputPath="$.Payload", End=True)
                    },
                },
                "End": True,
            }
        },
    }

    outcome = runtime.run(definition, {"items": [1, 2, 3, 4]}, timeout=90)

    assert outcome.status == "SUCCEEDED", outcome.cause
    assert [result["item"] for result in outcome.output] == [1, 2, 3, 4]
    # Items met in pairs (one at a time, the first wait times out), never more than MaxConcurrency at once.
    assert max(result["most_at_once"] for result in outcome.output) == 2


def test_a_failing_parallel_branch_fails_the_state_and_stops_the_other_branches(runtime: Any) -> None:
    definition = {
        "StartAt": "Both",
        "States": {
            "Both": {
                "Type": "Parallel",
                "Branches": [
                    # A year of virtual time: a branch left running would outlast the run's timeout.
                    {"StartAt": "Long", "States": {"Long": {"Type": "Wait", "Seconds": 31_536_000, "End": True}}},
                    {"StartAt": "Broken", "States": {"Broken": {"Type": "Fail", "Error": "BranchBroke"}}},
                ],
                "End": True,
            }
        },
    }

    outcome = runtime.run(definition)

    assert (outcome.status, outcome.error) == ("FAILED", "BranchBroke")


def _refusal(definition: dict[str, Any], runtime: Any) -> str:
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    with pytest.raises(ClientError) as refused:
        sfn.create_state_machine(name="battery-invalid", definition=json.dumps(definition), roleArn=runtime.role_arn)
    assert refused.value.response["Error"]["Code"] == "InvalidDefinition"
    return str(refused.value.response["Error"]["Message"])


def _pass(**fields: Any) -> dict[str, Any]:
    return {"Type": "Pass", **fields}


INVALID_DEFINITIONS = [
    (
        {"StartAt": "A", "States": {"A": _pass(Next="Missing"), "B": _pass(End=True)}},
        "Invalid State Machine Definition: "
        "'MISSING_TRANSITION_TARGET: Missing 'Next' target: Missing at /States/A/Next, "
        'MISSING_TRANSITION_TARGET: State "B" is not reachable. at /States/B\'',
    ),
    (
        {"StartAt": "Nowhere", "States": {"A": _pass(End=True)}},
        "MISSING_TRANSITION_TARGET: Missing 'Next' target: Nowhere at /StartAt",
    ),
    (
        {"StartAt": "A", "States": {"A": _pass(Next="B"), "B": _pass(Next="A")}},
        "Invalid State Machine Definition: 'MISSING_END_STATE: Workflow has no terminal state at null'",
    ),
    (
        {"StartAt": "A", "States": {"A": {"Type": "Sleep", "End": True}}},
        'SCHEMA_VALIDATION_FAILED: Value "Sleep" is not a state type',
    ),
    (
        {
            "StartAt": "A",
            "States": {
                "A": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {"FunctionName": "f"},
                    "End": True,
                    "Retry": [{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["Late"]}],
                }
            },
        },
        "SCHEMA_VALIDATION_FAILED: 'States.ALL' must appear in the last Retrier of 'Retry' "
        "at /States/A/Retry[0]/ErrorEquals",
    ),
    (
        {
            "StartAt": "A",
            "States": {
                "A": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {"FunctionName": "f"},
                    "End": True,
                    "Catch": [{"ErrorEquals": ["States.ALL", "Other"], "Next": "A"}],
                }
            },
        },
        "SCHEMA_VALIDATION_FAILED: 'States.ALL' must appear alone in 'ErrorEquals' at /States/A/Catch[0]/ErrorEquals",
    ),
    (
        {"StartAt": "A", "States": {"A": _pass(End=True, Retry=[{"ErrorEquals": ["States.ALL"]}])}},
        "SCHEMA_VALIDATION_FAILED: Field 'Retry' is not supported at /States/A",
    ),
    (
        {
            "StartAt": "C",
            "States": {
                "C": {
                    "Type": "Choice",
                    "Choices": [{"Variable": "$.x", "IsPresent": True, "Next": "Gone"}],
                    "Default": "Done",
                },
                "Done": {"Type": "Succeed"},
            },
        },
        "MISSING_TRANSITION_TARGET: Missing 'Next' target: Gone at /States/C/Choices[0]/Next",
    ),
    (
        {
            "StartAt": "P",
            "States": {
                "P": {
                    "Type": "Parallel",
                    "End": True,
                    "Branches": [{"StartAt": "In", "States": {"In": _pass(Next="Out")}}],
                }
            },
        },
        "MISSING_TRANSITION_TARGET: Missing 'Next' target: Out at /States/P/Branches[0]/States/In/Next",
    ),
    (
        {"StartAt": "A", "States": {"A": _pass()}},
        "SCHEMA_VALIDATION_FAILED: These fields are required: [Next | End] at /States/A",
    ),
]


@pytest.mark.parametrize(("definition", "message"), INVALID_DEFINITIONS)
def test_create_state_machine_refuses_what_aws_refuses_with_its_message(
    runtime: Any, definition: dict[str, Any], message: str
) -> None:
    assert message in _refusal(definition, runtime)


def test_update_state_machine_refuses_what_create_refuses(runtime: Any) -> None:
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    valid = {"StartAt": "A", "States": {"A": _pass(End=True)}}
    machine = sfn.create_state_machine(name="battery-update", definition=json.dumps(valid), roleArn=runtime.role_arn)

    with pytest.raises(ClientError) as refused:
        sfn.update_state_machine(
            stateMachineArn=machine["stateMachineArn"],
            definition=json.dumps({"StartAt": "A", "States": {"A": _pass(Next="Gone")}}),
        )

    assert refused.value.response["Error"]["Code"] == "InvalidDefinition"
    assert "Missing 'Next' target: Gone at /States/A/Next" in refused.value.response["Error"]["Message"]


TWIN_REFUSALS = [
    (
        {
            "StartAt": "Glue",
            "States": {
                "Glue": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::glue:startJobRun.sync",
                    "Parameters": {"JobName": "j"},
                    "End": True,
                }
            },
        },
        "UNSUPPORTED_BY_LOCAL_TWIN: State 'Glue' uses the integration arn:aws:states:::glue:startJobRun.sync",
    ),
    (
        {
            "StartAt": "Each",
            "States": {
                "Each": {
                    "Type": "Map",
                    "End": True,
                    "ItemBatcher": {"MaxItemsPerBatch": 10},
                    "ItemProcessor": {
                        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                        "StartAt": "Item",
                        "States": {"Item": _pass(End=True)},
                    },
                }
            },
        },
        "UNSUPPORTED_BY_LOCAL_TWIN: State 'Each' uses the distributed Map's 'ItemBatcher'",
    ),
    (
        {
            "StartAt": "Each",
            "States": {
                "Each": {
                    "Type": "Map",
                    "End": True,
                    "ItemProcessor": {
                        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
                        "StartAt": "Item",
                        "States": {"Item": _pass(End=True)},
                    },
                }
            },
        },
        "UNSUPPORTED_BY_LOCAL_TWIN: State 'Each' uses a distributed Map with 'ExecutionType': 'EXPRESS'",
    ),
    (
        {
            "StartAt": "Each",
            "States": {
                "Each": {
                    "Type": "Map",
                    "End": True,
                    "ResultWriter": {"Resource": "arn:aws:states:::s3:putObject", "Parameters": {"Bucket": "b"}},
                    "ItemProcessor": {
                        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                        "StartAt": "Item",
                        "States": {"Item": _pass(End=True)},
                    },
                }
            },
        },
        "UNSUPPORTED_BY_LOCAL_TWIN: State 'Each' uses the distributed Map's 'ResultWriter' (the engine writes a "
        "manifest without the results)",
    ),
    (
        {
            "StartAt": "Work",
            "States": {
                "Work": {"Type": "Task", "End": True, "Resource": "arn:aws:states:us-east-1:123456789012:activity:w"}
            },
        },
        "UNSUPPORTED_BY_LOCAL_TWIN: State 'Work' uses the activity",
    ),
]


@pytest.mark.parametrize(("definition", "message"), TWIN_REFUSALS)
def test_create_state_machine_refuses_what_the_twin_cannot_run_naming_the_state_and_feature(
    runtime: Any, definition: dict[str, Any], message: str
) -> None:
    assert message in _refusal(definition, runtime)


def test_a_distributed_map_reads_its_items_from_s3_with_item_reader(runtime: Any, bucket: str) -> None:
    items = [{"n": 1}, {"n": 2}, {"n": 3}]
    boto3.client("s3", region_name="us-east-1").put_object(Bucket=bucket, Key="items.json", Body=json.dumps(items))
    definition = {
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "ItemReader": {
                    "Resource": "arn:aws:states:::s3:getObject",
                    "ReaderConfig": {"InputType": "JSON"},
                    "Parameters": {"Bucket": bucket, "Key": "items.json"},
                },
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                    "StartAt": "Double",
                    "States": {
                        "Double": {"Type": "Pass", "Parameters": {"d.$": "States.MathAdd($.n, $.n)"}, "End": True}
                    },
                },
                "End": True,
            }
        },
    }

    outcome = runtime.run(definition)

    assert outcome.status == "SUCCEEDED", outcome.cause
    assert outcome.output == [{"d": 2}, {"d": 4}, {"d": 6}]


def test_the_projects_state_machines_pass_the_definition_checks(runtime: Any) -> None:
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    for path in sorted(STATEMACHINES_DIR.glob("*.asl.json")):
        # Placeholders stand for the stack's values; the partition must be a real one for the resource ARNs.
        text = path.read_text().replace("${AWS::Partition}", "aws")
        text = re.sub(r"\$\{[^}]+\}", "placeholder", text)

        sfn.create_state_machine(name=f"battery-{path.name.split('.')[0]}", definition=text, roleArn=runtime.role_arn)


def test_jsonata_output_assign_and_condition_run(runtime: Any) -> None:
    definition = {
        "QueryLanguage": "JSONata",
        "StartAt": "Count",
        "States": {
            "Count": {
                "Type": "Pass",
                "Assign": {"n": "{% $count($states.input.items) %}", "who": "{% 'say \"hi\" ' & $states.input.name %}"},
                "Next": "Enough",
            },
            "Enough": {
                "Type": "Choice",
                "Choices": [{"Condition": "{% $n > 2 %}", "Next": "Report"}],
                "Default": "Few",
            },
            "Report": {
                "Type": "Pass",
                "Output": {"n": "{% $n %}", "who": "{% $who %}", "total": "{% $sum($states.input.items) %}"},
                "End": True,
            },
            "Few": {"Type": "Fail", "Error": "TooFew"},
        },
    }

    outcome = runtime.run(definition, {"name": "Ann", "items": [1, 2, 3]})

    assert outcome.status == "SUCCEEDED", outcome.cause
    assert outcome.output == {"n": 3, "who": 'say "hi" Ann', "total": 6}


def test_jsonpath_assign_variables_reach_later_states(runtime: Any) -> None:
    definition = {
        "StartAt": "Keep",
        "States": {
            "Keep": {"Type": "Pass", "Assign": {"bucket.$": "$.bucket", "quoted": 'a "b"'}, "Next": "Use"},
            "Use": {
                "Type": "Pass",
                "Parameters": {"uri.$": "States.Format('s3://{}/x', $bucket)", "q.$": "$quoted"},
                "End": True,
            },
        },
    }

    outcome = runtime.run(definition, {"bucket": "data"})

    assert outcome.status == "SUCCEEDED", outcome.cause
    assert outcome.output == {"uri": "s3://data/x", "q": 'a "b"'}


def test_a_jsonata_expression_that_fails_is_a_states_query_evaluation_error(runtime: Any) -> None:
    definition = {
        "QueryLanguage": "JSONata",
        "StartAt": "Broken",
        "States": {"Broken": {"Type": "Pass", "Output": "{% $states.input.x + 'a' %}", "End": True}},
    }

    outcome = runtime.run(definition, {"x": 1})

    assert (outcome.status, outcome.error) == ("FAILED", "States.QueryEvaluationError")
    assert "The right side of the + operator must evaluate to a number" in outcome.cause


def test_a_jsonata_expression_that_does_not_parse_is_refused_at_creation(runtime: Any) -> None:
    definition = {
        "QueryLanguage": "JSONata",
        "StartAt": "Broken",
        "States": {"Broken": {"Type": "Pass", "Output": {"sum": "{% $states.input.x + %}"}, "End": True}},
    }

    message = _refusal(definition, runtime)

    assert "SCHEMA_VALIDATION_FAILED: The JSONata expression '$states.input.x +' does not parse: " in message
    assert "Unexpected end of expression at /States/Broken/Output/sum" in message


def test_retry_count_is_in_every_states_context_and_counts_retries_and_redrive_count_is_zero(runtime: Any) -> None:
    definition = {
        "StartAt": "Before",
        "States": {
            "Before": {
                "Type": "Pass",
                "Parameters": {"retries.$": "$$.State.RetryCount", "redrives.$": "$$.Execution.RedriveCount"},
                "ResultPath": "$.pass",
                "Next": "Flaky",
            },
            "Flaky": {
                "Type": "Task",
                "Resource": "arn:aws:states:::aws-sdk:s3:headObject",
                "Parameters": {"Bucket": "no-such-bucket-here", "Key.$": "States.Format('{}', $$.State.RetryCount)"},
                "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1, "MaxAttempts": 2}],
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "After"}],
                "End": True,
            },
            "After": {
                "Type": "Pass",
                "Parameters": {"retries.$": "$$.State.RetryCount", "pass.$": "$.pass"},
                "End": True,
            },
        },
    }

    outcome = runtime.run(definition)

    assert outcome.status == "SUCCEEDED", outcome.cause
    assert outcome.output == {"retries": 0, "pass": {"retries": 0, "redrives": 0}}
    keys = [
        json.loads(event["taskScheduledEventDetails"]["parameters"])["Key"]
        for event in outcome.events
        if event["type"] == "TaskScheduled"
    ]
    assert keys == ["0", "1", "2"]


def test_jsonata_now_and_millis_read_the_twins_clock(runtime: Any) -> None:
    definition = {
        "StartAt": "AnHourLater",
        "QueryLanguage": "JSONata",
        "States": {
            "AnHourLater": {"Type": "Wait", "Seconds": 3600, "Next": "Times"},
            "Times": {
                "Type": "Pass",
                "Output": {
                    "now": "{% $now() %}",
                    "millis": "{% $millis() %}",
                    "entered": "{% $states.context.State.EnteredTime %}",
                },
                "End": True,
            },
        },
    }
    before = runtime.clock.now()
    wall_before = datetime.now(UTC)

    outcome = runtime.run(definition)

    after = runtime.clock.now()
    assert outcome.status == "SUCCEEDED", outcome.cause
    now = datetime.fromisoformat(outcome.output["now"].replace("Z", "+00:00"))
    entered = datetime.fromisoformat(outcome.output["entered"].replace("Z", "+00:00"))
    millis = datetime.fromtimestamp(outcome.output["millis"] / 1000, UTC)
    # The wall clock moved seconds; the twin's moved the Wait's hour, and all three read the twin's.
    assert datetime.now(UTC) - wall_before < timedelta(seconds=3600)
    slack = timedelta(milliseconds=1)
    for moment in (entered, now, millis):
        assert before + timedelta(seconds=3600) - slack <= moment <= after + slack
    assert entered - slack <= now
