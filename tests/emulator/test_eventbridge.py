"""The twin's EventBridge: pattern matching, input shaping, target dispatch, SQS batches and schedules."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from emulator.eventbridge import EventRouter, EventRoutingError, json_path, target_input, transform_input
from emulator.stack_spec import DeployedStack, FunctionSpec, QueueSource, RuleSpec, RuleTarget

FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:consumer"
MACHINE_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:deploy"
START = datetime(2026, 1, 1, tzinfo=UTC)

S3_OBJECT_CREATED = {
    "version": "0",
    "id": "17793124-05d4-b198-2fde-7ededc63b103",
    "detail-type": "Object Created",
    "source": "aws.s3",
    "account": "123456789012",
    "time": "2026-01-01T00:00:00Z",
    "region": "us-east-1",
    "resources": ["arn:aws:s3:::data-bucket"],
    "detail": {
        "version": "0",
        "bucket": {"name": "data-bucket"},
        "object": {"key": "incoming/batch.csv", "size": 48213, "etag": "a209", "sequencer": "00664335D3C0AB4C7E"},
        "reason": "PutObject",
        "source-ip-address": "10.1.2.3",
        "optional": None,
    },
}


def _rule(pattern: dict[str, Any] | None = None, *targets: RuleTarget, **fields: Any) -> RuleSpec:
    return RuleSpec(
        logical_id=fields.get("logical_id", "Rule"),
        name=fields.get("name", "rule"),
        event_bus_name=fields.get("event_bus_name", "default"),
        enabled=fields.get("enabled", True),
        event_pattern=pattern,
        schedule=fields.get("schedule"),
        targets=targets or (RuleTarget("fn", FUNCTION_ARN),),
    )


def _stack(*rules: RuleSpec, queue_sources: dict[str, QueueSource] | None = None) -> DeployedStack:
    consumer = FunctionSpec(
        logical_id="ConsumerFunction",
        function_name="consumer",
        function_arn=FUNCTION_ARN,
        handler="consumer.handler",
        code_dir=Path("."),
        environment={},
        timeout=30,
    )
    return DeployedStack(
        stack_name="test",
        stack_id="stack-id",
        parameters={},
        resources={},
        outputs={},
        state_machines={},
        functions={"ConsumerFunction": consumer},
        rules=list(rules),
        queue_sources=queue_sources or {},
    )


class Recorder:
    """Stands in for the twin's Lambda runner and Step Functions: records what each target received."""

    def __init__(self, lambda_result: Any = None, fail_lambda: bool = False) -> None:
        self.invocations: list[tuple[str, Any]] = []
        self.executions: list[tuple[str, str]] = []
        self.lambda_result = lambda_result
        self.fail_lambda = fail_lambda

    def invoke(self, arn: str, payload: Any) -> Any:
        self.invocations.append((arn, payload))
        if self.fail_lambda:
            raise RuntimeError("handler failed")
        return self.lambda_result(payload) if callable(self.lambda_result) else self.lambda_result

    def start(self, arn: str, text: str) -> str:
        self.executions.append((arn, text))
        return f"{arn.replace('stateMachine', 'execution')}:{len(self.executions)}"


def _router(stack: DeployedStack, recorder: Recorder, now: datetime = START) -> EventRouter:
    return EventRouter(stack, invoke_function=recorder.invoke, start_execution=recorder.start, now=lambda: now)


