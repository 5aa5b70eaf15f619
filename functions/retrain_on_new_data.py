"""Starts `training` once per new data object version, one execution per burst of uploads, one at a time.

Trigger: an SQS batch (`NewDataQueue`) whose bodies are EventBridge "Object Created" events of the
data bucket. The event source mapping's batching window gathers a burst of uploads into one batch,
and the batch starts one execution whose input names every new object.

Per record (each outcome logged with its reason and counted as a metric):
- `ignored`: S3's `s3:TestEvent`, another event type, a key outside `DATA_PREFIX` or without one of
  `ALLOWED_SUFFIXES`;
- `rejected`: not from S3 in this stack's account and region for `DATA_BUCKET` (`source`,
  `account`, `region`, `detail.bucket.name`), malformed (not JSON, missing fields, a key that is not
  valid URL-encoded UTF-8 or is longer than S3 allows), an empty object, or no version id and no
  sequencer to tell versions apart; one logged error and the record is not retried, since a retry
  cannot fix it;
- `duplicate`: an object version already in an execution that exists, in this batch or earlier;
- `deferred`: a training of the model is running (or starting): the record goes back to the queue
  and is received again `NEW_DATA_DEFER_SECONDS` later, so the data waits for its own training
  instead of starting a second one; the queue's `maxReceiveCount` covers the longest training
  (pipeline.toml `[new_data]`), so waiting never sends a record to the dead-letter queue;
- `retry`: a failure a retry can fix (throttling, a service error, the store unreachable);
- `started`: named in the execution this batch started (or an earlier delivery did).

Keys arrive URL-encoded (`+` for a space, `%XX` for other bytes): they are decoded as UTF-8.

Once per object version: the idempotency key is the object's bucket, key and version id (or its
sequencer on an unversioned bucket), from the event itself, never the EventBridge `id`. Powertools'
`idempotent_function` guards one call; here many records share one StartExecution, so the handler
drives Powertools' DynamoDB persistence layer itself: claim every object (`save_inprogress`; a
record that exists is a duplicate), then record in each claim the execution it goes into
(`save_success` with the planned name) before StartExecution, and release the claims
(`delete_record`) when the start surely did not happen. So every record names its execution before
that execution can exist, and an outcome left ambiguous (a start that timed out after it landed, a
lost answer) is resolved by any later delivery, whatever batch it comes in: it looks the named
execution up (DescribeExecution); found, the object is a duplicate; missing once the writer's
invocation is surely over (common.single_flight.START_GRACE_SECONDS), the claim is taken again.
One training per model at a time is the lease of common.single_flight.

Audit (common.audit, on `AUDIT_EVENT_BUS_NAME`): one `training_started` per execution the batch
started, naming its objects, and one `training_skipped` per object version not trained on now
(`duplicate`, `rejected` as invalid, `deferred` while another training runs) with the reason. A
batch whose audit events could not be written raises after its records are decided: SQS redelivers
it and the redelivery finds each object a duplicate, so the start event of that batch is then
missing and only the raise (Lambda errors, the queue's DLQ) records the gap.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote_plus

import boto3
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyItemAlreadyExistsError,
    IdempotencyItemNotFoundError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
from aws_lambda_powertools.utilities.parser.models import S3EventNotificationEventBridgeModel, SqsRecordModel
from common import audit
from common.audit import AuditContext
from common.idempotency import OBJECT_VERSION_MEMORY_SECONDS, idempotency_config, persistence_layer
from common.naming import execution_name
from common.observability import count_decision, instrumented_handler, logger
from common.parsing import validation_summary
from common.settings import NewDataSettings
from common.single_flight import START_GRACE_SECONDS, TrainingLease, execution_status
from common.training import (
    MAX_EXECUTION_INPUT_BYTES,
    encoded_input_size,
    execution_arn,
    start_training,
    training_input,
)
from pydantic import ValidationError

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import BasePersistenceLayer
    from aws_lambda_powertools.utilities.typing import LambdaContext

UNKNOWN_MESSAGE_ID = "<no messageId>"
# S3's limit on key length, in UTF-8 bytes: a longer key cannot come from S3.
MAX_KEY_BYTES = 1024
# ChangeMessageVisibilityBatch takes at most ten entries.
_VISIBILITY_BATCH = 10
Action = Literal["new", "ignored", "rejected", "duplicate", "started", "deferred", "retry"]


@dataclass(frozen=True)
class DataObject:
    """One version of one object in the data bucket."""

    bucket: str
    key: str
    version_id: str | None
    sequencer: str | None

    @property
    def identity(self) -> dict[str, str]:
        """The idempotency data: what makes this object version distinct from every other."""
        version = self.version_id or f"sequencer:{self.sequencer}"
        return {"bucket": self.bucket, "key": self.key, "version": version}

    @property
    def identity_text(self) -> str:
        return json.dumps(self.identity, sort_keys=True, ensure_ascii=False)

    def as_training_object(self) -> dict[str, Any]:
        """The object as the `training` input's `objects` lists it (docs/interfaces.md)."""
        return {"bucket": self.bucket, "key": self.key, "version_id": self.version_id}


