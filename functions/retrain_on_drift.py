"""Starts `training` when one of this stack's drift alarms goes into ALARM, and re-checks the alarms on a schedule.

Triggers: EventBridge "CloudWatch Alarm State Change" (rule `<stack>-drift-alarm`), a schedule
(`<stack>-drift-recheck`) whose "Scheduled Event" makes the function look at the alarms itself, and
the business retraining schedule (`<stack>-scheduled-retraining`, the rule `RETRAINING_SCHEDULE_RULE_ARN`
names), whose Scheduled Event starts a training under the same lease (common.scheduled_retraining).

Which alarms belong to the stack: those named `DRIFT_ALARM_PREFIX` (`<stack>-drift-`, separator
included, so `mlops-dev-drift-` never claims `mlops-dev2-drift-...`) whose event comes from the
stack's own account and region (those of `TRAINING_STATE_MACHINE_ARN`) and names the alarm's own
ARN. A name prefix rather than a tag because the event carries the name and the EventBridge rule
can filter on the same prefix, account and region.

What a user can expect: every entry of a drift alarm into ALARM is answered by exactly one
training that starts after it. When the alarm enters ALARM during the cooldown or while a training
runs, nothing is lost: the re-check finds the alarm still in ALARM (DescribeAlarms with the prefix)
and starts training once the cooldown has ended and no training runs. An alarm that entered ALARM
before the newest training started is already answered by it (`covered`), so several alarms of one
drift episode, or one alarm that stays in ALARM, start one training, not one each.

Decisions, each logged with its reason and counted as a metric:
- `ignored`: not a transition into ALARM, an alarm without the prefix, or (re-check) no alarm in
  ALARM that the newest training does not answer;
- `covered`: a training started after the alarm entered ALARM;
- `skipped_running`: a training of the model runs or holds the lease (common.single_flight);
- `skipped_cooldown`: the newest execution started or stopped less than `RETRAIN_COOLDOWN_MINUTES` ago;
- `started`: `training` started, its input recording the alarm, metric, breaching value and threshold (from
  the alarm's reasonData), time and (bounded) reason;
- `DuplicateDelivery` (metric only): a redelivered transition; the first delivery's decision is returned;
- `rejected`: a malformed event, or one from another account, region or alarm ARN: one logged error
  and a normal return, because raising would make EventBridge's asynchronous invocation retry an
  event that can never succeed.

Every decision but `ignored` is one audit event on `AUDIT_EVENT_BUS_NAME` (common.audit):
`training_started`, or `training_skipped` with the action (`covered`, `skipped_running`,
`skipped_cooldown`, `rejected`) and its reason; a run whose audit event could not be written raises,
so Lambda retries it (the retry answers from the idempotency store and writes the event again, with
the same `audit_id`).

Skips are not remembered: only `started` and `covered`, which stay true, are stored as the
idempotent result of a transition. Powertools' idempotency utility keys a transition on the alarm
name and the instant it entered ALARM (never the EventBridge `id`, which differs between
redeliveries), and the execution name is derived from the same two values, as the re-check derives
it from DescribeAlarms, so the event and the re-check of one transition name one execution.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import boto3
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.idempotency import idempotent_function
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from common import audit
from common.audit import AuditContext
from common.idempotency import ALARM_TRANSITION_MEMORY_SECONDS, idempotency_config, persistence_layer
from common.naming import execution_name
from common.observability import count_decision, instrumented_handler, logger
from common.parsing import validation_summary
from common.scheduled_retraining import METRIC_BY_SCHEDULE_ACTION, ScheduleDecision, ScheduledFiring, handle_firing
from common.settings import DriftSettings
from common.single_flight import TrainingLease
from common.training import bounded_text, start_training, training_input
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import BasePersistenceLayer
    from aws_lambda_powertools.utilities.typing import LambdaContext

# CloudWatch's limit on alarm names.
MAX_ALARM_NAME_LENGTH = 255


class AlarmState(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    value: Literal["OK", "ALARM", "INSUFFICIENT_DATA"]
    reason: str = ""
    # CloudWatch's machine-readable reason (a JSON text): the data points that crossed and the threshold.
    reason_data: str = Field(default="", alias="reasonData")
    timestamp: AwareDatetime


def breaching_value(reason_data: str) -> tuple[float | None, float | None]:
    """(the newest data point, the threshold) an alarm's reasonData names; None for what it does not say.

    CloudWatch lists `recentDatapoints` oldest first. A composite alarm, or a reason that is not a metric
    alarm's JSON, has neither.
    """
    try:
        data = json.loads(reason_data) if reason_data else {}
    except json.JSONDecodeError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    points = data.get("recentDatapoints")
    value = points[-1] if isinstance(points, list) and points else None
    threshold = data.get("threshold")

    def number(candidate: Any) -> float | None:
        finite = isinstance(candidate, int | float) and not isinstance(candidate, bool) and math.isfinite(candidate)
        return float(candidate) if finite else None

    return number(value), number(threshold)


class AlarmMetric(BaseModel):
    namespace: str | None = None
    name: str | None = None


class AlarmMetricStat(BaseModel):
    metric: AlarmMetric


class AlarmMetricQuery(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: str = ""
    metric_stat: AlarmMetricStat | None = Field(default=None, alias="metricStat")
    expression: str | None = None


class AlarmConfiguration(BaseModel):
    metrics: list[AlarmMetricQuery] = []


class AlarmStateChangeDetail(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    alarm_name: str = Field(alias="alarmName", min_length=1, max_length=MAX_ALARM_NAME_LENGTH)
    state: AlarmState
    previous_state: AlarmState = Field(alias="previousState")
    configuration: AlarmConfiguration = AlarmConfiguration()

    @property
    def metric(self) -> str:
        """The alarm's metric as `namespace/name`, or its math expression; empty for composite alarms."""
        for query in self.configuration.metrics:
            if query.metric_stat is not None:
                metric = query.metric_stat.metric
                return f"{metric.namespace}/{metric.name}"
        return next((query.expression for query in self.configuration.metrics if query.expression), "")


