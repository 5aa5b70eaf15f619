"""The twin's CloudWatch alarms: evaluation as CloudWatch does it, state change events, SetAlarmState, refusals."""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.cloudwatch.models import cloudwatch_backends

from emulator.alarms import AlarmEvaluator
from emulator.clock import Clock
from emulator.eventbridge import EventRouter
from emulator.stack_spec import DeployedStack, RuleSpec, RuleTarget

REGION = "us-east-1"
ACCOUNT = "123456789012"
NAMESPACE = "mlops"
DIMENSIONS = [{"Name": "Endpoint", "Value": "mlops-dev-endpoint"}]


@dataclass
class Harness:
    clock: Clock
    evaluator: AlarmEvaluator
    events: list[dict[str, Any]]
    client: Any
    # A minute boundary well behind the clock's now, so datapoints and evaluations are at fixed instants.
    t0: datetime

    def alarm(self, name: str = "mlops-dev-drift-feature-share", **fields: Any) -> str:
        arguments: dict[str, Any] = {
            "AlarmName": name,
            "Namespace": NAMESPACE,
            "MetricName": "DriftedFeatureShare",
            "Dimensions": DIMENSIONS,
            "Statistic": "Maximum",
            "Period": 60,
            "EvaluationPeriods": 1,
            "Threshold": 0.3,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        }
        arguments.update(fields)
        self.client.put_metric_alarm(**{key: value for key, value in arguments.items() if value is not None})
        return name

    def put(self, minute: int, *values: float, metric: str = "DriftedFeatureShare", second: int = 10) -> None:
        self.client.put_metric_data(
            Namespace=NAMESPACE,
            MetricData=[
                {
                    "MetricName": metric,
                    "Dimensions": DIMENSIONS,
                    "Value": value,
                    "Timestamp": self.t0 + timedelta(minutes=minute, seconds=second),
                }
                for value in values
            ],
        )

    def evaluate(self, minute: int) -> list[dict[str, str]]:
        """Evaluate at the end of minute `minute` (the boundary after it)."""
        return self.evaluator.evaluate(self.t0 + timedelta(minutes=minute + 1))

    def state(self, name: str) -> dict[str, Any]:
        return dict(self.client.describe_alarms(AlarmNames=[name])["MetricAlarms"][0])


@pytest.fixture
def cw() -> Iterator[Harness]:
    with mock_aws():
        clock = Clock(speed=1.0)
        events: list[dict[str, Any]] = []
        evaluator = AlarmEvaluator(clock, events.append)
        evaluator.install()
        t0 = clock.now().replace(second=0, microsecond=0) - timedelta(hours=3)
        try:
            yield Harness(clock, evaluator, events, boto3.client("cloudwatch", region_name=REGION), t0)
        finally:
            evaluator.uninstall()


def test_a_new_alarm_starts_insufficient_data_and_an_update_keeps_its_state(cw: Harness) -> None:
    name = cw.alarm()
    assert cw.state(name)["StateValue"] == "INSUFFICIENT_DATA"
    assert cw.state(name)["StateReason"] == "Unchecked: Initial alarm creation"
    cw.put(0, 0.5)
    assert [change["to"] for change in cw.evaluate(0)] == ["ALARM"]
    cw.alarm(Threshold=0.4)  # PutMetricAlarm on an existing alarm changes its configuration, not its state

    assert cw.state(name)["StateValue"] == "ALARM"
    assert cw.state(name)["Threshold"] == 0.4


def test_the_state_reason_and_reason_data_read_as_cloudwatchs(cw: Harness) -> None:
    name = cw.alarm(Threshold=0.25)
    cw.put(0, 0.5)
    cw.evaluate(0)
    state = cw.state(name)

    stamp = (cw.t0).strftime("%d/%m/%y %H:%M:%S")
    assert state["StateReason"] == (
        f"Threshold Crossed: 1 out of the last 1 datapoints [0.5 ({stamp})] was greater than or equal to the "
        "threshold (0.25) (minimum 1 datapoint for OK -> ALARM transition)."
    )
    data = json.loads(state["StateReasonData"])
    assert data["version"] == "1.0"
    assert data["statistic"] == "Maximum"
    assert data["period"] == 60
    assert data["recentDatapoints"] == [0.5]
    assert data["threshold"] == 0.25
    assert data["startDate"] == cw.t0.strftime("%Y-%m-%dT%H:%M:%S.000+0000")


