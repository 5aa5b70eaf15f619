"""The one audit event shape (`mlops.audit` / `MLOps Audit Event`), its checksum, and its delivery to the audit bus.

Every automated decision of the stack (training started or skipped, the reaper's keep, mark and delete,
approval, rejection, deploy, rollback, alarm) becomes one EventBridge entry on the stack's
`AuditEventBus` (template.yaml), built only by `audit_event`. The bus archives every event and a rule
copies each into the KMS-encrypted `AuditLogGroup`, which `mlops audit` reads.

The detail (schema_version 1):

    schema_version  1
    audit_id        sha256 of the producer and the decision's own key (an alarm transition, an object
                    version, an execution and status...): a redelivery or a retried PutEvents repeats it,
                    so a reader tells a duplicate from a second decision
    decision        one of DECISIONS
    subject         what it is about: names and ARNs (text values only)
    reason          why, in words
    actor           who decided: the function, or the IAM identity / AWS service that acted
    time            when it was decided (ISO 8601 UTC, milliseconds)
    correlation_id  ties the events of one invocation or run together
    stack           the stack's name
    details         extra facts of the decision (text, integers, booleans, lists and objects of them)
    sha256          SHA-256 of the canonical form of every other member (`canonical_text`)

The checksum makes an edited event evident: anyone who changes a member without recomputing it is
caught by `verify`. It is not a signature: a writer who recomputes it is caught only by comparing with
the bus's archive, which no API edits. No hash chain links the events: the producers run concurrently
(several functions, concurrent invocations of the recorder) and a chain would need one serialised
writer of the previous digest, whose failure would lose or block audit events. Instead the events of
one run carry `details.sequence` and `details.events_in_run`, so a gap inside a run is evident too.

Floats are refused: EventBridge and CloudWatch Logs may re-serialise a number (1.0 as 1), which would
change the canonical text; a producer passes such a value as text.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from common.audit_digest import (
    AUDIT_DETAIL_TYPE,
    AUDIT_SOURCE,
    DECISIONS,
    SCHEMA_VERSION,
    Decision,
    canonical_text,
    checksum,
    verify,
)
from common.observability import logger

__all__ = [
    "AUDIT_DETAIL_TYPE",
    "AUDIT_SOURCE",
    "DECISIONS",
    "SCHEMA_VERSION",
    "Decision",
    "audit_event",
    "canonical_text",
    "checksum",
    "send",
    "verify",
]

# PutEvents takes at most ten entries and 256 KiB; one entry's detail is kept under 64 KiB by bounding the reason.
ENTRIES_PER_PUT_EVENTS = 10
MAX_REASON_CHARACTERS = 8192
# Entries PutEvents refused (FailedEntryCount) are sent again after 0.5, 1 and 2 s: at most 3.5 s per ten
# entries, long enough to ride out throttling and well inside every producer's timeout.
PUT_EVENTS_ATTEMPTS = 4
PUT_EVENTS_FIRST_BACKOFF_SECONDS = 0.5


class AuditSettingsError(ValueError):
    """The audit bus is not configured; the message names the variable."""


class AuditEventError(ValueError):
    """A producer asked for an event outside the shape (an unknown decision, a float); the message names it."""


def audit_bus_name(env: Mapping[str, str] | None = None) -> str:
    """`AUDIT_EVENT_BUS_NAME`, read at call time: the stack's audit bus (never the default bus)."""
    value = (os.environ if env is None else env).get("AUDIT_EVENT_BUS_NAME", "").strip()
    if not value:
        raise AuditSettingsError("environment variable AUDIT_EVENT_BUS_NAME is not set; template.yaml sets it")
    return value


def stack_name(env: Mapping[str, str] | None = None) -> str:
    """`AUDIT_STACK_NAME`: the stack every event names."""
    value = (os.environ if env is None else env).get("AUDIT_STACK_NAME", "").strip()
    if not value:
        raise AuditSettingsError("environment variable AUDIT_STACK_NAME is not set; template.yaml sets it")
    return value


