"""retrain_on_new_data: which S3 objects start training, once per version, one execution per batch."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
import retrain_on_new_data
from botocore.stub import Stubber
from common.settings import NewDataSettings
from common.single_flight import START_GRACE_SECONDS
from lambda_test_support import DATA_BUCKET, MODEL_NAME, executions, load_event
from trigger_support import FailingAfter

DEFER_SECONDS = 900


@pytest.fixture
def new_data_env(monkeypatch: pytest.MonkeyPatch, training_state_machine: str, idempotency_table: str) -> str:
    monkeypatch.setenv("MODEL_NAME", MODEL_NAME)
    monkeypatch.setenv("DATA_BUCKET", DATA_BUCKET)
    monkeypatch.setenv("DATA_PREFIX", "incoming/")
    monkeypatch.setenv("ALLOWED_SUFFIXES", ".csv")
    queue_url = boto3.client("sqs").create_queue(QueueName="mlops-new-data")["QueueUrl"]
    monkeypatch.setenv("NEW_DATA_QUEUE_URL", queue_url)
    monkeypatch.setenv("NEW_DATA_DEFER_SECONDS", str(DEFER_SECONDS))
    return training_state_machine


def _process(
    event: dict[str, Any],
    context: Any,
    sfn_client: Any = None,
    dynamodb_client: Any = None,
    now: datetime | None = None,
):
    """Run the batch logic and return every record's outcome (the handler returns only the failures)."""
    settings = NewDataSettings.from_env()
    sfn_client = sfn_client or boto3.client("stepfunctions")
    return retrain_on_new_data.process_batch(
        event["Records"],
        settings,
        sfn_client=sfn_client,
        persistence=retrain_on_new_data.object_version_store(settings, context, dynamodb_client),
        lease=retrain_on_new_data.training_lease(settings, sfn_client, dynamodb_client),
        remaining_ms=context.get_remaining_time_in_millis(),
        now=now or datetime.now(UTC),
    )


def _queued(keys: list[str]) -> dict[str, Any]:
    """_batch_of(keys) as SQS hands it over: each record a real message of the queue, with its receipt handle."""
    sqs = boto3.client("sqs")
    queue_url = NewDataSettings.from_env().queue_url
    batch = _batch_of(keys)
    for record in batch["Records"]:
        sqs.send_message(QueueUrl=queue_url, MessageBody=record["body"])
    received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=30)["Messages"]
    by_body = {message["Body"]: message for message in received}
    for record in batch["Records"]:
        message = by_body[record["body"]]
        record.update(messageId=message["MessageId"], receiptHandle=message["ReceiptHandle"])
    return batch


def _visible_count() -> int:
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=NewDataSettings.from_env().queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def _batch_of(keys: list[str]) -> dict[str, Any]:
    """An SQS batch with one Object Created record per key, each its own object version."""
    template = load_event("retrain_on_new_data/object_created.json")["Records"][0]
    records = []
    for index, key in enumerate(keys):
        record = copy.deepcopy(template)
        body = json.loads(record["body"])
        body["detail"]["object"].update({"key": key, "version-id": f"v{index:06d}", "sequencer": f"{index:018X}"})
        record.update(messageId=f"message-{index}", body=json.dumps(body))
        records.append(record)
    return {"Records": records}


def test_object_created_under_the_prefix_starts_training_naming_the_object(new_data_env, lambda_context):
    response = retrain_on_new_data.handler(load_event("retrain_on_new_data/object_created.json"), lambda_context)

    assert response == {"batchItemFailures": []}
    [execution] = executions(new_data_env)
    assert execution["input"] == {
        "data_uri": f"s3://{DATA_BUCKET}/incoming/",
        "tune": False,
        "trigger": {"type": "new_data", "detail": {"source": f"{DATA_BUCKET}/incoming/", "object_count": 1}},
        "objects": [
            {"bucket": DATA_BUCKET, "key": "incoming/2024-05-14/batch-001.csv", "version_id": "3HL4kqtJvjVBH40Nrjfkd"}
        ],
    }
    assert execution["name"].startswith(f"{MODEL_NAME}-data-")


def test_burst_in_one_batch_starts_one_execution_naming_every_object(new_data_env, lambda_context):
    retrain_on_new_data.handler(load_event("retrain_on_new_data/burst.json"), lambda_context)

    [execution] = executions(new_data_env)
    assert [obj["key"] for obj in execution["input"]["objects"]] == [
        "incoming/2024-05-14/batch-001.csv",
        "incoming/2024-05-14/batch-002.csv",
        "incoming/2024-05-14/batch-003.csv",
    ]