@pytest.mark.parametrize(
    ("statistic", "expected"),
    [("Sum", 9.0), ("Average", 3.0), ("Minimum", 1.0), ("Maximum", 6.0), ("SampleCount", 3.0)],
)
def test_each_statistic_is_computed_over_the_period(cw: Harness, statistic: str, expected: float) -> None:
    name = cw.alarm(Statistic=statistic, Threshold=expected)
    cw.put(0, 1.0, 2.0, 6.0)
    cw.put(1, 100.0)  # the next period: not part of the evaluated one
    cw.evaluate(0)

    state = cw.state(name)
    assert json.loads(state["StateReasonData"])["recentDatapoints"] == [expected]
    assert state["StateValue"] == "ALARM"


@pytest.mark.parametrize(
    ("comparison", "value", "expected"),
    [
        ("GreaterThanOrEqualToThreshold", 1.0, "ALARM"),
        ("GreaterThanThreshold", 1.0, "OK"),
        ("GreaterThanThreshold", 1.5, "ALARM"),
        ("LessThanThreshold", 1.0, "OK"),
        ("LessThanThreshold", 0.5, "ALARM"),
        ("LessThanOrEqualToThreshold", 1.0, "ALARM"),
        ("LessThanOrEqualToThreshold", 1.5, "OK"),
    ],
)
def test_every_comparison_operator(cw: Harness, comparison: str, value: float, expected: str) -> None:
    name = cw.alarm(ComparisonOperator=comparison, Threshold=1.0)
    cw.put(0, value)
    cw.evaluate(0)
    assert cw.state(name)["StateValue"] == expected


def test_m_out_of_n_needs_m_breaching_datapoints_among_the_last_n_periods(cw: Harness) -> None:
    name = cw.alarm(Period=120, EvaluationPeriods=3, DatapointsToAlarm=2)
    cw.put(0, 0.5)  # period [0, 2) minutes
    cw.put(2, 0.1)
    cw.put(4, 0.1)
    cw.evaluate(5)
    assert cw.state(name)["StateValue"] == "OK"

    cw.put(4, 0.9, second=30)  # the newest period's maximum now breaches: 2 of the last 3
    cw.evaluate(5)
    state = cw.state(name)
    assert state["StateValue"] == "ALARM"
    assert state["StateReason"].startswith("Threshold Crossed: 2 out of the last 3 datapoints [0.9 (")
    assert state["StateReason"].endswith("(minimum 2 datapoints for OK -> ALARM transition).")

    cw.evaluate(7)  # one period later the first breach has left the range
    assert cw.state(name)["StateValue"] == "OK"


@pytest.mark.parametrize(
    ("treatment", "all_missing", "partly_missing"),
    [
        # CloudWatch's "missing" is the default: all missing -> INSUFFICIENT_DATA; missing points left out.
        (None, "INSUFFICIENT_DATA", "OK"),
        ("missing", "INSUFFICIENT_DATA", "OK"),
        ("ignore", "OK", "OK"),  # ignore keeps the state it had (OK, from the first evaluation)
        ("notBreaching", "OK", "OK"),
        ("breaching", "ALARM", "ALARM"),
    ],
)
def test_each_treat_missing_data_mode(
    cw: Harness, treatment: str | None, all_missing: str, partly_missing: str
) -> None:
    name = cw.alarm(EvaluationPeriods=3, DatapointsToAlarm=2, TreatMissingData=treatment)
    cw.put(0, 0.1)
    cw.put(1, 0.1)
    cw.put(2, 0.1)
    cw.evaluate(2)
    assert cw.state(name)["StateValue"] == "OK"

    cw.put(4, 0.9)  # minutes 3 and 5 missing, one breaching datapoint present
    cw.evaluate(5)
    assert cw.state(name)["StateValue"] == partly_missing

    cw.evaluate(20)  # nothing in the last three minutes
    state = cw.state(name)
    assert state["StateValue"] == all_missing
    if treatment in (None, "missing"):
        assert state["StateReason"] == "Insufficient Data: 3 datapoints were unknown."
    if treatment == "notBreaching" and partly_missing == all_missing == "OK":
        assert cw.evaluator.changes[-1]["to"] == "OK"


