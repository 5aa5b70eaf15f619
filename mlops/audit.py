"""`mlops audit`: the stack's audit trail, one line per decision in time order, each event's checksum verified.

Reads the log group the stack names in its `AuditLogGroupName` output (template.yaml `AuditLogGroup`, where a
rule on the audit bus copies every `mlops.audit` event) with FilterLogEvents, every page, through
`mlops.stack_target`: the same code against AWS (the default boto3 session) and the served twin (`mlops up`).

Each event is checked with the one definition of an intact event (functions/common/audit_digest.py, loaded by
path since it is Lambda code): an event whose checksum does not match, or that is not an audit event at all, is
listed as TAMPERED with the reason, and the command exits 1. Events repeated by a retried delivery (the same
`audit_id` and content) are shown once and counted.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from types import ModuleType
from typing import Any

from contract.project import PROJECT_ROOT
from mlops.stack_target import StackTarget, StackTargetError, stack_target

AUDIT_DIGEST_MODULE = PROJECT_ROOT / "functions" / "common" / "audit_digest.py"
LOG_GROUP_OUTPUT = "AuditLogGroupName"
_DURATION = re.compile(r"^(\d+)([mhdw])$")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class AuditCommandError(Exception):
    """Bad input to `mlops audit` (an unreadable --since); the message says what is wrong and what is accepted."""


@cache
def _digest() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_mlops_audit_digest", AUDIT_DIGEST_MODULE)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {AUDIT_DIGEST_MODULE}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def parse_since(text: str, now: datetime) -> datetime:
    """`30m`, `12h`, `7d`, `2w` before `now`, or an ISO 8601 time (UTC when it names no zone)."""
    match = _DURATION.match(text.strip())
    if match:
        return now - timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise AuditCommandError(
            f"--since {text!r} is neither a duration (30m, 12h, 7d, 2w) nor an ISO 8601 time (2026-12-01T08:00Z)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class AuditEntry:
    """One audit event read back: its detail, where it was found, and why it is not intact (None when it is)."""

    detail: dict[str, Any]
    log_stream: str
    timestamp_ms: int
    problem: str | None = None
    repeats: int = 0

    @property
    def time(self) -> str:
        value = self.detail.get("time")
        if isinstance(value, str):
            return value
        return datetime.fromtimestamp(self.timestamp_ms / 1000, UTC).isoformat(timespec="milliseconds")

    def as_dict(self) -> dict[str, Any]:
        return {
            "intact": self.problem is None,
            "problem": self.problem,
            "repeated_deliveries": self.repeats,
            "log_stream": self.log_stream,
            "event": self.detail,
        }


def check_message(message: str) -> tuple[dict[str, Any], str | None]:
    """The audit detail in one log event's message (an EventBridge event's JSON) and why it is not intact."""
    digest = _digest()
    try:
        event = json.loads(message)
    except ValueError:
        return {"message": message[:500]}, "the log event is not an EventBridge event's JSON"
    if not isinstance(event, dict) or not isinstance(event.get("detail"), dict):
        return {"message": message[:500]}, "the log event holds no event detail"
    detail: dict[str, Any] = event["detail"]
    if (event.get("source"), event.get("detail-type")) != (digest.AUDIT_SOURCE, digest.AUDIT_DETAIL_TYPE):
        return detail, f"source {event.get('source')!r} / {event.get('detail-type')!r} is not an audit event's"
    return detail, digest.verify(detail)


@dataclass
class AuditTrail:
    """The entries found, oldest first, with duplicates collapsed."""

    log_group: str
    since: datetime | None
    entries: list[AuditEntry] = field(default_factory=list)

    @property
    def tampered(self) -> list[AuditEntry]:
        return [entry for entry in self.entries if entry.problem is not None]


def read_trail(target: StackTarget, since: datetime | None) -> AuditTrail:
    """Every audit event of the stack's audit log group (since `since`), verified, in time order."""
    log_group = target.output(LOG_GROUP_OUTPUT)
    logs = target.client("logs")
    request: dict[str, Any] = {"logGroupName": log_group}
    if since is not None:
        request["startTime"] = int(since.timestamp() * 1000)
    trail = AuditTrail(log_group, since)
    seen: dict[tuple[str, str], AuditEntry] = {}
    try:
        for page in logs.get_paginator("filter_log_events").paginate(**request):
            for log_event in page.get("events", []):
                detail, problem = check_message(log_event.get("message", ""))
                entry = AuditEntry(
                    detail, log_event.get("logStreamName", ""), int(log_event.get("timestamp", 0)), problem
                )
                identity = (str(detail.get("audit_id", "")), str(detail.get("sha256", "")))
                if problem is None and identity in seen:
                    seen[identity].repeats += 1
                    continue
                if problem is None:
                    seen[identity] = entry
                trail.entries.append(entry)
    except Exception as error:  # botocore's ClientError or a connection error: say which group and why
        code = getattr(error, "response", {}).get("Error", {}).get("Code", type(error).__name__)
        raise StackTargetError(
            f"cannot read audit log group {log_group} of stack {target.stack_name}: {code}: {error}"
        ) from None
    trail.entries.sort(key=lambda entry: (entry.time, entry.timestamp_ms))
    return trail


def _subject_text(subject: Any) -> str:
    if not isinstance(subject, dict):
        return str(subject)
    return " ".join(f"{key}={value}" for key, value in subject.items())


def format_line(entry: AuditEntry) -> str:
    detail = entry.detail
    if entry.problem is not None:
        shown = json.dumps(detail)[:300]
        return f"!! TAMPERED {entry.time} (log stream {entry.log_stream}): {entry.problem}; event: {shown}"
    repeats = f" (delivered {entry.repeats + 1} times)" if entry.repeats else ""
    return (
        f"{entry.time}  {detail['decision']:<20} {_subject_text(detail.get('subject'))}  by {detail.get('actor')}: "
        f"{detail.get('reason')}{repeats}"
    )


def audit_command(stack_name: str | None, since: str | None, as_json: bool, now: datetime | None = None) -> int:
    """Print the trail; 1 when an event is not intact (or the stack cannot be read), else 0."""
    try:
        start = parse_since(since, now or datetime.now(UTC)) if since else None
        target = stack_target(stack_name)
        trail = read_trail(target, start)
    except (StackTargetError, AuditCommandError) as error:
        print(f"mlops audit: {error}", file=sys.stderr)
        return 1
    if as_json:
        print(
            json.dumps(
                {
                    "stack": target.stack_name,
                    "log_group": trail.log_group,
                    "since": start.isoformat() if start else None,
                    "events": [entry.as_dict() for entry in trail.entries],
                    "tampered": len(trail.tampered),
                },
                indent=2,
            )
        )
    else:
        window = f" since {start.isoformat()}" if start else ""
        print(f"audit trail of stack {target.stack_name} ({trail.log_group}){window}: {len(trail.entries)} events")
        for entry in trail.entries:
            print(format_line(entry))
    if trail.tampered:
        print(
            f"mlops audit: {len(trail.tampered)} event(s) FAILED verification: their content is not what was "
            "recorded; compare them with the audit bus's archive",
            file=sys.stderr,
        )
        return 1
    return 0
