"""Records the decisions AWS services and people make as audit events, from the events AWS itself sends.

Trigger: EventBridge rules on the default bus (template.yaml `AuditRecorderFunction`), each narrowed to
this stack, so approval, deploy and alarms need no code of their own to be audited:

- "SageMaker Model Package State Change" of the stack's group (`MODEL_PACKAGE_GROUP_NAME`), status
  `Approved` or `Rejected`: `model_approved` / `model_rejected`; the actor is the identity that changed
  it (`LastModifiedBy.IamIdentity.Arn`, else `CreatedBy`'s, as DescribeModelPackage gives them), the
  reason its `ApprovalDescription`;
- "Step Functions Execution Status Change" of the deploy state machine (`DEPLOY_STATE_MACHINE_ARN`):
  SUCCEEDED is `deploy_succeeded`; FAILED with error `EndpointRolledBack` (the deploy workflow's named
  Fail after a blue/green rollback) is `deploy_rolled_back`; any other FAILED, TIMED_OUT or ABORTED is
  `deploy_failed`; the actor is Step Functions (`aws.states`);
- "CloudWatch Alarm State Change" of the stack's alarms (names starting with `ALARM_NAME_PREFIX`,
  `<stack>-`): `alarm_state_changed`, with the previous and new state and CloudWatch's reason.

Each is written to `AUDIT_EVENT_BUS_NAME` in the one shape (common.audit), at most once per decision:
Powertools' idempotency keys it on the event's own identity (package ARN, status and modification time;
execution ARN and status; alarm name and state timestamp), never the EventBridge `id`. Anything else
(another group, state machine, account or region, a PendingManualApproval package, a RUNNING
execution) is `ignored`, a malformed event `rejected`: one log line and a normal return, since a retry
cannot change it. Entries EventBridge refuses are sent again with backoff; if still refused, the
invocation raises, the idempotency record is released, and Lambda retries it (then the DLQ).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import boto3
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.idempotency import idempotent_function
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from common import audit
from common.audit import AuditContext
from common.idempotency import ALARM_TRANSITION_MEMORY_SECONDS, idempotency_config, persistence_layer
from common.observability import count_decision, instrumented_handler, logger
from common.parsing import validation_summary
from common.settings import SettingsError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import BasePersistenceLayer
    from aws_lambda_powertools.utilities.typing import LambdaContext

# The deploy workflow's named Fail after a rollback (workflows/deploy.py, statemachines/deploy.asl.json).
ROLLED_BACK_ERROR = "EndpointRolledBack"
DEPLOY_FAILED_STATUSES = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})
_PACKAGE_DECISIONS = {"Approved": "model_approved", "Rejected": "model_rejected"}
# Text copied from an event into `details` is bounded, so one audit event stays far under PutEvents' limit.
MAX_COPIED_CHARACTERS = 2048


@dataclass(frozen=True)
class RecorderSettings:
    """What belongs to this stack, and where its audit events go."""

    model_package_group_name: str
    deploy_state_machine_arn: str
    alarm_name_prefix: str
    idempotency_table_name: str
    account: str
    region: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RecorderSettings:
        values = os.environ if env is None else env

        def required(name: str) -> str:
            value = values.get(name, "").strip()
            if not value:
                raise SettingsError(f"environment variable {name} is not set; template.yaml sets it")
            return value

        arn = required("DEPLOY_STATE_MACHINE_ARN")
        parts = arn.split(":")
        if len(parts) != 7 or parts[2] != "states" or parts[5] != "stateMachine":
            raise SettingsError(f"environment variable DEPLOY_STATE_MACHINE_ARN={arn!r} is not a state machine ARN")
        return cls(
            model_package_group_name=required("MODEL_PACKAGE_GROUP_NAME"),
            deploy_state_machine_arn=arn,
            alarm_name_prefix=required("ALARM_NAME_PREFIX"),
            idempotency_table_name=required("IDEMPOTENCY_TABLE_NAME"),
            account=parts[4],
            region=parts[3],
        )


class _Identity(BaseModel):
    model_config = ConfigDict(extra="allow")

    Arn: str | None = None


class _UserContext(BaseModel):
    model_config = ConfigDict(extra="allow")

    IamIdentity: _Identity | None = None
    UserProfileName: str | None = None


class ModelPackageDetail(BaseModel):
    model_config = ConfigDict(extra="allow")

    ModelPackageGroupName: str
    ModelPackageArn: str = Field(min_length=1)
    ModelApprovalStatus: str
    ModelPackageVersion: int | None = None
    ApprovalDescription: str = ""
    # Epoch milliseconds, as SageMaker's events give times (text also accepted): kept as given, for the key.
    LastModifiedTime: int | str | None = None
    CreationTime: int | str | None = None
    LastModifiedBy: _UserContext | None = None
    CreatedBy: _UserContext | None = None


class ModelPackageEvent(EventBridgeModel):
    source: Literal["aws.sagemaker"]
    detail_type: Literal["SageMaker Model Package State Change"] = Field(alias="detail-type")
    detail: ModelPackageDetail


class ExecutionDetail(BaseModel):
    model_config = ConfigDict(extra="allow")

    executionArn: str = Field(min_length=1)
    stateMachineArn: str
    name: str
    status: Literal["RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED", "PENDING_REDRIVE"]
    startDate: int | None = None
    stopDate: int | None = None
    error: str | None = None
    cause: str | None = None


class ExecutionEvent(EventBridgeModel):
    source: Literal["aws.states"]
    detail_type: Literal["Step Functions Execution Status Change"] = Field(alias="detail-type")
    detail: ExecutionDetail


class _AlarmState(BaseModel):
    model_config = ConfigDict(extra="allow")

    value: str
    reason: str = ""
    timestamp: str


class AlarmDetail(BaseModel):
    model_config = ConfigDict(extra="allow")

    alarmName: str = Field(min_length=1)
    state: _AlarmState
    previousState: _AlarmState | None = None


class AlarmEvent(EventBridgeModel):
    source: Literal["aws.cloudwatch"]
    detail_type: Literal["CloudWatch Alarm State Change"] = Field(alias="detail-type")
    detail: AlarmDetail


_MODELS: dict[str, type[EventBridgeModel]] = {
    "SageMaker Model Package State Change": ModelPackageEvent,
    "Step Functions Execution Status Change": ExecutionEvent,
    "CloudWatch Alarm State Change": AlarmEvent,
}


@dataclass(frozen=True)
class Recorded:
    """What the recorder did with one event: `recorded` (with the audit event's decision and id), or why not."""

    action: Literal["recorded", "ignored", "rejected"]
    reason: str
    decision: str | None = None
    audit_id: str | None = None
    duplicate: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AuditPlan:
    """The audit event an AWS event calls for: its decision, subject, reason, actor, facts, and its own key."""

    key: str
    decision: str
    subject: dict[str, str]
    reason: str
    actor: str
    details: dict[str, Any]
    time: datetime


def _bounded(text: str | None) -> str:
    value = text or ""
    return value if len(value) <= MAX_COPIED_CHARACTERS else value[:MAX_COPIED_CHARACTERS] + "... [truncated]"


def _event_time(event: EventBridgeModel) -> datetime:
    return event.time.astimezone(UTC)


def _epoch_ms_iso(value: int | None) -> str | None:
    if value is None:
        return None
    return datetime.fromtimestamp(value / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def plan_for_package(event: ModelPackageEvent, settings: RecorderSettings) -> AuditPlan | str:
    """The audit event of an approval or rejection, or why the event is not one of this stack's."""
    detail = event.detail
    if detail.ModelPackageGroupName != settings.model_package_group_name:
        return f"model package group {detail.ModelPackageGroupName!r} is not {settings.model_package_group_name!r}"
    decision = _PACKAGE_DECISIONS.get(detail.ModelApprovalStatus)
    if decision is None:
        return f"approval status {detail.ModelApprovalStatus} is no decision"
    who = detail.LastModifiedBy or detail.CreatedBy
    actor = (who.IamIdentity.Arn if who and who.IamIdentity else None) or (who.UserProfileName if who else None)
    reason = detail.ApprovalDescription or "(no ApprovalDescription given)"
    return AuditPlan(
        key=f"package|{detail.ModelPackageArn}|{detail.ModelApprovalStatus}|{detail.LastModifiedTime}",
        decision=decision,
        subject={"model_package_arn": detail.ModelPackageArn, "model_package_group": detail.ModelPackageGroupName},
        reason=_bounded(reason),
        actor=actor or "unknown (the event names no identity)",
        details={
            "approval_status": detail.ModelApprovalStatus,
            "model_package_version": detail.ModelPackageVersion,
            "last_modified_time": str(detail.LastModifiedTime) if detail.LastModifiedTime is not None else None,
        },
        time=_event_time(event),
    )


def plan_for_execution(event: ExecutionEvent, settings: RecorderSettings) -> AuditPlan | str:
    """The audit event of a deploy's outcome, or why the event is not one."""
    detail = event.detail
    if detail.stateMachineArn != settings.deploy_state_machine_arn:
        return f"state machine {detail.stateMachineArn} is not the deploy state machine"
    if detail.status == "SUCCEEDED":
        decision, reason = "deploy_succeeded", "the deploy execution succeeded"
    elif detail.status == "FAILED" and detail.error == ROLLED_BACK_ERROR:
        decision, reason = "deploy_rolled_back", f"{detail.error}: {_bounded(detail.cause)}"
    elif detail.status in DEPLOY_FAILED_STATUSES:
        decision, reason = "deploy_failed", f"{detail.status} {detail.error or ''}: {_bounded(detail.cause)}".strip()
    else:
        return f"execution status {detail.status} is no outcome"
    return AuditPlan(
        key=f"execution|{detail.executionArn}|{detail.status}",
        decision=decision,
        subject={"execution_arn": detail.executionArn, "state_machine_arn": detail.stateMachineArn},
        reason=reason,
        actor=event.source,
        details={
            "status": detail.status,
            "error": detail.error,
            "start_date": _epoch_ms_iso(detail.startDate),
            "stop_date": _epoch_ms_iso(detail.stopDate),
        },
        time=_event_time(event),
    )


def plan_for_alarm(event: AlarmEvent, settings: RecorderSettings) -> AuditPlan | str:
    """The audit event of one of the stack's alarms changing state, or why the event is not one."""
    detail = event.detail
    if not detail.alarmName.startswith(settings.alarm_name_prefix):
        return f"alarm {detail.alarmName!r} does not start with ALARM_NAME_PREFIX {settings.alarm_name_prefix!r}"
    previous = detail.previousState.value if detail.previousState else None
    return AuditPlan(
        key=f"alarm|{detail.alarmName}|{detail.state.value}|{detail.state.timestamp}",
        decision="alarm_state_changed",
        subject={"alarm_name": detail.alarmName, **({"alarm_arn": event.resources[0]} if event.resources else {})},
        reason=_bounded(detail.state.reason),
        actor=event.source,
        details={"state": detail.state.value, "previous_state": previous, "state_timestamp": detail.state.timestamp},
        time=_event_time(event),
    )


def plan(raw_event: Any, settings: RecorderSettings) -> AuditPlan | Recorded:
    """Parse one event and decide what audit event it calls for, without calling AWS."""
    detail_type = raw_event.get("detail-type") if isinstance(raw_event, dict) else None
    model = _MODELS.get(str(detail_type))
    if model is None:
        return Recorded("rejected", f"detail-type {detail_type!r} is not one the recorder records")
    try:
        event = model.model_validate(raw_event)
    except ValidationError as error:
        return Recorded("rejected", f"malformed {detail_type} event: {validation_summary(error)}")
    if (event.account, event.region) != (settings.account, settings.region):
        return Recorded("ignored", f"event from account {event.account} in {event.region}, not this stack's")
    if isinstance(event, ModelPackageEvent):
        planned = plan_for_package(event, settings)
    elif isinstance(event, ExecutionEvent):
        planned = plan_for_execution(event, settings)
    else:
        planned = plan_for_alarm(event, settings)  # type: ignore[arg-type]
    return Recorded("ignored", planned) if isinstance(planned, str) else planned


def record(
    planned: AuditPlan,
    context: AuditContext,
    events_client: Any,
    bus_name: str,
    persistence: BasePersistenceLayer,
    lambda_context: LambdaContext | None,
) -> Recorded:
    """Write the planned audit event once per key; a failed write raises, so the key is released and retried."""

    @idempotent_function(
        data_keyword_argument="event_key",
        persistence_store=persistence,
        config=idempotency_config(lambda_context, ALARM_TRANSITION_MEMORY_SECONDS),
        key_prefix="audit_recorder",
    )
    def write_once(event_key: dict[str, str]) -> dict[str, Any]:
        detail = audit.audit_event(
            context,
            decision=planned.decision,
            key=planned.key,
            subject=planned.subject,
            reason=planned.reason,
            time=planned.time,
            details=planned.details,
            actor=planned.actor,
        )
        written = audit.send(events_client, bus_name, [detail])
        if written.unwritten:
            raise audit.AuditNotWritten(f"audit event {planned.decision} not written: {written.problem}")
        return Recorded("recorded", planned.reason, planned.decision, detail["audit_id"]).as_dict()

    return Recorded(**write_once(event_key={"key": planned.key}))


@instrumented_handler(correlation_id_path=correlation_paths.EVENT_BRIDGE)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = RecorderSettings.from_env()
    planned = plan(event, settings)
    if isinstance(planned, Recorded):
        outcome = planned
    else:
        outcome = record(
            planned,
            AuditContext.from_env("audit_recorder", logger.get_correlation_id()),
            boto3.client("events"),
            audit.audit_bus_name(),
            persistence_layer(settings.idempotency_table_name),
            context,
        )
    count_decision(
        {"recorded": "AuditRecorded", "ignored": "EventIgnored", "rejected": "EventRejected"}[outcome.action]
    )
    if outcome.action == "rejected":
        logger.error(f"event rejected: {outcome.reason}", extra={"outcome": outcome.as_dict()})
    else:
        logger.info(f"event {outcome.action}", extra={"outcome": outcome.as_dict()})
    return outcome.as_dict()