def test_same_object_twice_in_a_batch_starts_one_execution_for_one_object(new_data_env, lambda_context):
    result = _process(load_event("retrain_on_new_data/duplicate_delivery.json"), lambda_context)

    assert [outcome.action for outcome in result.outcomes] == ["started", "duplicate"]
    [execution] = executions(new_data_env)
    assert len(execution["input"]["objects"]) == 1


def test_redelivered_batch_starts_nothing_new(new_data_env, lambda_context):
    retrain_on_new_data.handler(load_event("retrain_on_new_data/burst.json"), lambda_context)

    again = _process(load_event("retrain_on_new_data/burst.json"), lambda_context)

    assert {outcome.action for outcome in again.outcomes} == {"duplicate"}
    assert len(executions(new_data_env)) == 1


def test_object_seen_in_an_earlier_batch_is_left_out_of_the_next_execution(new_data_env, lambda_context):
    retrain_on_new_data.handler(load_event("retrain_on_new_data/object_created.json"), lambda_context)
    [first] = executions(new_data_env)
    boto3.client("stepfunctions").stop_execution(executionArn=first["executionArn"])
    retrain_on_new_data.handler(load_event("retrain_on_new_data/burst.json"), lambda_context)

    started = executions(new_data_env)
    object_lists = sorted([obj["key"] for obj in execution["input"]["objects"]] for execution in started)
    assert object_lists == [
        ["incoming/2024-05-14/batch-001.csv"],
        ["incoming/2024-05-14/batch-002.csv", "incoming/2024-05-14/batch-003.csv"],
    ]


def test_url_encoded_key_with_spaces_and_unicode_is_decoded(new_data_env, lambda_context):
    retrain_on_new_data.handler(load_event("retrain_on_new_data/encoded_key.json"), lambda_context)

    [execution] = executions(new_data_env)
    assert execution["input"]["objects"][0]["key"] == "incoming/café résultats/mai 2024 (1).csv"


@pytest.mark.parametrize(
    ("event_file", "expected"),
    [
        ("retrain_on_new_data/s3_test_event.json", [("ignored", "S3 test event")]),
        (
            "retrain_on_new_data/outside_prefix_and_wrong_suffix.json",
            [
                ("ignored", "is outside DATA_PREFIX 'incoming/'"),
                ("ignored", "does not end with one of ALLOWED_SUFFIXES"),
                ("ignored", "does not end with one of ALLOWED_SUFFIXES"),
            ],
        ),
        ("retrain_on_new_data/empty_object.json", [("rejected", "is empty (size 0")]),
        ("retrain_on_new_data/another_account.json", [("rejected", "from account 210987654321 in us-east-1")]),
        ("retrain_on_new_data/another_region.json", [("rejected", "from account 123456789012 in eu-west-1")]),
        ("retrain_on_new_data/custom_source.json", [("rejected", "source 'custom.uploader' is not aws.s3")]),
        ("retrain_on_new_data/another_bucket.json", [("rejected", "bucket 'someone-elses-bucket' is not DATA_BUCKET")]),
        (
            "retrain_on_new_data/malformed_records.json",
            [
                ("rejected", "body is not JSON"),
                ("rejected", "malformed Object Created event: detail.object.key: Field required"),
                ("started", "training started"),
            ],
        ),
    ],
)
def test_records_that_are_not_new_data_are_ignored_or_rejected_with_a_reason_and_never_retried(
    new_data_env, lambda_context, event_file, expected
):
    result = _process(load_event(event_file), lambda_context)

    assert len(result.outcomes) == len(expected)
    for (action, reason_part), outcome in zip(expected, result.outcomes, strict=True):
        assert outcome.action == action
        assert reason_part in outcome.reason
    assert result.batch_item_failures == []


def test_empty_object_is_rejected_with_one_logged_error(new_data_env, lambda_context, caplog):
    response = retrain_on_new_data.handler(load_event("retrain_on_new_data/empty_object.json"), lambda_context)

    assert response == {"batchItemFailures": []}
    assert [record.levelname for record in caplog.records].count("ERROR") == 1
    assert executions(new_data_env) == []