@dataclass(frozen=True)
class RecordOutcome:
    """What happened to one SQS record, and why."""

    message_id: str
    action: Action
    reason: str
    data_object: DataObject | None = None
    execution_name: str | None = None
    receipt_handle: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def identity_text(self) -> str:
        """The object version's identity as text, or "" for a record without one."""
        return self.data_object.identity_text if self.data_object else ""

    def but(self, action: Action, reason: str, execution: str | None = None) -> RecordOutcome:
        """This outcome moved on to `action`."""
        return RecordOutcome(self.message_id, action, reason, self.data_object, execution, self.receipt_handle)


@dataclass(frozen=True)
class BatchResult:
    outcomes: list[RecordOutcome]

    @property
    def batch_item_failures(self) -> list[dict[str, str]]:
        """SQS partial batch response: records that a retry can fix and records deferred until the training ends."""
        return [
            {"itemIdentifier": outcome.message_id}
            for outcome in self.outcomes
            if outcome.action in ("retry", "deferred")
        ]


def classify_record(raw_record: Any, settings: NewDataSettings) -> RecordOutcome:
    """Parse one SQS record and decide whether its object is new training data, without calling AWS."""
    message_id = raw_record.get("messageId", UNKNOWN_MESSAGE_ID) if isinstance(raw_record, dict) else UNKNOWN_MESSAGE_ID
    try:
        record = SqsRecordModel.model_validate(raw_record)
    except ValidationError as error:
        return RecordOutcome(message_id, "rejected", f"not an SQS record: {validation_summary(error)}")
    try:
        body = json.loads(str(record.body))
    except json.JSONDecodeError as error:
        return RecordOutcome(message_id, "rejected", f"body is not JSON: {error}", receipt_handle=record.receiptHandle)
    if not isinstance(body, dict):
        return RecordOutcome(message_id, "rejected", f"body is a JSON {type(body).__name__}, not an event object")
    if body.get("Event") == "s3:TestEvent":
        return RecordOutcome(message_id, "ignored", "S3 test event (sent when a notification is configured)")
    if "detail-type" not in body:
        return RecordOutcome(message_id, "rejected", f"body is not an EventBridge event (keys {sorted(body)[:5]})")
    if body.get("detail-type") != "Object Created":
        return RecordOutcome(message_id, "ignored", f"event type {body.get('detail-type')!r} is not 'Object Created'")
    try:
        event = S3EventNotificationEventBridgeModel.model_validate(body)
    except ValidationError as error:
        return RecordOutcome(message_id, "rejected", f"malformed Object Created event: {validation_summary(error)}")
    outcome = _classify_object(message_id, event, settings)
    return RecordOutcome(
        outcome.message_id, outcome.action, outcome.reason, outcome.data_object, receipt_handle=record.receiptHandle
    )


def _foreign(event: S3EventNotificationEventBridgeModel, settings: NewDataSettings) -> str | None:
    """Why the event is not S3's word about this stack's data bucket, or None when it is."""
    scope = settings.scope
    if event.source != "aws.s3":
        return f"source {event.source!r} is not aws.s3"
    if event.account != scope.account or event.region != scope.region:
        return (
            f"event from account {event.account} in {event.region}, not this stack's {scope.account} in {scope.region}"
        )
    if event.detail.bucket.name != settings.data_bucket:
        return f"bucket {event.detail.bucket.name!r} is not DATA_BUCKET {settings.data_bucket!r}"
    return None


