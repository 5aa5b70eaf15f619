"""In-process Lambda: handlers run with their own environment and context; errors look like AWS's FunctionError."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from emulator.lambda_local import LambdaFunctionNotRegistered, LambdaInvocationError, LocalLambdaRunner

HANDLERS = """
import os, time

class ModelNotReady(Exception):
    pass

def report(event, context):
    return {
        "table": os.environ["IDEMPOTENCY_TABLE_NAME"],
        "function": context.function_name,
        "arn": context.invoked_function_arn,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "event": event,
    }

def refuse(event, context):
    raise ModelNotReady(f"model {event['model']} is not ready")

def slow(event, context):
    time.sleep(1.2)
    return "late"
"""


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[LocalLambdaRunner]:
    code_dir = tmp_path / "lambda_code"
    code_dir.mkdir()
    (code_dir / "glue_handlers.py").write_text(HANDLERS)
    runner = LocalLambdaRunner()
    runner.register("report-fn", "glue_handlers.report", code_dir, {"IDEMPOTENCY_TABLE_NAME": "idempotency"}, 30)
    runner.register("refuse-fn", "glue_handlers.refuse", code_dir, {}, 30)
    runner.register("slow-fn", "glue_handlers.slow", code_dir, {}, 1)
    with mock_aws(config={"lambda": {"use_docker": False}}):
        runner.install()
        try:
            yield runner
        finally:
            runner.uninstall()


def test_handler_sees_its_environment_only_during_the_call(runner: LocalLambdaRunner) -> None:
    assert "IDEMPOTENCY_TABLE_NAME" not in os.environ

    result = runner.invoke("arn:aws:lambda:us-east-1:123456789012:function:report-fn", {"x": 1})

    assert result["table"] == "idempotency"
    assert result["function"] == "report-fn"
    assert result["arn"] == "arn:aws:lambda:us-east-1:123456789012:function:report-fn"
    assert 0 < result["remaining_ms"] <= 30_000
    assert result["event"] == {"x": 1}
    assert "IDEMPOTENCY_TABLE_NAME" not in os.environ


def test_boto3_invoke_runs_the_handler_in_process(runner: LocalLambdaRunner) -> None:
    response = boto3.client("lambda", region_name="us-east-1").invoke(FunctionName="report-fn", Payload=b'{"y": 2}')

    assert "FunctionError" not in response
    assert json.loads(response["Payload"].read())["event"] == {"y": 2}


def test_a_raising_handler_becomes_an_unhandled_function_error_with_its_type(runner: LocalLambdaRunner) -> None:
    response = boto3.client("lambda", region_name="us-east-1").invoke(
        FunctionName="refuse-fn", Payload=b'{"model": "m1"}'
    )

    assert response["FunctionError"] == "Unhandled"
    payload = json.loads(response["Payload"].read())
    assert payload["errorType"] == "ModelNotReady"
    assert payload["errorMessage"] == "model m1 is not ready"
    assert any("refuse" in line for line in payload["stackTrace"])


def test_a_handler_over_its_timeout_is_reported_as_timed_out(runner: LocalLambdaRunner) -> None:
    with pytest.raises(LambdaInvocationError) as failure:
        runner.invoke("slow-fn", {})

    assert failure.value.error_payload["errorType"] == "Sandbox.Timedout"
    assert "1.00 seconds" in failure.value.error_payload["errorMessage"]


def test_an_unknown_function_is_refused_naming_the_known_ones(runner: LocalLambdaRunner) -> None:
    with pytest.raises(LambdaFunctionNotRegistered, match="report-fn"):
        runner.invoke("missing-fn", {})


def test_a_bad_handler_string_is_refused_at_registration(runner: LocalLambdaRunner, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"module\.function"):
        runner.register("bad", "handler", tmp_path, {}, 3)
