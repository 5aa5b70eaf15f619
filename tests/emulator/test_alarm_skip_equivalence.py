"""A long clock jump with skipped evaluations gives exactly what evaluating every alarm at every minute gives.

`AlarmEvaluator` skips an alarm whose evaluation would read what its last one read (`skip_unchanged`). These tests run
the same scenario twice, once with the skip and once evaluating every alarm in full at every minute boundary, and
compare everything an evaluation leaves behind: the change list, the "CloudWatch Alarm State Change" events in order,
and each alarm's final state, reason, reason data and timestamp. The scenario has the alarm shapes of template.yaml
(drift share, critical-feature drift, model quality, the endpoint rollback alarm, the step functions failure and
dead-letter alarms) and the other missing-data treatments, with datapoints arriving mid-jump (late ones, other
dimensions, other units, statistic sets, undated ones), a SetAlarmState and a PutMetricAlarm update mid-jump.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.cloudwatch.models import cloudwatch_backends

import emulator.alarms
from contract.local_account import LOCAL_ACCOUNT_ID, LOCAL_REGION
from emulator.alarm_evaluation import PUBLISHED_AWS_METRICS
from emulator.alarms import AlarmEvaluator
from emulator.clock import Clock
from emulator.service_metrics import PUBLISHED_METRICS as SERVICE_METRICS
from emulator.service_metrics import ServiceMetrics

# 20 s past a minute: each jump of whole minutes passes the same boundaries in both runs.
START = datetime(2026, 12, 1, 8, 0, 20, tzinfo=UTC)
ENDPOINT = [{"Name": "Endpoint", "Value": "mlops-dev-endpoint"}]
OTHER_ENDPOINT = [{"Name": "Endpoint", "Value": "mlops-other-endpoint"}]
VARIANT = [{"Name": "EndpointName", "Value": "mlops-dev-endpoint"}, {"Name": "VariantName", "Value": "AllTraffic"}]
MACHINE = [{"Name": "StateMachineArn", "Value": "arn:aws:states:us-east-1:123456789012:stateMachine:training"}]
QUEUE = [{"Name": "QueueName", "Value": "mlops-dev-new-data-dlq"}]
# Jumps in seconds: a 296-minute one as the drift command's, a monitoring window, part minutes, a single minute.
JUMPS = [60, 296 * 60, 30, 7 * 60 + 30, 3600, 90, 125 * 60]


class StillClock(Clock):
    """The twin's clock standing still but for `advance`, from START: both runs see the same instants."""

    def __init__(self) -> None:
        super().__init__(speed=1.0)
        self._origin_virtual = START

    def _elapsed(self) -> timedelta:
        return timedelta(0)

    def now(self) -> datetime:
        return self._origin_virtual + self._jumped


def _alarms() -> list[dict[str, Any]]:
    """The alarm shapes of template.yaml, and those of the treatments and statistics it does not use."""

    def alarm(
        name: str, namespace: str, metric: str, dimensions: list[dict[str, str]], **fields: Any
    ) -> dict[str, Any]:
        return {"AlarmName": name, "Namespace": namespace, "MetricName": metric, "Dimensions": dimensions, **fields}

    above = "GreaterThanOrEqualToThreshold"
    return [
        alarm(
            "drift-feature-share",
            "mlops",
            "DriftedFeatureShare",
            ENDPOINT,
            Statistic="Maximum",
            Period=3600,
            EvaluationPeriods=1,
            DatapointsToAlarm=1,
            Threshold=0.5,
            ComparisonOperator=above,
            TreatMissingData="notBreaching",
        ),
        alarm(
            "drift-critical-feature",
            "mlops",
            "CriticalFeatureDrift",
            ENDPOINT,
            Statistic="Maximum",
            Period=3600,
            EvaluationPeriods=1,
            DatapointsToAlarm=1,
            Threshold=1.0,
            ComparisonOperator=above,
            TreatMissingData="notBreaching",
        ),
        alarm(
            "drift-model-quality",
            "mlops",
            "ModelQualityAuc",
            ENDPOINT,
            Statistic="Minimum",
            Period=3600,
            EvaluationPeriods=1,
            Threshold=0.9,
            ComparisonOperator="LessThanThreshold",
            TreatMissingData="notBreaching",
        ),
        alarm(
            "endpoint-5xx",
            "AWS/SageMaker",
            "Invocation5XXErrors",
            VARIANT,
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=1.0,
            ComparisonOperator=above,
            TreatMissingData="notBreaching",
        ),
        alarm(
            "training-executions-failed",
            "AWS/States",
            "ExecutionsFailed",
            MACHINE,
            Statistic="Sum",
            Period=300,
            EvaluationPeriods=1,
            Threshold=1.0,
            ComparisonOperator=above,
            TreatMissingData="notBreaching",
        ),
        alarm(
            "new-data-dlq",
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            QUEUE,
            Statistic="Maximum",
            Period=300,
            EvaluationPeriods=1,
            Threshold=1.0,
            ComparisonOperator=above,
            TreatMissingData="notBreaching",
        ),
        alarm(
            "latency-missing",
            "mlops",
            "Latency",
            ENDPOINT,
            Statistic="Average",
            Period=60,
            EvaluationPeriods=3,
            DatapointsToAlarm=2,
            Threshold=100.0,
            ComparisonOperator="GreaterThanThreshold",
        ),
        alarm(
            "latency-ignore",
            "mlops",
            "Latency",
            ENDPOINT,
            Statistic="SampleCount",
            Period=120,
            EvaluationPeriods=2,
            Threshold=3.0,
            ComparisonOperator=above,
            TreatMissingData="ignore",
        ),
        alarm(
            "latency-breaching",
            "mlops",
            "Latency",
            ENDPOINT,
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=3,
            DatapointsToAlarm=2,
            Threshold=500.0,
            ComparisonOperator=above,
            TreatMissingData="breaching",
        ),
        alarm(
            "latency-milliseconds",
            "mlops",
            "Latency",
            ENDPOINT,
            Statistic="Maximum",
            Period=300,
            EvaluationPeriods=2,
            Threshold=150.0,
            ComparisonOperator="LessThanOrEqualToThreshold",
            Unit="Milliseconds",
            TreatMissingData="missing",
        ),
    ]


