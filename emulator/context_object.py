"""The context object (`$$`) and execution names as Step Functions gives them: AWS's timestamp strings, a name always.

moto 5.2.5 puts the execution's start `datetime` object itself in `$$.Execution.StartTime`, so any state that
references it stores a `datetime` in the execution's output and DescribeExecution raises ("Object of type datetime
is not JSON serializable"); `States.Format` fails on it too. `$$.State.EnteredTime` is `isoformat()`: `+00:00` and
microseconds. AWS gives both as ISO-8601 UTC strings with milliseconds and `Z` (`2026-12-01T13:50:12.345Z`), read
here from the twin's clock like every other time of the engine.

StartExecution without a name: AWS names the execution with a UUID; moto keeps `None`, which ends the ARN in
`:None`, leaves `$$.Execution.Name` null and DescribeExecution without a `name`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from moto.stepfunctions.parser.asl.component.state import state as state_module
from moto.stepfunctions.parser.asl.eval.states import StateData
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
    # moto's State._eval_body builds `StateData(EnteredTime=now().isoformat(), Name=...)`; only the spelling changes.
    if "EnteredTime" in fields:
        fields["EnteredTime"] = aws_timestamp(fields["EnteredTime"])
    return StateData(**fields)  # type: ignore[typeddict-item]


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

    original_start = StepFunctionsParserBackend.start_execution

    def start_execution_named(
        backend: StepFunctionsParserBackend, state_machine_arn: str, name: str | None = None, *args: Any, **kwargs: Any
    ) -> Execution:
        return original_start(backend, state_machine_arn, name or str(uuid.uuid4()), *args, **kwargs)

    patches.replace(StepFunctionsParserBackend, "start_execution", start_execution_named)
