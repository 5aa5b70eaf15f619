"""The one audit event shape: what each producer emits for each decision, and what makes tampering evident."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta

import pytest
import retrain_on_drift
import retrain_on_new_data
from common import audit
from lambda_test_support import AUDIT_STACK, DATA_BUCKET, MODEL_NAME, audited, executions, load_event
from trigger_support import DRIFT_PREFIX

DATA_URI = f"s3://{DATA_BUCKET}/incoming/"
SHAPE = {
    "schema_version",
    "audit_id",
    "decision",
    "subject",
    "reason",
    "actor",
    "time",
    "correlation_id",
    "stack",
    "details",
    "sha256",
}


@pytest.fixture
def drift_env(monkeypatch: pytest.MonkeyPatch, training_state_machine: str, idempotency_table: str) -> str:
    monkeypatch.setenv("MODEL_NAME", MODEL_NAME)
    monkeypatch.setenv("DRIFT_ALARM_PREFIX", DRIFT_PREFIX)
    monkeypatch.setenv("RETRAIN_COOLDOWN_MINUTES", "360")
    monkeypatch.setenv("TRAINING_DATA_URI", DATA_URI)
    return training_state_machine


@pytest.fixture
def new_data_env(monkeypatch: pytest.MonkeyPatch, training_state_machine: str, idempotency_table: str) -> str:
    import boto3

    monkeypatch.setenv("MODEL_NAME", MODEL_NAME)
    monkeypatch.setenv("DATA_BUCKET", DATA_BUCKET)
    monkeypatch.setenv("DATA_PREFIX", "incoming/")
    monkeypatch.setenv("ALLOWED_SUFFIXES", ".csv")
    monkeypatch.setenv("NEW_DATA_QUEUE_URL", boto3.client("sqs").create_queue(QueueName="q")["QueueUrl"])
    monkeypatch.setenv("NEW_DATA_DEFER_SECONDS", "900")
    return training_state_machine


def _intact(events: list[dict]) -> list[dict]:
    for event in events:
        assert set(event) == SHAPE
        assert audit.verify(event) is None
        assert event["stack"] == AUDIT_STACK
    return events


# --- the shape ------------------------------------------------------------------------------------------------


def _sample() -> dict:
    context = audit.AuditContext(stack="mlops", producer="test", actor="tester", correlation_id="c-1")
    return audit.audit_event(
        context,
        decision="training_started",
        key="k",
        subject={"execution_arn": "arn:aws:states:us-east-1:123456789012:execution:t:e"},
        reason="drift alarm in ALARM",
        time=datetime(2030, 1, 1, tzinfo=UTC),
        details={"objects": [{"key": "ü.csv", "version_id": None}], "count": 2},
    )


def test_an_audit_event_survives_a_json_round_trip_with_its_checksum_intact():
    event = _sample()

    assert audit.verify(json.loads(json.dumps(event, ensure_ascii=True))) is None
    assert event["time"] == "2030-01-01T00:00:00.000Z"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda event: event.update(reason="approved by nobody"),
        lambda event: event["subject"].update(execution_arn="arn:aws:states:us-east-1:1:execution:t:other"),
        lambda event: event["details"]["objects"][0].update(version_id="v2"),
        lambda event: event.update(decision="training_skipped"),
        lambda event: event.pop("sha256"),
    ],
)
def test_any_change_to_an_audit_event_is_evident(tamper):
    event = copy.deepcopy(_sample())
    tamper(event)

    assert audit.verify(event) is not None


def test_an_unknown_decision_or_a_float_is_refused_by_name():
    context = audit.AuditContext(stack="s", producer="p", actor="a", correlation_id="c")
    moment = datetime(2030, 1, 1, tzinfo=UTC)

    with pytest.raises(audit.AuditEventError, match="decision 'training_maybe'"):
        audit.audit_event(context, decision="training_maybe", key="k", subject={}, reason="", time=moment)
    with pytest.raises(audit.AuditEventError, match=r"details\.value is a float"):
        audit.audit_event(
            context, decision="training_started", key="k", subject={}, reason="", time=moment, details={"value": 0.3}
        )


def test_the_audit_bus_must_be_configured(monkeypatch):
    monkeypatch.delenv("AUDIT_EVENT_BUS_NAME", raising=False)

    with pytest.raises(audit.AuditSettingsError, match="AUDIT_EVENT_BUS_NAME"):
        audit.audit_bus_name()


# --- retrain_on_drift -----------------------------------------------------------------------------------------


def test_a_drift_alarm_that_starts_training_leaves_one_training_started_event(drift_env, lambda_context):
    result = retrain_on_drift.handler(load_event("retrain_on_drift/alarm.json"), lambda_context)

    [event] = _intact(audited())
    assert event["decision"] == "training_started"
    assert event["subject"]["execution_arn"] == result["execution_arn"]
    assert event["subject"]["alarm_name"] == load_event("retrain_on_drift/alarm.json")["detail"]["alarmName"]
    assert event["details"]["trigger"] == "drift"
    assert event["actor"] == "retrain_on_drift"
    assert event["correlation_id"] == load_event("retrain_on_drift/alarm.json")["id"]


def test_a_redelivered_alarm_repeats_the_audit_id_of_its_start(drift_env, lambda_context):
    retrain_on_drift.handler(load_event("retrain_on_drift/alarm.json"), lambda_context)
    retrain_on_drift.handler(load_event("retrain_on_drift/alarm_redelivered.json"), lambda_context)

    first, again = _intact(audited())
    assert first["audit_id"] == again["audit_id"]
    assert (first["details"]["duplicate_delivery"], again["details"]["duplicate_delivery"]) == (False, True)


def test_a_start_held_back_by_the_cooldown_is_audited_as_skipped_with_the_reason(drift_env, lambda_context):
    import boto3

    sfn = boto3.client("stepfunctions")
    arn = sfn.start_execution(stateMachineArn=drift_env, name="previous", input="{}")["executionArn"]
    sfn.stop_execution(executionArn=arn)
    event = load_event("retrain_on_drift/alarm.json")
    # The alarm entered ALARM after that training stopped: the cooldown, not the training, holds it back.
    entered = datetime.now(UTC) + timedelta(seconds=1)
    event["detail"]["state"]["timestamp"] = entered.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"

    retrain_on_drift.handler(event, lambda_context)

    skipped = [e for e in _intact(audited()) if e["decision"] == "training_skipped"]
    assert [e["details"]["action"] for e in skipped] == ["skipped_cooldown"]
    assert "cooldown" in skipped[0]["reason"]


@pytest.mark.parametrize(
    "event_file", ["retrain_on_drift/ok_transition.json", "retrain_on_drift/recheck_schedule.json"]
)
def test_an_event_that_decides_nothing_about_training_leaves_no_audit_event(drift_env, lambda_context, event_file):
    result = retrain_on_drift.handler(load_event(event_file), lambda_context)

    assert result["action"] == "ignored"
    assert audited() == []


def test_a_rejected_alarm_event_is_audited_as_skipped_with_the_reason(drift_env, lambda_context):
    retrain_on_drift.handler(load_event("retrain_on_drift/another_account.json"), lambda_context)

    [event] = _intact(audited())
    assert (event["decision"], event["details"]["action"]) == ("training_skipped", "rejected")
    assert "account" in event["reason"]


def test_the_business_schedule_start_is_audited_with_its_scheduled_time(drift_env, lambda_context, monkeypatch):
    from trigger_support import RETRAINING_SCHEDULE_RULE_ARN

    monkeypatch.setenv("RETRAINING_SCHEDULE_RULE_ARN", RETRAINING_SCHEDULE_RULE_ARN)

    retrain_on_drift.handler(load_event("retrain_on_drift/scheduled_retraining.json"), lambda_context)

    [event] = _intact(audited())
    assert (event["decision"], event["details"]["trigger"]) == ("training_started", "schedule")
    assert event["details"]["scheduled_time"]


# --- retrain_on_new_data --------------------------------------------------------------------------------------


def test_new_data_starts_one_training_and_its_event_names_every_object(new_data_env, lambda_context):
    retrain_on_new_data.handler(load_event("retrain_on_new_data/burst.json"), lambda_context)

    [execution] = executions(new_data_env)
    [event] = [e for e in _intact(audited()) if e["decision"] == "training_started"]
    assert event["subject"]["execution_arn"] == execution["executionArn"]
    assert event["details"]["objects"] == execution["input"]["objects"]


def test_a_duplicate_object_version_is_audited_as_skipped(new_data_env, lambda_context):
    retrain_on_new_data.handler(load_event("retrain_on_new_data/object_created.json"), lambda_context)
    retrain_on_new_data.handler(load_event("retrain_on_new_data/object_created.json"), lambda_context)

    decisions = [(e["decision"], e["details"]["action"]) for e in _intact(audited())]
    assert decisions == [("training_started", "started"), ("training_skipped", "duplicate")]


def test_an_invalid_object_is_audited_as_skipped_and_an_ignored_key_is_not(new_data_env, lambda_context):
    retrain_on_new_data.handler(load_event("retrain_on_new_data/empty_object.json"), lambda_context)
    retrain_on_new_data.handler(load_event("retrain_on_new_data/outside_prefix_and_wrong_suffix.json"), lambda_context)

    [event] = _intact(audited())
    assert (event["decision"], event["details"]["action"]) == ("training_skipped", "rejected")
    assert "empty" in event["reason"]