def test_not_breaching_with_no_data_at_all_goes_ok_with_cloudwatchs_reason(cw: Harness) -> None:
    name = cw.alarm(TreatMissingData="notBreaching")
    cw.evaluate(0)
    state = cw.state(name)
    assert state["StateValue"] == "OK"
    assert state["StateReason"] == (
        "Threshold Crossed: no datapoints were received for 1 period and 1 missing datapoint was treated as "
        "[NonBreaching]."
    )


def test_the_state_change_event_has_cloudwatchs_shape(cw: Harness) -> None:
    name = cw.alarm(AlarmDescription="Share of drifted features", TreatMissingData="notBreaching")
    cw.evaluate(0)
    cw.put(1, 0.6)
    cw.evaluate(1)

    event = cw.events[-1]
    assert {key: event[key] for key in ("version", "detail-type", "source", "account", "region")} == {
        "version": "0",
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": ACCOUNT,
        "region": REGION,
    }
    assert event["resources"] == [f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}"]
    assert event["time"] == (cw.t0 + timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    detail = event["detail"]
    assert detail["alarmName"] == name
    assert detail["state"]["value"] == "ALARM"
    assert detail["previousState"]["value"] == "OK"
    assert detail["state"]["reason"].startswith("Threshold Crossed: 1 out of the last 1 datapoints [0.6 (")
    assert json.loads(detail["state"]["reasonData"])["recentDatapoints"] == [0.6]
    assert detail["state"]["timestamp"] == (cw.t0 + timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    assert detail["previousState"]["reason"].startswith("Threshold Crossed: no datapoints were received")
    configuration = detail["configuration"]
    assert configuration["description"] == "Share of drifted features"
    [metric] = configuration["metrics"]
    assert metric["returnData"] is True
    assert metric["id"]
    assert metric["metricStat"] == {
        "metric": {
            "dimensions": {"Endpoint": "mlops-dev-endpoint"},
            "name": "DriftedFeatureShare",
            "namespace": NAMESPACE,
        },
        "period": 60,
        "stat": "Maximum",
    }


def test_the_event_reaches_the_rule_that_routes_drift_alarms(cw: Harness) -> None:
    received: list[tuple[str, Any]] = []
    rule = RuleSpec(
        logical_id="RetrainOnDriftFunctionDriftAlarm",
        name="mlops-dev-drift-alarm",
        event_bus_name="default",
        enabled=True,
        # The template's pattern for retrain_on_drift.
        event_pattern={
            "source": ["aws.cloudwatch"],
            "detail-type": ["CloudWatch Alarm State Change"],
            "account": [ACCOUNT],
            "region": [REGION],
            "detail": {"alarmName": [{"prefix": "mlops-dev-drift-"}], "state": {"value": ["ALARM"]}},
        },
        schedule=None,
        targets=(RuleTarget("fn", f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:retrain-on-drift"),),
    )
    stack = DeployedStack("mlops-dev", "id", {}, {}, {}, {}, {}, [rule], {})
    router = EventRouter(
        stack,
        invoke_function=lambda arn, event: received.append((arn, event)),
        start_execution=lambda arn, text: "",
    )
    evaluator = AlarmEvaluator(cw.clock, router.route)
    cw.alarm(TreatMissingData="notBreaching")
    cw.alarm("mlops-dev-endpoint-5xx", Namespace="AWS/SageMaker", MetricName="Invocation5XXErrors", Threshold=1)
    evaluator.evaluate(cw.t0 + timedelta(minutes=1))  # both go OK: not routed
    assert received == []
    cw.put(1, 0.9)
    evaluator.evaluate(cw.t0 + timedelta(minutes=2))

    [(arn, event)] = received
    assert arn.endswith(":function:retrain-on-drift")
    assert event["detail"]["alarmName"] == "mlops-dev-drift-feature-share"


def test_set_alarm_state_from_a_client_sends_the_event_once_per_change(cw: Harness) -> None:
    name = cw.alarm()
    cw.client.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="testing the retraining path")
    cw.client.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="the same state again")

    [event] = cw.events
    assert event["detail"]["state"]["value"] == "ALARM"
    assert event["detail"]["state"]["reason"] == "testing the retraining path"
    assert event["detail"]["previousState"]["value"] == "INSUFFICIENT_DATA"
    assert [(c["alarm"], c["from"], c["to"]) for c in cw.evaluator.changes] == [(name, "INSUFFICIENT_DATA", "ALARM")]


def test_a_flapping_alarm_sends_each_transition_once(cw: Harness) -> None:
    name = cw.alarm()
    for minute, value in enumerate([0.1, 0.9, 0.1, 0.9]):
        cw.put(minute, value)
        cw.evaluate(minute)
        cw.evaluate(minute)  # a second evaluation at the same instant changes nothing

    transitions = [(e["detail"]["previousState"]["value"], e["detail"]["state"]["value"]) for e in cw.events]
    assert transitions == [("INSUFFICIENT_DATA", "OK"), ("OK", "ALARM"), ("ALARM", "OK"), ("OK", "ALARM")]
    assert [c["to"] for c in cw.evaluator.changes] == ["OK", "ALARM", "OK", "ALARM"]
    assert cw.evaluator.changes[1] == {
        "alarm": name,
        "from": "OK",
        "to": "ALARM",
        "time": (cw.t0 + timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"ExtendedStatistic": "p99", "Statistic": None}, "ExtendedStatistic 'p99'"),
        ({"ComparisonOperator": "GreaterThanUpperThreshold"}, "anomaly detection"),
        ({"Namespace": "AWS/States", "MetricName": "ExecutionsFailed"}, "does not publish metric ExecutionsFailed"),
        ({"Period": 10}, "high-resolution"),
        ({"EvaluationPeriods": 2, "DatapointsToAlarm": 3}, "DatapointsToAlarm 3 is more than EvaluationPeriods 2"),
    ],
)
def test_unsupported_alarms_are_refused_once_and_keep_their_state(
    cw: Harness, caplog: pytest.LogCaptureFixture, fields: dict[str, Any], named: str
) -> None:
    name = cw.alarm(**fields)
    cw.put(0, 5.0)
    with caplog.at_level(logging.WARNING, logger="emulator.alarms"):
        cw.evaluate(0)
        cw.evaluate(1)

    assert cw.state(name)["StateValue"] == "INSUFFICIENT_DATA"
    refusals = [record.getMessage() for record in caplog.records if name in record.getMessage()]
    assert len(refusals) == 1
    assert named in refusals[0]
    assert "does not evaluate" in refusals[0]
    assert named in cw.evaluator.refusals[name]


