"""What CloudWatch sends when an alarm changes state: the EventBridge event and the SNS notification of its actions.

Shapes from the CloudWatch User Guide ("Alarm events and EventBridge"; the notification's JSON as an SNS alarm
action delivers it). Timestamps: the event's `time` to the second with `Z`, the states' `timestamp` and the
notification's `StateChangeTime` to the millisecond with `+0000`, as CloudWatch writes them.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from moto.cloudwatch.models import Alarm

# The region names CloudWatch puts in notifications; the twin runs in us-east-1.
_REGION_NAMES = {"us-east-1": "US East (N. Virginia)", "us-west-2": "US West (Oregon)", "eu-west-1": "EU (Ireland)"}


def state_of(alarm: Alarm) -> dict[str, Any]:
    """An alarm's state as the event's `state`/`previousState` carry it."""
    state: dict[str, Any] = {
        "value": alarm.state_value,
        "reason": alarm.state_reason,
        "timestamp": iso_millis(utc(alarm.state_updated_timestamp)),
    }
    if alarm.state_reason_data and alarm.state_reason_data != "{}":
        state["reasonData"] = alarm.state_reason_data
    return state


def state_change_event(
    alarm: Alarm, previous: dict[str, Any], now: datetime, *, account_id: str, region: str, metric_id: str
) -> dict[str, Any]:
    """The "CloudWatch Alarm State Change" event CloudWatch puts on the default bus."""
    metric_stat: dict[str, Any] = {
        "metric": {
            "dimensions": {str(d.name): str(d.value) for d in alarm.dimensions},
            "name": alarm.metric_name,
            "namespace": alarm.namespace,
        },
        "period": int(alarm.period),
        "stat": alarm.statistic,
    }
    if alarm.unit:
        metric_stat["unit"] = alarm.unit
    configuration: dict[str, Any] = {"metrics": [{"id": metric_id, "metricStat": metric_stat, "returnData": True}]}
    if alarm.description:
        configuration = {"description": alarm.description, **configuration}
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": account_id,
        "time": iso_seconds(now),
        "region": region,
        "resources": [alarm.alarm_arn],
        "detail": {
            "alarmName": alarm.name,
            "state": state_of(alarm),
            "previousState": previous,
            "configuration": configuration,
        },
    }


def actions_for(alarm: Alarm) -> list[str]:
    """The actions of the state the alarm has just entered (none when its actions are disabled)."""
    if not alarm.actions_enabled:
        return []
    by_state = {
        "ALARM": alarm.alarm_actions,
        "OK": alarm.ok_actions,
        "INSUFFICIENT_DATA": alarm.insufficient_data_actions,
    }
    return [str(action) for action in by_state.get(alarm.state_value) or []]


def sns_notification(
    alarm: Alarm, previous: dict[str, Any], now: datetime, *, account_id: str, region: str
) -> tuple[str, str]:
    """The (Subject, Message) an SNS alarm action publishes."""
    region_name = _REGION_NAMES.get(region, region)
    message = {
        "AlarmName": alarm.name,
        "AlarmDescription": alarm.description,
        "AWSAccountId": account_id,
        "AlarmConfigurationUpdatedTimestamp": iso_millis(utc(alarm.configuration_updated_timestamp)),
        "NewStateValue": alarm.state_value,
        "NewStateReason": alarm.state_reason,
        "StateChangeTime": iso_millis(now),
        "Region": region_name,
        "AlarmArn": alarm.alarm_arn,
        "OldStateValue": previous["value"],
        "OKActions": list(alarm.ok_actions),
        "AlarmActions": list(alarm.alarm_actions),
        "InsufficientDataActions": list(alarm.insufficient_data_actions),
        "Trigger": {
            "MetricName": alarm.metric_name,
            "Namespace": alarm.namespace,
            "StatisticType": "Statistic",
            "Statistic": str(alarm.statistic).upper(),
            "Unit": alarm.unit,
            "Dimensions": [{"value": str(d.value), "name": str(d.name)} for d in alarm.dimensions],
            "Period": int(alarm.period),
            "EvaluationPeriods": int(alarm.evaluation_periods),
            "DatapointsToAlarm": int(alarm.datapoints_to_alarm or alarm.evaluation_periods),
            "ComparisonOperator": alarm.comparison_operator,
            "Threshold": float(alarm.threshold),
            "TreatMissingData": alarm.treat_missing_data or "missing",
            "EvaluateLowSampleCountPercentile": alarm.evaluate_low_sample_count_percentile or "",
        },
    }
    subject = f'{alarm.state_value}: "{alarm.name}" in {region_name}'
    return subject[:100], json.dumps(message)


def utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso_seconds(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_millis(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"
