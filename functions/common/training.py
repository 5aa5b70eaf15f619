"""Starting the `training` state machine: its input shape (docs/interfaces.md) and a single-flight, idempotent start."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from botocore.exceptions import ClientError

from common.single_flight import TrainingLease, execution_status

# Step Functions rejects an execution input above 256 KiB.
MAX_EXECUTION_INPUT_BYTES = 256 * 1024
# Free text copied from an event into the input (an alarm's reason, a metric expression) is cut to this
# many characters: CloudWatch's own reasons are at most 1023, and the input must stay far below its limit.
MAX_COPIED_TEXT_CHARACTERS = 2048
# StartExecution errors that say the request itself is wrong: retrying cannot help.
NON_RETRYABLE_START_ERRORS = frozenset({"InvalidName", "InvalidExecutionInput", "InvalidArn", "ValidationException"})

StartStatus = Literal["started", "already_started", "busy", "failed", "unknown"]


@dataclass(frozen=True)
class StartOutcome:
    """What came of one attempt to start `training` under a deterministic name."""

    status: StartStatus
    reason: str
    execution_name: str
    execution_arn: str
    # For `failed` (surely not started): whether trying again later can succeed. `unknown` (it may have
    # started, the look-up failed) is always retryable: the next attempt resolves it by the same look-up.
    retryable: bool = False

    @property
    def exists(self) -> bool:
        """The named execution exists now (this call or an earlier one started it)."""
        return self.status in ("started", "already_started")


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


def bounded_text(text: str, limit: int = MAX_COPIED_TEXT_CHARACTERS) -> str:
    """`text`, or its first characters and a marker saying how many were cut, so the input keeps its size."""
    if len(text) <= limit:
        return text
    marker = f"... [truncated {len(text) - limit} of {len(text)} characters]"
    return text[:limit] + marker


def encoded_input_size(execution_input: dict[str, Any]) -> int:
    """Size in bytes of the input as StartExecution sends it."""
    return len(json.dumps(execution_input, sort_keys=True).encode("utf-8"))


def execution_arn(state_machine_arn: str, execution_name: str) -> str:
    """The ARN an execution of `state_machine_arn` named `execution_name` has (or would have)."""
    # arn:<partition>:states:<region>:<account>:stateMachine:<name> -> ...:execution:<name>:<execution>
    return f"{state_machine_arn.replace(':stateMachine:', ':execution:', 1)}:{execution_name}"


def _error_code(error: Exception) -> str:
    return str(error.response.get("Error", {}).get("Code", "")) if isinstance(error, ClientError) else ""


def _refused(error: Exception) -> bool:
    """Step Functions answered the request with a client error (4xx): it was not carried out."""
    if not isinstance(error, ClientError):
        return False
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500)
    return 400 <= int(status) < 500


def start_training(
    sfn_client: Any,
    lease: TrainingLease,
    state_machine_arn: str,
    execution_name: str,
    execution_input: dict[str, Any],
    now: datetime,
) -> StartOutcome:
    """Start `training` as `execution_name` unless another training of the model is running.

    One training per model at a time: any other RUNNING execution, or the lease held for another
    execution (common.single_flight), makes the outcome `busy`. A name that already has an execution
    is `already_started`: the deterministic name is what makes a redelivery reuse the execution.
    A start Step Functions refused (a 4xx answer) released the lease: `failed`, retryable unless the
    request itself was wrong. A start that failed in a way that may have landed (a timeout, a lost
    connection, a 5xx) is looked up by its ARN: found, it `started`; not found (or the look-up
    failing) is `unknown`, and the lease keeps naming the execution, so whoever comes next resolves
    it by the same look-up.
    """
    arn = execution_arn(state_machine_arn, execution_name)

    def outcome(status: StartStatus, reason: str, retryable: bool = False) -> StartOutcome:
        return StartOutcome(status, reason, execution_name, arn, retryable)

    size = encoded_input_size(execution_input)
    if size > MAX_EXECUTION_INPUT_BYTES:
        return outcome(
            "failed", f"training input is {size} bytes, above Step Functions' limit of {MAX_EXECUTION_INPUT_BYTES}"
        )
    running = sfn_client.list_executions(stateMachineArn=state_machine_arn, statusFilter="RUNNING", maxResults=10)
    running_arns = [execution["executionArn"] for execution in running["executions"]]
    if arn in running_arns:
        return outcome("already_started", f"training execution {execution_name} is already running")
    if running_arns:
        return outcome("busy", f"training execution {running_arns[0].rsplit(':', 1)[-1]} is running")
    taken = lease.acquire(arn, now)
    if not taken.acquired:
        return outcome("busy", taken.reason)
    try:
        sfn_client.start_execution(
            stateMachineArn=state_machine_arn, name=execution_name, input=json.dumps(execution_input, sort_keys=True)
        )
    except Exception as error:
        code = _error_code(error)
        if code == "ExecutionAlreadyExists":
            return outcome("already_started", f"execution {execution_name} already exists (an earlier delivery)")
        if _refused(error):
            # Step Functions answered and refused the request: nothing started.
            lease.release(arn)
            retryable = code not in NON_RETRYABLE_START_ERRORS
            return outcome("failed", f"StartExecution {execution_name} refused: {error}", retryable=retryable)
        # A timeout, a lost connection or a server error: the start may have landed. Look it up.
        try:
            status = execution_status(sfn_client, arn)
        except Exception as lookup_error:
            return outcome(
                "unknown",
                f"StartExecution failed ({error}) and DescribeExecution could not tell whether it landed "
                f"({lookup_error}); the lease keeps naming the execution",
                retryable=True,
            )
        if status is not None:
            return outcome("started", f"StartExecution failed ({error}) after it landed: the execution is {status}")
        # Not found yet is no proof it never will be: the lease and any record keep naming the execution,
        # and whoever comes next resolves it by the same look-up (common.single_flight's grace period).
        return outcome(
            "unknown",
            f"StartExecution failed ({error}) and the execution does not exist yet; it may still land",
            retryable=True,
        )
    return outcome("started", "training started")
