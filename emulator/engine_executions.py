"""What moto's Step Functions engine holds about executions, read from the engine itself (no API call, no copy)."""

from __future__ import annotations

from moto.stepfunctions.exceptions import AWSError
from moto.stepfunctions.parser.api import ExecutionStatus
from moto.stepfunctions.parser.backend.execution import Execution as EngineExecution
from moto.stepfunctions.parser.models import stepfunctions_parser_backends


def running_executions() -> dict[str, EngineExecution]:
    """The executions moto's engine is running, of every state machine in every account and region, by ARN."""
    running: dict[str, EngineExecution] = {}
    regions = list(stepfunctions_parser_backends.values())
    backends = [backend for region_backends in regions for backend in list(region_backends.values())]
    for backend in backends:
        for machine in list(backend.state_machines):
            for execution in list(machine.executions):
                if isinstance(execution, EngineExecution) and execution.exec_status == ExecutionStatus.RUNNING:
                    running[execution.execution_arn] = execution
    return running


def history_mark(execution_arn: str) -> tuple[str, int] | None:
    """The execution's status and number of history events in moto's engine; None for an ARN it does not know."""
    parts = execution_arn.split(":")
    if len(parts) < 5:
        return None
    try:
        execution = stepfunctions_parser_backends[parts[4]][parts[3]].describe_execution(execution_arn)
    except AWSError:
        return None
    # An execution moto has recorded but not yet handed to its engine thread has no history to count.
    if not isinstance(execution, EngineExecution) or execution.exec_worker is None:
        return None
    # Counted in place: GetExecutionHistory's `to_history_output()` deep-copies every event at every poll.
    env = execution.exec_worker.env
    return str(execution.exec_status), 0 if env is None else len(env.event_manager._history_event_list)
