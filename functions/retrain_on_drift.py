"""Starts `training` when one of this model's drift alarms goes into ALARM.

Trigger: EventBridge "CloudWatch Alarm State Change". Which alarms belong to the model: those whose
name starts with `DRIFT_ALARM_PREFIX`. A name prefix rather than a tag because the event carries
the name, so deciding needs no extra API call (nor `cloudwatch:ListTagsForResource`), and because
the EventBridge rule can filter on the same prefix, so foreign alarms rarely invoke the function.

Decisions, each logged with its reason and counted as a metric:
- `ignored`: not a transition into ALARM (to OK or INSUFFICIENT_DATA, or ALARM to ALARM), or an
  alarm without the prefix;
- `skipped_running`: a `training` execution is RUNNING (one state machine per model, so any
  running execution is this model's);
- `skipped_cooldown`: the newest execution started or stopped less than `RETRAIN_COOLDOWN_MINUTES` ago;
- `started`: `training` started, its input recording the alarm, metric, time and reason;
- `DuplicateDelivery` (metric only): a redelivered transition; the first delivery's decision is returned;
- `rejected`: the event is malformed: one logged error and a normal return, because raising would
  make EventBridge's asynchronous invocation retry an event that can never succeed.

A transition is handled once: Powertools' idempotency utility keys it on the alarm name and the
state-change timestamp from the event (never the EventBridge `id`, which differs between
redeliveries of the same transition), and the execution name is derived from the same two values,
so even a start that slipped past the store reuses the execution.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import boto3
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.idempotency import idempotent_function
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from common.idempotency import ALARM_TRANSITION_MEMORY_SECONDS, idempotency_config, persistence_layer
from common.naming import execution_name
from common.observability import count_decision, instrumented_handler, logger
from common.parsing import validation_summary
from common.settings import DriftSettings
from common.training import start_training, training_input
from pydantic import BaseModel, ConfigDict, Field, ValidationError

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import BasePersistenceLayer
    from aws_lambda_powertools.utilities.typing import LambdaContext


class AlarmState(BaseModel):
    value: Literal["OK", "ALARM", "INSUFFICIENT_DATA"]
    reason: str = ""
    timestamp: str = Field(min_length=1)


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

    alarm_name: str = Field(alias="alarmName", min_length=1)
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


@dataclass(frozen=True)
class DriftDecision:
    """What the function did with one alarm event, and why."""

    action: Literal["started", "ignored", "skipped_running", "skipped_cooldown", "rejected"]
    reason: str
    alarm_name: str | None = None
    execution_name: str | None = None
    execution_arn: str | None = None
    # True when this delivery repeated a transition already handled: the first delivery's decision is returned.
    duplicate: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_METRIC_BY_ACTION = {
    "started": "RetrainStarted",
    "ignored": "AlarmIgnored",
    "skipped_running": "RetrainSkippedRunning",
    "skipped_cooldown": "RetrainSkippedCooldown",
    "rejected": "EventRejected",
}


def _relevance(detail: AlarmStateChangeDetail, settings: DriftSettings) -> str | None:
    """Why this alarm event is not ours to act on, or None when it is a drift alarm entering ALARM."""
    if not detail.alarm_name.startswith(settings.drift_alarm_prefix):
        return f"alarm {detail.alarm_name!r} does not start with DRIFT_ALARM_PREFIX {settings.drift_alarm_prefix!r}"
    if detail.state.value != "ALARM":
        return f"alarm {detail.alarm_name!r} went to {detail.state.value}, not ALARM"
    if detail.previous_state.value == "ALARM":
        return f"alarm {detail.alarm_name!r} was already in ALARM"
    return None


def _blocking_execution(
    sfn_client: Any, state_machine_arn: str, cooldown: timedelta, now: datetime
) -> DriftDecision | None:
    """A skip decision when a run is in progress or the cooldown since the newest run holds, else None."""
    running = sfn_client.list_executions(stateMachineArn=state_machine_arn, statusFilter="RUNNING", maxResults=1)
    if running["executions"]:
        name = running["executions"][0]["name"]
        return DriftDecision("skipped_running", f"training execution {name} is running")
    # ListExecutions returns the most recently started execution first.
    newest = sfn_client.list_executions(stateMachineArn=state_machine_arn, maxResults=1)["executions"]
    if not newest:
        return None
    last_activity = newest[0].get("stopDate") or newest[0]["startDate"]
    if now - last_activity < cooldown:
        return DriftDecision(
            "skipped_cooldown",
            f"training execution {newest[0]['name']} ended at {last_activity.isoformat()}, "
            f"within the {cooldown} cooldown",
        )
    return None


def handle_alarm(
    event: AlarmStateChangeEvent,
    settings: DriftSettings,
    sfn_client: Any,
    persistence: BasePersistenceLayer,
    context: LambdaContext | None,
    now: datetime,
) -> DriftDecision:
    """Decide what one parsed alarm event calls for and act on it, once per alarm transition."""
    detail = event.detail
    not_ours = _relevance(detail, settings)
    if not_ours is not None:
        return DriftDecision("ignored", not_ours, alarm_name=detail.alarm_name)

    @idempotent_function(
        data_keyword_argument="transition",
        persistence_store=persistence,
        config=idempotency_config(context, ALARM_TRANSITION_MEMORY_SECONDS),
        key_prefix=f"retrain_on_drift.{settings.model_name}",
    )
    def act_once(transition: dict[str, str]) -> dict[str, Any]:
        blocked = _blocking_execution(
            sfn_client, settings.training_state_machine_arn, timedelta(minutes=settings.cooldown_minutes), now
        )
        if blocked is not None:
            return DriftDecision(blocked.action, blocked.reason, alarm_name=detail.alarm_name).as_dict()
        name = execution_name(
            f"{settings.model_name}-drift", f"{transition['alarm_name']}|{transition['state_timestamp']}"
        )
        trigger = {
            "alarm_name": detail.alarm_name,
            "alarm_arn": next(iter(event.resources), ""),
            "metric": detail.metric,
            "state_change_time": detail.state.timestamp,
            "reason": detail.state.reason,
        }
        started = start_training(
            sfn_client,
            settings.training_state_machine_arn,
            name,
            training_input(settings.training_data_uri, "drift", trigger, objects=[]),
        )
        reason = "an earlier delivery already started it" if started.already_existed else "drift alarm in ALARM"
        return DriftDecision(
            "started", reason, detail.alarm_name, started.execution_name, started.execution_arn
        ).as_dict()

    # The key is the transition itself: the same alarm entering ALARM at the same instant.
    outcome = act_once(transition={"alarm_name": detail.alarm_name, "state_timestamp": detail.state.timestamp})
    return DriftDecision(**outcome)


def _record(decision: DriftDecision) -> DriftDecision:
    count_decision("DuplicateDelivery" if decision.duplicate else _METRIC_BY_ACTION[decision.action])
    if decision.action == "rejected":
        logger.error("alarm event rejected", extra={"decision": decision.as_dict()})
    else:
        logger.info(f"alarm event {decision.action}", extra={"decision": decision.as_dict()})
    return decision


@instrumented_handler(correlation_id_path=correlation_paths.EVENT_BRIDGE)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = DriftSettings.from_env()
    try:
        alarm_event = parse(event=event, model=AlarmStateChangeEvent)
    except ValidationError as error:
        reason = f"not a CloudWatch Alarm State Change event: {validation_summary(error)}"
        return _record(DriftDecision("rejected", reason)).as_dict()
    decision = handle_alarm(
        alarm_event,
        settings,
        sfn_client=boto3.client("stepfunctions"),
        persistence=persistence_layer(settings.idempotency_table_name),
        context=context,
        now=datetime.now(UTC),
    )
    return _record(decision).as_dict()
