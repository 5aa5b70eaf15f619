"""`mlops audit`: --since, reading and verifying the audit log group, and the errors that say what is wrong."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from mlops.audit import AuditCommandError, _digest, audit_command, check_message, parse_since

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
GROUP = "/aws/events/mlops-local-audit"


def _event(decision: str, minutes_ago: int, reason: str = "why") -> dict:
    digest = _digest()
    detail = {
        "schema_version": 1,
        "audit_id": f"id-{decision}",
        "decision": decision,
        "subject": {"execution_arn": "arn:aws:states:us-east-1:123456789012:execution:deploy:1"},
        "reason": reason,
        "actor": "aws.states",
        "time": (datetime.now(UTC) - timedelta(minutes=minutes_ago)).isoformat(timespec="milliseconds"),
        "correlation_id": "c",
        "stack": "mlops-local",
        "details": {},
    }
    detail["sha256"] = digest.checksum(detail)
    return {"source": "mlops.audit", "detail-type": "MLOps Audit Event", "detail": detail}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", NOW - timedelta(minutes=30)),
        ("12h", NOW - timedelta(hours=12)),
        ("7d", NOW - timedelta(days=7)),
        ("2w", NOW - timedelta(weeks=2)),
        ("2026-11-30T08:00Z", datetime(2026, 11, 30, 8, 0, tzinfo=UTC)),
        ("2026-11-30T08:00", datetime(2026, 11, 30, 8, 0, tzinfo=UTC)),
    ],
)
def test_since_takes_a_duration_or_an_iso_time(text: str, expected: datetime) -> None:
    assert parse_since(text, NOW) == expected


def test_an_unreadable_since_is_refused_saying_what_is_accepted() -> None:
    with pytest.raises(AuditCommandError, match=r"--since 'yesterday' is neither a duration \(30m"):
        parse_since("yesterday", NOW)


def test_a_log_event_that_is_not_an_audit_event_is_not_intact() -> None:
    _, problem = check_message(json.dumps({"source": "someone.else", "detail-type": "x", "detail": {}}))
    assert problem is not None
    assert "not an audit event's" in problem
    assert check_message("not json")[1] == "the log event is not an EventBridge event's JSON"


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        template = {
            "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
            "Outputs": {"AuditLogGroupName": {"Value": GROUP}},
        }
        boto3.client("cloudformation").create_stack(StackName="mlops-local", TemplateBody=json.dumps(template))
        boto3.client("logs").create_log_group(logGroupName=GROUP)
        yield


def _put(stream: str, *events: dict) -> None:
    logs = boto3.client("logs")
    logs.create_log_stream(logGroupName=GROUP, logStreamName=stream)
    stamp = int(datetime.now(UTC).timestamp() * 1000)
    logs.put_log_events(
        logGroupName=GROUP,
        logStreamName=stream,
        logEvents=[{"timestamp": stamp, "message": json.dumps(event)} for event in events],
    )


def test_the_trail_is_listed_in_time_order_with_repeated_deliveries_shown_once(stack, capsys) -> None:
    later, earlier = _event("deploy_succeeded", 1), _event("model_approved", 5)
    _put("a", later)
    _put("b", earlier)
    _put("c", later)

    assert audit_command("mlops-local", None, as_json=False) == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("audit trail of stack mlops-local (/aws/events/mlops-local-audit): 2 events")
    assert "model_approved" in lines[1]
    assert "deploy_succeeded" in lines[2]
    assert lines[2].endswith("(delivered 2 times)")


def test_since_leaves_out_older_log_events(stack, capsys) -> None:
    _put("a", _event("deploy_succeeded", 1))

    assert audit_command("mlops-local", "2026-01-01T00:00Z", as_json=True) == 0
    assert len(json.loads(capsys.readouterr().out)["events"]) == 1
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert audit_command("mlops-local", future, as_json=True) == 0
    assert json.loads(capsys.readouterr().out)["events"] == []


def test_a_changed_event_is_shown_loudly_and_fails_the_command(stack, capsys) -> None:
    forged = _event("model_approved", 2)
    forged["detail"]["actor"] = "arn:aws:sts::123456789012:assumed-role/Approver/someone-else"
    _put("a", _event("deploy_succeeded", 1), forged)

    assert audit_command("mlops-local", None, as_json=False) == 1

    printed = capsys.readouterr()
    assert "!! TAMPERED" in printed.out
    assert "sha256 mismatch" in printed.out
    assert "1 event(s) FAILED verification" in printed.err


def test_a_stack_without_the_audit_output_is_an_error_naming_it(monkeypatch, capsys) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        template = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}}
        boto3.client("cloudformation").create_stack(StackName="old", TemplateBody=json.dumps(template))

        assert audit_command("old", None, as_json=False) == 1

    assert "stack old has no output AuditLogGroupName" in capsys.readouterr().err
