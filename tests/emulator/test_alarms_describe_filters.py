"""DescribeAlarms on the twin applies every filter it is given, as CloudWatch does (moto applies only the first)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from emulator.alarms import AlarmEvaluator
from emulator.clock import Clock


@pytest.fixture
def cloudwatch() -> Iterator[Any]:
    with mock_aws():
        evaluator = AlarmEvaluator(Clock(), lambda event: None, region="us-east-1")
        evaluator.install()
        client = boto3.client("cloudwatch", region_name="us-east-1")
        for name in ("stack-drift-share", "stack-drift-critical", "stack-endpoint-5xx"):
            client.put_metric_alarm(
                AlarmName=name,
                Namespace="mlops",
                MetricName=name,
                Statistic="Average",
                Period=60,
                EvaluationPeriods=1,
                Threshold=1.0,
                ComparisonOperator="GreaterThanThreshold",
                AlarmActions=["arn:aws:sns:us-east-1:123456789012:alerts"] if name.endswith("5xx") else [],
            )
        client.set_alarm_state(AlarmName="stack-drift-critical", StateValue="ALARM", StateReason="test")
        client.set_alarm_state(AlarmName="stack-endpoint-5xx", StateValue="ALARM", StateReason="test")
        try:
            yield client
        finally:
            evaluator.uninstall()


def _names(response: dict[str, list[dict[str, str]]]) -> list[str]:
    return sorted(alarm["AlarmName"] for alarm in response["MetricAlarms"])


def test_name_prefix_and_state_value_together(cloudwatch: Any) -> None:
    # retrain_on_drift's recheck: the stack's drift alarms that are in ALARM, not every drift alarm.
    assert _names(cloudwatch.describe_alarms(AlarmNamePrefix="stack-drift", StateValue="ALARM")) == [
        "stack-drift-critical"
    ]


def test_action_prefix_and_state_value_together(cloudwatch: Any) -> None:
    found = cloudwatch.describe_alarms(ActionPrefix="arn:aws:sns:us-east-1:123456789012:", StateValue="OK")
    assert _names(found) == []


def test_single_filters_still_work(cloudwatch: Any) -> None:
    assert _names(cloudwatch.describe_alarms(AlarmNamePrefix="stack-drift")) == [
        "stack-drift-critical",
        "stack-drift-share",
    ]
    assert _names(cloudwatch.describe_alarms(StateValue="ALARM")) == ["stack-drift-critical", "stack-endpoint-5xx"]
