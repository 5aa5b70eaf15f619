"""The twin's EventBridge: the stack's rules route local events to functions, state machines, queues and topics.

moto 5.2.5 cannot do this itself: its rules deliver only to log groups, archives, queues and buses (a Lambda or
Step Functions target raises NotImplementedError), and the S3 events it emits for buckets with EventBridge
notifications have a Unix `time`, an `eTag` key and a constant `sequencer`, and every error is swallowed.
`EventRouter.install()` therefore takes over both entry points while the twin runs:

- `PutEvents` (boto3 from the twin, from in-process handlers, the engine's `events:putEvents` tasks);
- moto S3's EventBridge notification, rebuilt here in the shape AWS sends (`Object Created`, ISO time, `etag`,
  `version-id`, an increasing `sequencer`).

Matching reuses moto's event-pattern matcher (prefix, suffix, anything-but, numeric, exists, wildcard, cidr,
equals-ignore-case, `$or`; tests/emulator/test_eventbridge.py pins the cases the stack relies on). Targets get
`Input`, `InputPath` or `InputTransformer` applied as EventBridge does. A rule may target a Lambda function, a
state machine, a queue, a topic, a CloudWatch Logs log group (one log event per event, its JSON the message, as
EventBridge writes them) or another event bus (the event is routed by that bus's rules); a rule with any other
target is refused when the router is built, naming the rule and the target. SQS targets only enqueue: `drain_queues()`
then delivers each queue's messages to its consuming function in batches, as an event source mapping does once
its batching window closes, so a burst of uploads reaches the function as one batch.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import boto3
from moto.events.models import EventPattern, EventsBackend
from moto.logs import models as logs_models
from moto.s3 import notifications as s3_notifications

from contract.local_account import LOCAL_ACCOUNT_ID, LOCAL_REGION
from emulator.moto_patches import MotoPatches
from emulator.stack_spec import DeployedStack, QueueSource, RuleSpec, RuleTarget

logger = logging.getLogger(__name__)

# SQS returns at most ten messages per ReceiveMessage; an event source mapping gathers up to its batch size.
_SQS_RECEIVE_MAX = 10
# Long enough that a message handed to a function is not received again within the same drain.
_IN_FLIGHT_VISIBILITY_SECONDS = 900
_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_RATE_UNITS = {"minute": 60, "hour": 3600, "day": 86400}
_JSON_PATH_STEP = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]|\['([^']*)'\]")
_TEMPLATE_VARIABLE = re.compile(r"<([A-Za-z0-9_.\-]+)>")
_MISSING = object()

InvokeFunction = Callable[[str, Any], Any]
StartExecution = Callable[[str, str], str]
SendToQueue = Callable[[str, str], None]
PublishToTopic = Callable[[str, str], None]


class EventRoutingError(ValueError):
    """An event or a rule the router cannot handle; the message names it and says what to change."""


@dataclass(frozen=True)
class Delivery:
    """One event (or SQS batch) handed to one target, and what came of it."""

    rule: str
    target_arn: str
    service: str
    input: str
    result: Any = None
    error: str | None = None


def _now_utc() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventRouter:
    """Routes events by the stack's rules; see the module docstring."""

    def __init__(
        self,
        stack: DeployedStack,
        *,
        invoke_function: InvokeFunction,
        start_execution: StartExecution,
        send_to_queue: SendToQueue | None = None,
        publish_to_topic: PublishToTopic | None = None,
        now: Callable[[], datetime] = _now_utc,
        region: str = LOCAL_REGION,
    ) -> None:
        self.stack = stack
        self._invoke_function = invoke_function
        self._start_execution = start_execution
        self._send_to_queue = send_to_queue or self._send_with_boto3
        self._publish_to_topic = publish_to_topic or self._publish_with_boto3
        self._now = now
        self.region = region
        self._lock = threading.Lock()
        self._deliveries: list[Delivery] = []
        self._sequencer = itertools.count(1)
        # One SQS client for all polls (each batching window, served): making one costs ~10 ms CPU, a poll ~4 ms.
        self._sqs_client: Any = None
        self._patterns = {rule.name: _load_pattern(rule) for rule in stack.rules if rule.event_pattern is not None}
        self._schedule_periods = {rule.name: _rate_seconds(rule) for rule in stack.rules if rule.schedule}
        for rule in stack.rules:
            _check_targets(rule)
        started = now()
        self._last_fired = {name: started for name in self._schedule_periods}
        self._patches = MotoPatches()

    # ---- what happened -----------------------------------------------------------------------------------------

    @property
    def deliveries(self) -> list[Delivery]:
        """Every delivery so far, oldest first."""
        with self._lock:
            return list(self._deliveries)

    def executions_started(self) -> list[str]:
        """ARNs of the executions the rules started, oldest first."""
        return [str(d.result) for d in self.deliveries if d.service == "states" and d.error is None]

    # ---- entry points ------------------------------------------------------------------------------------------

    def put_events(self, entries: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """PutEvents: each entry (Source, DetailType, Detail as JSON text, ...) becomes an event and is routed.

        Returns PutEvents' result entries (`EventId`, or `ErrorCode`/`ErrorMessage` for a rejected entry).
        """
        results: list[dict[str, Any]] = []
        for entry in entries:
            problem = _entry_problem(entry)
            if problem is not None:
                results.append(problem)
                continue
            event = {
                "version": "0",
                "id": str(uuid.uuid4()),
                "detail-type": entry["DetailType"],
                "source": entry["Source"],
                "account": LOCAL_ACCOUNT_ID,
                "time": _iso(_entry_time(entry.get("Time")) or self._now()),
                "region": self.region,
                "resources": list(entry.get("Resources", [])),
                "detail": json.loads(entry["Detail"]),
            }
            self.route(event, bus=_bus_name(entry.get("EventBusName")))
            results.append({"EventId": event["id"]})
        return results

    def route(self, event: Mapping[str, Any], bus: str = "default") -> list[Delivery]:
        """Delivers a full event (as EventBridge passes it to targets) to every enabled rule of `bus` it matches."""
        deliveries = []
        for rule in self.stack.rules:
            pattern = self._patterns.get(rule.name)
            if pattern is None or not rule.enabled or rule.event_bus_name != bus:
                continue
            if pattern.matches_event(cast(Any, dict(event))):
                deliveries += self._deliver(rule, event)
        return deliveries

    def fire_schedules(self, now: datetime | None = None) -> list[Delivery]:
        """Fires each enabled schedule rule once for every period that has passed since it last fired."""
        now = now or self._now()
        deliveries = []
        for rule in self.stack.rules:
            if rule.name not in self._schedule_periods or not rule.enabled:
                continue
            period = timedelta(seconds=self._schedule_periods[rule.name])
            while self._last_fired[rule.name] + period <= now:
                self._last_fired[rule.name] += period
                event = {
                    "version": "0",
                    "id": str(uuid.uuid4()),
                    "detail-type": "Scheduled Event",
                    "source": "aws.events",
                    "account": LOCAL_ACCOUNT_ID,
                    "time": _iso(self._last_fired[rule.name]),
                    "region": self.region,
                    "resources": [self._rule_arn(rule)],
                    "detail": {},
                }
                deliveries += self._deliver(rule, event)
        return deliveries

    def drain_queues(self) -> list[Delivery]:
        """Delivers every message waiting in the stack's consumed queues to its function, in batches.

        Like an event source mapping: up to `BatchSize` records per invocation; a batch the function fails is
        left on the queue (visible again), and with `ReportBatchItemFailures` only the items it names are.
        """
        deliveries = []
        sqs = self._sqs()
        for source in self.stack.queue_sources.values():
            if not source.enabled:
                continue
            failed: list[dict[str, Any]] = []
            while batch := self._receive_batch(source):
                delivery, failures = self._deliver_batch(source, batch)
                deliveries.append(delivery)
                failed += failures
            # Visible again only now, for the next drain, as when a failed batch's visibility timeout runs out;
            # releasing them at once would hand them straight back to this loop.
            for message in failed:
                sqs.change_message_visibility(
                    QueueUrl=source.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
        return deliveries

    # ---- moto hooks -------------------------------------------------------------------------------------------

    def install(self) -> None:
        """Take over moto's PutEvents, S3's EventBridge notifications and CloudWatch Logs' now until `uninstall()`."""
        if self._patches.active:
            return
        router = self

        def put_events(backend: EventsBackend, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return router.put_events(events)

        def send_event_bridge_message(account_id: str, bucket: Any, event_name: str, key: Any) -> None:
            router.route(router.s3_event(bucket.name, bucket.region_name, event_name, key))

        self._patches.replace(EventsBackend, "put_events", put_events)
        self._patches.replace(s3_notifications, "_send_event_bridge_message", send_event_bridge_message)
        # CloudWatch Logs accepts events from 14 days before to 2 hours after its now: the twin's now, since every
        # event (and so every log event a rule writes) is stamped on the twin's clock, which runs ahead.
        self._patches.replace(logs_models, "utcnow", lambda: self._now().astimezone(UTC).replace(tzinfo=None))

    def uninstall(self) -> None:
        """Give moto its own PutEvents and S3 notifications back."""
        self._patches.undo()

    def s3_event(self, bucket: str, region: str, event_name: Any, key: Any) -> dict[str, Any]:
        """The EventBridge event S3 sends for `event_name` (`s3:ObjectCreated:Put`, ...) on moto's `key`."""
        name = str(getattr(event_name, "value", event_name))
        _, kind, action = name.split(":", 2)
        detail_type = {"ObjectCreated": "Object Created", "ObjectRemoved": "Object Deleted"}.get(kind) or (
            s3_notifications._detail_type(name)
        )
        reasons = {"Put": "PutObject", "Post": "PostObject", "Copy": "CopyObject"}
        obj: dict[str, Any] = {"key": key.name, "size": key.size, "etag": key.etag.strip('"')}
        if key.version_id and key.version_id != "null":
            obj["version-id"] = key.version_id
        with self._lock:
            obj["sequencer"] = f"{next(self._sequencer):018X}"
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": detail_type,
            "source": "aws.s3",
            "account": LOCAL_ACCOUNT_ID,
            "time": _iso(self._now()),
            "region": region,
            "resources": [f"arn:aws:s3:::{bucket}"],
            "detail": {
                "version": "0",
                "bucket": {"name": bucket},
                "object": obj,
                "request-id": uuid.uuid4().hex[:16].upper(),
                "requester": LOCAL_ACCOUNT_ID,
                "source-ip-address": "127.0.0.1",
                "reason": reasons.get(action, "CompleteMultipartUpload" if "Multipart" in action else action),
            },
        }

    # ---- delivery ---------------------------------------------------------------------------------------------

    def _deliver(self, rule: RuleSpec, event: Mapping[str, Any]) -> list[Delivery]:
        deliveries = []
        for target in rule.targets:
            text = target_input(target, event, rule_name=rule.name, rule_arn=self._rule_arn(rule))
            deliveries.append(self._send(rule.name, target.arn, text, event))
        return deliveries

    def _send(self, rule_name: str, arn: str, text: str, event: Mapping[str, Any] | None = None) -> Delivery:
        service = arn.split(":")[2] if arn.count(":") >= 5 else "unknown"
        result: Any = None
        error: str | None = None
        try:
            if service == "lambda":
                result = self._invoke_function(arn, _payload(text))
            elif service == "states":
                result = self._start_execution(arn, text)
            elif service == "sqs":
                self._send_to_queue(arn, text)
            elif service == "sns":
                self._publish_to_topic(arn, text)
            elif service == "logs":
                result = self._write_to_log_group(arn, text, event)
            elif service == "events":
                result = self._forward_to_bus(arn, text)
            else:
                error = f"target {arn} of rule {rule_name}: {_UNSUPPORTED_TARGET}"
        except Exception as failure:
            # EventBridge delivers asynchronously: a failing target never fails the PutEvents or the upload.
            error = f"{type(failure).__name__}: {failure}"
        if error is not None:
            logger.warning("Rule %s could not deliver to %s: %s", rule_name, arn, error)
        delivery = Delivery(rule=rule_name, target_arn=arn, service=service, input=text, result=result, error=error)
        with self._lock:
            self._deliveries.append(delivery)
        return delivery

    def _receive_batch(self, source: QueueSource) -> list[dict[str, Any]]:
        sqs = self._sqs()
        batch: list[Any] = []
        while len(batch) < source.batch_size:
            wanted = min(_SQS_RECEIVE_MAX, source.batch_size - len(batch))
            messages = sqs.receive_message(
                QueueUrl=source.queue_url,
                MaxNumberOfMessages=wanted,
                VisibilityTimeout=_IN_FLIGHT_VISIBILITY_SECONDS,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not messages:
                break
            batch += messages
        return batch

    def _deliver_batch(
        self, source: QueueSource, messages: list[dict[str, Any]]
    ) -> tuple[Delivery, list[dict[str, Any]]]:
        """Invokes the function with one batch; deletes what it processed and returns the messages it failed."""
        function = self.stack.functions[source.function_logical_id]
        records = [_sqs_record(message, source, self.region) for message in messages]
        event = {"Records": records}
        delivery = self._send(source.logical_id, function.function_arn, json.dumps(event))
        failed_ids: set[str] = {m["MessageId"] for m in messages}
        if delivery.error is None:
            failed_ids = _reported_failures(delivery.result) if source.report_batch_item_failures else set()
        sqs = self._sqs()
        for message in messages:
            if message["MessageId"] not in failed_ids:
                sqs.delete_message(QueueUrl=source.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return delivery, [message for message in messages if message["MessageId"] in failed_ids]

    def _rule_arn(self, rule: RuleSpec) -> str:
        bus = "" if rule.event_bus_name == "default" else f"{rule.event_bus_name}/"
        return f"arn:aws:events:{self.region}:{LOCAL_ACCOUNT_ID}:rule/{bus}{rule.name}"

    def _sqs(self) -> Any:
        with self._lock:  # a boto3 client is shared by threads once made; making one is not thread-safe
            if self._sqs_client is None:
                self._sqs_client = boto3.client("sqs", region_name=self.region)
            return self._sqs_client

    def _send_with_boto3(self, queue_arn: str, body: str) -> None:
        sqs = self._sqs()
        queue_url = sqs.get_queue_url(QueueName=queue_arn.rsplit(":", 1)[1])["QueueUrl"]
        sqs.send_message(QueueUrl=queue_url, MessageBody=body)

    def _write_to_log_group(self, log_group_arn: str, text: str, event: Mapping[str, Any] | None) -> str:
        """One log event in the target log group, the event's JSON as its message, stamped with the event's time.

        EventBridge writes each event into a log stream of its own in the group; so does this, named by the event id.
        """
        group = _log_group_name(log_group_arn)
        stream = str((event or {}).get("id") or uuid.uuid4())
        moment = _entry_time((event or {}).get("time")) or _parse_iso((event or {}).get("time")) or self._now()
        logs = boto3.client("logs", region_name=self.region)
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
        answer = logs.put_log_events(
            logGroupName=group,
            logStreamName=stream,
            logEvents=[{"timestamp": int(moment.timestamp() * 1000), "message": text}],
        )
        if answer.get("rejectedLogEventsInfo"):
            raise EventRoutingError(
                f"log group {group} refused the event of {_iso(moment)}: {answer['rejectedLogEventsInfo']} "
                "(CloudWatch Logs takes events from the last 14 days to 2 hours ahead)"
            )
        return f"{group}/{stream}"

    def _forward_to_bus(self, bus_arn: str, text: str) -> str:
        """An event bus target: the event goes on that bus and its rules route it, as EventBridge does."""
        bus = bus_arn.rsplit("/", 1)[-1]
        payload = _payload(text)
        if not isinstance(payload, dict) or "detail-type" not in payload:
            raise EventRoutingError(f"an event bus target ({bus_arn}) receives the whole event, not {text[:80]!r}")
        self.route(payload, bus=bus)
        return bus

    def _publish_with_boto3(self, topic_arn: str, message: str) -> None:
        boto3.client("sns", region_name=self.region).publish(TopicArn=topic_arn, Message=message)


# ---- input shaping ------------------------------------------------------------------------------------------------


def target_input(target: RuleTarget, event: Mapping[str, Any], *, rule_name: str, rule_arn: str) -> str:
    """The text EventBridge sends to `target` for `event`: `Input`, else `InputPath`, else `InputTransformer`."""
    if target.input is not None:
        return target.input
    if target.input_path is not None:
        return json.dumps(json_path(event, target.input_path))
    if target.input_transformer is not None:
        return transform_input(target.input_transformer, event, rule_name=rule_name, rule_arn=rule_arn)
    return json.dumps(event)


def json_path(document: Any, path: str) -> Any:
    """The value at a simple JSONPath (`$`, `$.detail.object.key`, `$.resources[0]`, `$['detail-type']`).

    A path that does not exist gives None, as EventBridge leaves such a value empty.
    """
    if not path.startswith("$"):
        raise EventRoutingError(f"JSONPath {path!r} must start with '$'")
    rest, value = path[1:], document
    while rest:
        step = _JSON_PATH_STEP.match(rest)
        if step is None:
            raise EventRoutingError(f"JSONPath {path!r} is not a plain path of .names, ['names'] and [indexes]")
        name, index, quoted = step.groups()
        rest = rest[step.end() :]
        if index is not None:
            value = value[int(index)] if isinstance(value, list) and int(index) < len(value) else _MISSING
        else:
            value = value.get(quoted if quoted is not None else name, _MISSING) if isinstance(value, dict) else _MISSING
        if value is _MISSING:
            return None
    return value


def transform_input(transformer: Mapping[str, Any], event: Mapping[str, Any], *, rule_name: str, rule_arn: str) -> str:
    """EventBridge's InputTransformer: `<name>` in `InputTemplate` replaced by the `InputPathsMap` values.

    Inside a JSON string a value goes in as text (escaped); elsewhere as JSON (strings quoted, missing as null).
    """
    values: dict[str, Any] = {
        name: json_path(event, path) for name, path in (transformer.get("InputPathsMap") or {}).items()
    }
    values.update(
        {
            "aws.events.rule-arn": rule_arn,
            "aws.events.rule-name": rule_name,
            "aws.events.event.ingestion-time": event.get("time"),
            "aws.events.event": dict(event),
            "aws.events.event.json": dict(event),
        }
    )
    template = str(transformer.get("InputTemplate", ""))
    pieces: list[str] = []
    in_string = False
    position = 0
    while position < len(template):
        character = template[position]
        variable = _TEMPLATE_VARIABLE.match(template, position) if character == "<" else None
        if variable is not None and variable.group(1) in values:
            value = values[variable.group(1)]
            if in_string:
                pieces.append(json.dumps(value if isinstance(value, str) else json.dumps(value))[1:-1])
            else:
                pieces.append(json.dumps(value))
            position = variable.end()
            continue
        if character == '"' and not _escaped(template, position):
            in_string = not in_string
        pieces.append(character)
        position += 1
    return "".join(pieces)


def _escaped(text: str, position: int) -> bool:
    backslashes = 0
    while position - backslashes - 1 >= 0 and text[position - backslashes - 1] == "\\":
        backslashes += 1
    return backslashes % 2 == 1


# ---- helpers ------------------------------------------------------------------------------------------------------


_DELIVERED_SERVICES = ("lambda", "states", "sqs", "sns", "logs", "events")
_UNSUPPORTED_TARGET = (
    "the twin delivers to Lambda functions, state machines, SQS queues, SNS topics, CloudWatch Logs log groups "
    "and event buses only"
)


def _check_targets(rule: RuleSpec) -> None:
    """Refuse a rule with a target the twin cannot deliver to: dropping its events would differ from AWS silently."""
    for target in rule.targets:
        parts = target.arn.split(":")
        service = parts[2] if len(parts) >= 6 else ""
        if service not in _DELIVERED_SERVICES:
            raise EventRoutingError(
                f"Rule {rule.name}: target {target.target_id} ({target.arn}): {_UNSUPPORTED_TARGET}. "
                "Remove the target, or test that rule against AWS."
            )
        if service == "logs" and not parts[5].startswith("log-group"):
            raise EventRoutingError(f"Rule {rule.name}: target {target.arn} is not a log group ARN")
        if service == "events" and not parts[5].startswith("event-bus/"):
            raise EventRoutingError(f"Rule {rule.name}: target {target.arn} is not an event bus ARN")


def _log_group_name(arn: str) -> str:
    """`arn:aws:logs:<region>:<account>:log-group:<name>[:*]` -> `<name>`."""
    name = arn.split(":log-group:", 1)[1]
    return name[:-2] if name.endswith(":*") else name


def _parse_iso(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _load_pattern(rule: RuleSpec) -> EventPattern:
    try:
        return EventPattern.load(json.dumps(rule.event_pattern))
    except Exception as error:
        raise EventRoutingError(
            f"Rule {rule.name}: its event pattern {rule.event_pattern} is invalid: {error}"
        ) from error


def _rate_seconds(rule: RuleSpec) -> float:
    match = _RATE.match(rule.schedule or "")
    if match is None:
        raise EventRoutingError(
            f"Rule {rule.name}: schedule {rule.schedule!r} is not a rate(N minutes|hours|days) expression; "
            "the twin fires only rate schedules. Use a rate expression, or fire the target by hand."
        )
    return int(match.group(1)) * _RATE_UNITS[match.group(2).rstrip("s")]


def _entry_problem(entry: Mapping[str, Any]) -> dict[str, Any] | None:
    for field_name in ("Source", "DetailType", "Detail"):
        if not entry.get(field_name):
            return {
                "ErrorCode": "InvalidArgument",
                "ErrorMessage": f"Parameter {field_name} is not valid. Reason: {field_name} is a required argument.",
            }
    try:
        detail = json.loads(entry["Detail"])
    except (TypeError, ValueError):
        return {"ErrorCode": "MalformedDetail", "ErrorMessage": "Detail is malformed."}
    if not isinstance(detail, dict):
        return {"ErrorCode": "MalformedDetail", "ErrorMessage": "Detail is malformed."}
    return None


def _entry_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    return None


def _bus_name(value: Any) -> str:
    if not value:
        return "default"
    return str(value).rsplit("/", 1)[-1] if str(value).startswith("arn:") else str(value)


def _payload(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _sqs_record(message: Mapping[str, Any], source: QueueSource, region: str) -> dict[str, Any]:
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": {
            name: {
                "stringValue": value.get("StringValue"),
                "binaryValue": value.get("BinaryValue"),
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": value["DataType"],
            }
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": source.queue_arn,
        "awsRegion": region,
    }


def _reported_failures(result: Any) -> set[str]:
    """Message ids a `ReportBatchItemFailures` function returned as failed (`batchItemFailures`)."""
    if not isinstance(result, dict):
        return set()
    return {str(item["itemIdentifier"]) for item in result.get("batchItemFailures") or [] if "itemIdentifier" in item}