class AlarmStateChangeEvent(EventBridgeModel):
    source: Literal["aws.cloudwatch"]
    detail_type: Literal["CloudWatch Alarm State Change"] = Field(alias="detail-type")
    detail: AlarmStateChangeDetail


class ScheduledEvent(EventBridgeModel):
    """A schedule's event: the drift re-check's, or the retraining schedule's when `resources` names its rule."""

    source: Literal["aws.events"]
    detail_type: Literal["Scheduled Event"] = Field(alias="detail-type")


Action = Literal["started", "ignored", "covered", "skipped_running", "skipped_cooldown", "rejected"]


@dataclass(frozen=True)
class DriftDecision:
    """What the function did with one alarm event or re-check, and why."""

    action: Action
    reason: str
    alarm_name: str | None = None
    execution_name: str | None = None
    execution_arn: str | None = None
    # True when this delivery repeated a transition already handled: the first delivery's decision is returned.
    duplicate: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_Decision = TypeVar("_Decision", DriftDecision, ScheduleDecision)

_METRIC_BY_ACTION = {
    "started": "RetrainStarted",
    "ignored": "AlarmIgnored",
    "covered": "AlarmCovered",
    "skipped_running": "RetrainSkippedRunning",
    "skipped_cooldown": "RetrainSkippedCooldown",
    "rejected": "EventRejected",
}
# Decisions that stay true, so a redelivery may be answered from the idempotency store.
_FINAL_ACTIONS = frozenset({"started", "covered"})


@dataclass(frozen=True)
class AlarmTransition:
    """One drift alarm's entry into ALARM, from its event or from DescribeAlarms."""

    alarm_name: str
    alarm_arn: str
    entered_at: datetime
    reason: str
    metric: str
    found_by: Literal["alarm_event", "recheck"]
    # The alarm's machine-readable reason (CloudWatch's reasonData / StateReasonData), for the breaching value.
    reason_data: str = ""

    @property
    def key(self) -> str:
        """The transition's identity: the alarm and the instant (UTC, milliseconds) it entered ALARM."""
        return f"{self.alarm_name}|{self.entered_at.astimezone(UTC).isoformat(timespec='milliseconds')}"

    def detail(self) -> dict[str, str | float | None]:
        """The `training` input's `trigger.detail`: which alarm, metric and value caused it; free text bounded."""
        value, threshold = breaching_value(self.reason_data)
        return {
            "alarm_name": self.alarm_name,
            "alarm_arn": self.alarm_arn,
            "metric": bounded_text(self.metric),
            "value": value,
            "threshold": threshold,
            "state_change_time": self.entered_at.astimezone(UTC).isoformat(timespec="milliseconds"),
            "reason": bounded_text(self.reason),
            "found_by": self.found_by,
        }


class _NotFinal(Exception):
    """Carries a skip out of the idempotent call, so Powertools forgets the transition instead of storing the skip."""

    def __init__(self, decision: DriftDecision) -> None:
        super().__init__(decision.reason)
        self.decision = decision