def test_event_that_is_not_an_sqs_batch_is_rejected_with_one_logged_error(new_data_env, lambda_context, caplog):
    response = retrain_on_new_data.handler(load_event("retrain_on_new_data/not_an_sqs_batch.json"), lambda_context)

    assert response == {"batchItemFailures": []}
    errors = [record.getMessage() for record in caplog.records if record.levelname == "ERROR"]
    assert errors == ["event rejected: not an SQS batch (no Records list in a dict)"]


def test_throttled_start_returns_the_batch_for_retry_and_the_retry_starts_it(new_data_env, lambda_context):
    throttled_sfn = boto3.client("stepfunctions")
    with Stubber(throttled_sfn) as stubber:
        stubber.add_response("list_executions", {"executions": []})
        stubber.add_client_error("start_execution", service_error_code="ThrottlingException", http_status_code=400)
        first = _process(load_event("retrain_on_new_data/burst.json"), lambda_context, sfn_client=throttled_sfn)

    assert [failure["itemIdentifier"] for failure in first.batch_item_failures] == [
        record["messageId"] for record in load_event("retrain_on_new_data/burst.json")["Records"]
    ]
    # The claims and the lease were released, so SQS's redelivery of the same batch starts it.
    retried = _process(load_event("retrain_on_new_data/burst.json"), lambda_context)
    assert {outcome.action for outcome in retried.outcomes} == {"started"}
    assert len(executions(new_data_env)) == 1


def test_start_refused_as_invalid_is_rejected_not_retried(new_data_env, lambda_context):
    refusing_sfn = boto3.client("stepfunctions")
    with Stubber(refusing_sfn) as stubber:
        stubber.add_response("list_executions", {"executions": []})
        stubber.add_client_error("start_execution", service_error_code="InvalidExecutionInput", http_status_code=400)
        event = load_event("retrain_on_new_data/object_created.json")
        result = _process(event, lambda_context, sfn_client=refusing_sfn)

    assert [outcome.action for outcome in result.outcomes] == ["rejected"]
    assert result.batch_item_failures == []


def test_unreachable_idempotency_store_returns_records_for_retry_and_starts_nothing(new_data_env, lambda_context):
    failing_dynamodb = boto3.client("dynamodb")
    with Stubber(failing_dynamodb) as stubber:
        stubber.add_client_error(
            "put_item", service_error_code="ProvisionedThroughputExceededException", http_status_code=400
        )
        result = _process(
            load_event("retrain_on_new_data/object_created.json"), lambda_context, dynamodb_client=failing_dynamodb
        )

    assert [outcome.action for outcome in result.outcomes] == ["retry"]
    assert len(result.batch_item_failures) == 1
    assert executions(new_data_env) == []


def test_execution_closed_under_the_same_name_counts_as_started(new_data_env, lambda_context):
    # GIVEN the batch's execution ran and closed, and the idempotency records are gone (expired)
    first = _process(load_event("retrain_on_new_data/burst.json"), lambda_context)
    [execution] = executions(new_data_env)
    boto3.client("stepfunctions").stop_execution(executionArn=execution["executionArn"])
    table = NewDataSettings.from_env().idempotency_table_name
    for item in boto3.client("dynamodb").scan(TableName=table)["Items"]:
        boto3.client("dynamodb").delete_item(TableName=table, Key={"id": item["id"]})

    # WHEN the same batch is delivered again
    again = _process(load_event("retrain_on_new_data/burst.json"), lambda_context)

    # THEN ExecutionAlreadyExists is the earlier start: same name, no second execution
    assert {outcome.action for outcome in again.outcomes} == {"started"}
    assert {outcome.execution_name for outcome in again.outcomes} == {first.outcomes[0].execution_name}
    assert len(executions(new_data_env)) == 1


def test_batch_too_large_for_one_execution_input_is_split_without_losing_an_object(new_data_env, lambda_context):
    keys = [f"incoming/{index:04d}-{'x' * 1000}.csv" for index in range(270)]

    # One training at a time: the first part starts, the rest waits on the queue for it to end.
    first = _process(_batch_of(keys), lambda_context)
    [running] = executions(new_data_env)
    boto3.client("stepfunctions").stop_execution(executionArn=running["executionArn"])
    waiting = [key for key, outcome in zip(keys, first.outcomes, strict=True) if outcome.action == "deferred"]
    rest = _process(_batch_of(keys), lambda_context)

    started = executions(new_data_env)
    assert len(started) == 2
    assert {outcome.action for outcome in first.outcomes} == {"started", "deferred"}
    assert waiting
    named = sorted(obj["key"] for execution in started for obj in execution["input"]["objects"])
    assert named == sorted(keys)
    assert {outcome.action for outcome in rest.outcomes} == {"duplicate", "started"}


