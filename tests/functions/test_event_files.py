"""Every file in events/ goes through its function's handler: accepted, or rejected with the expected clear error."""

from __future__ import annotations

import importlib
import json
from typing import Any

import boto3
import pytest
import requests
from lambda_test_support import AUDIT_BUS, DATA_BUCKET, EVENTS_DIR, MODEL_NAME, executions, load_event
from lineage_support import SAMPLE_OBJECT_BODY, SAMPLE_OBJECT_KEY, SNAPSHOT_ENVIRONMENT, create_stack_buckets, put_data
from trigger_support import DRIFT_PREFIX, RETRAINING_SCHEDULE_RULE_ARN

# events/<function>/<case>.json -> what the handler must do with it. A new file without a line here fails.
EXPECTED = {
    "retrain_on_drift/alarm.json": "started",
    "retrain_on_drift/alarm_redelivered.json": "started",
    "retrain_on_drift/ok_transition.json": "ignored",
    "retrain_on_drift/insufficient_data.json": "ignored",
    "retrain_on_drift/unknown_alarm.json": "ignored",
    "retrain_on_drift/missing_state.json": "rejected",
    "retrain_on_drift/another_account.json": "rejected",
    "retrain_on_drift/another_region.json": "rejected",
    "retrain_on_drift/foreign_alarm_arn.json": "rejected",
    "retrain_on_drift/prefix_without_separator.json": "ignored",
    "retrain_on_drift/huge_reason.json": "started",
    # No drift alarm of the stack is in ALARM: the re-check has nothing to do.
    "retrain_on_drift/recheck_schedule.json": "ignored",
    # The business retraining schedule's firing: nothing runs, so it starts a training under the lease.
    "retrain_on_drift/scheduled_retraining.json": "started",
    "retrain_on_new_data/object_created.json": "1 execution",
    "retrain_on_new_data/burst.json": "1 execution",
    "retrain_on_new_data/duplicate_delivery.json": "1 execution",
    "retrain_on_new_data/encoded_key.json": "1 execution",
    "retrain_on_new_data/malformed_records.json": "1 execution",
    "retrain_on_new_data/s3_test_event.json": "0 execution",
    "retrain_on_new_data/outside_prefix_and_wrong_suffix.json": "0 execution",
    "retrain_on_new_data/empty_object.json": "0 execution",
    "retrain_on_new_data/not_an_sqs_batch.json": "0 execution",
    "retrain_on_new_data/another_account.json": "0 execution",
    "retrain_on_new_data/another_region.json": "0 execution",
    "retrain_on_new_data/custom_source.json": "0 execution",
    "retrain_on_new_data/another_bucket.json": "0 execution",
    "endpoint_reaper/schedule.json": "ran",
    "endpoint_reaper/not_a_schedule.json": "rejected",
    "evaluation_report/payload.json": "answered",
    "evaluation_report/missing_metric.json": "InvalidPayloadError",
    "smoke_test/payload.json": "answered",
    "smoke_test/missing_sample_uri.json": "InvalidPayloadError",
    "approval_tags/manual_approval.json": "answered",
    "approval_tags/unknown_mode.json": "InvalidPayloadError",
    # The stack's endpoint is not deployed here: monitoring ends quietly.
    "monitoring_window/scheduled_window.json": "NoEndpoint",
    "monitoring_window/missing_window_end.json": "InvalidPayloadError",
    "publish_monitoring_metrics/report_not_written.json": "MonitoringReportError",
    "publish_monitoring_metrics/missing_report_uri.json": "InvalidPayloadError",
    "model_card/registration.json": "created",
    # The card follows the package's current approval (pending here), whatever status the event carried.
    "model_card/approved.json": "created",
    "model_card/rejected.json": "created",
    "model_card/missing_approval_status.json": "rejected",
    "model_card/missing_package_arn.json": "InvalidPayloadError",
    "audit_recorder/model_package_approved.json": "model_approved",
    "audit_recorder/model_package_rejected.json": "model_rejected",
    "audit_recorder/model_package_pending.json": "ignored",
    "audit_recorder/model_package_other_group.json": "ignored",
    "audit_recorder/deploy_succeeded.json": "deploy_succeeded",
    "audit_recorder/deploy_rolled_back.json": "deploy_rolled_back",
    "audit_recorder/deploy_failed.json": "deploy_failed",
    "audit_recorder/deploy_running.json": "ignored",
    "audit_recorder/training_succeeded.json": "ignored",
    "audit_recorder/malformed_execution.json": "rejected",
    "audit_recorder/alarm_state_change.json": "alarm_state_changed",
    "training_data_snapshot/payload.json": "answered",
    "training_data_snapshot/outside_prefix.json": "DataLocationError",
    "training_data_snapshot/missing_execution_name.json": "InvalidPayloadError",
    # No snapshot ran before it here: the record it names does not exist (test_lineage_manifest.py writes one).
    "lineage_manifest/payload.json": "LineageError",
    "lineage_manifest/missing_snapshot.json": "InvalidPayloadError",
}


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch, training_state_machine: str, idempotency_table: str) -> str:
    """What template.yaml gives the functions: their environment and the resources the events point at."""
    topic = boto3.client("sns").create_topic(Name="mlops-notifications")["TopicArn"]
    environment = {
        "MODEL_NAME": MODEL_NAME,
        "DRIFT_ALARM_PREFIX": DRIFT_PREFIX,
        "RETRAIN_COOLDOWN_MINUTES": "360",
        "TRAINING_DATA_URI": f"s3://{DATA_BUCKET}/incoming/",
        "RETRAINING_SCHEDULE_RULE_ARN": RETRAINING_SCHEDULE_RULE_ARN,
        "DATA_BUCKET": DATA_BUCKET,
        "DATA_PREFIX": "incoming/",
        "ALLOWED_SUFFIXES": ".csv",
        "NEW_DATA_QUEUE_URL": boto3.client("sqs").create_queue(QueueName="mlops-new-data")["QueueUrl"],
        "NEW_DATA_DEFER_SECONDS": "900",
        "IDLE_WINDOW_HOURS": "24",
        "MIN_AGE_HOURS": "24",
        "OPT_OUT_TAG": "mlops:reaper-opt-out",
        "MARK_TAG": "mlops:idle-since",
        "MAX_DELETIONS_PER_RUN": "5",
        "REPORT_TOPIC_ARN": topic,
        "AUDIT_EVENT_BUS_NAME": AUDIT_BUS,
        "REAPER_SCOPE": "managed",
        "MANAGEMENT_TAG": "mlops:model-package-arn",
        "MANAGED_TAG_VALUE_PREFIX": f"arn:aws:sagemaker:us-east-1:123456789012:model-package/mlops-{MODEL_NAME}/",
        "MODEL_PACKAGE_GROUP_NAME": f"mlops-{MODEL_NAME}",
        "MODEL_CARD_KMS_KEY_ID": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "DEPLOY_STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:mlops-local-deploy",
        "ALARM_NAME_PREFIX": "mlops-local-",
        **SNAPSHOT_ENVIRONMENT,
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    boto3.client("sagemaker").create_model_package_group(ModelPackageGroupName=f"mlops-{MODEL_NAME}")
    s3 = create_stack_buckets()
    put_data(s3, SAMPLE_OBJECT_KEY, SAMPLE_OBJECT_BODY)
    for payload_file, body in [
        (
            "evaluation_report/payload.json",
            json.dumps(
                {"metrics": {"auc": 0.97, "accuracy": 0.93}, "bias": {"facet": None, "reason": "none configured"}}
            ),
        ),
        ("smoke_test/payload.json", "17.99,10.38\n13.54,14.36\n"),
    ]:
        payload = load_event(payload_file)
        uri = payload.get("evaluation_uri") or payload["sample_uri"]
        bucket, key = uri.removeprefix("s3://").split("/", 1)
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    # The package the model_card events name (version 1 of the group), evaluated by the report written above.
    boto3.client("sagemaker").create_model_package(
        ModelPackageGroupName=f"mlops-{MODEL_NAME}",
        ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={
            "Containers": [{"Image": "xgboost:3.0-5"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        CustomerMetadataProperties={"evaluation_uri": load_event("evaluation_report/payload.json")["evaluation_uri"]},
    )
    # moto's SageMaker runtime answers InvokeEndpoint from a queue set through its own API.
    answer = json.dumps({"predictions": [{"score": 0.1, "label": 0}, {"score": 0.9, "label": 1}]})
    requests.post(
        "http://motoapi.amazonaws.com/moto-api/static/sagemaker/endpoint-results",
        json={"results": [{"Body": answer, "ContentType": "application/json"}]},
        timeout=5,
    )
    return training_state_machine


def _outcome(function: str, result: Any, state_machine_arn: str) -> str:
    if function == "retrain_on_drift":
        return result["action"]
    if function == "retrain_on_new_data":
        assert result == {"batchItemFailures": []}
        return f"{len(executions(state_machine_arn))} execution"
    if function == "endpoint_reaper":
        return "rejected" if "rejected" in result else "ran"
    if function == "audit_recorder":
        return result["decision"] or result["action"]
    if function == "monitoring_window":
        return str(result["Status"])
    if function == "model_card":
        return str(result["action"])
    return "answered"


def test_every_event_file_has_an_expectation():
    on_disk = {path.relative_to(EVENTS_DIR).as_posix() for path in EVENTS_DIR.rglob("*.json")}

    assert on_disk == set(EXPECTED)


@pytest.mark.parametrize(("event_file", "expected"), sorted(EXPECTED.items()))
def test_event_file_is_handled_as_expected(stack, lambda_context, event_file, expected):
    function = event_file.split("/")[0]
    handler = importlib.import_module(function).handler

    try:
        outcome = _outcome(function, handler(load_event(event_file), lambda_context), stack)
    except Exception as error:
        outcome = type(error).__name__

    assert outcome == expected
