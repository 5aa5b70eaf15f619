"""The twin's CloudWatch alarms: evaluated on the twin's clock, with a "CloudWatch Alarm State Change" event per change.

moto 5.2.5 stores alarms and metric data but never evaluates an alarm, starts a new one in `OK` (CloudWatch starts it
in `INSUFFICIENT_DATA`), resets the state when PutMetricAlarm updates an alarm (CloudWatch keeps it), stamps
datapoints without a timestamp with the wall clock (the twin's clock runs ahead of it), and sends no event, not even
for SetAlarmState. `AlarmEvaluator.install()` fixes those four while the twin runs, and `evaluate(now)` evaluates
every metric alarm of the twin's account and region once, as CloudWatch does every minute (the rules of one
evaluation are in emulator/alarm_evaluation.py, the event and notification shapes in emulator/alarm_messages.py).

What is evaluated as CloudWatch does: one metric (Namespace, MetricName, the exact Dimensions set; with Unit, the
datapoints of that unit) with Statistic SampleCount, Average, Sum, Minimum or Maximum; the four threshold
ComparisonOperators; "M out of N" over the last EvaluationPeriods periods (DatapointsToAlarm M, default N);
TreatMissingData missing (the default), notBreaching, breaching and ignore. Periods are whole minutes ending at the
evaluation time. When some datapoints of the range are missing, the present ones are all used and, for
notBreaching/breaching, the missing ones count as not breaching/breaching; with missing/ignore they are left out;
when all are missing the state goes to INSUFFICIENT_DATA (missing), stays (ignore), ALARM (breaching) or OK
(notBreaching). CloudWatch also looks a few periods beyond the range for a "missing" alarm; the twin does not.

A clock jump of hours passes hundreds of minute boundaries, so an evaluation reads only the datapoints of its range
(an index by metric), and an alarm whose evaluation would read what its last one read, in the state that one left
it in, is not evaluated again: the verdict is a function of what is read, so it would be no change (`evaluate`).

An SNS alarm action of the state entered publishes CloudWatch's notification (emulator/alarm_messages.py); any
other action is not run and says so in a warning.

Refused, with one logged warning per alarm (its state stays as it is; `refusals` lists them): metric math and
`Metrics` queries, ExtendedStatistic (percentiles), anomaly detection (ThresholdMetricId and the band operators),
composite alarms, periods that are not whole minutes, a DatapointsToAlarm above EvaluationPeriods, and alarms on
an `AWS/` metric the twin does not publish (nothing would ever reach them, so evaluating them would report a calm
that is only the twin's silence).
"""

from __future__ import annotations

import bisect
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import boto3
from moto.cloudwatch.models import Alarm, CloudWatchBackend, cloudwatch_backends
from moto.cloudwatch.responses import CloudWatchResponse
from moto.core.responses import ActionResult

from contract.local_account import LOCAL_ACCOUNT_ID, LOCAL_REGION
from emulator.alarm_evaluation import (
    INSUFFICIENT_DATA,
    PUBLISHED_AWS_METRICS,
    Verdict,
    evaluation_range,
    metric_dimensions,
    period_values,
    refusal_reason,
    state_of_values,
    verdict_of,
)
from emulator.alarm_messages import actions_for, iso_seconds, sns_notification, state_change_event, state_of, utc
from emulator.clock import Clock
from emulator.moto_patches import MotoPatches

logger = logging.getLogger(__name__)

INITIAL_REASON = "Unchecked: Initial alarm creation"

EmitEvent = Callable[[dict[str, Any]], object]
# A metric as an alarm names it: namespace, metric name and the exact set of dimensions (name, value).
MetricKey = tuple[str, str, frozenset[tuple[str, str]]]


@dataclass(frozen=True)
class _Settled:
    """What an alarm's last evaluation read (`_inputs`) and the state it left the alarm in."""

    inputs: tuple[Any, ...]
    state: str


@dataclass(frozen=True)
class Announcement:
    """What one state change sends: the EventBridge event and, per SNS action, (topic ARN, subject, message)."""

    event: dict[str, Any]
    notifications: list[tuple[str, str, str]]