def _classify_object(
    message_id: str, event: S3EventNotificationEventBridgeModel, settings: NewDataSettings
) -> RecordOutcome:
    foreign = _foreign(event, settings)
    if foreign is not None:
        return RecordOutcome(message_id, "rejected", f"not an event of this stack's data bucket: {foreign}")
    bucket = event.detail.bucket.name
    s3_object = event.detail.object
    try:
        key = unquote_plus(s3_object.key, errors="strict")
    except UnicodeDecodeError:
        return RecordOutcome(message_id, "rejected", f"key {s3_object.key!r} is not URL-encoded UTF-8")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        return RecordOutcome(
            message_id, "rejected", f"key of {len(key.encode('utf-8'))} bytes is longer than S3 allows"
        )
    if not key.startswith(settings.data_prefix):
        return RecordOutcome(message_id, "ignored", f"key {key!r} is outside DATA_PREFIX {settings.data_prefix!r}")
    if not key.lower().endswith(settings.allowed_suffixes):
        return RecordOutcome(
            message_id, "ignored", f"key {key!r} does not end with one of ALLOWED_SUFFIXES {settings.allowed_suffixes}"
        )
    if not s3_object.size:
        return RecordOutcome(message_id, "rejected", f"object s3://{bucket}/{key} is empty (size {s3_object.size})")
    if not s3_object.version_id and not s3_object.sequencer:
        return RecordOutcome(message_id, "rejected", f"object s3://{bucket}/{key} has no version id and no sequencer")
    data_object = DataObject(bucket, key, s3_object.version_id, s3_object.sequencer)
    return RecordOutcome(message_id, "new", "new data object", data_object)


def _claim(
    outcomes: list[RecordOutcome],
    persistence: BasePersistenceLayer,
    sfn_client: Any,
    remaining_ms: int | None,
    now: datetime,
) -> None:
    """Claim each new object in the store, turning repeats (in the batch or from earlier deliveries) into duplicates."""
    seen: set[str] = set()
    lookups: dict[str, str | None] = {}
    for index, outcome in enumerate(outcomes):
        if outcome.action != "new" or outcome.data_object is None:
            continue
        identity = outcome.data_object.identity_text
        if identity in seen:
            outcomes[index] = outcome.but("duplicate", "same object version earlier in this batch")
            continue
        seen.add(identity)
        try:
            outcomes[index] = _claim_one(outcome, persistence, sfn_client, remaining_ms, now, lookups)
        except Exception as error:  # the store or Step Functions is unreachable: fail closed, let SQS redeliver
            logger.exception("could not claim the object", extra={"message_id": outcome.message_id})
            outcomes[index] = outcome.but("retry", f"could not claim the object: {error}")


def _claim_one(
    outcome: RecordOutcome,
    persistence: BasePersistenceLayer,
    sfn_client: Any,
    remaining_ms: int | None,
    now: datetime,
    lookups: dict[str, str | None],
) -> RecordOutcome:
    """The outcome of claiming one object: still `new` (claimed), `duplicate`, or `deferred` while it is unresolved."""
    if outcome.data_object is None:
        return outcome
    identity = outcome.data_object.identity
    try:
        persistence.save_inprogress(data=identity, remaining_time_in_millis=remaining_ms)
        return outcome
    except IdempotencyItemAlreadyExistsError as exists:
        existing = exists.old_data_record or _stored_record(persistence, identity)
    if existing is None:  # gone between the claim and the look-up: claim it on the next delivery
        return outcome.but("retry", "the object's record changed while it was claimed")
    plan = existing.response_json_as_dict() if existing.status == "COMPLETED" else None
    if not plan or "execution_arn" not in plan:
        return outcome.but("duplicate", "object version claimed by another delivery that is handling it")
    arn = str(plan["execution_arn"])
    if arn not in lookups:
        lookups[arn] = execution_status(sfn_client, arn)
    name = arn.rsplit(":", 1)[-1]
    if lookups[arn] is not None:
        return outcome.but("duplicate", f"object version already in execution {name}", name)
    if now.timestamp() - float(plan.get("planned_at", 0)) < START_GRACE_SECONDS:
        return outcome.but("deferred", f"object version planned for execution {name}, which may still be starting")
    # The execution was planned but never started, and its planner's invocation is over: claim the object again.
    persistence.delete_record(data=identity, exception=RuntimeError(f"execution {name} was never started"))
    persistence.save_inprogress(data=identity, remaining_time_in_millis=remaining_ms)
    return outcome.but("new", f"new data object (its planned execution {name} was never started)")