def _not_from_this_stack(event: AlarmStateChangeEvent, settings: DriftSettings) -> str | None:
    """Why the event cannot be one of this stack's alarms (another account, region or alarm ARN), or None."""
    scope = settings.scope
    if event.account != scope.account or event.region != scope.region:
        return (
            f"event from account {event.account} in {event.region}, not this stack's {scope.account} in {scope.region}"
        )
    expected_arn = scope.arn("cloudwatch", f"alarm:{event.detail.alarm_name}")
    if event.resources != [expected_arn]:
        return f"event resources {event.resources[:3]} are not the alarm's own ARN {expected_arn}"
    return None


def _relevance(detail: AlarmStateChangeDetail, settings: DriftSettings) -> str | None:
    """Why this alarm event is not ours to act on, or None when it is a drift alarm entering ALARM."""
    if not detail.alarm_name.startswith(settings.drift_alarm_prefix):
        return f"alarm {detail.alarm_name!r} does not start with DRIFT_ALARM_PREFIX {settings.drift_alarm_prefix!r}"
    if detail.state.value != "ALARM":
        return f"alarm {detail.alarm_name!r} went to {detail.state.value}, not ALARM"
    if detail.previous_state.value == "ALARM":
        return f"alarm {detail.alarm_name!r} was already in ALARM"
    return None


def _newest_execution(sfn_client: Any, state_machine_arn: str) -> dict[str, Any] | None:
    # ListExecutions returns the most recently started execution first.
    newest = sfn_client.list_executions(stateMachineArn=state_machine_arn, maxResults=1)["executions"]
    return newest[0] if newest else None


def act_on_transition(
    transition: AlarmTransition,
    settings: DriftSettings,
    sfn_client: Any,
    lease: TrainingLease,
    now: datetime,
) -> DriftDecision:
    """Start the training that answers `transition`, unless one already does, one runs, or the cooldown holds."""
    name = execution_name(f"{settings.model_name}-drift", transition.key)
    alarm = transition.alarm_name

    def decided(action: Action, reason: str, started_name: str | None = None, arn: str | None = None) -> DriftDecision:
        return DriftDecision(action, reason, alarm, started_name, arn)

    newest = _newest_execution(sfn_client, settings.training_state_machine_arn)
    if newest is not None and newest["startDate"] >= transition.entered_at:
        if newest["name"] == name:
            return decided("started", "an earlier delivery already started it", name, newest["executionArn"])
        return decided(
            "covered",
            f"training execution {newest['name']} started at {newest['startDate'].isoformat()}, "
            f"after the alarm entered ALARM at {transition.entered_at.isoformat()}",
            newest["name"],
            newest["executionArn"],
        )
    if newest is not None and newest["status"] == "RUNNING":
        return decided("skipped_running", f"training execution {newest['name']} is running; the re-check acts later")
    cooldown = timedelta(minutes=settings.cooldown_minutes)
    if newest is not None:
        last_activity = newest.get("stopDate") or newest["startDate"]
        if now - last_activity < cooldown:
            return decided(
                "skipped_cooldown",
                f"training execution {newest['name']} ended at {last_activity.isoformat()}, within the "
                f"{cooldown} cooldown; the re-check acts when it is over",
            )
    execution_input = training_input(settings.training_data_uri, "drift", transition.detail(), objects=[])
    started = start_training(sfn_client, lease, settings.training_state_machine_arn, name, execution_input, now)
    if started.status == "busy":
        return decided("skipped_running", f"{started.reason}; the re-check acts later")
    if started.status == "failed" and not started.retryable:
        return decided("rejected", started.reason)
    if started.status in ("failed", "unknown"):
        # Raised so Lambda retries the event; the re-check would find the alarm in any case.
        raise RuntimeError(f"could not start training for alarm {alarm!r}: {started.reason}")
    return decided("started", f"drift alarm in ALARM: {started.reason}", started.execution_name, started.execution_arn)


