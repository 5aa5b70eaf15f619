"""The context object (`$$`) and execution names as Step Functions gives them: AWS's timestamp strings, a name always.

moto 5.2.5 puts the execution's start `datetime` object itself in `$$.Execution.StartTime`, so any state that
references it stores a `datetime` in the execution's output and DescribeExecution raises ("Object of type datetime
is not JSON serializable"); `States.Format` fails on it too. `$$.State.EnteredTime` is `isoformat()`: `+00:00` and
microseconds. AWS gives both as ISO-8601 UTC strings with milliseconds and `Z` (`2026-12-01T13:50:12.345Z`), read
here from the twin's clock like every other time of the engine.

The context object lacked `$$.State.RetryCount` outside Task, Parallel and Map states and `$$.Execution.RedriveCount`
everywhere: a path to either failed the state. Both are there, as on AWS.

StartExecution without a name: AWS names the execution with a UUID; moto keeps `None`, which ends the ARN in
`:None`, leaves `$$.Execution.Name` null and DescribeExecution without a `name`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from moto.stepfunctions.parser.asl.component.state import state as state_module
from moto.stepfunctions.parser.asl.eval.states import ExecutionData, StateData
from moto.stepfunctions.parser.backend import execution_worker
from moto.stepfunctions.parser.backend.execution import Execution
from moto.stepfunctions.parser.models import StepFunctionsParserBackend

from emulator.moto_patches import MotoPatches


def aws_timestamp(moment: datetime | str) -> str:
    """`2026-12-01T13:50:12.345Z`: a time as the context object and the aws-sdk integrations spell it (UTC)."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _state_data_with_aws_time(**fields: Any) -> StateData:
    # moto's State._eval_body builds `StateData(EnteredTime=now().isoformat(), Name=...)`; the spelling changes, and
    # RetryCount starts at 0 in every state as on AWS (moto sets it only in Task, Parallel and Map, which count on).
    if "EnteredTime" in fields:
        fields["EnteredTime"] = aws_timestamp(fields["EnteredTime"])
    fields.setdefault("RetryCount", 0)
    return StateData(**fields)  # type: ignore[typeddict-item]


def _execution_data_as_on_aws(**fields: Any) -> ExecutionData:
    # AWS's `$$.Execution` also has RedriveCount (0 until a redrive; the twin refuses RedriveExecution, so 0 always).
    fields.setdefault("RedriveCount", 0)
    return ExecutionData(**fields)  # type: ignore[typeddict-item]


def install_context_object(patches: MotoPatches) -> None:
    """Context-object times as AWS spells them, and a UUID name for an execution started without one."""
    original_details = Execution.get_start_execution_details

    def details_with_aws_start_time(execution: Execution) -> Any:
        details = original_details(execution)
        # ExecutionDetails keeps what it is given; the execution's own start_date (a datetime) stays for the API.
        details.start_time = aws_timestamp(execution.start_date)  # type: ignore[misc]  # Final in moto's typing only
        return details

    patches.replace(Execution, "get_start_execution_details", details_with_aws_start_time)
    patches.replace(state_module, "StateData", _state_data_with_aws_time)
    patches.replace(execution_worker, "ExecutionData", _execution_data_as_on_aws)

    original_start = StepFunctionsParserBackend.start_execution

    def start_execution_named(
        backend: StepFunctionsParserBackend, state_machine_arn: str, name: str | None = None, *args: Any, **kwargs: Any
    ) -> Execution:
        return original_start(backend, state_machine_arn, name or str(uuid.uuid4()), *args, **kwargs)

    patches.replace(StepFunctionsParserBackend, "start_execution", start_execution_named)