def test_metric_math_alarms_are_refused(cw: Harness) -> None:
    metric = {"Namespace": NAMESPACE, "MetricName": "DriftedFeatureShare", "Dimensions": DIMENSIONS}
    cw.client.put_metric_alarm(
        AlarmName="math",
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanThreshold",
        Metrics=[
            {"Id": "m1", "MetricStat": {"Metric": metric, "Period": 60, "Stat": "Maximum"}, "ReturnData": False},
            {"Id": "e1", "Expression": "m1 * 2", "ReturnData": True},
        ],
    )
    cw.evaluate(0)
    assert cw.state("math")["StateValue"] == "INSUFFICIENT_DATA"
    assert "metric math" in cw.evaluator.refusals["math"]


def test_datapoints_without_a_timestamp_are_stamped_with_the_twins_clock(cw: Harness) -> None:
    cw.clock.advance(7200)  # the twin's clock runs ahead of the wall clock
    expected = cw.clock.now()
    cw.client.put_metric_data(Namespace=NAMESPACE, MetricData=[{"MetricName": "M", "Value": 1.0}])

    [datum] = cloudwatch_backends[ACCOUNT][REGION].metric_data
    assert abs((datum.timestamp.replace(tzinfo=UTC) - expected).total_seconds()) < 5


def test_the_clock_evaluates_at_every_minute_boundary_it_passes(cw: Harness) -> None:
    boundaries: list[datetime] = []
    stop = cw.clock.on_minute(boundaries.append)
    start = cw.clock.now()
    cw.clock.advance(180)
    stop()
    cw.clock.advance(120)

    assert len(boundaries) in (3, 4)  # the wall clock may pass one more boundary meanwhile
    assert all(b.second == 0 and b.microsecond == 0 for b in boundaries)
    assert boundaries == sorted(boundaries)
    assert boundaries[0] > start - timedelta(minutes=1)
    assert all(later - earlier == timedelta(minutes=1) for earlier, later in itertools.pairwise(boundaries))


