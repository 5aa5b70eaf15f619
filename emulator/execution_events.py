"""The "Step Functions Execution Status Change" events AWS sends to the default bus, which moto's engine does not.

On AWS every status change of a STANDARD execution (RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED) is an event
on the account's default bus, source `aws.states`, whose detail is the execution as DescribeExecution gives it:
`executionArn`, `stateMachineArn`, `name`, `status`, `startDate` and `stopDate` (epoch milliseconds, `stopDate`
null while running), `input`/`output` (JSON text, `output` null unless it succeeded) with their
`inputDetails`/`outputDetails`, `error` and `cause`. `ExecutionStatusEvents.install()` hooks moto's engine
where an execution starts (`Execution.start`) and where its worker reports that it ended
(`BaseExecutionWorkerCommunication.terminated`, after moto has set the final status), and hands each event to
`emit` (the twin's router), so any rule of the stack on these events works as on AWS, not only the audit's.

EXPRESS executions send no such events on AWS, and none here. Delivery is best effort on AWS; here it is
synchronous and happens once per change.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from moto.stepfunctions.parser.api import ExecutionStatus, StateMachineType
from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication, Execution

from emulator.moto_patches import MotoPatches

DETAIL_TYPE = "Step Functions Execution Status Change"

logger = logging.getLogger(__name__)

Emit = Callable[[dict[str, Any]], None]


def _epoch_ms(moment: datetime | None) -> int | None:
    if moment is None:
        return None
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return int(aware.timestamp() * 1000)


def _json_text(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def status_change_event(execution: Execution, running: bool = False) -> dict[str, Any]:
    """The event AWS sends for `execution`'s current status (`running`: the one it sends as the execution starts)."""
    status = (
        execution.exec_status.value
        if execution.exec_status is not None and not running
        else ExecutionStatus.RUNNING.value
    )
    succeeded = status == ExecutionStatus.SUCCEEDED.value
    moment = execution.stop_date or execution.start_date
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": DETAIL_TYPE,
        "source": "aws.states",
        "account": execution.account_id,
        "time": aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": execution.region_name,
        "resources": [execution.exec_arn],
        "detail": {
            "executionArn": execution.exec_arn,
            "stateMachineArn": execution.state_machine_arn,
            "name": execution.name,
            "status": status,
            "startDate": _epoch_ms(execution.start_date),
            "stopDate": None if running else _epoch_ms(execution.stop_date),
            "input": _json_text(execution.input_data),
            "output": _json_text(execution.output) if succeeded else None,
            "inputDetails": {"included": True},
            "outputDetails": {"included": True} if succeeded else None,
            "error": None if running else execution.error,
            "cause": None if running else execution.cause,
        },
    }


@dataclass
class _Starting:
    """An execution's RUNNING event, made as it started, and whether it was sent."""

    event: dict[str, Any]
    sent: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class ExecutionStatusEvents:
    """Sends each STANDARD execution's status changes to `emit` while installed."""

    def __init__(self, emit: Emit) -> None:
        self._emit = emit
        self._patches = MotoPatches()
        # Executions whose RUNNING event is made and not yet sent, by ARN.
        self._starting: dict[str, _Starting] = {}
        self._lock = threading.Lock()

    def install(self) -> None:
        if self._patches.active:
            return
        events = self
        original_start = Execution.start
        original_terminated = BaseExecutionWorkerCommunication.terminated

        def start(execution: Execution) -> None:
            # The RUNNING event is made before the engine's thread runs: a short execution can end before `start`
            # returns, and its RUNNING event must still say RUNNING and come before the one that says how it ended.
            starting = _Starting(status_change_event(execution, running=True))
            with events._lock:
                events._starting[execution.exec_arn] = starting
            try:
                original_start(execution)
            except BaseException:
                with events._lock:
                    events._starting.pop(execution.exec_arn, None)
                raise
            events._send_running(execution, starting)

        def terminated(communication: BaseExecutionWorkerCommunication) -> None:
            original_terminated(communication)
            execution = communication.execution
            with events._lock:
                starting = events._starting.pop(execution.exec_arn, None)
            if starting is not None:
                events._send_running(execution, starting)
            events._send(execution)

        self._patches.replace(Execution, "start", start)
        self._patches.replace(BaseExecutionWorkerCommunication, "terminated", terminated)

    def uninstall(self) -> None:
        self._patches.undo()

    def _send_running(self, execution: Execution, starting: _Starting) -> None:
        """Sends the RUNNING event once, whichever of the starting thread and the engine's comes first."""
        with starting.lock:
            if not starting.sent:
                starting.sent = True
                self._send(execution, starting.event)
        with self._lock:
            if self._starting.get(execution.exec_arn) is starting:
                del self._starting[execution.exec_arn]

    def _send(self, execution: Execution, event: dict[str, Any] | None = None) -> None:
        if execution.sm_type != StateMachineType.STANDARD:
            return
        try:
            self._emit(event if event is not None else status_change_event(execution))
        except Exception:
            # The engine's thread must finish the execution whatever a rule does; the failure is logged, loudly.
            logger.exception("Step Functions status change of %s could not be routed", execution.exec_arn)
