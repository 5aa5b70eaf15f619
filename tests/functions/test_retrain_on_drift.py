"""retrain_on_drift: which alarm events start training, and what holds a start back."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import boto3
import pytest
import retrain_on_drift
from common.idempotency import persistence_layer
from common.settings import DriftSettings, SettingsError
from lambda_test_support import MODEL_NAME, executions, load_event, utc

DRIFT_PREFIX = f"{MODEL_NAME}-drift"
DATA_URI = "s3://mlops-local-data-123456789012-us-east-1/incoming/"


@pytest.fixture
def drift_env(monkeypatch: pytest.MonkeyPatch, training_state_machine: str, idempotency_table: str) -> str:
    monkeypatch.setenv("MODEL_NAME", MODEL_NAME)
    monkeypatch.setenv("DRIFT_ALARM_PREFIX", DRIFT_PREFIX)
    monkeypatch.setenv("RETRAIN_COOLDOWN_MINUTES", "360")
    monkeypatch.setenv("TRAINING_DATA_URI", DATA_URI)
    return training_state_machine


def _handle(event_file: str, now_text: str, context: object) -> retrain_on_drift.DriftDecision:
    """Call the logic with a controlled clock, as the handler does with the real one."""
    settings = DriftSettings.from_env()
    return retrain_on_drift.handle_alarm(
        retrain_on_drift.AlarmStateChangeEvent.model_validate(load_event(event_file)),
        settings,
        sfn_client=boto3.client("stepfunctions"),
        persistence=persistence_layer(settings.idempotency_table_name),
        context=context,  # type: ignore[arg-type]
        now=utc(now_text),
    )


def test_drift_alarm_entering_alarm_starts_training_with_the_reason_in_its_input(drift_env, lambda_context):
    result = retrain_on_drift.handler(load_event("retrain_on_drift/alarm.json"), lambda_context)

    assert result["action"] == "started"
    [execution] = executions(drift_env)
    assert execution["name"] == result["execution_name"]
    assert execution["input"] == {
        "data_uri": DATA_URI,
        "tune": False,
        "trigger": {
            "type": "drift",
            "detail": {
                "alarm_name": "breast-cancer-drift-feature-baseline",
                "alarm_arn": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:breast-cancer-drift-feature-baseline",
                "metric": "aws/sagemaker/Endpoints/data-metrics/feature_baseline_drift_mean_radius",
                "state_change_time": "2024-05-14T09:21:45.125+0000",
                "reason": load_event("retrain_on_drift/alarm.json")["detail"]["state"]["reason"],
            },
        },
        "objects": [],
    }


def test_execution_name_is_a_valid_sagemaker_job_name_stem(drift_env, lambda_context):
    result = retrain_on_drift.handler(load_event("retrain_on_drift/alarm.json"), lambda_context)

    assert re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,55}", result["execution_name"])
    assert result["execution_name"].startswith(f"{MODEL_NAME}-drift-")


def test_redelivered_alarm_transition_starts_exactly_one_execution(drift_env, lambda_context):
    first = retrain_on_drift.handler(load_event("retrain_on_drift/alarm.json"), lambda_context)
    # Same transition, new EventBridge id: the key is the alarm's own name and state-change time.
    second = retrain_on_drift.handler(load_event("retrain_on_drift/alarm_redelivered.json"), lambda_context)

    assert len(executions(drift_env)) == 1
    assert second["duplicate"] is True
    assert second["execution_arn"] == first["execution_arn"]


@pytest.mark.parametrize(
    ("event_file", "reason_part"),
    [
        ("retrain_on_drift/ok_transition.json", "went to OK, not ALARM"),
        ("retrain_on_drift/insufficient_data.json", "went to INSUFFICIENT_DATA, not ALARM"),
        ("retrain_on_drift/unknown_alarm.json", "does not start with DRIFT_ALARM_PREFIX"),
    ],
)
def test_events_that_are_not_a_drift_alarm_entering_alarm_are_ignored_with_a_reason(
    drift_env, lambda_context, event_file, reason_part
):
    result = retrain_on_drift.handler(load_event(event_file), lambda_context)

    assert result["action"] == "ignored"
    assert reason_part in result["reason"]
    assert executions(drift_env) == []


def test_alarm_already_in_alarm_is_ignored(drift_env, lambda_context):
    event = load_event("retrain_on_drift/alarm.json")
    event["detail"]["previousState"]["value"] = "ALARM"

    result = retrain_on_drift.handler(event, lambda_context)

    assert result["action"] == "ignored"
    assert result["reason"] == f"alarm {event['detail']['alarmName']!r} was already in ALARM"
    assert executions(drift_env) == []


def test_malformed_alarm_event_is_rejected_with_one_logged_error_and_no_exception(drift_env, lambda_context, caplog):
    result = retrain_on_drift.handler(load_event("retrain_on_drift/missing_state.json"), lambda_context)

    assert result["action"] == "rejected"
    assert result["reason"] == "not a CloudWatch Alarm State Change event: detail.state: Field required"
    assert [record.levelname for record in caplog.records].count("ERROR") == 1
    assert executions(drift_env) == []


def test_running_training_execution_blocks_a_second_one(drift_env, lambda_context):
    boto3.client("stepfunctions").start_execution(stateMachineArn=drift_env, name="manual-run", input="{}")

    result = retrain_on_drift.handler(load_event("retrain_on_drift/alarm.json"), lambda_context)

    assert result["action"] == "skipped_running"
    assert "manual-run" in result["reason"]
    assert [execution["name"] for execution in executions(drift_env)] == ["manual-run"]


@pytest.mark.parametrize(
    ("minutes_after_stop", "expected_action"),
    [(10, "skipped_cooldown"), (359, "skipped_cooldown"), (361, "started")],
)
def test_cooldown_counts_from_the_newest_execution_end(drift_env, lambda_context, minutes_after_stop, expected_action):
    sfn = boto3.client("stepfunctions")
    previous = sfn.start_execution(stateMachineArn=drift_env, name="previous-run", input="{}")["executionArn"]
    sfn.stop_execution(executionArn=previous)
    stopped_at = sfn.describe_execution(executionArn=previous)["stopDate"]

    now = stopped_at + timedelta(minutes=minutes_after_stop)
    decision = _handle("retrain_on_drift/alarm.json", now.isoformat(), lambda_context)

    assert decision.action == expected_action


def test_execution_closed_under_the_same_name_counts_as_started(drift_env, lambda_context, monkeypatch):
    # GIVEN an execution of this transition that ran and closed, and an idempotency record that expired
    monkeypatch.setenv("RETRAIN_COOLDOWN_MINUTES", "0")
    first = retrain_on_drift.handler(load_event("retrain_on_drift/alarm.json"), lambda_context)
    boto3.client("stepfunctions").stop_execution(executionArn=first["execution_arn"])
    boto3.client("dynamodb").delete_table(TableName=DriftSettings.from_env().idempotency_table_name)
    boto3.client("dynamodb").create_table(
        TableName=DriftSettings.from_env().idempotency_table_name,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )

    # WHEN the same transition is delivered again
    again = retrain_on_drift.handler(load_event("retrain_on_drift/alarm.json"), lambda_context)

    # THEN StartExecution's ExecutionAlreadyExists is the earlier start, not a failure
    assert again["action"] == "started"
    assert again["execution_arn"] == first["execution_arn"]
    assert "already started" in again["reason"]
    assert len(executions(drift_env)) == 1


def test_every_decision_is_a_metric(drift_env, lambda_context, capsys):
    retrain_on_drift.handler(load_event("retrain_on_drift/alarm.json"), lambda_context)
    retrain_on_drift.handler(load_event("retrain_on_drift/ok_transition.json"), lambda_context)

    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    names = {
        metric["Name"]
        for blob in emitted
        for directive in blob["_aws"]["CloudWatchMetrics"]
        for metric in directive["Metrics"]
    }
    assert {"RetrainStarted", "AlarmIgnored"} <= names


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_missing_setting_is_an_error_naming_the_variable(drift_env, lambda_context, monkeypatch):
    monkeypatch.delenv("TRAINING_DATA_URI")

    with pytest.raises(SettingsError, match="TRAINING_DATA_URI is not set"):
        retrain_on_drift.handler(load_event("retrain_on_drift/alarm.json"), lambda_context)