def _stored_record(persistence: BasePersistenceLayer, identity: dict[str, str]) -> DataRecord | None:
    try:
        return persistence.get_record(data=identity)
    except IdempotencyItemNotFoundError:
        return None


def _groups_within_input_limit(outcomes: list[RecordOutcome], positions: list[int], data_uri: str) -> list[list[int]]:
    """Split the claimed positions into as few groups as keep each execution input under the Step Functions limit.

    One group in practice; a huge batch of long keys is split rather than refused, so no object is lost.
    """
    # The JSON of a list grows by each element's JSON plus a ", " separator; an empty input leaves room
    # for the trigger detail's object count to gain a few digits.
    room = MAX_EXECUTION_INPUT_BYTES - encoded_input_size(_input_for([], data_uri)) - 16
    groups: list[list[int]] = [[]]
    used = 0
    for position in positions:
        data_object = outcomes[position].data_object
        size = len(json.dumps(data_object.as_training_object()).encode("utf-8")) + 2 if data_object else 0
        if groups[-1] and used + size > room:
            groups.append([])
            used = 0
        groups[-1].append(position)
        used += size
    return groups


def _input_for(group: list[RecordOutcome], data_uri: str) -> dict[str, Any]:
    objects = [outcome.data_object.as_training_object() for outcome in group if outcome.data_object]
    bucket_and_prefix = data_uri.removeprefix("s3://")
    return training_input(data_uri, "new_data", {"source": bucket_and_prefix, "object_count": len(objects)}, objects)


def _start_group(
    group: list[RecordOutcome],
    settings: NewDataSettings,
    sfn_client: Any,
    persistence: BasePersistenceLayer,
    lease: TrainingLease,
    now: datetime,
) -> list[RecordOutcome]:
    """Record the planned execution in each claim, start it, then keep or release the claims by what happened."""
    identities = sorted(outcome.identity_text for outcome in group)
    name = execution_name(f"{settings.model_name}-data", "\n".join(identities))
    plan = {
        "execution_name": name,
        "execution_arn": execution_arn(settings.training_state_machine_arn, name),
        "planned_at": int(now.timestamp()),
    }
    try:
        for outcome in group:
            if outcome.data_object is not None:
                persistence.save_success(data=outcome.data_object.identity, result=plan)
    except Exception as error:  # nothing started yet: release every claim and let SQS redeliver
        logger.exception("could not record the planned execution", extra={"execution_name": name})
        _release_all(group, persistence, error)
        return [outcome.but("retry", f"could not record execution {name} in the claims: {error}") for outcome in group]
    try:
        started = start_training(
            sfn_client, lease, settings.training_state_machine_arn, name, _input_for(group, settings.data_uri), now
        )
    except Exception as error:  # the lease or Step Functions unreachable, before or around the start
        # Whether it started is unknown: the claims keep naming the execution, so the redelivery resolves it.
        logger.exception("could not start training", extra={"execution_name": name})
        return [outcome.but("retry", f"starting {name} failed: {error}", name) for outcome in group]
    if started.exists:
        reason = "training started" if started.status == "started" else started.reason
        return [outcome.but("started", reason, name) for outcome in group]
    if started.status == "unknown":
        # The claims keep naming the execution: the redelivery looks it up and resolves the ambiguity.
        logger.error("start of training left ambiguous", extra={"execution_name": name, "reason": started.reason})
        return [outcome.but("retry", started.reason, name) for outcome in group]
    _release_all(group, persistence, RuntimeError(started.reason))
    if started.status == "busy":
        return [
            outcome.but("deferred", f"{started.reason}; retried in {settings.defer_seconds} s") for outcome in group
        ]
    logger.error("could not start training", extra={"execution_name": name, "retryable": started.retryable})
    action: Action = "retry" if started.retryable else "rejected"
    return [outcome.but(action, started.reason, name) for outcome in group]


