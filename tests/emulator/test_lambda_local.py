"""In-process Lambda: handlers run with their own environment and context; errors look like AWS's FunctionError."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from emulator.clock import Clock
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


INIT_RECORDING_HANDLER = """
import os

# Read at import: on Lambda the init phase already runs with the function's environment.
TABLE_AT_INIT = os.environ.get("IDEMPOTENCY_TABLE_NAME")

def handler(event, context):
    return {"table_at_init": TABLE_AT_INIT, "table_at_call": os.environ["IDEMPOTENCY_TABLE_NAME"]}
"""


def test_init_imports_the_handler_with_its_environment_and_restores_the_process_environment(tmp_path: Path) -> None:
    code_dir = tmp_path / "init_code"
    code_dir.mkdir()
    (code_dir / "init_recording.py").write_text(INIT_RECORDING_HANDLER)
    runner = LocalLambdaRunner()
    runner.register("init-fn", "init_recording.handler", code_dir, {"IDEMPOTENCY_TABLE_NAME": "at-init"}, 30)

    runner.init_functions()

    assert "IDEMPOTENCY_TABLE_NAME" not in os.environ
    (code_dir / "init_recording.py").write_text("raise RuntimeError('imported twice')")
    assert runner.invoke("init-fn", {}) == {"table_at_init": "at-init", "table_at_call": "at-init"}


def test_a_handler_whose_init_fails_raises_on_invoke_not_at_init(tmp_path: Path) -> None:
    code_dir = tmp_path / "broken_code"
    code_dir.mkdir()
    (code_dir / "broken_init.py").write_text("raise RuntimeError('missing dependency at import')")
    runner = LocalLambdaRunner()
    runner.register("broken-fn", "broken_init.handler", code_dir, {}, 30)

    runner.init_functions()

    with pytest.raises(RuntimeError, match="missing dependency at import"):
        runner.invoke("broken-fn", {})


SLOW_INIT_HANDLER = """
import os
import time
from pathlib import Path

# Each import leaves a line: the test counts how many times the init phase ran.
with open(os.environ["IMPORT_LOG"], "a") as log:
    log.write("imported\\n")
time.sleep(0.5)
SEEN_AT_INIT = os.environ["FUNCTION_ONLY"]

def handler(event, context):
    return SEEN_AT_INIT
"""


def test_an_invoke_during_background_init_waits_for_that_import_and_the_handler_is_imported_once(
    tmp_path: Path,
) -> None:
    code_dir = tmp_path / "slow_code"
    code_dir.mkdir()
    (code_dir / "slow_init.py").write_text(SLOW_INIT_HANDLER)
    log = tmp_path / "imports.log"
    runner = LocalLambdaRunner()
    runner.register("slow-fn", "slow_init.handler", code_dir, {"IMPORT_LOG": str(log), "FUNCTION_ONLY": "seen"}, 30)

    runner.init_functions_in_background()
    # The background import is under way: the process's own environment is not the function's meanwhile.
    assert "FUNCTION_ONLY" not in os.environ
    assert runner.invoke("slow-fn", {}) == "seen"
    runner.uninstall()

    assert log.read_text().splitlines() == ["imported"]


def test_a_function_registered_again_runs_its_new_handler(tmp_path: Path) -> None:
    code_dir = tmp_path / "versioned_code"
    code_dir.mkdir()
    (code_dir / "versioned.py").write_text(
        "def first(event, context):\n    return 1\n\ndef second(event, context):\n    return 2\n"
    )
    runner = LocalLambdaRunner()
    runner.register("versioned-fn", "versioned.first", code_dir, {}, 30)
    runner.init_functions()

    runner.register("versioned-fn", "versioned.second", code_dir, {}, 30)

    assert runner.invoke("versioned-fn", {}) == 2


CLOCK_READERS = """
import datetime as datetime_module
from datetime import UTC, datetime

def now_both_ways(event, context):
    return {"class": datetime.now(UTC).isoformat(), "module": datetime_module.datetime.now(UTC).isoformat()}
"""


def test_a_function_reads_the_twins_clock_and_gets_the_real_datetime_back_after(tmp_path: Path) -> None:
    code_dir = tmp_path / "clock_code"
    code_dir.mkdir()
    (code_dir / "clock_readers.py").write_text(CLOCK_READERS)
    clock = Clock(speed=1)
    clock.advance(6 * 3600)
    runner = LocalLambdaRunner(clock=clock)
    runner.register("clock-fn", "clock_readers.now_both_ways", code_dir, {}, 30)
    with mock_aws(config={"lambda": {"use_docker": False}}):
        runner.install()
        try:
            result = runner.invoke("clock-fn", {})
        finally:
            runner.uninstall()

    for seen in result.values():
        assert abs((datetime.fromisoformat(seen) - clock.now()).total_seconds()) < 5
    import clock_readers

    assert clock_readers.datetime is datetime


def test_a_variable_removed_while_another_thread_reads_the_environment_is_no_error(runner: LocalLambdaRunner) -> None:
    # An invocation removes its function's variables afterwards while other threads of the twin read os.environ.
    os.environ["TWIN_TEST_REMOVED_MIDWAY"] = "1"
    try:
        items = iter(os.environ.items())
        next(items)
        del os.environ["TWIN_TEST_REMOVED_MIDWAY"]

        rest = dict(items)
    finally:
        os.environ.pop("TWIN_TEST_REMOVED_MIDWAY", None)

    assert rest.get("TWIN_TEST_REMOVED_MIDWAY") == "1"  # read from the copy taken when iteration began
    assert "TWIN_TEST_REMOVED_MIDWAY" not in os.environ.copy()


def test_the_runner_is_busy_exactly_while_an_invocation_runs(runner: LocalLambdaRunner) -> None:
    assert runner.busy() is False
    during: list[bool] = []
    invocation = threading.Thread(target=_swallow, args=(runner,))
    invocation.start()
    deadline = time.monotonic() + 5
    while not runner.busy() and time.monotonic() < deadline:
        time.sleep(0.01)
    during.append(runner.busy())
    invocation.join(10)

    assert during == [True]
    assert runner.busy() is False


def _swallow(runner: LocalLambdaRunner) -> None:
    # slow-fn runs 1.2 s against a 1 s timeout: the invocation ends in a timeout error, after running its time.
    with pytest.raises(LambdaInvocationError):
        runner.invoke("slow-fn", {})