def test_the_twin_wires_evaluation_to_its_clock(cw: Harness, tmp_path: Path) -> None:
    """What LocalTwin does at start-up: evaluate at each minute boundary the clock passes."""
    name = cw.alarm(TreatMissingData="notBreaching")
    stop = cw.clock.on_minute(cw.evaluator.evaluate)
    try:
        cw.clock.advance(60)
        assert cw.state(name)["StateValue"] == "OK"
        cw.client.put_metric_data(
            Namespace=NAMESPACE,
            MetricData=[{"MetricName": "DriftedFeatureShare", "Dimensions": DIMENSIONS, "Value": 1}],
        )
        cw.clock.advance(60)
    finally:
        stop()
    assert cw.state(name)["StateValue"] == "ALARM"
    assert [c["to"] for c in cw.evaluator.changes] == ["OK", "ALARM"]


def test_an_sns_alarm_action_publishes_cloudwatchs_notification(cw: Harness, caplog: pytest.LogCaptureFixture) -> None:
    sns = boto3.client("sns", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    topic = sns.create_topic(Name="notifications")["TopicArn"]
    queue = sqs.create_queue(QueueName="notified")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    autoscaling = f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:scalingPolicy:x:autoScalingGroupName/g:policyName/p"
    name = cw.alarm(AlarmActions=[topic, autoscaling], TreatMissingData="notBreaching")
    cw.evaluate(0)  # -> OK: no OK actions
    cw.put(1, 0.9)
    with caplog.at_level(logging.WARNING, logger="emulator.alarms"):
        cw.evaluate(1)

    [received] = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    envelope = json.loads(received["Body"])
    assert envelope["Subject"] == f'ALARM: "{name}" in US East (N. Virginia)'
    message = json.loads(envelope["Message"])
    assert message["AlarmName"] == name
    assert message["NewStateValue"] == "ALARM"
    assert message["OldStateValue"] == "OK"
    assert message["Trigger"]["MetricName"] == "DriftedFeatureShare"
    assert message["Trigger"]["Statistic"] == "MAXIMUM"
    assert message["Trigger"]["TreatMissingData"] == "notBreaching"
    assert "performs only SNS alarm actions" in caplog.text


def test_an_alarm_with_a_unit_counts_only_datapoints_of_that_unit(cw: Harness) -> None:
    name = cw.alarm(Unit="Count")
    cw.put(0, 0.9)  # no unit: CloudWatch's "None", not Count
    cw.evaluate(0)
    assert cw.state(name)["StateValue"] == "INSUFFICIENT_DATA"

    cw.client.put_metric_data(
        Namespace=NAMESPACE,
        MetricData=[
            {
                "MetricName": "DriftedFeatureShare",
                "Dimensions": DIMENSIONS,
                "Value": 0.9,
                "Unit": "Count",
                "Timestamp": cw.t0 + timedelta(minutes=1, seconds=5),
            }
        ],
    )
    cw.evaluate(1)
    assert cw.state(name)["StateValue"] == "ALARM"


def test_uninstall_gives_moto_its_own_cloudwatch_back(cw: Harness) -> None:
    cw.evaluator.uninstall()
    cw.client.put_metric_alarm(
        AlarmName="plain-moto",
        Namespace=NAMESPACE,
        MetricName="M",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanThreshold",
    )
    cw.client.set_alarm_state(AlarmName="plain-moto", StateValue="ALARM", StateReason="moto's own")

    assert cw.events == []  # moto sends nothing
    assert cw.evaluator.changes == []
    cw.evaluator.install()  # for the fixture's uninstall


def test_an_evaluation_reads_only_its_range_and_a_late_datapoint_counts_in_its_own_period(cw: Harness) -> None:
    name = cw.alarm(EvaluationPeriods=2, DatapointsToAlarm=2)
    # Hours of breaching datapoints before the range, and some after it: none of them may count.
    for minute in range(0, 300, 10):
        cw.put(minute, 0.9)
    cw.put(400, 0.9)
    cw.put(301, 0.1)
    # Minutes 301-302 hold one calm datapoint: OK, whatever breached before and after.
    assert [(change["from"], change["to"]) for change in cw.evaluate(302)] == [("INSUFFICIENT_DATA", "OK")]
    assert json.loads(cw.state(name)["StateReasonData"])["recentDatapoints"] == [0.1]

    # Late: stamped in minutes 302 and 303 but put after the minute-400 datapoint; each lands in its own period.
    cw.put(302, 0.8)
    cw.put(303, 0.7)
    changes = cw.evaluate(303)

    assert [(change["from"], change["to"]) for change in changes] == [("OK", "ALARM")]
    reason = json.loads(cw.state(name)["StateReasonData"])
    assert reason["recentDatapoints"] == [0.8, 0.7]
