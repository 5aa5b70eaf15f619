"""`mlops invoke FUNCTION -e EVENT_FILE`: one function of the stack run against the local twin, like `sam local invoke`.

The function runs in-process with the environment the stack gives it, on a freshly deployed twin. Its JSON
result goes to stdout (a failure prints Lambda's error payload and exits 1); what it set off (the executions it
or the routed event started) goes to stderr, one line each. With `--via-eventbridge` the event is put on the
twin's bus instead and the stack's rules route it (an SQS batch of EventBridge events, as in events/, is unwrapped
into its events); queued messages are then delivered to their consuming functions, so the named function runs
only if the rules route the event to it.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any, TextIO

import boto3

from contract.project import STATEMACHINES_DIR, TEMPLATE_PATH
from contract.template import TemplateError, function_handlers
from emulator.eventbridge import Delivery
from emulator.lambda_local import LambdaInvocationError

EXIT_OK, EXIT_FUNCTION_FAILED, EXIT_USAGE = 0, 1, 2


class InvokeUsageError(ValueError):
    """The command line cannot be run: unknown function, unreadable event; the message says what to pass."""


def invoke_command(
    function: str,
    event_file: Path,
    via_eventbridge: bool,
    *,
    template: Path = TEMPLATE_PATH,
    statemachines_dir: Path = STATEMACHINES_DIR,
) -> int:
    """Runs `mlops invoke`; returns the process exit code. Only the function's result goes to stdout."""
    try:
        logical_id = resolve_function(function, template)
        event = read_event(event_file)
        bus_events = eventbridge_events(event, event_file) if via_eventbridge else []
    except InvokeUsageError as error:
        print(f"mlops invoke: {error}", file=sys.stderr)
        return EXIT_USAGE

    from emulator.twin import LocalTwin

    result_stream = sys.stdout
    # Handlers print logs and metrics to stdout, as Lambda captures them; here they go to stderr, like
    # `sam local invoke`, so that stdout holds only the result.
    with (
        contextlib.redirect_stdout(sys.stderr),
        LocalTwin(template=template, statemachines_dir=statemachines_dir) as twin,
    ):
        before = _execution_arns(twin)
        if via_eventbridge:
            code = _invoke_via_eventbridge(twin, logical_id, bus_events, result_stream, sys.stderr)
        else:
            code = _invoke_directly(twin, logical_id, event, result_stream)
        for arn in sorted(_execution_arns(twin) - before):
            status = _execution_status(arn)
            print(f"started execution {arn} ({status} when the twin stopped)", file=sys.stderr)
    return code


def resolve_function(name: str, template: Path) -> str:
    """The logical id of the template's function named `name` (its logical id or its handler's module)."""
    functions = template_functions(template)
    for logical_id, module in functions.items():
        if name in (logical_id, module):
            return logical_id
    choices = ", ".join(f"{logical_id} ({module})" for logical_id, module in sorted(functions.items()))
    raise InvokeUsageError(f"no function {name!r} in {template.name}; pass one of: {choices}")


def template_functions(template: Path) -> dict[str, str]:
    """Logical id -> handler module of every `AWS::Serverless::Function` in the template, Globals applied."""
    try:
        handlers = function_handlers(template)
    except TemplateError as error:
        raise InvokeUsageError(str(error)) from error
    return {logical_id: handler.rpartition(".")[0] for logical_id, handler in handlers.items()}


def read_event(event_file: Path) -> Any:
    """The event's JSON; an error names the file and, for bad JSON, the line and column."""
    try:
        text = Path(event_file).read_text(encoding="utf-8")
    except OSError as error:
        raise InvokeUsageError(f"cannot read event file {event_file}: {error.strerror or error}") from error
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InvokeUsageError(
            f"event file {event_file} is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})"
        ) from error


def eventbridge_events(event: Any, event_file: Path) -> list[dict[str, Any]]:
    """The EventBridge events in `event`: itself, or the bodies of an SQS batch of EventBridge events."""
    if _is_eventbridge_event(event):
        return [event]
    records = event.get("Records") if isinstance(event, dict) else None
    if isinstance(records, list) and records:
        bodies = []
        for record in records:
            try:
                body = json.loads(record["body"])
            except (TypeError, KeyError, ValueError):
                body = None
            if not _is_eventbridge_event(body):
                break
            bodies.append(body)
        else:
            return bodies
    raise InvokeUsageError(
        f"{event_file} is not an EventBridge event (source, detail-type and detail), nor an SQS batch of them; "
        "--via-eventbridge needs one. Drop the flag to pass the event to the function as it is."
    )


def _is_eventbridge_event(value: Any) -> bool:
    return isinstance(value, dict) and {"source", "detail-type", "detail"} <= value.keys()


def _invoke_directly(twin: Any, logical_id: str, event: Any, out: TextIO) -> int:
    try:
        result = twin.invoke_function(logical_id, event)
    except LambdaInvocationError as failure:
        print(json.dumps(failure.error_payload, indent=2), file=out)
        return EXIT_FUNCTION_FAILED
    print(json.dumps(result, indent=2, default=str), file=out)
    return EXIT_OK


def _invoke_via_eventbridge(twin: Any, logical_id: str, events: list[dict[str, Any]], out: TextIO, err: TextIO) -> int:
    entries = [
        {
            "Source": event["source"],
            "DetailType": event["detail-type"],
            "Detail": json.dumps(event["detail"]),
            "Resources": list(event.get("resources", [])),
        }
        for event in events
    ]
    results = twin.put_events(entries)
    for result in results:
        if "ErrorCode" in result:
            print(f"PutEvents rejected an event: {result['ErrorCode']}: {result['ErrorMessage']}", file=err)
    deliveries: list[Delivery] = twin.router.deliveries
    deliveries += twin.drain_queues()
    for delivery in deliveries:
        outcome = f"error: {delivery.error}" if delivery.error else "delivered"
        print(f"rule {delivery.rule} -> {delivery.target_arn}: {outcome}", file=err)
    function_arn = twin.stack.functions[logical_id].function_arn
    reached = [d for d in deliveries if d.target_arn == function_arn]
    if not reached:
        print(
            f"the event reached no rule that targets {logical_id}; the stack's rules match on: "
            + "; ".join(f"{r.name}: {json.dumps(r.event_pattern)}" for r in twin.stack.rules if r.event_pattern),
            file=err,
        )
        return EXIT_FUNCTION_FAILED
    for delivery in reached:
        print(
            json.dumps(delivery.result, indent=2, default=str) if delivery.error is None else delivery.error, file=out
        )
    return EXIT_OK if all(d.error is None for d in reached) else EXIT_FUNCTION_FAILED


def _execution_arns(twin: Any) -> set[str]:
    return {
        execution["executionArn"]
        for machine in twin.stack.state_machines
        for execution in twin.list_executions(machine)
    }


def _execution_status(execution_arn: str) -> str:
    return str(boto3.client("stepfunctions").describe_execution(executionArn=execution_arn)["status"])
