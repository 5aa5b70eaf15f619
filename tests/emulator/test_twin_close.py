"""`LocalTwin.close()` with an execution in the middle of a task: it is stopped and waited for, never left running.

An engine thread left running after close() goes on against plain moto: the integrations uninstalled (so a
States.ALL Catch matches States.Runtime again and swallows the twin's own errors) and moto's backends reset under
it. The task here is a Lambda that returns only when the test lets it: after the stop reached the execution and
close() has moved on (polling for running executions, or uninstalling), so the interleaving that load produced is
the one every run takes.
"""

from __future__ import annotations

import importlib
import json
import sys
import threading
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.stepfunctions.parser.api import ExecutionStatus
from moto.stepfunctions.parser.backend.execution import Execution
from moto.stepfunctions.parser.models import stepfunctions_parser_backends

from emulator import twin as twin_module
from emulator.twin import LocalTwin

HANDLER_MODULE = "twin_close_blocking_handler"
HANDLER_SOURCE = """
import threading

entered = threading.Event()
may_return = threading.Event()


def handler(event, context):
    entered.set()
    may_return.wait(30)
    return {"returned": may_return.is_set()}
"""


def _engine_statuses() -> dict[str, ExecutionStatus]:
    """Every execution moto's engine knows, with its status, read from the engine itself."""
    statuses: dict[str, ExecutionStatus] = {}
    for region_backends in list(stepfunctions_parser_backends.values()):
        for backend in list(region_backends.values()):
            for machine in list(backend.state_machines):
                for execution in list(machine.executions):
                    if isinstance(execution, Execution):
                        statuses[execution.execution_arn] = execution.exec_status
    return statuses


def test_close_stops_a_running_execution_and_waits_for_it_before_uninstalling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code_dir = tmp_path / "blocking"
    code_dir.mkdir()
    (code_dir / f"{HANDLER_MODULE}.py").write_text(HANDLER_SOURCE)
    monkeypatch.syspath_prepend(str(code_dir))
    # Imported here so the test holds its events; the Lambda runner reuses the module (it is in code_dir).
    handler_module: Any = importlib.import_module(HANDLER_MODULE)

    stop_delivered = threading.Event()
    original_stop = Execution.stop

    def stop_and_signal(self: Execution, *args: Any, **kwargs: Any) -> None:
        original_stop(self, *args, **kwargs)
        stop_delivered.set()

    monkeypatch.setattr(Execution, "stop", stop_and_signal)
    original_running = twin_module._running_executions

    def running_then_release() -> Any:
        running = original_running()
        if stop_delivered.is_set():
            # close() polls again after stopping: it is waiting, so the Lambda may return now.
            handler_module.may_return.set()
        return running

    monkeypatch.setattr(twin_module, "_running_executions", running_then_release)
    at_uninstall: dict[str, Any] = {}
    original_uninstall = twin_module.uninstall_local_integrations

    def record_then_uninstall() -> None:
        at_uninstall["statuses"] = _engine_statuses()
        handler_module.may_return.set()
        original_uninstall()

    monkeypatch.setattr(twin_module, "uninstall_local_integrations", record_then_uninstall)

    twin = LocalTwin(work_dir=tmp_path / "twin")
    twin.start()
    try:
        function = twin.stack.functions["SmokeTestFunction"]
        twin.lambdas.register(function.function_name, f"{HANDLER_MODULE}.handler", code_dir, {}, 60)
        definition = {
            "StartAt": "Blocking",
            "States": {
                "Blocking": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {"FunctionName": function.function_arn, "Payload.$": "$"},
                    "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
                    "End": True,
                },
                "Caught": {"Type": "Pass", "End": True},
            },
        }
        client = boto3.client("stepfunctions")
        # One of the stack's own machines, so that whatever close() stops, it is among them.
        machine_arn = twin.stack.state_machine("training").arn
        client.update_state_machine(stateMachineArn=machine_arn, definition=json.dumps(definition))
        execution_arn = client.start_execution(stateMachineArn=machine_arn, name="running-at-close", input="{}")[
            "executionArn"
        ]
        assert handler_module.entered.wait(30), "the execution reached its Lambda"
    finally:
        twin.close()
        sys.modules.pop(HANDLER_MODULE, None)

    assert stop_delivered.is_set()
    assert at_uninstall["statuses"][execution_arn] == ExecutionStatus.ABORTED, at_uninstall["statuses"]
    assert ExecutionStatus.RUNNING not in at_uninstall["statuses"].values()