def _matches(pattern: dict[str, Any], event: dict[str, Any] = S3_OBJECT_CREATED) -> bool:
    recorder = Recorder()
    _router(_stack(_rule(pattern)), recorder).route(event)
    return len(recorder.invocations) == 1


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ({"source": ["aws.s3"], "detail-type": ["Object Created"]}, True),
        ({"source": ["aws.S3"]}, False),  # values are case-sensitive
        ({"detail": {"bucket": {"name": ["data-bucket"]}, "object": {"key": [{"prefix": "incoming/"}]}}}, True),
        ({"detail": {"object": {"key": [{"prefix": "archive/"}]}}}, False),
        ({"detail": {"object": {"key": [{"suffix": ".csv"}]}}}, True),
        ({"detail": {"object": {"key": [{"wildcard": "incoming/*.csv"}]}}}, True),
        ({"detail": {"object": {"key": [{"wildcard": "incoming/*.json"}]}}}, False),
        ({"detail": {"reason": [{"anything-but": ["DeleteObject", "CopyObject"]}]}}, True),
        ({"detail": {"reason": [{"anything-but": {"prefix": "Put"}}]}}, False),
        ({"detail": {"object": {"size": [{"numeric": [">", 1000, "<=", 50000]}]}}}, True),
        ({"detail": {"object": {"size": [{"numeric": [">", 50000]}]}}}, False),
        ({"detail": {"object": {"key": [{"numeric": [">", 0]}]}}}, False),  # numeric never matches a string
        ({"detail": {"object": {"version-id": [{"exists": False}]}}}, True),
        ({"detail": {"object": {"etag": [{"exists": True}]}}}, True),
        ({"detail": {"optional": [None]}}, True),  # null matches a present null
        ({"detail": {"absent": [None]}}, False),  # ... but not a missing field
        ({"resources": ["arn:aws:s3:::data-bucket"]}, True),  # a value in an event array
        ({"detail": {"reason": [{"equals-ignore-case": "putobject"}]}}, True),
        ({"detail": {"source-ip-address": [{"cidr": "10.0.0.0/8"}]}}, True),
        ({"$or": [{"source": ["aws.sagemaker"]}, {"detail": {"reason": ["PutObject"]}}]}, True),
        ({"$or": [{"source": ["aws.sagemaker"]}, {"detail": {"reason": ["CopyObject"]}}]}, False),
        ({"detail": {"bucket": ["data-bucket"]}}, False),  # a pattern value never matches an object
    ],
)
def test_event_patterns_match_as_eventbridge_does(pattern: dict[str, Any], expected: bool) -> None:
    assert _matches(pattern) is expected


def test_disabled_rules_and_rules_of_other_buses_do_not_match() -> None:
    recorder = Recorder()
    stack = _stack(
        _rule({"source": ["aws.s3"]}, name="off", enabled=False),
        _rule({"source": ["aws.s3"]}, name="elsewhere", event_bus_name="audit"),
    )
    _router(stack, recorder).route(S3_OBJECT_CREATED)
    assert recorder.invocations == []


def test_an_invalid_pattern_is_refused_naming_the_rule() -> None:
    with pytest.raises(EventRoutingError, match="Rule broken"):
        _router(_stack(_rule({"source": "aws.s3"}, name="broken")), Recorder())


def test_the_approval_rules_input_transformer_gives_the_deploy_input() -> None:
    # The template's ModelApprovedRule: the deploy input is {"ModelPackageArn": ...} from the event's detail.
    transformer = {
        "InputPathsMap": {"model_package_arn": "$.detail.ModelPackageArn"},
        "InputTemplate": '{"ModelPackageArn": <model_package_arn>}',
    }
    event = {"detail": {"ModelPackageArn": "arn:aws:sagemaker:us-east-1:123456789012:model-package/g/3"}}
    text = transform_input(transformer, event, rule_name="r", rule_arn="arn:r")
    assert json.loads(text) == {"ModelPackageArn": "arn:aws:sagemaker:us-east-1:123456789012:model-package/g/3"}


def test_input_transformer_inserts_text_inside_quotes_and_json_outside() -> None:
    transformer = {
        "InputPathsMap": {"job": "$.detail.TrainingJobName", "reason": "$.detail.FailureReason", "n": "$.detail.n"},
        "InputTemplate": '"Job <job> failed: <reason> after <n> tries (<aws.events.rule-name>)"',
    }
    event = {"detail": {"TrainingJobName": "train-1", "FailureReason": 'bad "quote"', "n": 3}}
    text = transform_input(transformer, event, rule_name="job-failed", rule_arn="arn:r")
    assert json.loads(text) == 'Job train-1 failed: bad "quote" after 3 tries (job-failed)'


