"""retrain_on_drift: which alarm events start training, what holds a start back, and the re-check that acts later."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
import retrain_on_drift
from common.idempotency import persistence_layer
from common.settings import DriftSettings, SettingsError
from common.single_flight import START_GRACE_SECONDS, TrainingLease
from common.training import MAX_EXECUTION_INPUT_BYTES, encoded_input_size, execution_arn
from lambda_test_support import MODEL_NAME, emitted_metric_names, executions, load_event, utc
from trigger_support import DRIFT_PREFIX, BeforeReturning, FailingAfter

DATA_URI = "s3://mlops-local-data-123456789012-us-east-1/incoming/"
ALARM = f"{DRIFT_PREFIX}feature-baseline"


@pytest.fixture
def drift_env(monkeypatch: pytest.MonkeyPatch, training_state_machine: str, idempotency_table: str) -> str:
    monkeypatch.setenv("MODEL_NAME", MODEL_NAME)
    monkeypatch.setenv("DRIFT_ALARM_PREFIX", DRIFT_PREFIX)
    monkeypatch.setenv("RETRAIN_COOLDOWN_MINUTES", "360")
    monkeypatch.setenv("TRAINING_DATA_URI", DATA_URI)
    return training_state_machine


def _lease(settings: DriftSettings, sfn: Any = None, dynamodb: Any = None) -> TrainingLease:
    return retrain_on_drift.training_lease(settings, sfn or boto3.client("stepfunctions"), dynamodb)


def _handle(
    event: dict[str, Any] | str, now: datetime, context: object, sfn: Any = None, dynamodb: Any = None
) -> retrain_on_drift.DriftDecision:
    """Call the logic with a controlled clock and clients, as the handler does with the real ones."""
    settings = DriftSettings.from_env()
    sfn = sfn or boto3.client("stepfunctions")
    return retrain_on_drift.handle_alarm(
        retrain_on_drift.AlarmStateChangeEvent.model_validate(load_event(event) if isinstance(event, str) else event),
        settings,
        sfn_client=sfn,
        lease=_lease(settings, sfn, dynamodb),
        persistence=persistence_layer(settings.idempotency_table_name, dynamodb),
        context=context,  # type: ignore[arg-type]
        now=now,
    )


def _recheck(now: datetime, sfn: Any = None) -> retrain_on_drift.DriftDecision:
    settings = DriftSettings.from_env()
    sfn = sfn or boto3.client("stepfunctions")
    return retrain_on_drift.recheck(settings, boto3.client("cloudwatch"), sfn, _lease(settings, sfn), now)


def _alarm_event_at(entered: datetime, name: str = ALARM) -> dict[str, Any]:
    """alarm.json for alarm `name`, entering ALARM at `entered`."""
    event = load_event("retrain_on_drift/alarm.json")
    event["detail"]["alarmName"] = name
    event["resources"] = [f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{name}"]
    event["detail"]["state"]["timestamp"] = entered.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"
    return event


def _alarm_in_alarm(name: str = ALARM) -> datetime:
    """A real drift alarm of the stack, put into ALARM now; returns when it entered ALARM."""
    cloudwatch = boto3.client("cloudwatch")
    cloudwatch.put_metric_alarm(
        AlarmName=name,
        Namespace="aws/sagemaker/Endpoints/data-metrics",
        MetricName="feature_baseline_drift_mean_radius",
        Statistic="Maximum",
        Period=300,
        EvaluationPeriods=1,
        Threshold=0.2,
        ComparisonOperator="GreaterThanThreshold",
    )
    cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="Threshold Crossed: 0.31 > 0.2")
    alarm = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]
    return alarm.get("StateTransitionedTimestamp") or alarm["StateUpdatedTimestamp"]


def _closed_run(state_machine_arn: str, name: str = "previous-run") -> datetime:
    """A training execution that ran and stopped; returns when it stopped."""
    sfn = boto3.client("stepfunctions")
    arn = sfn.start_execution(stateMachineArn=state_machine_arn, name=name, input="{}")["executionArn"]
    sfn.stop_execution(executionArn=arn)
    return sfn.describe_execution(executionArn=arn)["stopDate"]


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
                "alarm_name": ALARM,
                "alarm_arn": f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{ALARM}",
                "metric": "aws/sagemaker/Endpoints/data-metrics/feature_baseline_drift_mean_radius",
                # The newest breaching data point and the threshold of the event's reasonData.
                "value": 0.31,
                "threshold": 0.2,
                "state_change_time": "2024-05-14T09:21:45.125+00:00",
                "reason": load_event("retrain_on_drift/alarm.json")["detail"]["state"]["reason"],
                "found_by": "alarm_event",
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
        # The stack mlops-local's prefix is mlops-local-drift-: the alarm of a stack whose name merely starts
        # the same way (mlops-local-drift2-...) is not ours.
        (
            "retrain_on_drift/prefix_without_separator.json",
            "does not start with DRIFT_ALARM_PREFIX 'mlops-local-drift-'",
        ),
    ],
)
def test_events_that_are_not_a_drift_alarm_entering_alarm_are_ignored_with_a_reason(
    drift_env, lambda_context, event_file, reason_part
):
    result = retrain_on_drift.handler(load_event(event_file), lambda_context)

    assert result["action"] == "ignored"
    assert reason_part in result["reason"]
    assert executions(drift_env) == []


@pytest.mark.parametrize(
    ("event_file", "reason_part"),
    [
        ("retrain_on_drift/another_account.json", "from account 210987654321 in us-east-1, not this stack's"),
        ("retrain_on_drift/another_region.json", "from account 123456789012 in eu-west-1, not this stack's"),
        ("retrain_on_drift/foreign_alarm_arn.json", "are not the alarm's own ARN"),
    ],
)
def test_alarm_event_of_another_account_region_or_alarm_arn_is_rejected_with_one_logged_error(
    drift_env, lambda_context, caplog, event_file, reason_part
):
    result = retrain_on_drift.handler(load_event(event_file), lambda_context)

    assert result["action"] == "rejected"
    assert reason_part in result["reason"]
    assert [record.levelname for record in caplog.records].count("ERROR") == 1
    assert executions(drift_env) == []


def test_prefix_without_its_separator_is_refused_naming_the_variable(drift_env, monkeypatch):
    monkeypatch.setenv("DRIFT_ALARM_PREFIX", "mlops-local-drift")

    with pytest.raises(SettingsError, match=r"DRIFT_ALARM_PREFIX='mlops-local-drift' must end with its separator"):
        DriftSettings.from_env()


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

    result = retrain_on_drift.handler(_alarm_event_at(datetime.now(UTC) + timedelta(seconds=1)), lambda_context)

    assert result["action"] == "skipped_running"
    assert "manual-run" in result["reason"]
    assert [execution["name"] for execution in executions(drift_env)] == ["manual-run"]


@pytest.mark.parametrize(
    ("minutes_after_stop", "expected_action"),
    [(10, "skipped_cooldown"), (359, "skipped_cooldown"), (361, "started")],
)
def test_cooldown_counts_from_the_newest_execution_end(drift_env, lambda_context, minutes_after_stop, expected_action):
    stopped_at = _closed_run(drift_env)

    now = stopped_at + timedelta(minutes=minutes_after_stop)
    decision = _handle(_alarm_event_at(stopped_at + timedelta(minutes=1)), now, lambda_context)

    assert decision.action == expected_action


def test_alarm_that_entered_alarm_before_the_newest_training_started_is_covered_by_it(drift_env, lambda_context):
    # GIVEN a training that started after the alarm's transition (another alarm of the same episode started it)
    entered = datetime.now(UTC) - timedelta(minutes=5)
    boto3.client("stepfunctions").start_execution(stateMachineArn=drift_env, name="answering-run", input="{}")

    decision = _handle(_alarm_event_at(entered), datetime.now(UTC), lambda_context)

    assert decision.action == "covered"
    assert decision.execution_name == "answering-run"
    assert [execution["name"] for execution in executions(drift_env)] == ["answering-run"]


def test_skip_is_not_remembered_and_the_recheck_starts_training_when_the_cooldown_ends(drift_env, lambda_context):
    # GIVEN a drift alarm that entered ALARM during the cooldown and stays in ALARM (it never transitions again)
    stopped_at = _closed_run(drift_env)
    entered = _alarm_in_alarm()
    event = _alarm_event_at(entered)
    during_cooldown = stopped_at + timedelta(minutes=10)
    assert _handle(event, during_cooldown, lambda_context).action == "skipped_cooldown"

    # WHEN the re-check runs during the cooldown, then after it
    still_cooling = _recheck(during_cooldown + timedelta(minutes=15))
    after_cooldown = _recheck(stopped_at + timedelta(minutes=361))

    # THEN the drift is acted on once the cooldown is over, under the name the event would have used
    assert still_cooling.action == "skipped_cooldown"
    assert after_cooldown.action == "started"
    redelivered = _handle(event, stopped_at + timedelta(minutes=362), lambda_context)
    assert (redelivered.action, redelivered.execution_arn) == ("started", after_cooldown.execution_arn)
    assert redelivered.duplicate is False  # the skip was not stored as the transition's result
    started = [execution for execution in executions(drift_env) if execution["name"] != "previous-run"]
    assert [execution["input"]["trigger"]["detail"]["found_by"] for execution in started] == ["recheck"]


def test_recheck_starts_one_training_for_several_alarms_and_none_again_while_they_stay_in_alarm(
    drift_env, lambda_context
):
    _alarm_in_alarm(f"{DRIFT_PREFIX}mean-radius")
    _alarm_in_alarm(f"{DRIFT_PREFIX}mean-texture")
    now = datetime.now(UTC) + timedelta(seconds=1)

    first = _recheck(now)
    boto3.client("stepfunctions").stop_execution(executionArn=first.execution_arn)
    later = _recheck(now + timedelta(days=2))

    assert first.action == "started"
    assert first.alarm_name == f"{DRIFT_PREFIX}mean-radius"
    assert later.action == "ignored"
    assert "waits for a training" in later.reason
    assert len(executions(drift_env)) == 1


def test_recheck_ignores_alarms_outside_the_stack_prefix(drift_env):
    _alarm_in_alarm("mlops-local-drift2-feature-baseline")
    _alarm_in_alarm("payments-api-latency-p99")

    decision = _recheck(datetime.now(UTC) + timedelta(seconds=1))

    assert decision.action == "ignored"
    assert executions(drift_env) == []


def test_scheduled_recheck_event_reaches_the_recheck_through_the_handler(drift_env, lambda_context):
    _alarm_in_alarm()

    result = retrain_on_drift.handler(load_event("retrain_on_drift/recheck_schedule.json"), lambda_context)

    assert result["action"] == "started"
    assert result["alarm_name"] == ALARM


def test_two_interleaved_alarms_start_one_training(drift_env, lambda_context):
    # GIVEN alarm A's trigger has seen no running execution, and alarm B's trigger runs to the end in between
    settings = DriftSettings.from_env()
    entered = datetime.now(UTC) - timedelta(seconds=30)
    now = datetime.now(UTC) + timedelta(seconds=1)
    b_decisions = []

    def alarm_b_runs() -> None:
        b_decisions.append(_handle(_alarm_event_at(entered, f"{DRIFT_PREFIX}mean-texture"), now, lambda_context))

    real_sfn = boto3.client("stepfunctions")
    interleaved_sfn = BeforeReturning(real_sfn, "list_executions", alarm_b_runs)
    # A checked ListExecutions before B started; the lease is then all that stands between them.
    settings_lease = retrain_on_drift.training_lease(settings, real_sfn)
    a_view = interleaved_sfn.list_executions(stateMachineArn=drift_env, statusFilter="RUNNING", maxResults=10)
    assert a_view["executions"] == []
    name_a = "breast-cancer-drift-interleaved"
    taken = settings_lease.acquire(execution_arn(drift_env, name_a), now)

    # THEN B started, and A cannot take the lease B's RUNNING execution holds
    assert [decision.action for decision in b_decisions] == ["started"]
    assert not taken.acquired
    assert "is RUNNING" in taken.reason
    assert len(executions(drift_env)) == 1


def test_lease_of_an_execution_that_never_started_is_held_for_the_grace_period_then_taken_over(drift_env):
    settings = DriftSettings.from_env()
    lease = _lease(settings)
    now = datetime.now(UTC)
    never_started = execution_arn(drift_env, "crashed-before-start")
    assert lease.acquire(never_started, now).acquired

    within_grace = lease.acquire(execution_arn(drift_env, "next"), now + timedelta(seconds=START_GRACE_SECONDS - 1))
    after_grace = lease.acquire(execution_arn(drift_env, "next"), now + timedelta(seconds=START_GRACE_SECONDS + 1))

    assert not within_grace.acquired
    assert "may still be starting it" in within_grace.reason
    assert after_grace.acquired


def test_two_triggers_writing_the_lease_at_the_same_moment_cannot_both_hold_it(drift_env):
    settings = DriftSettings.from_env()
    now = datetime.now(UTC)
    other = _lease(settings)
    outcomes = []

    def other_trigger_takes_it() -> None:
        outcomes.append(other.acquire(execution_arn(drift_env, "other"), now))

    # Both read "no lease"; the other trigger writes first.
    racing = _lease(settings, dynamodb=BeforeReturning(boto3.client("dynamodb"), "get_item", other_trigger_takes_it))
    mine = racing.acquire(execution_arn(drift_env, "mine"), now)

    assert [outcome.acquired for outcome in outcomes] == [True]
    assert not mine.acquired
    assert mine.reason == "another trigger took the lease at the same moment"


def test_start_that_timed_out_after_it_landed_counts_as_started(drift_env, lambda_context):
    timing_out = FailingAfter(boto3.client("stepfunctions"), "start_execution", land=True)

    decision = _handle("retrain_on_drift/alarm.json", datetime.now(UTC), lambda_context, sfn=timing_out)

    [execution] = executions(drift_env)
    assert decision.action == "started"
    assert decision.execution_arn == execution["executionArn"]
    assert "after it landed" in decision.reason


def test_start_that_timed_out_before_landing_raises_for_a_retry_and_the_retry_starts_it(drift_env, lambda_context):
    lost = FailingAfter(boto3.client("stepfunctions"), "start_execution", land=False)

    # The lease keeps naming the execution: its own retry may take it, nobody else within the grace period.
    with pytest.raises(RuntimeError, match="the execution does not exist yet; it may still land"):
        _handle("retrain_on_drift/alarm.json", datetime.now(UTC), lambda_context, sfn=lost)
    retried = _handle("retrain_on_drift/alarm.json", datetime.now(UTC), lambda_context)

    assert retried.action == "started"
    assert len(executions(drift_env)) == 1


def test_failed_commit_of_the_idempotency_record_does_not_start_a_second_training(drift_env, lambda_context):
    # GIVEN the start succeeded and storing its result failed (Powertools raises, so Lambda retries the event)
    failing_store = FailingAfter(boto3.client("dynamodb"), "update_item", land=False)
    # The first invocation then ran out of time: its in-progress record expires with it.
    out_of_time = SimpleNamespace(**vars(lambda_context), get_remaining_time_in_millis=lambda: 0)
    with pytest.raises(Exception, match="update_item"):
        _handle("retrain_on_drift/alarm.json", datetime.now(UTC), out_of_time, dynamodb=failing_store)

    # WHEN Lambda retries the event
    retried = _handle("retrain_on_drift/alarm.json", datetime.now(UTC) + timedelta(minutes=1), lambda_context)

    # THEN it finds the execution its deterministic name names
    [execution] = executions(drift_env)
    assert retried.action == "started"
    assert retried.execution_arn == execution["executionArn"]


def test_huge_alarm_reason_is_truncated_with_a_marker_and_the_input_stays_under_the_limit(drift_env, lambda_context):
    event = load_event("retrain_on_drift/huge_reason.json")
    assert len(event["detail"]["state"]["reason"]) > MAX_EXECUTION_INPUT_BYTES

    result = retrain_on_drift.handler(event, lambda_context)

    assert result["action"] == "started"
    [execution] = executions(drift_env)
    reason = execution["input"]["trigger"]["detail"]["reason"]
    assert reason.startswith("Threshold Crossed: 0.31 0.31")
    assert re.search(r"\.\.\. \[truncated \d+ of \d+ characters\]$", reason)
    assert encoded_input_size(execution["input"]) < MAX_EXECUTION_INPUT_BYTES


def test_alarm_name_longer_than_cloudwatch_allows_is_rejected(drift_env, lambda_context):
    name = DRIFT_PREFIX + "x" * 300
    event = _alarm_event_at(utc("2024-05-14T09:21"), name)

    result = retrain_on_drift.handler(event, lambda_context)

    assert result["action"] == "rejected"
    assert "detail.alarmName: String should have at most 255 characters" in result["reason"]


def test_execution_closed_under_the_same_name_counts_as_started(drift_env, lambda_context, monkeypatch):
    # GIVEN an execution of this transition that ran and closed, and an idempotency record that expired
    monkeypatch.setenv("RETRAIN_COOLDOWN_MINUTES", "0")
    first = retrain_on_drift.handler(load_event("retrain_on_drift/alarm.json"), lambda_context)
    boto3.client("stepfunctions").stop_execution(executionArn=first["execution_arn"])
    table = DriftSettings.from_env().idempotency_table_name
    for item in boto3.client("dynamodb").scan(TableName=table)["Items"]:
        boto3.client("dynamodb").delete_item(TableName=table, Key={"id": item["id"]})

    # WHEN the same transition is delivered again
    again = retrain_on_drift.handler(load_event("retrain_on_drift/alarm.json"), lambda_context)

    # THEN the execution its name names is the earlier start, not a reason for a second one
    assert again["action"] == "started"
    assert again["execution_arn"] == first["execution_arn"]
    assert "already started" in again["reason"]
    assert len(executions(drift_env)) == 1


def test_every_decision_is_a_metric(drift_env, lambda_context, capsys):
    retrain_on_drift.handler(load_event("retrain_on_drift/alarm.json"), lambda_context)
    retrain_on_drift.handler(load_event("retrain_on_drift/ok_transition.json"), lambda_context)

    names = emitted_metric_names(capsys.readouterr().out)
    assert {"RetrainStarted", "AlarmIgnored"} <= names


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_missing_setting_is_an_error_naming_the_variable(drift_env, lambda_context, monkeypatch):
    monkeypatch.delenv("TRAINING_DATA_URI")

    with pytest.raises(SettingsError, match="TRAINING_DATA_URI is not set"):
        retrain_on_drift.handler(load_event("retrain_on_drift/alarm.json"), lambda_context)


@pytest.mark.parametrize(
    ("reason_data", "expected"),
    [
        ('{"recentDatapoints": [0.1, 0.62], "threshold": 0.5}', (0.62, 0.5)),
        ('{"recentDatapoints": [], "threshold": 1}', (None, 1.0)),
        ("", (None, None)),
        ("not json", (None, None)),
        ('["a list"]', (None, None)),
        ('{"recentDatapoints": ["NaN?"], "threshold": true}', (None, None)),
    ],
)
def test_breaching_value_reads_the_newest_data_point_and_the_threshold(reason_data, expected):
    assert retrain_on_drift.breaching_value(reason_data) == expected


def test_the_recheck_records_the_breaching_value_of_the_monitoring_alarm(drift_env):
    # GIVEN the stack's drift-feature-share alarm in ALARM with CloudWatch's reasonData
    name = f"{DRIFT_PREFIX}feature-share"
    cloudwatch = boto3.client("cloudwatch")
    cloudwatch.put_metric_alarm(
        AlarmName=name,
        Namespace="mlops",
        MetricName="DriftedFeatureShare",
        Dimensions=[{"Name": "Endpoint", "Value": "mlops-local-endpoint"}],
        Statistic="Maximum",
        Period=3600,
        EvaluationPeriods=1,
        Threshold=0.5,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    cloudwatch.set_alarm_state(
        AlarmName=name,
        StateValue="ALARM",
        StateReason="Threshold Crossed: 1 datapoint [0.67] was greater than or equal to the threshold (0.5).",
        StateReasonData='{"version": "1.0", "recentDatapoints": [0.67], "threshold": 0.5}',
    )

    # WHEN the re-check runs
    decision = _recheck(datetime.now(UTC))

    # THEN training starts, its input naming the alarm, the metric and the value that crossed
    assert decision.action == "started"
    [execution] = executions(drift_env)
    detail = execution["input"]["trigger"]["detail"]
    assert (detail["alarm_name"], detail["metric"], detail["value"], detail["threshold"]) == (
        name,
        "mlops/DriftedFeatureShare",
        0.67,
        0.5,
    )
