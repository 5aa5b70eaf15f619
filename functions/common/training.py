"""Starting the `training` state machine: its input shape (docs/interfaces.md) and an idempotent start."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

# Step Functions rejects an execution input above 256 KiB.
MAX_EXECUTION_INPUT_BYTES = 256 * 1024


@dataclass(frozen=True)
class StartedExecution:
    """An execution of `training` that exists now, whether this call or an earlier delivery started it."""

    execution_arn: str
    execution_name: str
    already_existed: bool


def training_input(
    data_uri: str, trigger_type: str, trigger_detail: dict[str, Any], objects: list[dict[str, str]]
) -> dict[str, Any]:
    """Return the `training` execution input of docs/interfaces.md."""
    return {
        "data_uri": data_uri,
        "tune": False,
        "trigger": {"type": trigger_type, "detail": trigger_detail},
        "objects": objects,
    }


def encoded_input_size(execution_input: dict[str, Any]) -> int:
    """Size in bytes of the input as StartExecution sends it."""
    return len(json.dumps(execution_input, sort_keys=True).encode("utf-8"))


def _execution_arn(state_machine_arn: str, execution_name: str) -> str:
    # arn:<partition>:states:<region>:<account>:stateMachine:<name> -> ...:execution:<name>:<execution>
    return f"{state_machine_arn.replace(':stateMachine:', ':execution:', 1)}:{execution_name}"


def start_training(
    sfn_client: Any, state_machine_arn: str, execution_name: str, execution_input: dict[str, Any]
) -> StartedExecution:
    """Start `training` under a deterministic name; an execution that already has the name counts as started.

    Step Functions answers a repeated start of a running execution with the same ARN, and a start
    under the name of a closed execution with `ExecutionAlreadyExists`: both mean a redelivered
    event already did the work.
    """
    size = encoded_input_size(execution_input)
    if size > MAX_EXECUTION_INPUT_BYTES:
        raise ValueError(
            f"training input for {execution_name} is {size} bytes, above Step Functions' "
            f"{MAX_EXECUTION_INPUT_BYTES}; start it with fewer objects"
        )
    try:
        response = sfn_client.start_execution(
            stateMachineArn=state_machine_arn,
            name=execution_name,
            input=json.dumps(execution_input, sort_keys=True),
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ExecutionAlreadyExists":
            raise
        return StartedExecution(_execution_arn(state_machine_arn, execution_name), execution_name, True)
    return StartedExecution(response["executionArn"], execution_name, False)
