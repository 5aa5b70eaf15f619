"""GetExecutionHistory as Step Functions pages it: `maxResults`, `nextToken`, `reverseOrder`, `includeExecutionData`.

moto 5's engine ignores all four and returns every event, oldest first, in one response (after deep-copying the
whole history at every call). On AWS a page holds at most `maxResults` events (100 when 0 or absent, at most 1000),
`nextToken` continues where the page ended, `reverseOrder` gives the newest first, and `includeExecutionData=false`
leaves the input and output out of every event. A client that asks for the last event (`reverseOrder`,
`maxResults=1`) got the first one here. Now each call copies only its page's events; a token names the execution
and the order it was made for, and one that does not match is refused with `InvalidToken`, as AWS refuses a token
it did not issue.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
from typing import Any

from moto.core.responses import ActionResult
from moto.stepfunctions.exceptions import InvalidToken, ValidationException
from moto.stepfunctions.responses import StepFunctionResponse

from emulator.moto_patches import MotoPatches

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
# The event details' payload fields, left out with includeExecutionData=false.
_EXECUTION_DATA_FIELDS = ("input", "output")


def install_execution_history_pages(patches: MotoPatches) -> None:
    """GetExecutionHistory pages as on AWS (module doc); undone with `patches`."""

    def get_execution_history(self: StepFunctionResponse) -> ActionResult:
        execution_arn = self._get_param("executionArn")
        page_size = _page_size(self._get_param("maxResults"))
        reverse = bool(self._get_param("reverseOrder", False))
        include_data = self._get_param("includeExecutionData", True) is not False
        execution = self.stepfunction_backend.describe_execution(execution_arn)
        start = _token_start(self._get_param("nextToken"), execution_arn, reverse)
        events = _page(execution, start, page_size, reverse)
        if not include_data:
            events = [_without_execution_data(event) for event in events]
        result: dict[str, Any] = {"events": events}
        if len(events) == page_size and start + page_size < _event_count(execution):
            result["nextToken"] = _token(execution_arn, reverse, start + page_size)
        return ActionResult(result)

    patches.replace(StepFunctionResponse, "get_execution_history", get_execution_history)


def _page_size(value: Any) -> int:
    if value in (None, 0):
        return DEFAULT_PAGE_SIZE
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValidationException(f"1 validation error detected: Value '{value}' at 'maxResults' must be an integer")
    if not 0 <= value <= MAX_PAGE_SIZE:
        bound = "greater than or equal to 0" if value < 0 else f"less than or equal to {MAX_PAGE_SIZE}"
        raise ValidationException(
            f"1 validation error detected: Value '{value}' at 'maxResults' failed to satisfy constraint: "
            f"Member must have value {bound}"
        )
    return value


def _event_manager(execution: Any) -> Any:
    worker = getattr(execution, "exec_worker", None)
    # An execution not yet handed to its engine thread has no history yet.
    return None if worker is None or worker.env is None else worker.env.event_manager


def _event_count(execution: Any) -> int:
    manager = _event_manager(execution)
    return 0 if manager is None else len(manager._history_event_list)


def _page(execution: Any, start: int, size: int, reverse: bool) -> list[Any]:
    manager = _event_manager(execution)
    if manager is None:
        return []
    # Copied under the engine's own lock, as moto's get_event_history copies the whole list: only this page here.
    with manager._mutex:
        events = manager._history_event_list
        if reverse:
            end = max(len(events) - start, 0)
            chosen = events[max(end - size, 0) : end][::-1]
        else:
            chosen = events[start : start + size]
        return copy.deepcopy(chosen)


def _without_execution_data(event: dict[str, Any]) -> dict[str, Any]:
    trimmed = dict(event)
    for key, value in event.items():
        if key.endswith("EventDetails") and isinstance(value, dict):
            trimmed[key] = {name: item for name, item in value.items() if name not in _EXECUTION_DATA_FIELDS}
    return trimmed


def _token(execution_arn: str, reverse: bool, start: int) -> str:
    payload = json.dumps({"arn": execution_arn, "reverse": reverse, "start": start}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode()


def _token_start(token: Any, execution_arn: str, reverse: bool) -> int:
    if token in (None, ""):
        return 0
    try:
        payload = json.loads(base64.urlsafe_b64decode(str(token).encode()))
        start = payload["start"]
        matches = payload["arn"] == execution_arn and payload["reverse"] is reverse
    except (binascii.Error, ValueError, KeyError, TypeError) as error:
        raise InvalidToken(f"nextToken {str(token)[:40]!r} was not issued by GetExecutionHistory") from error
    if not matches or not isinstance(start, int) or start < 0:
        raise InvalidToken(
            "nextToken was issued for another execution or order: pass the executionArn and reverseOrder of the "
            "call that returned it"
        )
    return start
