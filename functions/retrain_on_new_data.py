"""Starts `training` once per new data object version, one execution per burst of uploads.

Trigger: an SQS batch (`NewDataQueue`) whose bodies are EventBridge "Object Created" events of the
data bucket. The event source mapping's batching window gathers a burst of uploads into one batch,
and the batch starts one execution whose input names every new object.

Per record (each outcome logged with its reason and counted as a metric):
- `ignored`: S3's `s3:TestEvent`, another event type, another bucket, a key outside `DATA_PREFIX`
  or without one of `ALLOWED_SUFFIXES`;
- `rejected`: malformed (not JSON, missing fields, a key that is not valid URL-encoded UTF-8), an
  empty object, or no version id and no sequencer to tell versions apart; one logged error and the
  record is not retried, since a retry cannot fix it;
- `duplicate`: an object version already handled, in this batch or by an earlier delivery;
- `new`: claimed for this batch's execution.

Keys arrive URL-encoded (`+` for a space, `%XX` for other bytes): they are decoded as UTF-8.

Once per object version: the idempotency key is the object's bucket, key and version id (or its
sequencer on an unversioned bucket), from the event itself, never the EventBridge `id`. Powertools'
`idempotent_function` guards one call; here many records share one StartExecution, so the handler
drives Powertools' DynamoDB persistence layer through the same three steps the decorator takes:
claim every object (`save_inprogress`; a record that exists means a duplicate), start the one
execution, then commit (`save_success`, storing the execution) or release (`delete_record`) the
claims. Only a failure that a retry can fix (throttling, a service error, the store unreachable)
puts records in `batchItemFailures`; their claims are released first, so the redelivery can claim
them again. The execution name is derived from the sorted identities of the batch's new objects,
so a redelivered batch reuses it and `ExecutionAlreadyExists` counts as success.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote_plus

import boto3
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyItemAlreadyExistsError
from aws_lambda_powertools.utilities.parser.models import S3EventNotificationEventBridgeModel, SqsRecordModel
from botocore.exceptions import ClientError
from common.idempotency import OBJECT_VERSION_MEMORY_SECONDS, idempotency_config, persistence_layer
from common.naming import execution_name
from common.observability import count_decision, instrumented_handler, logger
from common.parsing import validation_summary
from common.settings import NewDataSettings
from common.training import MAX_EXECUTION_INPUT_BYTES, encoded_input_size, start_training, training_input
from pydantic import ValidationError

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import BasePersistenceLayer
    from aws_lambda_powertools.utilities.typing import LambdaContext

# StartExecution errors that say the request itself is wrong: retrying the records cannot help.
_NON_RETRYABLE_START_ERRORS = frozenset({"InvalidName", "InvalidExecutionInput", "InvalidArn", "ValidationException"})
UNKNOWN_MESSAGE_ID = "<no messageId>"
Action = Literal["new", "ignored", "rejected", "duplicate", "started", "retry"]


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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def identity_text(self) -> str:
        """The object version's identity as text, or "" for a record without one."""
        return self.data_object.identity_text if self.data_object else ""

    def but(self, action: Action, reason: str, execution: str | None = None) -> RecordOutcome:
        """This outcome moved on to `action`."""
        return RecordOutcome(self.message_id, action, reason, self.data_object, execution)


@dataclass(frozen=True)
class BatchResult:
    outcomes: list[RecordOutcome]

    @property
    def batch_item_failures(self) -> list[dict[str, str]]:
        """SQS partial batch response: only records that a retry can fix."""
        return [{"itemIdentifier": outcome.message_id} for outcome in self.outcomes if outcome.action == "retry"]


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
        return RecordOutcome(message_id, "rejected", f"body is not JSON: {error}")
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
    return _classify_object(message_id, event, settings)


def _classify_object(
    message_id: str, event: S3EventNotificationEventBridgeModel, settings: NewDataSettings
) -> RecordOutcome:
    bucket = event.detail.bucket.name
    s3_object = event.detail.object
    try:
        key = unquote_plus(s3_object.key, errors="strict")
    except UnicodeDecodeError:
        return RecordOutcome(message_id, "rejected", f"key {s3_object.key!r} is not URL-encoded UTF-8")
    if bucket != settings.data_bucket:
        return RecordOutcome(message_id, "ignored", f"bucket {bucket!r} is not DATA_BUCKET {settings.data_bucket!r}")
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