def _checked(value: Any, where: str) -> Any:
    if isinstance(value, float):
        raise AuditEventError(f"{where} is a float ({value!r}); pass it as text so its checksum survives delivery")
    if isinstance(value, Mapping):
        return {str(key): _checked(item, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_checked(item, f"{where}[{index}]") for index, item in enumerate(value)]
    if value is None or isinstance(value, str | int | bool):
        return value
    raise AuditEventError(f"{where} is a {type(value).__name__}; audit details hold text, integers and booleans")


def _iso_ms(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def audit_id(producer: str, key: str) -> str:
    """The identity of one decision: the same producer deciding on the same key gives the same id."""
    return hashlib.sha256(f"{producer}\n{key}".encode()).hexdigest()


@dataclass(frozen=True)
class AuditContext:
    """What every event of one invocation shares: the stack, the producing function, who decides, the correlation id.

    `producer` is the module that records (`endpoint_reaper`); `actor` the deployed function (Lambda's
    `AWS_LAMBDA_FUNCTION_NAME`) unless an event names a person or service that decided.
    """

    stack: str
    producer: str
    actor: str
    correlation_id: str

    @classmethod
    def from_env(cls, producer: str, correlation_id: str | None, env: Mapping[str, str] | None = None) -> AuditContext:
        values = os.environ if env is None else env
        actor = values.get("AWS_LAMBDA_FUNCTION_NAME", "").strip() or producer
        return cls(stack=stack_name(values), producer=producer, actor=actor, correlation_id=correlation_id or "none")


def audit_event(
    context: AuditContext,
    *,
    decision: str,
    key: str,
    subject: Mapping[str, str],
    reason: str,
    time: datetime,
    details: Mapping[str, Any] | None = None,
    actor: str | None = None,
) -> dict[str, Any]:
    """The detail of one audit event, checksum included (see the module docstring)."""
    if decision not in DECISIONS:
        raise AuditEventError(f"decision {decision!r} is not one of {', '.join(DECISIONS)}")
    if not all(isinstance(value, str) for value in subject.values()):
        raise AuditEventError(f"subject values must be text (names and ARNs), got {dict(subject)!r}")
    if len(reason) > MAX_REASON_CHARACTERS:
        reason = f"{reason[:MAX_REASON_CHARACTERS]}... [truncated {len(reason) - MAX_REASON_CHARACTERS} characters]"
    who = actor or context.actor
    detail: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "audit_id": audit_id(context.producer, key),
        "decision": decision,
        "subject": dict(subject),
        "reason": reason,
        "actor": who,
        "time": _iso_ms(time),
        "correlation_id": context.correlation_id,
        "stack": context.stack,
        "details": _checked(dict(details or {}), "details"),
    }
    detail["sha256"] = checksum(detail)
    return detail


def entry(bus_name: str, detail: Mapping[str, Any]) -> dict[str, Any]:
    """The PutEvents entry that carries `detail` onto the audit bus."""
    resources = [value for value in detail["subject"].values() if value.startswith("arn:")][:5]
    return {
        "Source": AUDIT_SOURCE,
        "DetailType": AUDIT_DETAIL_TYPE,
        "EventBusName": bus_name,
        "Resources": resources,
        "Detail": json.dumps(detail, ensure_ascii=False),
    }


@dataclass(frozen=True)
class AuditDelivery:
    """How many audit entries never landed, and the last reason; nothing unwritten when `unwritten` is 0."""

    unwritten: int = 0
    problem: str | None = None


def _put_with_retries(events: Any, batch: list[dict[str, Any]], sleep: Callable[[float], None]) -> tuple[int, str]:
    """Send up to ten entries, again and again for those refused; how many never landed and the last reason."""
    pending, problem = batch, ""
    for attempt in range(PUT_EVENTS_ATTEMPTS):
        if attempt:
            sleep(PUT_EVENTS_FIRST_BACKOFF_SECONDS * 2 ** (attempt - 1))
        try:
            response = events.put_events(Entries=pending)
        except Exception as error:
            # botocore has already retried a throttled or failed call as its retry configuration says; what it
            # cannot retry is a call that succeeded with entries refused, which is what this loop is for.
            logger.exception("PutEvents failed", extra={"attempt": attempt + 1})
            return len(pending), f"PutEvents failed: {type(error).__name__}: {error}"
        results = response.get("Entries", [])
        if len(results) == len(pending):
            refused = [(sent, result) for sent, result in zip(pending, results, strict=True) if "EventId" not in result]
        else:
            # Which entries landed cannot be told: all again (a duplicate, recognisable by its audit_id, is
            # better than a gap in the audit).
            refused = [(sent, {"ErrorCode": "UnmatchedResponse"}) for sent in pending]
        if not refused and response.get("FailedEntryCount", 0):
            refused = [(sent, {"ErrorCode": "FailedEntryCount"}) for sent in pending]
        if not refused:
            return 0, ""
        problem = "; ".join(
            sorted({f"{result.get('ErrorCode')}: {result.get('ErrorMessage', '')}".strip() for _, result in refused})
        )
        logger.warning("EventBridge refused audit entries", extra={"attempt": attempt + 1, "refused": len(refused)})
        pending = [sent for sent, _ in refused]
    return len(pending), problem


def send(
    events_client: Any,
    bus_name: str,
    details: list[dict[str, Any]],
    sleep: Callable[[float], None] = time.sleep,
) -> AuditDelivery:
    """Put every audit event on the bus, ten per call, retrying refused entries; say what never landed."""
    unwritten, last_problem = 0, ""
    entries = [entry(bus_name, detail) for detail in details]
    for start in range(0, len(entries), ENTRIES_PER_PUT_EVENTS):
        lost, problem = _put_with_retries(events_client, entries[start : start + ENTRIES_PER_PUT_EVENTS], sleep)
        if lost:
            unwritten, last_problem = unwritten + lost, problem
    for detail in details:
        logger.info("audit event", extra={"audit": {k: detail[k] for k in ("decision", "audit_id", "subject")}})
    return AuditDelivery(unwritten, last_problem or None)


class AuditNotWritten(RuntimeError):
    """Audit events could not all be written; raised so the invocation fails and is retried (then its DLQ)."""