def test_input_transformer_gives_null_for_a_missing_path_and_keeps_unknown_tags() -> None:
    transformer = {"InputPathsMap": {"gone": "$.detail.nothing"}, "InputTemplate": '{"a": <gone>, "b": "<kept>"}'}
    assert json.loads(transform_input(transformer, {"detail": {}}, rule_name="r", rule_arn="a")) == {
        "a": None,
        "b": "<kept>",
    }


def test_input_path_and_constant_input_shape_what_the_target_receives() -> None:
    by_path = RuleTarget("t", MACHINE_ARN, input_path="$.detail.object")
    constant = RuleTarget("t", MACHINE_ARN, input='{"tune": false}')
    whole = RuleTarget("t", MACHINE_ARN)
    assert json.loads(target_input(by_path, S3_OBJECT_CREATED, rule_name="r", rule_arn="a"))["key"] == (
        "incoming/batch.csv"
    )
    assert target_input(constant, S3_OBJECT_CREATED, rule_name="r", rule_arn="a") == '{"tune": false}'
    assert json.loads(target_input(whole, S3_OBJECT_CREATED, rule_name="r", rule_arn="a")) == S3_OBJECT_CREATED


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$", {"a": [{"b": 1}], "detail-type": "x"}),
        ("$.a[0].b", 1),
        ("$['detail-type']", "x"),
        ("$.detail-type", "x"),
        ("$.a[5]", None),
        ("$.missing.deeper", None),
    ],
)
def test_json_paths_resolve_like_eventbridge_input_paths(path: str, expected: Any) -> None:
    assert json_path({"a": [{"b": 1}], "detail-type": "x"}, path) == expected


def test_a_state_machine_target_is_started_with_the_shaped_input_and_recorded() -> None:
    recorder = Recorder()
    rule = _rule({"source": ["aws.s3"]}, RuleTarget("sm", MACHINE_ARN, input_path="$.detail.bucket"))
    router = _router(_stack(rule), recorder)
    router.route(S3_OBJECT_CREATED)
    assert recorder.executions == [(MACHINE_ARN, '{"name": "data-bucket"}')]
    assert router.executions_started() == [f"{MACHINE_ARN.replace('stateMachine', 'execution')}:1"]


def test_a_failing_target_is_recorded_without_failing_the_event() -> None:
    router = _router(_stack(_rule({"source": ["aws.s3"]})), Recorder(fail_lambda=True))
    (delivery,) = router.route(S3_OBJECT_CREATED)
    assert delivery.error == "RuntimeError: handler failed"


def test_rate_schedules_fire_once_per_elapsed_period_and_not_when_disabled() -> None:
    recorder = Recorder()
    stack = _stack(
        _rule(None, name="hourly", schedule="rate(1 hour)"),
        _rule(None, name="off", schedule="rate(1 minute)", enabled=False),
    )
    router = _router(stack, recorder)
    assert router.fire_schedules(START + timedelta(minutes=59)) == []
    assert len(router.fire_schedules(START + timedelta(hours=3, minutes=1))) == 3
    assert len(router.fire_schedules(START + timedelta(hours=3, minutes=30))) == 0
    payload = recorder.invocations[0][1]
    assert payload["detail-type"] == "Scheduled Event"
    assert payload["resources"] == ["arn:aws:events:us-east-1:123456789012:rule/hourly"]
    assert payload["time"] == "2026-01-01T01:00:00Z"


def test_a_cron_schedule_is_refused_naming_the_rule() -> None:
    with pytest.raises(EventRoutingError, match=r"Rule nightly: schedule 'cron\(0 3 \* \* \? \*\)'"):
        _router(_stack(_rule(None, name="nightly", schedule="cron(0 3 * * ? *)")), Recorder())


def test_put_events_rejects_entries_without_required_fields_and_routes_the_rest() -> None:
    recorder = Recorder()
    router = _router(_stack(_rule({"source": ["mlops.test"]})), recorder)
    results = router.put_events(
        [
            {"Source": "mlops.test", "DetailType": "Ping", "Detail": json.dumps({"n": 1})},
            {"Source": "mlops.test", "DetailType": "Ping"},
            {"Source": "mlops.test", "DetailType": "Ping", "Detail": "[1]"},
        ]
    )
    assert "EventId" in results[0]
    assert results[1]["ErrorCode"] == "InvalidArgument"
    assert results[2]["ErrorCode"] == "MalformedDetail"
    (event,) = (payload for _, payload in recorder.invocations)
    assert event["detail"] == {"n": 1}
    assert event["time"] == "2026-01-01T00:00:00Z"