class AlarmEvaluator:
    """Evaluates moto's metric alarms for one account and region and emits their state change events."""

    def __init__(
        self,
        clock: Clock,
        emit: EmitEvent,
        *,
        account_id: str = LOCAL_ACCOUNT_ID,
        region: str = LOCAL_REGION,
        published_aws_metrics: frozenset[tuple[str, str]] = PUBLISHED_AWS_METRICS,
        skip_unchanged: bool = True,
    ) -> None:
        self.clock = clock
        # False: every alarm is evaluated in full at every call, the plain way the skip is checked against (tests,
        # bench/alarm_evaluation.py); it changes nothing else.
        self.skip_unchanged = skip_unchanged
        self.published_aws_metrics = published_aws_metrics
        self.account_id = account_id
        self.region = region
        self._emit = emit
        # One evaluation or SetAlarmState at a time, so each transition is decided, recorded and emitted once.
        self._lock = threading.RLock()
        self._changes: list[dict[str, str]] = []
        self._refusals: dict[str, str] = {}
        self._metric_ids: dict[str, str] = {}
        # moto only appends to a backend's metric_data: the datapoints by metric (`MetricKey`), each metric's in time
        # order beside their times, indexed up to `_indexed_count` of the list `_indexed_list`, so that an evaluation
        # indexes the new ones only and reads just the datapoints of its range, however many are stored. Within one
        # `_index_generation` a metric's lists only grow.
        self._index: dict[MetricKey, tuple[list[datetime], list[Any]]] = {}
        self._indexed_list: list[Any] | None = None
        self._indexed_count = 0
        self._index_generation = 0
        self._settled: dict[str, _Settled] = {}
        self._patches = MotoPatches()

    # ---- what happened -----------------------------------------------------------------------------------------

    @property
    def changes(self) -> list[dict[str, str]]:
        """Every state change so far, oldest first: `{"alarm", "from", "to", "time"}` (time ISO-8601 UTC)."""
        with self._lock:
            return [dict(change) for change in self._changes]

    @property
    def refusals(self) -> dict[str, str]:
        """Alarms the twin does not evaluate, by name, with the reason."""
        with self._lock:
            return dict(self._refusals)

    # ---- evaluation ---------------------------------------------------------------------------------------------

    def evaluate(self, now: datetime | None = None) -> list[dict[str, str]]:
        """Evaluate every metric alarm once at `now` (default the clock's now); returns the state changes.

        An alarm whose evaluation would read exactly what its last one read, and which is still in the state that
        one left it in, is not evaluated again (with `skip_unchanged`): its verdict is a function of what it reads
        (`_inputs`), so it would be the same state again, which is no change. Every other alarm is evaluated in full.
        """
        now = utc(now or self.clock.now())
        announcements: list[Announcement] = []
        changes: list[dict[str, str]] = []
        with self._lock:
            backend = self._backend()
            self._index_new_datapoints(backend)
            for alarm in list(backend.alarms.values()):
                refusal = refusal_reason(alarm, self.published_aws_metrics)
                if refusal is not None:
                    self._refuse(alarm.name, refusal)
                    continue
                inputs, data = self._inputs(alarm, now)
                settled = self._settled.get(alarm.name)
                if (
                    self.skip_unchanged
                    and settled is not None
                    and settled.state == alarm.state_value
                    and settled.inputs == inputs
                ):
                    continue
                values = period_values(alarm, data, now)
                state = state_of_values(alarm, values)
                if state is not None and state != alarm.state_value:
                    change, announcement = self._transition(alarm, verdict_of(alarm, values, now), now)
                    changes.append(change)
                    announcements.append(announcement)
                self._settled[alarm.name] = _Settled(inputs, alarm.state_value)
        for announcement in announcements:
            self._announce(announcement)
        return changes

    def _index_new_datapoints(self, backend: CloudWatchBackend) -> None:
        data = backend.metric_data
        if self._indexed_list is not data or self._indexed_count > len(data):
            self._index, self._indexed_list, self._indexed_count = {}, data, 0
            self._index_generation += 1
        end = len(data)
        for datum in data[self._indexed_count : end]:
            key = (datum.namespace, datum.name, metric_dimensions(datum.dimensions))
            times, datums = self._index.setdefault(key, ([], []))
            moment = utc(datum.timestamp)
            # Usually at the end (datapoints come in time order); a late one with an older timestamp goes in its place.
            at = bisect.bisect_right(times, moment)
            times.insert(at, moment)
            datums.insert(at, datum)
        self._indexed_count = end

    def _inputs(self, alarm: Alarm, now: datetime) -> tuple[tuple[Any, ...], list[Any]]:
        """What an evaluation of `alarm` at `now` reads, as a value equal for two evaluations only when they read
        the same (its configuration, and the same datapoints in each period), and the datapoints of its range.

        A metric's lists only grow within an index generation, so the same generation and length mean the same
        datapoints in the same order, and the same positions of the periods' starts in them the same datapoints in
        each period. `period_values` and so the verdict's state depend on nothing else.
        """
        dimensions = metric_dimensions(alarm.dimensions)
        times, datums = self._index.get((alarm.namespace, alarm.metric_name, dimensions), ([], []))
        first, _ = evaluation_range(alarm, now)
        period = timedelta(seconds=int(alarm.period))
        bounds = tuple(
            bisect.bisect_left(times, first + period * index) for index in range(int(alarm.evaluation_periods) + 1)
        )
        configuration = (
            alarm.namespace,
            alarm.metric_name,
            dimensions,
            alarm.unit,
            alarm.statistic,
            alarm.period,
            alarm.evaluation_periods,
            alarm.datapoints_to_alarm,
            alarm.threshold,
            alarm.comparison_operator,
            alarm.treat_missing_data,
        )
        return (configuration, self._index_generation, len(times), bounds), datums[bounds[0] : bounds[-1]]

    def _refuse(self, alarm_name: str, reason: str) -> None:
        if self._refusals.get(alarm_name) != reason:
            self._refusals[alarm_name] = reason
            logger.warning(
                "The local twin does not evaluate alarm %s: %s. Its state stays as it is.", alarm_name, reason
            )

    def _transition(self, alarm: Alarm, verdict: Verdict, now: datetime) -> tuple[dict[str, str], Announcement]:
        previous = state_of(alarm)
        alarm.update_state(verdict.reason, verdict.reason_data, str(verdict.state))
        alarm.state_updated_timestamp = _naive(now)
        return self._record(alarm, previous, now)

    def _record(self, alarm: Alarm, previous: dict[str, Any], now: datetime) -> tuple[dict[str, str], Announcement]:
        change = {"alarm": alarm.name, "from": previous["value"], "to": alarm.state_value, "time": iso_seconds(now)}
        self._changes.append(change)
        logger.info("Alarm %s: %s -> %s (%s)", alarm.name, change["from"], change["to"], alarm.state_reason)
        where = {"account_id": self.account_id, "region": self.region}
        metric_id = self._metric_ids.setdefault(alarm.name, str(uuid.uuid4()))
        event = state_change_event(alarm, previous, now, metric_id=metric_id, **where)
        notifications = []
        for action in actions_for(alarm):
            if action.startswith("arn:aws:sns:"):
                notifications.append((action, *sns_notification(alarm, previous, now, **where)))
            else:
                logger.warning(
                    "The local twin performs only SNS alarm actions; alarm %s did not run %s", alarm.name, action
                )
        return dict(change), Announcement(event, notifications)

    def _announce(self, announcement: Announcement) -> None:
        """Put the event on the bus and publish the SNS actions' notifications (outside the lock: routing runs
        functions, which may read alarms)."""
        self._emit(announcement.event)
        for topic_arn, subject, message in announcement.notifications:
            try:
                boto3.client("sns", region_name=self.region).publish(
                    TopicArn=topic_arn, Subject=subject, Message=message
                )
            except Exception as error:  # an action that fails never fails the evaluation, as on AWS
                logger.warning("Alarm action %s could not be published: %s", topic_arn, error)

    # ---- moto hooks ---------------------------------------------------------------------------------------------

    def install(self) -> None:
        """Patch moto's CloudWatch as the module docstring says, until `uninstall()`."""
        if self._patches.active:
            return
        evaluator = self
        original_put_alarm = CloudWatchBackend.put_metric_alarm
        original_set_state = CloudWatchBackend.set_alarm_state
        original_put_data = CloudWatchBackend.put_metric_data

        def put_metric_alarm(backend: CloudWatchBackend, *args: Any, **kwargs: Any) -> Alarm:
            name = kwargs.get("name", args[0] if args else None)
            with evaluator._lock:
                previous = backend.alarms.get(str(name))
                alarm = original_put_alarm(backend, *args, **kwargs)
                evaluator._adopt(alarm, previous)
            return alarm

        def set_alarm_state(
            backend: CloudWatchBackend, alarm_name: str, reason: str, reason_data: str, state_value: str
        ) -> None:
            announcement = None
            with evaluator._lock:
                alarm = backend.alarms.get(alarm_name)
                previous = state_of(alarm) if alarm is not None else None
                original_set_state(backend, alarm_name, reason, reason_data, state_value)
                alarm = backend.alarms[alarm_name]
                now = utc(evaluator.clock.now())
                alarm.state_updated_timestamp = _naive(now)
                # CloudWatch acts (and sends the event) only when the state set differs from the one it had.
                if previous is not None and previous["value"] != state_value:
                    _, announcement = evaluator._record(alarm, previous, now)
            if announcement is not None:
                evaluator._announce(announcement)

        def put_metric_data(backend: CloudWatchBackend, namespace: str, metric_data: list[dict[str, Any]]) -> None:
            stamped = _naive(utc(evaluator.clock.now()))
            dated = [datum if datum.get("Timestamp") else {**datum, "Timestamp": stamped} for datum in metric_data]
            original_put_data(backend, namespace, dated)

        original_describe = CloudWatchResponse.describe_alarms

        def describe_alarms(response: CloudWatchResponse) -> ActionResult:
            # moto applies only the first of ActionPrefix, AlarmNamePrefix, AlarmNames and StateValue it is given;
            # CloudWatch applies every one (retrain_on_drift's recheck asks for a prefix's alarms in ALARM).
            answer = original_describe(response)
            wanted = _alarm_filters(response)
            result = cast(dict[str, list[Alarm]], answer.result)
            return ActionResult({kind: [a for a in alarms if wanted(a)] for kind, alarms in result.items()})

        self._patches.replace(CloudWatchResponse, "describe_alarms", describe_alarms)
        self._patches.replace(CloudWatchBackend, "put_metric_alarm", put_metric_alarm)
        self._patches.replace(CloudWatchBackend, "set_alarm_state", set_alarm_state)
        self._patches.replace(CloudWatchBackend, "put_metric_data", put_metric_data)

    def uninstall(self) -> None:
        """Give moto its own CloudWatch back."""
        self._patches.undo()

    def _adopt(self, alarm: Alarm, previous: Alarm | None) -> None:
        """A new alarm starts INSUFFICIENT_DATA; an updated one keeps its state and history (PutMetricAlarm)."""
        now = _naive(utc(self.clock.now()))
        alarm.configuration_updated_timestamp = now
        self._refusals.pop(alarm.name, None)
        if previous is None:
            alarm.state_value, alarm.state_reason, alarm.state_updated_timestamp = (
                INSUFFICIENT_DATA,
                INITIAL_REASON,
                now,
            )
            return
        alarm.state_value = previous.state_value
        alarm.state_reason = previous.state_reason
        alarm.state_reason_data = previous.state_reason_data
        alarm.state_updated_timestamp = previous.state_updated_timestamp
        alarm.history = previous.history

    def _backend(self) -> CloudWatchBackend:
        return cloudwatch_backends[self.account_id][self.region]


def _alarm_filters(response: CloudWatchResponse) -> Callable[[Alarm], bool]:
    """Whether an alarm passes every filter of a DescribeAlarms request."""
    action_prefix = response._get_param("ActionPrefix")
    name_prefix = response._get_param("AlarmNamePrefix")
    names = response._get_param("AlarmNames", [])
    state_value = response._get_param("StateValue")

    def wanted(alarm: Alarm) -> bool:
        return (
            (not action_prefix or any(str(action).startswith(action_prefix) for action in alarm.alarm_actions))
            and (not name_prefix or alarm.name.startswith(name_prefix))
            and (not names or alarm.name in names)
            and (not state_value or alarm.state_value == state_value)
        )

    return wanted


def _naive(moment: datetime) -> datetime:
    """moto keeps its timestamps as naive UTC."""
    return moment.astimezone(UTC).replace(tzinfo=None)