def handle_alarm(
    event: AlarmStateChangeEvent,
    settings: DriftSettings,
    sfn_client: Any,
    lease: TrainingLease,
    persistence: BasePersistenceLayer,
    context: LambdaContext | None,
    now: datetime,
) -> DriftDecision:
    """Decide what one parsed alarm event calls for and act on it; a final decision is kept per transition."""
    detail = event.detail
    foreign = _not_from_this_stack(event, settings)
    if foreign is not None:
        return DriftDecision("rejected", foreign, alarm_name=detail.alarm_name)
    not_ours = _relevance(detail, settings)
    if not_ours is not None:
        return DriftDecision("ignored", not_ours, alarm_name=detail.alarm_name)
    transition = AlarmTransition(
        alarm_name=detail.alarm_name,
        alarm_arn=event.resources[0],
        entered_at=detail.state.timestamp,
        reason=detail.state.reason,
        metric=detail.metric,
        found_by="alarm_event",
        reason_data=detail.state.reason_data,
    )

    @idempotent_function(
        data_keyword_argument="transition_key",
        persistence_store=persistence,
        config=idempotency_config(context, ALARM_TRANSITION_MEMORY_SECONDS),
        key_prefix=f"retrain_on_drift.{settings.model_name}",
    )
    def act_once(transition_key: dict[str, str]) -> dict[str, Any]:
        decision = act_on_transition(transition, settings, sfn_client, lease, now)
        if decision.action not in _FINAL_ACTIONS:
            raise _NotFinal(decision)
        return decision.as_dict()

    try:
        return DriftDecision(**act_once(transition_key={"transition": transition.key}))
    except _NotFinal as skipped:
        return skipped.decision


def _alarms_in_alarm(cloudwatch_client: Any, prefix: str) -> Iterator[dict[str, Any]]:
    pages = cloudwatch_client.get_paginator("describe_alarms").paginate(
        AlarmNamePrefix=prefix, StateValue="ALARM", AlarmTypes=["MetricAlarm", "CompositeAlarm"]
    )
    for page in pages:
        yield from page.get("MetricAlarms", [])
        yield from page.get("CompositeAlarms", [])


def _transition_of(alarm: dict[str, Any]) -> AlarmTransition:
    # StateTransitionedTimestamp is when the alarm entered its state, the instant its event carries;
    # StateUpdatedTimestamp (later when only the reason changed) stands in where an answer lacks it.
    entered_at = alarm.get("StateTransitionedTimestamp") or alarm["StateUpdatedTimestamp"]
    metric = f"{alarm['Namespace']}/{alarm['MetricName']}" if alarm.get("MetricName") else ""
    return AlarmTransition(
        alarm_name=alarm["AlarmName"],
        alarm_arn=alarm["AlarmArn"],
        entered_at=entered_at,
        reason=alarm.get("StateReason", ""),
        metric=metric,
        found_by="recheck",
        reason_data=alarm.get("StateReasonData", ""),
    )


def recheck(
    settings: DriftSettings, cloudwatch_client: Any, sfn_client: Any, lease: TrainingLease, now: datetime
) -> DriftDecision:
    """Act on the earliest drift alarm in ALARM that no training answers yet (see the module docstring)."""
    newest = _newest_execution(sfn_client, settings.training_state_machine_arn)
    answered_until = newest["startDate"] if newest else None
    waiting = sorted(
        (
            transition
            for transition in map(_transition_of, _alarms_in_alarm(cloudwatch_client, settings.drift_alarm_prefix))
            if answered_until is None or transition.entered_at > answered_until
        ),
        key=lambda transition: (transition.entered_at, transition.alarm_name),
    )
    if not waiting:
        return DriftDecision("ignored", f"no {settings.drift_alarm_prefix}* alarm in ALARM waits for a training")
    return act_on_transition(waiting[0], settings, sfn_client, lease, now)


# Audited decisions about training; `ignored` (an OK transition, another alarm, a re-check with nothing to do) is
# no decision about training, and alarm state changes are recorded by audit_recorder.
_AUDIT_DECISION_BY_ACTION = {
    "started": "training_started",
    "covered": "training_skipped",
    "skipped_running": "training_skipped",
    "skipped_cooldown": "training_skipped",
    "rejected": "training_skipped",
}


def audit_event_of(
    decision: DriftDecision | ScheduleDecision, settings: DriftSettings, context: AuditContext, now: datetime
) -> dict[str, Any] | None:
    """The audit event of a decision about training, or None for one that is not (`ignored`)."""
    audited = _AUDIT_DECISION_BY_ACTION.get(decision.action)
    if audited is None:
        return None
    trigger = "schedule" if isinstance(decision, ScheduleDecision) else "drift"
    subject = {"state_machine_arn": settings.training_state_machine_arn, "model_name": settings.model_name}
    if isinstance(decision, DriftDecision) and decision.alarm_name:
        subject["alarm_name"] = decision.alarm_name
    if decision.execution_arn and decision.action == "started":
        subject["execution_arn"] = decision.execution_arn
    # A start is identified by its deterministic execution name (one per transition or firing), so a redelivery
    # repeats its audit_id; every skip is a decision of its own invocation.
    key = (
        f"started|{decision.execution_name}"
        if decision.action == "started"
        else f"{decision.action}|{context.correlation_id}"
    )
    details: dict[str, Any] = {"action": decision.action, "trigger": trigger, "duplicate_delivery": decision.duplicate}
    if isinstance(decision, ScheduleDecision) and decision.scheduled_time:
        details["scheduled_time"] = decision.scheduled_time
    return audit.audit_event(
        context, decision=audited, key=key, subject=subject, reason=decision.reason, time=now, details=details
    )