@pytest.fixture
def moto_queue() -> Iterator[tuple[str, str]]:
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="new-data")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        yield url, arn


def _queue_source(url: str, arn: str, batch_size: int, report_failures: bool = False) -> dict[str, QueueSource]:
    source = QueueSource(
        logical_id="ConsumerFunctionNewData",
        queue_arn=arn,
        queue_url=url,
        function_logical_id="ConsumerFunction",
        batch_size=batch_size,
        batching_window_seconds=60,
        report_batch_item_failures=report_failures,
        enabled=True,
    )
    return {url: source}


def _waiting(url: str) -> int:
    attributes = boto3.client("sqs", region_name="us-east-1").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def test_an_sqs_target_queues_and_draining_delivers_batches_of_the_batch_size(moto_queue: tuple[str, str]) -> None:
    # GIVEN a rule that queues S3 events, consumed in batches of 10 by a function
    url, arn = moto_queue
    recorder = Recorder(lambda_result={"batchItemFailures": []})
    stack = _stack(_rule({"source": ["aws.s3"]}, RuleTarget("q", arn)), queue_sources=_queue_source(url, arn, 10))
    router = _router(stack, recorder)
    # WHEN a burst of 25 events arrives, then the queues are drained
    for _ in range(25):
        router.route(S3_OBJECT_CREATED)
    assert recorder.invocations == []
    router.drain_queues()
    # THEN the function got 3 SQS events of 10, 10 and 5 records whose bodies are the events, and the queue is empty
    sizes = [len(payload["Records"]) for _, payload in recorder.invocations]
    assert sorted(sizes, reverse=True) == [10, 10, 5]
    record = recorder.invocations[0][1]["Records"][0]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == arn
    assert json.loads(record["body"]) == S3_OBJECT_CREATED
    assert _waiting(url) == 0