def _arrivals(seed: int, minutes: int) -> dict[int, list[tuple[str, dict[str, Any]]]]:
    """(namespace, datum) put just before the evaluation at each boundary: the same for both runs of a seed."""
    chance = random.Random(seed)
    arrivals: dict[int, list[tuple[str, dict[str, Any]]]] = {}

    def at(
        boundary: int, namespace: str, metric: str, dimensions: list[dict[str, str]], minutes_back: float, **fields: Any
    ) -> None:
        datum: dict[str, Any] = {"MetricName": metric, "Dimensions": dimensions, **fields}
        if minutes_back >= 0:
            datum["Timestamp"] = START + timedelta(minutes=boundary - minutes_back)
        arrivals.setdefault(boundary, []).append((namespace, datum))

    for boundary in range(1, minutes):
        if boundary % 60 == 5:  # an hourly monitoring run: its drift metrics, stamped at its start
            at(boundary, "mlops", "DriftedFeatureShare", ENDPOINT, 4.5, Value=chance.choice([0.1, 0.5, 0.75]))
            at(boundary, "mlops", "CriticalFeatureDrift", ENDPOINT, 4.5, Value=float(chance.random() < 0.3))
            at(boundary, "mlops", "ModelQualityAuc", ENDPOINT, 4.5, Value=chance.choice([0.95, 0.85, 0.92]))
        if chance.random() < 0.05:  # a model server's errors, a minute late
            at(
                boundary,
                "AWS/SageMaker",
                "Invocation5XXErrors",
                VARIANT,
                chance.choice([0.5, 0.5, 1.5]),
                Value=float(chance.randint(0, 2)),
            )
        if chance.random() < 0.03:
            at(boundary, "AWS/States", "ExecutionsFailed", MACHINE, 1.0, Value=1.0, Unit="Count")
        if chance.random() < 0.5:  # the queue sample, at times not taken
            at(
                boundary,
                "AWS/SQS",
                "ApproximateNumberOfMessagesVisible",
                QUEUE,
                1.0,
                Value=float(chance.random() < 0.1),
                Unit="Count",
            )
        if chance.random() < 0.25:
            at(
                boundary,
                "mlops",
                "Latency",
                ENDPOINT,
                chance.choice([0.7, 1.2, 2.5, 6.0]),
                Value=chance.choice([20.0, 120.0, 400.0]),
                Unit=chance.choice(["Milliseconds", "Seconds"]),
            )
        if chance.random() < 0.05:  # a late one, well inside and beyond the ranges' edges
            at(boundary, "mlops", "Latency", ENDPOINT, float(chance.randint(3, 70)), Value=600.0)
        if chance.random() < 0.05:
            at(
                boundary,
                "mlops",
                "Latency",
                ENDPOINT,
                0.5,
                StatisticValues={"SampleCount": 4.0, "Sum": 480.0, "Minimum": 60.0, "Maximum": 200.0},
            )
        if chance.random() < 0.05:  # undated: stamped with the clock's now, the end of the jump
            at(boundary, "mlops", "Latency", ENDPOINT, -1, Value=150.0)
        if chance.random() < 0.05:  # another endpoint's: read by no alarm
            at(boundary, "mlops", "DriftedFeatureShare", OTHER_ENDPOINT, 0.5, Value=0.9)
    return arrivals


