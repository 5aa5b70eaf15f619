"""CloudWatch's evaluation of one metric alarm, as pure functions over moto's alarm and datapoint records.

`refusal_reason` says why the twin does not evaluate an alarm (None when it does). An evaluation at an instant:
`period_values` (the statistic of each period of the range), `state_of_values` (the state they lead to) and, for a
change, `verdict_of` (the state with CloudWatch's reason text and reason data). The rules are in emulator/alarms.py's
docstring and docs/local-twin.md.

The state depends only on the alarm's configuration and the period values, never on the instant itself:
`AlarmEvaluator` skips an evaluation whose configuration and periods' datapoints are those of the last one. A rule
that looks at time (CloudWatch's look beyond the range for a "missing" alarm) would have to be part of that test.
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


def period_values(alarm: Alarm, data: list[Any], now: datetime) -> list[float | None]:
    """The alarm's statistic over each period of its range at `now`, oldest first (None: no datapoint), from moto's
    datapoints `data` (those of other metrics or outside the range are skipped)."""
    period = timedelta(seconds=int(alarm.period))
    periods = int(alarm.evaluation_periods)
    start, end = evaluation_range(alarm, now)
    buckets: list[list[Any]] = [[] for _ in range(periods)]
    dimensions = metric_dimensions(alarm.dimensions)
    for datum in data:
        if not _same_metric(alarm, dimensions, datum):
            continue
        moment = utc(datum.timestamp)
        if start <= moment < end:
            buckets[int((moment - start) / period)].append(datum)
    return [_statistic(alarm.statistic, bucket) for bucket in buckets]


def state_of_values(alarm: Alarm, values: list[float | None]) -> str | None:
    """The state an evaluation with these `period_values` goes to (None: it stays), without the reason `verdict_of`
    words: what decides whether the alarm changes state at all, for every evaluation."""
    present = [value for value in values if value is not None]
    treatment = alarm.treat_missing_data or "missing"
    if not present:
        return {"ignore": None, "missing": INSUFFICIENT_DATA, "breaching": ALARM, "notBreaching": OK}[treatment]
    compare = _COMPARISONS[alarm.comparison_operator][0]
    threshold = float(alarm.threshold)
    breaching = sum(1 for value in present if compare(value, threshold))
    if treatment == "breaching":
        breaching += len(values) - len(present)
    return ALARM if breaching >= int(alarm.datapoints_to_alarm or len(values)) else OK


def verdict_of(alarm: Alarm, values: list[float | None], now: datetime) -> Verdict:
    """CloudWatch's verdict, its reason and reason data worded, from the `period_values` of an evaluation at `now`."""
    state = state_of_values(alarm, values)
    period = timedelta(seconds=int(alarm.period))
    periods = len(values)
    start, _ = evaluation_range(alarm, now)
    treatment = alarm.treat_missing_data or "missing"
    threshold = float(alarm.threshold)
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
    if not present:
        return Verdict(state, _all_missing_reason(treatment, periods), reason_data)
    compare, wording = _COMPARISONS[alarm.comparison_operator]
    missing = periods - len(present)
    required = int(alarm.datapoints_to_alarm or periods)
    breaching = sum(1 for _, value in present if compare(value, threshold))
    if treatment == "breaching":
        breaching += missing
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


def _all_missing_reason(treatment: str, periods: int) -> str:
    noun = "datapoint" if periods == 1 else "datapoints"
    if treatment == "ignore":
        return ""
    if treatment == "missing":
        return f"Insufficient Data: {periods} {noun} {'was' if periods == 1 else 'were'} unknown."
    treated = "Breaching" if treatment == "breaching" else "NonBreaching"
    return (
        f"Threshold Crossed: no datapoints were received for {periods} period{'s' if periods != 1 else ''} and "
        f"{periods} missing {noun} {'was' if periods == 1 else 'were'} treated as [{treated}]."
    )


def metric_dimensions(dimensions: list[Any]) -> frozenset[tuple[str, str]]:
    """An alarm's or a datapoint's dimensions as the set (name, value) that must be equal for the alarm to read it."""
    return frozenset([(d.name, d.value) for d in dimensions])


def _same_metric(alarm: Alarm, dimensions: frozenset[tuple[str, str]], datum: Any) -> bool:
    if datum.namespace != alarm.namespace or datum.name != alarm.metric_name:
        return False
    # A datapoint put without a unit has unit None in CloudWatch, which an alarm with another Unit does not match.
    if alarm.unit and (datum.unit or "None") != alarm.unit:
        return False
    return metric_dimensions(datum.dimensions) == dimensions


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
