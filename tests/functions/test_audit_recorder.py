"""audit_recorder: each AWS event kind becomes one audit event in the one shape, once, whatever the redeliveries."""

from __future__ import annotations

from typing import Any

import audit_recorder
import pytest
from botocore.stub import Stubber
from common import audit
from lambda_test_support import audited, load_event

DEPLOY = "arn:aws:states:us-east-1:123456789012:stateMachine:mlops-local-deploy"


@pytest.fixture
def recorder_env(monkeypatch: pytest.MonkeyPatch, idempotency_table: str) -> None:
    monkeypatch.setenv("MODEL_PACKAGE_GROUP_NAME", "mlops-breast-cancer")
    monkeypatch.setenv("DEPLOY_STATE_MACHINE_ARN", DEPLOY)
    monkeypatch.setenv("ALARM_NAME_PREFIX", "mlops-local-")


@pytest.mark.parametrize(
    ("event_file", "decision", "actor", "reason_part"),
    [
        (
            "audit_recorder/model_package_approved.json",
            "model_approved",
            "arn:aws:sts::123456789012:assumed-role/mlops-local-ApproverRole/jane.doe",
            "Reviewed evaluation report",
        ),
        (
            "audit_recorder/model_package_rejected.json",
            "model_rejected",
            "arn:aws:sts::123456789012:assumed-role/mlops-local-ApproverRole/jane.doe",
            "Recall difference",
        ),
        ("audit_recorder/deploy_succeeded.json", "deploy_succeeded", "aws.states", "succeeded"),
        ("audit_recorder/deploy_rolled_back.json", "deploy_rolled_back", "aws.states", "EndpointRolledBack"),
        ("audit_recorder/deploy_failed.json", "deploy_failed", "aws.states", "SmokeTestFailed"),
        ("audit_recorder/alarm_state_change.json", "alarm_state_changed", "aws.cloudwatch", "Threshold Crossed"),
    ],
)
def test_each_aws_event_kind_becomes_one_audit_event_naming_who_and_why(
    recorder_env, lambda_context, event_file, decision, actor, reason_part
):
    result = audit_recorder.handler(load_event(event_file), lambda_context)

    [event] = audited()
    assert audit.verify(event) is None
    assert (result["action"], event["decision"], event["actor"]) == ("recorded", decision, actor)
    assert reason_part in event["reason"]
    assert event["audit_id"] == result["audit_id"]


def test_a_deploy_event_names_the_execution_and_its_times(recorder_env, lambda_context):
    audit_recorder.handler(load_event("audit_recorder/deploy_rolled_back.json"), lambda_context)

    [event] = audited()
    assert event["subject"]["state_machine_arn"] == DEPLOY
    assert event["details"]["start_date"] == "2024-05-14T10:03:34.968Z"
    assert event["details"]["error"] == "EndpointRolledBack"


def test_a_redelivered_event_is_recorded_once(recorder_env, lambda_context):
    first = load_event("audit_recorder/model_package_approved.json")
    again = load_event("audit_recorder/model_package_approved.json")
    again["id"] = "another-eventbridge-id"

    audit_recorder.handler(first, lambda_context)
    result = audit_recorder.handler(again, lambda_context)

    assert result["duplicate"] is True
    assert len(audited()) == 1


def test_an_event_of_another_account_is_ignored(recorder_env, lambda_context):
    event = load_event("audit_recorder/deploy_succeeded.json")
    event["account"] = "210987654321"

    result = audit_recorder.handler(event, lambda_context)

    assert result["action"] == "ignored"
    assert audited() == []


def test_an_audit_event_eventbridge_keeps_refusing_fails_the_invocation_and_its_retry_records_it(
    recorder_env, lambda_context, monkeypatch
):
    refusing: Any = audit_recorder.boto3.client("events")
    stubber = Stubber(refusing)
    for _ in range(audit.PUT_EVENTS_ATTEMPTS):
        stubber.add_response(
            "put_events",
            {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "ThrottlingException", "ErrorMessage": "x"}]},
        )
    monkeypatch.setattr(audit, "PUT_EVENTS_FIRST_BACKOFF_SECONDS", 0.0)
    real_client = audit_recorder.boto3.client
    monkeypatch.setattr(
        audit_recorder.boto3,
        "client",
        lambda name, *a, **k: refusing if name == "events" else real_client(name, *a, **k),
    )
    with stubber, pytest.raises(audit.AuditNotWritten, match="ThrottlingException"):
        audit_recorder.handler(load_event("audit_recorder/deploy_succeeded.json"), lambda_context)
    monkeypatch.setattr(audit_recorder.boto3, "client", real_client)

    result = audit_recorder.handler(load_event("audit_recorder/deploy_succeeded.json"), lambda_context)

    assert (result["action"], result["duplicate"]) == ("recorded", False)
    assert [event["decision"] for event in audited()] == ["deploy_succeeded"]