def test_each_record_outcome_is_a_metric(new_data_env, lambda_context, capsys):
    retrain_on_new_data.handler(load_event("retrain_on_new_data/malformed_records.json"), lambda_context)

    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    values = {name: blob[name] for blob in emitted for name in ("ObjectRejected", "ObjectStarted", "RetrainStarted")}
    assert values == {"ObjectRejected": [1.0, 1.0], "ObjectStarted": [1.0], "RetrainStarted": [1.0]}


@pytest.mark.parametrize(
    ("body", "action", "reason"),
    [
        ({"greeting": "hello"}, "rejected", "body is not an EventBridge event (keys ['greeting'])"),
        (["a", "list"], "rejected", "body is a JSON list, not an event object"),
        ({"detail-type": "Object Deleted"}, "ignored", "event type 'Object Deleted' is not 'Object Created'"),
    ],
)
def test_bodies_that_are_not_object_created_events_are_told_apart(new_data_env, lambda_context, body, action, reason):
    event = load_event("retrain_on_new_data/object_created.json")
    event["Records"][0]["body"] = json.dumps(body)

    [outcome] = _process(event, lambda_context).outcomes

    assert (outcome.action, outcome.reason) == (action, reason)


def test_empty_batch_starts_nothing_and_still_reports_a_metric(new_data_env, lambda_context, capsys):
    response = retrain_on_new_data.handler({"Records": []}, lambda_context)

    assert response == {"batchItemFailures": []}
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert [blob["RecordsReceived"] for blob in emitted] == [[0.0]]


@pytest.mark.parametrize(
    "event_file",
    [
        "retrain_on_new_data/another_account.json",
        "retrain_on_new_data/another_region.json",
        "retrain_on_new_data/custom_source.json",
        "retrain_on_new_data/another_bucket.json",
    ],
)
def test_object_created_not_from_s3_for_this_stacks_bucket_is_rejected_with_one_logged_error(
    new_data_env, lambda_context, caplog, event_file
):
    response = retrain_on_new_data.handler(load_event(event_file), lambda_context)

    assert response == {"batchItemFailures": []}
    errors = [record.getMessage() for record in caplog.records if record.levelname == "ERROR"]
    assert len(errors) == 1
    assert "not an event of this stack's data bucket" in errors[0]
    assert executions(new_data_env) == []


def test_key_longer_than_s3_allows_is_rejected(new_data_env, lambda_context):
    [outcome] = _process(_batch_of([f"incoming/{'k' * 1100}.csv"]), lambda_context).outcomes

    assert (outcome.action, outcome.reason) == ("rejected", "key of 1113 bytes is longer than S3 allows")


def test_new_data_while_a_training_runs_is_deferred_with_a_visibility_delay_not_dropped(new_data_env, lambda_context):
    # GIVEN a training of the model is running
    boto3.client("stepfunctions").start_execution(stateMachineArn=new_data_env, name="running-run", input="{}")
    batch = _queued(["incoming/late.csv"])

    # WHEN new data arrives
    response = retrain_on_new_data.handler(batch, lambda_context)

    # THEN it is returned to the queue, invisible for the deferral, and its claim released
    assert response == {"batchItemFailures": [{"itemIdentifier": batch["Records"][0]["messageId"]}]}
    assert [execution["name"] for execution in executions(new_data_env)] == ["running-run"]
    assert _visible_count() == 0
    table = NewDataSettings.from_env().idempotency_table_name
    claims = [item for item in boto3.client("dynamodb").scan(TableName=table)["Items"] if "#" in item["id"]["S"]]
    assert claims == []


def test_deferred_record_starts_its_own_training_once_the_running_one_ends(new_data_env, lambda_context):
    sfn = boto3.client("stepfunctions")
    running = sfn.start_execution(stateMachineArn=new_data_env, name="running-run", input="{}")["executionArn"]
    deferred = _process(_batch_of(["incoming/late.csv"]), lambda_context)
    sfn.stop_execution(executionArn=running)

    retried = _process(_batch_of(["incoming/late.csv"]), lambda_context)

    assert [outcome.action for outcome in deferred.outcomes] == ["deferred"]
    assert [outcome.action for outcome in retried.outcomes] == ["started"]
    assert len(executions(new_data_env)) == 2