def _release_all(group: list[RecordOutcome], persistence: BasePersistenceLayer, error: Exception) -> None:
    for outcome in group:
        if outcome.data_object is not None:
            _release(persistence, outcome.data_object, error)


def _release(persistence: BasePersistenceLayer, data_object: DataObject, error: Exception) -> None:
    try:
        persistence.delete_record(data=data_object.identity, exception=error)
    except Exception:  # the claim then resolves on a redelivery, by looking its planned execution up
        logger.exception("could not release claim", extra={"object": data_object.identity})


def object_version_store(
    settings: NewDataSettings, context: LambdaContext | None, dynamodb_client: Any = None
) -> BasePersistenceLayer:
    """The persistence layer that remembers handled object versions, configured as the handler uses it."""
    persistence = persistence_layer(settings.idempotency_table_name, dynamodb_client)
    config = idempotency_config(context, OBJECT_VERSION_MEMORY_SECONDS)
    persistence.configure(config, key_prefix=f"retrain_on_new_data.{settings.model_name}")
    return persistence


def training_lease(settings: NewDataSettings, sfn_client: Any, dynamodb_client: Any = None) -> TrainingLease:
    return TrainingLease(
        dynamodb_client or boto3.client("dynamodb"), settings.idempotency_table_name, settings.model_name, sfn_client
    )


def process_batch(
    raw_records: list[Any],
    settings: NewDataSettings,
    sfn_client: Any,
    persistence: BasePersistenceLayer,
    lease: TrainingLease,
    remaining_ms: int | None,
    now: datetime,
) -> BatchResult:
    """Classify every record, claim the new objects and start one execution for them."""
    outcomes = [classify_record(raw_record, settings) for raw_record in raw_records]
    _claim(outcomes, persistence, sfn_client, remaining_ms, now)
    claimed_positions = sorted(
        (position for position, outcome in enumerate(outcomes) if outcome.action == "new"),
        key=lambda position: outcomes[position].identity_text,
    )
    for group_positions in _groups_within_input_limit(outcomes, claimed_positions, settings.data_uri):
        if not group_positions:
            continue
        started = _start_group([outcomes[p] for p in group_positions], settings, sfn_client, persistence, lease, now)
        for position, outcome in zip(group_positions, started, strict=True):
            outcomes[position] = outcome
    return BatchResult(outcomes)


def defer(result: BatchResult, sqs_client: Any, settings: NewDataSettings) -> None:
    """Make each deferred record visible again only `defer_seconds` from now, not after the queue's timeout."""
    handles = [outcome for outcome in result.outcomes if outcome.action == "deferred" and outcome.receipt_handle]
    for start in range(0, len(handles), _VISIBILITY_BATCH):
        chunk = handles[start : start + _VISIBILITY_BATCH]
        entries = [
            {
                "Id": str(number),
                "ReceiptHandle": str(outcome.receipt_handle),
                "VisibilityTimeout": settings.defer_seconds,
            }
            for number, outcome in enumerate(chunk)
        ]
        try:
            failed = sqs_client.change_message_visibility_batch(QueueUrl=settings.queue_url, Entries=entries)
        except Exception:  # they come back after the queue's visibility timeout instead, a receive sooner
            logger.exception("could not delay deferred records", extra={"count": len(chunk)})
            continue
        for failure in failed.get("Failed", []):
            logger.warning("could not delay a deferred record", extra={"failure": failure})


_METRIC_BY_ACTION = {
    "ignored": "ObjectIgnored",
    "rejected": "ObjectRejected",
    "duplicate": "ObjectDuplicate",
    "started": "ObjectStarted",
    "deferred": "ObjectDeferred",
    "retry": "ObjectRetried",
}


def _record(result: BatchResult) -> None:
    # Counted even for an empty batch, so every invocation publishes something.
    count_decision("RecordsReceived", len(result.outcomes))
    for outcome in result.outcomes:
        count_decision(_METRIC_BY_ACTION[outcome.action])
        fields = {"record": outcome.as_dict()}
        if outcome.action == "rejected":
            logger.error(f"record rejected: {outcome.reason}", extra=fields)
        elif outcome.action in ("retry", "deferred"):
            logger.warning(f"record returned to the queue: {outcome.reason}", extra=fields)
        else:
            logger.info(f"record {outcome.action}: {outcome.reason}", extra=fields)
    executions = sorted({outcome.execution_name or "" for outcome in result.outcomes if outcome.action == "started"})
    for _ in executions:
        count_decision("RetrainStarted")
    logger.info("batch done", extra={"executions": executions, "failures": result.batch_item_failures})


