"""The business retraining schedule through retrain_on_drift: one training per firing, only under the training lease."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
import retrain_on_drift
from common.idempotency import persistence_layer
from common.scheduled_retraining import ScheduledFiring, handle_firing, start_scheduled_training
from common.settings import DriftSettings, SettingsError
from common.training import execution_arn
from lambda_test_support import IDEMPOTENCY_TABLE, MODEL_NAME, emitted_metric_names, executions, load_event
from trigger_support import DRIFT_PREFIX, RETRAINING_SCHEDULE_RULE_ARN, FailingAfter

DATA_URI = "s3://mlops-local-data-123456789012-us-east-1/incoming/"
FIRING_FILE = "retrain_on_drift/scheduled_retraining.json"
LEASE_KEY = {"id": {"S": f"training-lease.{MODEL_NAME}"}}


@pytest.fixture
def schedule_env(monkeypatch: pytest.MonkeyPatch, training_state_machine: str, idempotency_table: str) -> str:
    monkeypatch.setenv("MODEL_NAME", MODEL_NAME)
    monkeypatch.setenv("DRIFT_ALARM_PREFIX", DRIFT_PREFIX)
    monkeypatch.setenv("RETRAIN_COOLDOWN_MINUTES", "360")
    monkeypatch.setenv("TRAINING_DATA_URI", DATA_URI)
    monkeypatch.setenv("RETRAINING_SCHEDULE_RULE_ARN", RETRAINING_SCHEDULE_RULE_ARN)
    return training_state_machine


def _lease_holder() -> str | None:
    item = boto3.client("dynamodb").get_item(TableName=IDEMPOTENCY_TABLE, Key=LEASE_KEY, ConsistentRead=True)
    return item["Item"]["execution_arn"]["S"] if "Item" in item else None


def _redelivered(event: dict[str, Any]) -> dict[str, Any]:
    """The same firing delivered again: EventBridge gives it a new `id`, the same `time`."""
    return {**event, "id": "0b6a3c1e-2f4d-4e8a-9c7b-1a3d5e7f9b2c"}


def _firing(settings: DriftSettings) -> ScheduledFiring:
    event = load_event(FIRING_FILE)
    return ScheduledFiring(
        rule_arn=event["resources"][0], scheduled_at=datetime.fromisoformat(event["time"].replace("Z", "+00:00"))
    )


def test_scheduled_start_takes_the_training_lease(schedule_env, lambda_context):
    result = retrain_on_drift.handler(load_event(FIRING_FILE), lambda_context)

    assert result["action"] == "started"
    [execution] = executions(schedule_env)
    assert execution["name"] == result["execution_name"]
    assert re.fullmatch(rf"{MODEL_NAME}-schedule-[0-9a-f]{{16}}", execution["name"])
    # The lease names the scheduled execution, so a drift alarm or new data arriving now defers to it.
    assert _lease_holder() == execution["executionArn"] == result["execution_arn"]
    assert execution["input"] == {
        "data_uri": DATA_URI,
        "tune": False,
        "trigger": {
            "type": "schedule",
            "detail": {"rule_arn": RETRAINING_SCHEDULE_RULE_ARN, "scheduled_time": "2024-05-13T06:00:00+00:00"},
        },
        "objects": [],
    }


def test_scheduled_start_while_a_training_runs_does_not_start_a_second_one(schedule_env, lambda_context, caplog):
    # GIVEN a drift training that took the lease and runs
    drift = retrain_on_drift.handler(load_event("retrain_on_drift/alarm.json"), lambda_context)
    assert drift["action"] == "started"

    result = retrain_on_drift.handler(load_event(FIRING_FILE), lambda_context)

    assert result["action"] == "skipped_running"
    assert drift["execution_name"] in result["reason"]
    assert result["execution_name"] is None
    assert "the next one runs as usual" in result["reason"]
    assert [execution["name"] for execution in executions(schedule_env)] == [drift["execution_name"]]
    assert _lease_holder() == drift["execution_arn"]
    assert any("scheduled retraining skipped_running" in record.getMessage() for record in caplog.records)


def test_scheduled_start_defers_to_a_lease_whose_execution_is_still_being_started(schedule_env, lambda_context):
    # GIVEN another trigger wrote the lease a moment ago and has not called StartExecution yet
    settings = DriftSettings.from_env()
    other = execution_arn(schedule_env, f"{MODEL_NAME}-new-data-0123456789abcdef")
    assert retrain_on_drift.training_lease(settings, boto3.client("stepfunctions")).acquire(other, datetime.now(UTC))

    result = retrain_on_drift.handler(load_event(FIRING_FILE), lambda_context)

    assert result["action"] == "skipped_running"
    assert "not started yet" in result["reason"]
    assert executions(schedule_env) == []
    assert _lease_holder() == other


def test_redelivered_schedule_starts_one_execution(schedule_env, lambda_context):
    first = retrain_on_drift.handler(load_event(FIRING_FILE), lambda_context)
    # The first training ends before the redelivery arrives: nothing runs, yet the firing was already answered.
    boto3.client("stepfunctions").stop_execution(executionArn=first["execution_arn"])
    second = retrain_on_drift.handler(_redelivered(load_event(FIRING_FILE)), lambda_context)

    assert first["action"] == second["action"] == "started"
    assert second["duplicate"] is True
    assert second["execution_arn"] == first["execution_arn"]
    assert len(executions(schedule_env)) == 1


def test_redelivered_schedule_without_its_idempotency_record_finds_its_execution_by_name(schedule_env):
    # The deterministic name alone holds too (a record expired, or a start decided outside the store).
    settings = DriftSettings.from_env()
    sfn = boto3.client("stepfunctions")
    lease = retrain_on_drift.training_lease(settings, sfn)

    first = start_scheduled_training(_firing(settings), settings, sfn, lease, datetime.now(UTC))
    again = start_scheduled_training(_firing(settings), settings, sfn, lease, datetime.now(UTC))

    assert (first.action, again.action) == ("started", "started")
    assert again.execution_arn == first.execution_arn
    assert "already running" in again.reason
    assert len(executions(schedule_env)) == 1


def test_a_skipped_firing_is_not_started_late_by_its_redelivery(schedule_env, lambda_context):
    sfn = boto3.client("stepfunctions")
    running = sfn.start_execution(stateMachineArn=schedule_env, name="manual-run", input="{}")["executionArn"]
    skipped = retrain_on_drift.handler(load_event(FIRING_FILE), lambda_context)
    sfn.stop_execution(executionArn=running)

    again = retrain_on_drift.handler(_redelivered(load_event(FIRING_FILE)), lambda_context)

    assert skipped["action"] == again["action"] == "skipped_running"
    assert again["duplicate"] is True
    assert [execution["name"] for execution in executions(schedule_env)] == ["manual-run"]


def test_a_start_whose_request_was_lost_raises_for_a_retry_that_starts_it_once(schedule_env, lambda_context):
    settings = DriftSettings.from_env()
    persistence = persistence_layer(settings.idempotency_table_name)
    lost = FailingAfter(boto3.client("stepfunctions"), "start_execution", land=False)
    lost_lease = retrain_on_drift.training_lease(settings, lost)

    with pytest.raises(RuntimeError, match="could not start the scheduled training"):
        handle_firing(_firing(settings), settings, lost, lost_lease, persistence, lambda_context, datetime.now(UTC))
    assert executions(schedule_env) == []

    # Lambda's retry: the in-progress record went with the exception, the lease still names this execution.
    sfn = boto3.client("stepfunctions")
    retried = handle_firing(
        _firing(settings),
        settings,
        sfn,
        retrain_on_drift.training_lease(settings, sfn),
        persistence,
        lambda_context,
        datetime.now(UTC),
    )

    assert retried.action == "started"
    assert retried.duplicate is False
    assert [execution["executionArn"] for execution in executions(schedule_env)] == [retried.execution_arn]


def test_the_drift_recheck_schedule_still_reaches_the_recheck(schedule_env, lambda_context):
    result = retrain_on_drift.handler(load_event("retrain_on_drift/recheck_schedule.json"), lambda_context)

    assert result["action"] == "ignored"
    assert "waits for a training" in result["reason"]
    assert executions(schedule_env) == []


def test_retraining_schedule_event_of_another_account_is_rejected(schedule_env, lambda_context, caplog):
    event = load_event(FIRING_FILE)
    event["account"] = "210987654321"

    result = retrain_on_drift.handler(event, lambda_context)

    assert result["action"] == "rejected"
    assert "from account 210987654321" in result["reason"]
    assert [record.levelname for record in caplog.records].count("ERROR") == 1
    assert executions(schedule_env) == []


def test_every_scheduled_decision_is_a_metric(schedule_env, lambda_context, capsys):
    retrain_on_drift.handler(load_event(FIRING_FILE), lambda_context)
    later_firing = {**load_event(FIRING_FILE), "time": "2024-05-20T06:00:00Z"}
    retrain_on_drift.handler(later_firing, lambda_context)

    names = emitted_metric_names(capsys.readouterr().out)
    assert {"ScheduledRetrainingStarted", "ScheduledRetrainingSkipped"} <= names


def test_a_retraining_schedule_rule_of_another_account_is_refused_naming_the_variable(schedule_env, monkeypatch):
    monkeypatch.setenv(
        "RETRAINING_SCHEDULE_RULE_ARN", "arn:aws:events:us-east-1:210987654321:rule/mlops-local-scheduled-retraining"
    )

    with pytest.raises(
        SettingsError, match=r"RETRAINING_SCHEDULE_RULE_ARN=.* is not a rule ARN of the stack's account"
    ):
        DriftSettings.from_env()