def test_two_batches_while_no_training_runs_start_one_training_and_defer_the_other(new_data_env, lambda_context):
    first = _process(_batch_of(["incoming/a.csv"]), lambda_context)
    second = _process(_batch_of(["outside/0.csv", "incoming/b.csv"]), lambda_context)

    assert [outcome.action for outcome in first.outcomes] == ["started"]
    assert [outcome.action for outcome in second.outcomes] == ["ignored", "deferred"]
    assert len(executions(new_data_env)) == 1


def test_changed_redelivery_after_a_start_that_timed_out_after_it_landed_trains_no_object_twice(
    new_data_env, lambda_context
):
    # GIVEN a batch whose StartExecution landed, but whose answer and the look-up after it were lost
    start_lost = FailingAfter(boto3.client("stepfunctions"), "start_execution", land=True)
    blind = FailingAfter(start_lost, "describe_execution", land=False)
    first = _process(_batch_of(["incoming/a.csv", "incoming/b.csv"]), lambda_context, sfn_client=blind)
    assert {outcome.action for outcome in first.outcomes} == {"retry"}

    # WHEN SQS redelivers the objects in a different batch, with a new one, once the training ended
    [execution] = executions(new_data_env)
    boto3.client("stepfunctions").stop_execution(executionArn=execution["executionArn"])
    changed = _batch_of(["incoming/a.csv", "incoming/b.csv", "incoming/c.csv"])
    again = _process(changed, lambda_context, now=datetime.now(UTC) + timedelta(minutes=10))

    # THEN a and b are known to be in the first execution and only c starts a new one
    assert [outcome.action for outcome in again.outcomes] == ["duplicate", "duplicate", "started"]
    trained = sorted(obj["key"] for started in executions(new_data_env) for obj in started["input"]["objects"])
    assert trained == ["incoming/a.csv", "incoming/b.csv", "incoming/c.csv"]


def test_planned_execution_that_never_started_is_claimed_again_after_the_grace_period(new_data_env, lambda_context):
    # GIVEN a batch whose start never reached Step Functions, and whose look-up failed too (so the claims stay)
    lost = FailingAfter(boto3.client("stepfunctions"), "start_execution", land=False)
    blind = FailingAfter(lost, "describe_execution", land=False)
    now = datetime.now(UTC)
    _process(_batch_of(["incoming/a.csv"]), lambda_context, sfn_client=blind, now=now)

    soon = _process(_batch_of(["incoming/a.csv"]), lambda_context, now=now + timedelta(seconds=60))
    later = _process(
        _batch_of(["incoming/a.csv"]), lambda_context, now=now + timedelta(seconds=START_GRACE_SECONDS + 1)
    )

    assert [outcome.action for outcome in soon.outcomes] == ["deferred"]
    assert [outcome.action for outcome in later.outcomes] == ["started"]
    assert len(executions(new_data_env)) == 1


def test_failed_record_of_the_planned_execution_starts_nothing_and_the_retry_starts_once(new_data_env, lambda_context):
    failing_store = FailingAfter(boto3.client("dynamodb"), "update_item", land=False)

    failed = _process(load_event("retrain_on_new_data/burst.json"), lambda_context, dynamodb_client=failing_store)
    assert executions(new_data_env) == []
    retried = _process(load_event("retrain_on_new_data/burst.json"), lambda_context)

    assert {outcome.action for outcome in failed.outcomes} == {"retry"}
    assert {outcome.action for outcome in retried.outcomes} == {"started"}
    assert len(executions(new_data_env)) == 1


def test_unreachable_lease_returns_records_for_retry_and_a_later_delivery_starts_them_once(
    new_data_env, lambda_context
):
    # The training lease is read with GetItem; the object claims never read, so only the lease fails.
    lease_unreachable = FailingAfter(boto3.client("dynamodb"), "get_item", land=False)
    now = datetime.now(UTC)

    failed = _process(_batch_of(["incoming/a.csv"]), lambda_context, dynamodb_client=lease_unreachable, now=now)
    later = _process(
        _batch_of(["incoming/a.csv"]), lambda_context, now=now + timedelta(seconds=START_GRACE_SECONDS + 1)
    )

    assert [(outcome.action, outcome.reason.split(":")[0]) for outcome in failed.outcomes] == [
        ("retry", f"starting {failed.outcomes[0].execution_name} failed")
    ]
    assert [outcome.action for outcome in later.outcomes] == ["started"]
    assert len(executions(new_data_env)) == 1