@dataclass
class Outcome:
    changes: list[dict[str, str]]
    events: list[dict[str, Any]]
    states: list[dict[str, Any]]
    evaluations: int


def _run(seed: int, *, skip_unchanged: bool, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    evaluations = 0
    real_period_values = emulator.alarms.period_values

    def counted_period_values(*args: Any) -> Any:
        nonlocal evaluations
        evaluations += 1
        return real_period_values(*args)

    monkeypatch.setattr(emulator.alarms, "period_values", counted_period_values)
    arrivals = _arrivals(seed, sum(JUMPS) // 60 + 1)
    with mock_aws():
        clock = StillClock()
        events: list[dict[str, Any]] = []
        evaluator = AlarmEvaluator(
            clock,
            events.append,
            published_aws_metrics=PUBLISHED_AWS_METRICS | SERVICE_METRICS,
            skip_unchanged=skip_unchanged,
        )
        evaluator.install()
        client = boto3.client("cloudwatch", region_name=LOCAL_REGION)
        try:
            for alarm in _alarms():
                client.put_metric_alarm(**alarm)

            def at_boundary(boundary: datetime) -> None:
                minute = round((boundary - START.replace(second=0)).total_seconds() / 60)
                for namespace, datum in arrivals.get(minute, []):
                    client.put_metric_data(Namespace=namespace, MetricData=[datum])
                if minute == 130:  # an operator's SetAlarmState mid-jump: the next evaluation must see it
                    client.set_alarm_state(AlarmName="new-data-dlq", StateValue="ALARM", StateReason="testing")
                if minute == 200:  # updates mid-jump, with nothing new to read: a new configuration is read afresh
                    client.put_metric_alarm(**{**_alarms()[0], "Threshold": 0.05})
                    client.put_metric_alarm(**{**_alarms()[6], "Threshold": 50.0})
                evaluator.evaluate(boundary)

            clock.on_minute(at_boundary)
            for seconds in JUMPS:
                clock.advance(seconds)
            states = [
                {key: alarm[key] for key in ("AlarmName", "StateValue", "StateReason", "StateUpdatedTimestamp")}
                | {"StateReasonData": alarm.get("StateReasonData")}
                for alarm in client.describe_alarms()["MetricAlarms"]
            ]
            assert len(cloudwatch_backends[LOCAL_ACCOUNT_ID][LOCAL_REGION].metric_data) == sum(
                map(len, arrivals.values())
            )
        finally:
            evaluator.uninstall()
    return Outcome(evaluator.changes, [_without_random_ids(event) for event in events], states, evaluations)


def _without_random_ids(event: dict[str, Any]) -> dict[str, Any]:
    """The event without what differs between any two runs: its id and the metric's id (uuid4s)."""
    event = copy.deepcopy(event)
    event.pop("id")
    for metric in event["detail"]["configuration"]["metrics"]:
        metric.pop("id")
    return event


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_skipping_unchanged_evaluations_gives_what_evaluating_every_alarm_every_minute_gives(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = _run(seed, skip_unchanged=False, monkeypatch=monkeypatch)
    skipping = _run(seed, skip_unchanged=True, monkeypatch=monkeypatch)

    assert skipping.changes == plain.changes
    assert skipping.events == plain.events
    assert skipping.states == plain.states
    # The scenario exercises both: many changes of every alarm, and most evaluations skipped.
    assert {change["alarm"] for change in plain.changes} == {alarm["AlarmName"] for alarm in _alarms()}
    assert len(plain.changes) > 40
    assert plain.evaluations == len(_alarms()) * (sum(JUMPS) // 60)
    assert skipping.evaluations < plain.evaluations / 2


@pytest.fixture
def installed() -> Iterator[tuple[AlarmEvaluator, Any]]:
    """An evaluator on a clock that does not move by itself, installed in moto, with a CloudWatch client."""
    with mock_aws():
        evaluator = AlarmEvaluator(StillClock(), lambda _event: None)
        evaluator.install()
        try:
            yield evaluator, boto3.client("cloudwatch", region_name=LOCAL_REGION)
        finally:
            evaluator.uninstall()


def test_an_alarm_in_a_state_set_since_its_last_evaluation_is_evaluated_again(
    installed: tuple[AlarmEvaluator, Any],
) -> None:
    evaluator, client = installed
    client.put_metric_alarm(**_alarms()[0])
    boundary = START.replace(second=0) + timedelta(minutes=1)
    assert [change["to"] for change in evaluator.evaluate(boundary)] == ["OK"]
    assert evaluator.evaluate(boundary + timedelta(minutes=1)) == []  # nothing new: skipped
    client.set_alarm_state(AlarmName="drift-feature-share", StateValue="ALARM", StateReason="testing")

    changes = evaluator.evaluate(boundary + timedelta(minutes=2))

    assert [(change["from"], change["to"]) for change in changes] == [("ALARM", "OK")]


def test_an_alarm_updated_since_its_last_evaluation_is_evaluated_again(installed: tuple[AlarmEvaluator, Any]) -> None:
    evaluator, client = installed
    minute = START.replace(second=0)
    client.put_metric_alarm(**_alarms()[0])
    client.put_metric_data(
        Namespace="mlops",
        MetricData=[
            {
                "MetricName": "DriftedFeatureShare",
                "Dimensions": ENDPOINT,
                "Value": 0.4,
                "Timestamp": minute + timedelta(seconds=10),
            }
        ],
    )
    assert [change["to"] for change in evaluator.evaluate(minute + timedelta(minutes=1))] == ["OK"]
    client.put_metric_alarm(**{**_alarms()[0], "Threshold": 0.3})

    changes = evaluator.evaluate(minute + timedelta(minutes=2))  # the same datapoint, a lower threshold

    assert [(change["from"], change["to"]) for change in changes] == [("OK", "ALARM")]


def test_a_late_datapoint_before_the_range_is_not_taken_for_the_same_data(
    installed: tuple[AlarmEvaluator, Any],
) -> None:
    # GIVEN an alarm in ALARM on the last of three datapoints, one a minute
    evaluator, client = installed
    minute = START.replace(second=0)
    client.put_metric_alarm(**{**_alarms()[0], "Period": 60})

    def put(minutes: float, value: float) -> None:
        datum = {"MetricName": "DriftedFeatureShare", "Dimensions": ENDPOINT, "Value": value}
        client.put_metric_data(
            Namespace="mlops", MetricData=[{**datum, "Timestamp": minute + timedelta(minutes=minutes)}]
        )

    for minutes, value in ((0.2, 0.1), (1.2, 0.1), (2.2, 0.9)):
        put(minutes, value)
    assert [change["to"] for change in evaluator.evaluate(minute + timedelta(minutes=3))] == ["ALARM"]
    # WHEN a late datapoint lands before them and the next evaluation reads the minute before: the positions of its
    # range in the metric's datapoints are those of the last one, the datapoints are not
    put(0.1, 0.1)
    changes = evaluator.evaluate(minute + timedelta(minutes=2))

    # THEN it is evaluated: the minute before holds 0.1
    assert [(change["from"], change["to"]) for change in changes] == [("ALARM", "OK")]


def test_service_metrics_are_stored_as_a_put_metric_data_request_stores_them() -> None:
    now = START + timedelta(minutes=5)

    def stored(region: str) -> list[dict[str, Any]]:
        return [
            {**vars(datum), "dimensions": [(d.name, d.value) for d in datum.dimensions]}
            for datum in cloudwatch_backends[LOCAL_ACCOUNT_ID][region].metric_data
        ]

    with mock_aws():
        sqs = boto3.client("sqs", region_name=LOCAL_REGION)
        for name, messages in (("mlops-dev-new-data-dlq", 2), ("mlops-dev-event-delivery-dlq", 0)):
            url = sqs.create_queue(QueueName=name)["QueueUrl"]
            for index in range(messages):
                sqs.send_message(QueueUrl=url, MessageBody=str(index))
        ServiceMetrics(region=LOCAL_REGION).publish(now)
        # The same datapoints as a PutMetricData request, into another region to compare with.
        boto3.client("cloudwatch", region_name="us-west-2").put_metric_data(
            Namespace="AWS/SQS",
            MetricData=[
                {
                    "MetricName": metric,
                    "Dimensions": [{"Name": "QueueName", "Value": name}],
                    "Value": value,
                    "Unit": "Count",
                    "Timestamp": START.replace(second=0) + timedelta(minutes=4),
                }
                for name, visible in (("mlops-dev-new-data-dlq", 2.0), ("mlops-dev-event-delivery-dlq", 0.0))
                for metric, value in (
                    ("ApproximateNumberOfMessagesVisible", visible),
                    ("ApproximateNumberOfMessagesNotVisible", 0.0),
                    ("ApproximateNumberOfMessagesDelayed", 0.0),
                )
            ],
        )
        published, requested = stored(LOCAL_REGION), stored("us-west-2")
    assert len(published) == 6
    assert published == requested