def test_polling_the_queues_makes_one_sqs_client_for_every_poll_and_delivery(
    moto_queue: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a router whose queue is polled every batching window, as the served twin's event source mapping does
    url, arn = moto_queue
    recorder = Recorder(lambda_result={"batchItemFailures": []})
    stack = _stack(_rule({"source": ["aws.s3"]}, RuleTarget("q", arn)), queue_sources=_queue_source(url, arn, 10))
    router = _router(stack, recorder)
    made: list[str] = []
    real_client = boto3.client

    def counting_client(service: str, *args: Any, **kwargs: Any) -> Any:
        made.append(service)
        return real_client(service, *args, **kwargs)

    monkeypatch.setattr(boto3, "client", counting_client)
    # WHEN events are queued and delivered, and the empty queue is polled five times more
    for _ in range(3):
        router.route(S3_OBJECT_CREATED)
    for _ in range(6):
        router.drain_queues()
    # THEN all of it went through one SQS client: making one costs ~10 ms of CPU, a poll of an empty queue ~4 ms
    assert len(recorder.invocations) == 1
    assert made.count("sqs") == 1


def test_reported_batch_item_failures_stay_on_the_queue(moto_queue: tuple[str, str]) -> None:
    url, arn = moto_queue

    def fail_the_first(payload: dict[str, Any]) -> dict[str, Any]:
        return {"batchItemFailures": [{"itemIdentifier": payload["Records"][0]["messageId"]}]}

    recorder = Recorder(lambda_result=fail_the_first)
    stack = _stack(queue_sources=_queue_source(url, arn, 10, report_failures=True))
    for index in range(3):
        boto3.client("sqs", region_name="us-east-1").send_message(QueueUrl=url, MessageBody=json.dumps({"n": index}))
    router = _router(stack, recorder)
    router.drain_queues()
    assert _waiting(url) == 1


def test_a_batch_whose_function_raises_stays_on_the_queue(moto_queue: tuple[str, str]) -> None:
    url, arn = moto_queue
    stack = _stack(queue_sources=_queue_source(url, arn, 10))
    boto3.client("sqs", region_name="us-east-1").send_message(QueueUrl=url, MessageBody="{}")
    (delivery,) = _router(stack, Recorder(fail_lambda=True)).drain_queues()
    assert delivery.error is not None
    assert _waiting(url) == 1


# ---- log group and event bus targets, refused targets ------------------------------------------------------------

LOG_GROUP = "/aws/events/test-audit"
LOG_GROUP_ARN = f"arn:aws:logs:us-east-1:123456789012:log-group:{LOG_GROUP}"


def test_a_log_group_target_gets_one_log_event_per_event_with_the_event_json_as_message() -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    first = {**S3_OBJECT_CREATED, "time": now.strftime("%Y-%m-%dT%H:%M:%SZ")}
    second = {**first, "id": "second-event"}
    with mock_aws():
        logs = boto3.client("logs", region_name="us-east-1")
        logs.create_log_group(logGroupName=LOG_GROUP)
        router = _router(_stack(_rule({"source": ["aws.s3"]}, RuleTarget("logs", LOG_GROUP_ARN))), Recorder(), now)

        (delivery,) = router.route(first)
        router.route(second)

        events = logs.filter_log_events(logGroupName=LOG_GROUP)["events"]
    assert delivery.error is None
    assert [json.loads(event["message"]) for event in events] == [first, second]
    assert {event["logStreamName"] for event in events} == {first["id"], "second-event"}
    assert events[0]["timestamp"] == int(now.timestamp() * 1000)


def test_a_log_group_that_does_not_exist_is_a_recorded_delivery_error_not_a_silent_drop() -> None:
    with mock_aws():
        router = _router(_stack(_rule({"source": ["aws.s3"]}, RuleTarget("logs", LOG_GROUP_ARN))), Recorder())

        (delivery,) = router.route(S3_OBJECT_CREATED)

    assert delivery.error is not None
    assert "ResourceNotFoundException" in delivery.error


def test_an_event_the_log_group_refuses_as_too_old_is_a_recorded_delivery_error() -> None:
    with mock_aws():
        boto3.client("logs", region_name="us-east-1").create_log_group(logGroupName=LOG_GROUP)
        router = _router(_stack(_rule({"source": ["aws.s3"]}, RuleTarget("logs", LOG_GROUP_ARN))), Recorder())

        (delivery,) = router.route({**S3_OBJECT_CREATED, "time": "2020-01-01T00:00:00Z"})

    assert delivery.error is not None
    assert "refused the event of 2020-01-01T00:00:00Z" in delivery.error


def test_an_event_bus_target_routes_the_event_by_that_buss_rules() -> None:
    recorder = Recorder()
    forward = _rule(
        {"source": ["aws.s3"]}, RuleTarget("bus", "arn:aws:events:us-east-1:123456789012:event-bus/audit"), name="fwd"
    )
    on_audit_bus = _rule({"source": ["aws.s3"]}, name="on-audit", event_bus_name="audit")
    router = _router(_stack(forward, on_audit_bus), recorder)

    router.route(S3_OBJECT_CREATED)

    assert [payload for _, payload in recorder.invocations] == [S3_OBJECT_CREATED]
    assert [delivery.rule for delivery in router.deliveries] == ["on-audit", "fwd"]


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:kinesis:us-east-1:123456789012:stream/clicks",
        "arn:aws:events:us-east-1:123456789012:api-destination/hook/1a2b",
        "arn:aws:logs:us-east-1:123456789012:destination:elsewhere",
    ],
)
def test_a_rule_with_a_target_the_twin_cannot_deliver_to_is_refused_naming_it(arn: str) -> None:
    with pytest.raises(EventRoutingError, match=f"Rule odd: target t \\({arn}\\)|Rule odd: target {arn}"):
        _router(_stack(_rule({"source": ["aws.s3"]}, RuleTarget("t", arn), name="odd")), Recorder())