def _claim(outcomes: list[RecordOutcome], persistence: BasePersistenceLayer, remaining_ms: int | None) -> None:
    """Claim each new object in the store, turning repeats (in the batch or from earlier deliveries) into duplicates."""
    seen: set[str] = set()
    for index, outcome in enumerate(outcomes):
        if outcome.action != "new" or outcome.data_object is None:
            continue
        identity = outcome.data_object.identity_text
        if identity in seen:
            outcomes[index] = outcome.but("duplicate", "same object version earlier in this batch")
            continue
        seen.add(identity)
        try:
            persistence.save_inprogress(data=outcome.data_object.identity, remaining_time_in_millis=remaining_ms)
        except IdempotencyItemAlreadyExistsError:
            outcomes[index] = outcome.but("duplicate", "object version already handled by an earlier delivery")
        except Exception as error:  # the store is unreachable: fail closed, let SQS redeliver
            logger.exception("idempotency store unavailable", extra={"message_id": outcome.message_id})
            outcomes[index] = outcome.but("retry", f"idempotency store unavailable: {error}")


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
) -> list[RecordOutcome]:
    """Start one execution for a group of claimed objects, then commit or release their claims."""
    identities = sorted(outcome.identity_text for outcome in group)
    name = execution_name(f"{settings.model_name}-data", "\n".join(identities))
    try:
        started = start_training(
            sfn_client, settings.training_state_machine_arn, name, _input_for(group, settings.data_uri)
        )
    except Exception as error:
        code = error.response.get("Error", {}).get("Code", "") if isinstance(error, ClientError) else ""
        retryable = code not in _NON_RETRYABLE_START_ERRORS and not isinstance(error, ValueError)
        logger.exception("could not start training", extra={"execution_name": name, "retryable": retryable})
        for outcome in group:
            if outcome.data_object is not None:
                _release(persistence, outcome.data_object, error)
        action: Action = "retry" if retryable else "rejected"
        return [outcome.but(action, f"StartExecution {name} failed: {error}", name) for outcome in group]
    result = {"execution_name": started.execution_name, "execution_arn": started.execution_arn}
    for outcome in group:
        if outcome.data_object is None:
            continue
        try:
            persistence.save_success(data=outcome.data_object.identity, result=result)
        except Exception:  # the execution exists; the claim expires with this invocation and a redelivery reuses it
            logger.exception("could not commit claim", extra={"object": outcome.data_object.identity})
    reason = "execution already existed (redelivered batch)" if started.already_existed else "training started"
    return [outcome.but("started", reason, started.execution_name) for outcome in group]


def _release(persistence: BasePersistenceLayer, data_object: DataObject, error: Exception) -> None:
    try:
        persistence.delete_record(data=data_object.identity, exception=error)
    except Exception:  # the claim then expires with this invocation (in-progress expiry)
        logger.exception("could not release claim", extra={"object": data_object.identity})


def object_version_store(
    settings: NewDataSettings, context: LambdaContext | None, dynamodb_client: Any = None
) -> BasePersistenceLayer:
    """The persistence layer that remembers handled object versions, configured as the handler uses it."""
    persistence = persistence_layer(settings.idempotency_table_name, dynamodb_client)
    config = idempotency_config(context, OBJECT_VERSION_MEMORY_SECONDS)
    persistence.configure(config, key_prefix=f"retrain_on_new_data.{settings.model_name}")
    return persistence


def process_batch(
    raw_records: list[Any],
    settings: NewDataSettings,
    sfn_client: Any,
    persistence: BasePersistenceLayer,
    remaining_ms: int | None,
) -> BatchResult:
    """Classify every record, claim the new objects and start one execution for them."""
    outcomes = [classify_record(raw_record, settings) for raw_record in raw_records]
    _claim(outcomes, persistence, remaining_ms)
    claimed_positions = sorted(
        (position for position, outcome in enumerate(outcomes) if outcome.action == "new"),
        key=lambda position: outcomes[position].identity_text,
    )
    for group_positions in _groups_within_input_limit(outcomes, claimed_positions, settings.data_uri):
        if not group_positions:
            continue
        started = _start_group([outcomes[p] for p in group_positions], settings, sfn_client, persistence)
        for position, outcome in zip(group_positions, started, strict=True):
            outcomes[position] = outcome
    return BatchResult(outcomes)


_METRIC_BY_ACTION = {
    "ignored": "ObjectIgnored",
    "rejected": "ObjectRejected",
    "duplicate": "ObjectDuplicate",
    "started": "ObjectStarted",
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
        elif outcome.action == "retry":
            logger.warning(f"record returned to the queue: {outcome.reason}", extra=fields)
        else:
            logger.info(f"record {outcome.action}: {outcome.reason}", extra=fields)
    executions = sorted({outcome.execution_name or "" for outcome in result.outcomes if outcome.action == "started"})
    for _ in executions:
        count_decision("RetrainStarted")
    logger.info("batch done", extra={"executions": executions, "failures": result.batch_item_failures})


@instrumented_handler(correlation_id_path="Records[0].messageId")
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = NewDataSettings.from_env()
    raw_records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(raw_records, list):
        count_decision("EventRejected")
        logger.error(f"event rejected: not an SQS batch (no Records list in a {type(event).__name__})")
        return {"batchItemFailures": []}
    result = process_batch(
        raw_records,
        settings,
        sfn_client=boto3.client("stepfunctions"),
        persistence=object_version_store(settings, context),
        remaining_ms=context.get_remaining_time_in_millis(),
    )
    _record(result)
    return {"batchItemFailures": result.batch_item_failures}