# Audited outcomes: `ignored` (test events, keys outside the prefix) is no training data, `retry` no decision yet.
_SKIP_ACTIONS = ("duplicate", "rejected", "deferred")


def audit_events_of(
    result: BatchResult, settings: NewDataSettings, context: AuditContext, now: datetime
) -> list[dict[str, Any]]:
    """One `training_started` per execution the batch started, one `training_skipped` per object it did not train."""
    events = []
    started: dict[str, list[RecordOutcome]] = {}
    for outcome in result.outcomes:
        if outcome.action == "started" and outcome.execution_name:
            started.setdefault(outcome.execution_name, []).append(outcome)
    for name, outcomes in sorted(started.items()):
        objects = [o.data_object.as_training_object() for o in outcomes if o.data_object is not None]
        events.append(
            audit.audit_event(
                context,
                decision="training_started",
                # The execution name is derived from the objects: a redelivery that restarts it repeats the audit_id.
                key=f"started|{name}",
                subject={
                    "state_machine_arn": settings.training_state_machine_arn,
                    "execution_arn": execution_arn(settings.training_state_machine_arn, name),
                    "model_name": settings.model_name,
                },
                reason=f"{len(objects)} new data object version(s) under s3://{settings.data_bucket}/"
                f"{settings.data_prefix}: {outcomes[0].reason}",
                time=now,
                details={"action": "started", "trigger": "new_data", "objects": objects},
            )
        )
    for outcome in result.outcomes:
        if outcome.action not in _SKIP_ACTIONS:
            continue
        subject = {"state_machine_arn": settings.training_state_machine_arn, "model_name": settings.model_name}
        details: dict[str, Any] = {"action": outcome.action, "trigger": "new_data", "message_id": outcome.message_id}
        if outcome.data_object is not None:
            subject["object_uri"] = f"s3://{outcome.data_object.bucket}/{outcome.data_object.key}"
            details["object"] = outcome.data_object.as_training_object()
        events.append(
            audit.audit_event(
                context,
                decision="training_skipped",
                key=f"{outcome.action}|{outcome.message_id}|{outcome.identity_text}|{context.correlation_id}",
                subject=subject,
                reason=outcome.reason,
                time=now,
                details=details,
            )
        )
    return events


def _audit(result: BatchResult, settings: NewDataSettings, now: datetime) -> None:
    """Write the batch's audit events; raise when they could not all be written, so the failure is seen."""
    context = AuditContext.from_env("retrain_on_new_data", logger.get_correlation_id())
    events = audit_events_of(result, settings, context, now)
    if not events:
        return
    written = audit.send(boto3.client("events"), audit.audit_bus_name(), events)
    if written.unwritten:
        count_decision("AuditNotWritten")
        raise audit.AuditNotWritten(f"{written.unwritten} audit events of the batch not written: {written.problem}")


@instrumented_handler(correlation_id_path="Records[0].messageId")
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = NewDataSettings.from_env()
    raw_records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(raw_records, list):
        count_decision("EventRejected")
        logger.error(f"event rejected: not an SQS batch (no Records list in a {type(event).__name__})")
        return {"batchItemFailures": []}
    sfn_client = boto3.client("stepfunctions")
    now = datetime.now(UTC)
    result = process_batch(
        raw_records,
        settings,
        sfn_client=sfn_client,
        persistence=object_version_store(settings, context),
        lease=training_lease(settings, sfn_client),
        remaining_ms=context.get_remaining_time_in_millis(),
        now=now,
    )
    if any(outcome.action == "deferred" for outcome in result.outcomes):
        # Only then: an SQS client on every invocation would lengthen each cold start for nothing.
        defer(result, boto3.client("sqs"), settings)
    _record(result)
    _audit(result, settings, now)
    return {"batchItemFailures": result.batch_item_failures}
