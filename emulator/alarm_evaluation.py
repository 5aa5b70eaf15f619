"""CloudWatch's evaluation of one metric alarm, as pure functions over moto's alarm and datapoint records.

`refusal_reason` says why the twin does not evaluate an alarm (None when it does); `evaluate_alarm` gives the
verdict at an instant: the state, and CloudWatch's reason text and reason data. The rules are in emulator/alarms.py's
docstring and docs/local-twin.md.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from moto.cloudwatch.models import Alarm, MetricAggregatedDatum, MetricDatum

from emulator.alarm_messages import iso_millis, utc

OK, ALARM, INSUFFICIENT_DATA = "OK", "ALARM", "INSUFFICIENT_DATA"
STATISTICS = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")
TREATMENTS = ("missing", "ignore", "breaching", "notBreaching")
_COMPARISONS: dict[str, tuple[Callable[[float, float], bool], str]] = {
    "GreaterThanOrEqualToThreshold": (operator.ge, "greater than or equal to"),
    "GreaterThanThreshold": (operator.gt, "greater than"),
    "LessThanThreshold": (operator.lt, "less than"),
    "LessThanOrEqualToThreshold": (operator.le, "less than or equal to"),
}
# The AWS/ metrics the local SageMaker publishes (emulator/sagemaker_local/hosting.py); LocalTwin adds those of
# emulator/service_metrics.py. An alarm on any other AWS/ metric would never see a datapoint.
PUBLISHED_AWS_METRICS = frozenset(
    {
        ("AWS/SageMaker", "Invocations"),
        ("AWS/SageMaker", "Invocation4XXErrors"),
        ("AWS/SageMaker", "Invocation5XXErrors"),
    }
)


@dataclass(frozen=True)
class Verdict:
    """What one evaluation of an alarm concluded: the state, CloudWatch's reason text and reason data."""

    state: str | None  # None: keep the current state (ignore with no data)
    reason: str
    reason_data: str


def refusal_reason(
    alarm: Alarm, published_aws_metrics: frozenset[tuple[str, str]] = PUBLISHED_AWS_METRICS
) -> str | None:
    """Why the twin does not evaluate `alarm` (named, for the log), or None when it does."""
    if alarm.rule is not None:
        return "it is a composite alarm"
    if alarm.metric_data_queries:
        return "it alarms on metric math or Metrics queries"
    if alarm.threshold_metric_id or alarm.comparison_operator not in _COMPARISONS:
        return f"it uses anomaly detection or ComparisonOperator {alarm.comparison_operator!r}"
    if alarm.extended_statistic:
        return f"it uses ExtendedStatistic {alarm.extended_statistic!r} (percentiles)"
    if alarm.statistic not in STATISTICS:
        return f"Statistic {alarm.statistic!r} is not one of {', '.join(STATISTICS)}"
    if (alarm.treat_missing_data or "missing") not in TREATMENTS:
        return f"TreatMissingData {alarm.treat_missing_data!r} is not one of {', '.join(TREATMENTS)}"
    if not alarm.period or int(alarm.period) % 60 or not alarm.evaluation_periods:
        return f"Period {alarm.period!r} is not a whole number of minutes (high-resolution alarms are not evaluated)"
    if alarm.datapoints_to_alarm and int(alarm.datapoints_to_alarm) > int(alarm.evaluation_periods):
        return (
            f"DatapointsToAlarm {alarm.datapoints_to_alarm} is more than EvaluationPeriods {alarm.evaluation_periods}"
        )
    if str(alarm.namespace).startswith("AWS/") and (alarm.namespace, alarm.metric_name) not in published_aws_metrics:
        return f"the twin does not publish metric {alarm.metric_name} of namespace {alarm.namespace}"
    return None


def evaluation_range(alarm: Alarm, now: datetime) -> tuple[datetime, datetime]:
    """The start (inclusive) and end (exclusive) of the periods an evaluation at `now` reads."""
    end = now.replace(second=0, microsecond=0)
    return end - timedelta(seconds=int(alarm.period)) * int(alarm.evaluation_periods), end


