"""GetExecutionHistory as Step Functions pages it: `maxResults`, `nextToken`, `reverseOrder`, `includeExecutionData`.

moto 5's engine ignores all four and returns every event, oldest first, in one response (after deep-copying the
whole history at every call). On AWS a page holds at most `maxResults` events (100 when 0 or absent, at most 1000),
`nextToken` continues where the page ended, `reverseOrder` gives the newest first, and `includeExecutionData=false`
leaves the input and output out of every event. A client that asks for the last event (`reverseOrder`,
`maxResults=1`) got the first one here. Now each call copies only its page's events; a token names the execution,
the order it was made for and a position counted from the history's start, so pages of a running execution neither
repeat nor skip an event while new ones are added; a token that does not match is refused with `InvalidToken`, as
AWS refuses a token it did not issue.
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
        position = _token_position(self._get_param("nextToken"), execution_arn, reverse)
        events, following = history_page(_event_manager(execution), position, page_size, reverse)
        if not include_data:
            events = [_without_execution_data(event) for event in events]
        result: dict[str, Any] = {"events": events}
        if following is not None:
            result["nextToken"] = _token(execution_arn, reverse, following)
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


def history_page(manager: Any, position: int | None, size: int, reverse: bool) -> tuple[list[Any], int | None]:
    """One page of the engine's history and where the next begins (None: this was the last).

    Positions count from the history's start and the history only grows, so a page continues exactly where the
    last one ended even while events are added: oldest first, the next page begins after this one (and a later
    call sees events added since); newest first, it ends before this one, at the newest event the first page saw.
    `position` None is the first page. Copied under the engine's own lock, as moto's get_event_history copies the
    whole list: only the page here.
    """
    if manager is None:
        return [], None
    with manager._mutex:
        events = manager._history_event_list
        if reverse:
            end = len(events) if position is None else min(position, len(events))
            begin = max(end - size, 0)
            return copy.deepcopy(events[begin:end][::-1]), (begin if begin > 0 else None)
        begin = 0 if position is None else position
        end = begin + size
        return copy.deepcopy(events[begin:end]), (end if end < len(events) else None)


def _without_execution_data(event: dict[str, Any]) -> dict[str, Any]:
    trimmed = dict(event)
    for key, value in event.items():
        if key.endswith("EventDetails") and isinstance(value, dict):
            trimmed[key] = {name: item for name, item in value.items() if name not in _EXECUTION_DATA_FIELDS}
    return trimmed


def _token(execution_arn: str, reverse: bool, position: int) -> str:
    payload = json.dumps({"arn": execution_arn, "reverse": reverse, "position": position}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode()


def _token_position(token: Any, execution_arn: str, reverse: bool) -> int | None:
    if token in (None, ""):
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(str(token).encode()))
        position = payload["position"]
        matches = payload["arn"] == execution_arn and payload["reverse"] is reverse
    except (binascii.Error, ValueError, KeyError, TypeError) as error:
        raise InvalidToken(f"nextToken {str(token)[:40]!r} was not issued by GetExecutionHistory") from error
    if not matches or not isinstance(position, int) or position < 0:
        raise InvalidToken(
            "nextToken was issued for another execution or order: pass the executionArn and reverseOrder of the "
            "call that returned it"
        )
    return position