def _audited(decision: _Decision, settings: DriftSettings, now: datetime) -> _Decision:
    """Put the decision's audit event on the audit bus; raise (so Lambda retries) when it could not be written."""
    context = AuditContext.from_env("retrain_on_drift", logger.get_correlation_id())
    event = audit_event_of(decision, settings, context, now)
    if event is not None:
        written = audit.send(boto3.client("events"), audit.audit_bus_name(), [event])
        if written.unwritten:
            count_decision("AuditNotWritten")
            raise audit.AuditNotWritten(f"audit event of {decision.action} not written: {written.problem}")
    return decision


def _record(decision: DriftDecision, settings: DriftSettings, now: datetime) -> DriftDecision:
    return _audited(_logged_and_counted(decision, "alarm event", _METRIC_BY_ACTION), settings, now)


def _record_firing(decision: ScheduleDecision, settings: DriftSettings, now: datetime) -> ScheduleDecision:
    return _audited(_logged_and_counted(decision, "scheduled retraining", METRIC_BY_SCHEDULE_ACTION), settings, now)


def _logged_and_counted(decision: _Decision, subject: str, metric_by_action: dict[str, str]) -> _Decision:
    """One metric and one structured log line per decision; a rejection is an error, so it is seen."""
    count_decision("DuplicateDelivery" if decision.duplicate else metric_by_action[decision.action])
    if decision.action == "rejected":
        logger.error(f"{subject} rejected: {decision.reason}", extra={"decision": decision.as_dict()})
    else:
        logger.info(f"{subject} {decision.action}", extra={"decision": decision.as_dict()})
    return decision


def is_retraining_schedule(event: ScheduledEvent, settings: DriftSettings) -> bool:
    """The event is the retraining schedule's firing, not the re-check's: it names exactly that rule."""
    return settings.retraining_schedule_rule_arn is not None and event.resources == [
        settings.retraining_schedule_rule_arn
    ]


def training_lease(settings: DriftSettings, sfn_client: Any, dynamodb_client: Any = None) -> TrainingLease:
    return TrainingLease(
        dynamodb_client or boto3.client("dynamodb"), settings.idempotency_table_name, settings.model_name, sfn_client
    )


@instrumented_handler(correlation_id_path=correlation_paths.EVENT_BRIDGE)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = DriftSettings.from_env()
    sfn_client = boto3.client("stepfunctions")
    now = datetime.now(UTC)
    if isinstance(event, dict) and event.get("detail-type") == "Scheduled Event":
        try:
            scheduled = parse(event=event, model=ScheduledEvent)
        except ValidationError as error:
            rejected = DriftDecision("rejected", f"not a Scheduled Event: {validation_summary(error)}")
            return _record(rejected, settings, now).as_dict()
        if (scheduled.account, scheduled.region) != (settings.scope.account, settings.scope.region):
            reason = f"scheduled event from account {scheduled.account} in {scheduled.region}, not this stack's"
            return _record(DriftDecision("rejected", reason), settings, now).as_dict()
        lease = training_lease(settings, sfn_client)
        if is_retraining_schedule(scheduled, settings):
            firing = ScheduledFiring(rule_arn=scheduled.resources[0], scheduled_at=scheduled.time)
            persistence = persistence_layer(settings.idempotency_table_name)
            decided = handle_firing(firing, settings, sfn_client, lease, persistence, context, now)
            return _record_firing(decided, settings, now).as_dict()
        return _record(recheck(settings, boto3.client("cloudwatch"), sfn_client, lease, now), settings, now).as_dict()
    try:
        alarm_event = parse(event=event, model=AlarmStateChangeEvent)
    except ValidationError as error:
        reason = f"not a CloudWatch Alarm State Change event: {validation_summary(error)}"
        return _record(DriftDecision("rejected", reason), settings, now).as_dict()
    decision = handle_alarm(
        alarm_event,
        settings,
        sfn_client=sfn_client,
        lease=training_lease(settings, sfn_client),
        persistence=persistence_layer(settings.idempotency_table_name),
        context=context,
        now=now,
    )
    return _record(decision, settings, now).as_dict()