def evaluate_alarm(alarm: Alarm, data: list[Any], now: datetime) -> Verdict:
    """CloudWatch's verdict on a supported metric alarm at `now`, from moto's datapoints `data` (any of them: those
    outside `evaluation_range` are skipped)."""
    period = timedelta(seconds=int(alarm.period))
    periods = int(alarm.evaluation_periods)
    required = int(alarm.datapoints_to_alarm or periods)
    start, end = evaluation_range(alarm, now)
    values: list[float | None] = [None] * periods  # oldest first
    buckets: list[list[Any]] = [[] for _ in range(periods)]
    for datum in data:
        if not _same_metric(alarm, datum):
            continue
        moment = utc(datum.timestamp)
        if start <= moment < end:
            buckets[int((moment - start) / period)].append(datum)
    for index, bucket in enumerate(buckets):
        values[index] = _statistic(alarm.statistic, bucket)
    compare, wording = _COMPARISONS[alarm.comparison_operator]
    threshold = float(alarm.threshold)
    treatment = alarm.treat_missing_data or "missing"
    present = [(start + period * index, value) for index, value in enumerate(values) if value is not None]
    reason_data = json.dumps(
        {
            "version": "1.0",
            "queryDate": iso_millis(now),
            "startDate": iso_millis(start),
            "statistic": alarm.statistic,
            "period": int(alarm.period),
            "recentDatapoints": [value for _, value in present],
            "threshold": threshold,
        },
        separators=(",", ":"),
    )
    missing = periods - len(present)
    if not present:
        return _all_missing(treatment, periods, reason_data)
    breaching = sum(1 for _, value in present if compare(value, threshold))
    if treatment == "breaching":
        breaching += missing
    state = ALARM if breaching >= required else OK
    counted = (
        breaching if state == ALARM else len(present) - breaching + (missing if treatment == "notBreaching" else 0)
    )
    minimum = required if state == ALARM else periods - required + 1
    shown = ", ".join(f"{_number(value)} ({moment:%d/%m/%y %H:%M:%S})" for moment, value in reversed(present))
    plural = len(present) != 1 or counted != 1
    verb = ("were" if plural else "was") + ("" if state == ALARM else " not")
    transition = f"{'OK' if state == ALARM else 'ALARM'} -> {state}"
    reason = (
        f"Threshold Crossed: {counted} out of the last {periods} datapoints [{shown}] "
        f"{verb} {wording} the threshold ({_number(threshold)}) (minimum {minimum} "
        f"datapoint{'s' if minimum != 1 else ''} for {transition} transition)."
    )
    return Verdict(state, reason, reason_data)


def _all_missing(treatment: str, periods: int, reason_data: str) -> Verdict:
    noun = "datapoint" if periods == 1 else "datapoints"
    if treatment == "ignore":
        return Verdict(None, "", reason_data)
    if treatment == "missing":
        return Verdict(
            INSUFFICIENT_DATA,
            f"Insufficient Data: {periods} {noun} {'was' if periods == 1 else 'were'} unknown.",
            reason_data,
        )
    treated = "Breaching" if treatment == "breaching" else "NonBreaching"
    reason = (
        f"Threshold Crossed: no datapoints were received for {periods} period{'s' if periods != 1 else ''} and "
        f"{periods} missing {noun} {'was' if periods == 1 else 'were'} treated as [{treated}]."
    )
    return Verdict(ALARM if treatment == "breaching" else OK, reason, reason_data)


def _same_metric(alarm: Alarm, datum: Any) -> bool:
    if datum.namespace != alarm.namespace or datum.name != alarm.metric_name:
        return False
    # A datapoint put without a unit has unit None in CloudWatch, which an alarm with another Unit does not match.
    if alarm.unit and (datum.unit or "None") != alarm.unit:
        return False
    wanted = {(d.name, d.value) for d in alarm.dimensions}
    return {(d.name, d.value) for d in datum.dimensions} == wanted


def _statistic(statistic: str, bucket: list[Any]) -> float | None:
    if not bucket:
        return None
    values = [d.value for d in bucket if isinstance(d, MetricDatum)]
    sets = [d for d in bucket if isinstance(d, MetricAggregatedDatum)]
    count = len(values) + sum(s.sample_count for s in sets)
    total = sum(values) + sum(s.sum for s in sets)
    if statistic == "SampleCount":
        return float(count)
    if statistic == "Sum":
        return float(total)
    if statistic == "Average":
        return float(total / count) if count else None
    if statistic == "Minimum":
        return float(min(values + [s.min for s in sets]))
    return float(max(values + [s.max for s in sets]))


def _number(value: float) -> str:
    """A double as CloudWatch's reasons print it (Java's Double.toString for everyday magnitudes)."""
    return repr(float(value))
