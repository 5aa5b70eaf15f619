"""Alarms in the whole twin: the stack's alarms start INSUFFICIENT_DATA, evaluate on the clock, and a drift alarm's
state change reaches retrain_on_drift through the stack's own rule."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from moto.sns.models import sns_backends
from twin_runtime import stand_in_twin

from emulator.twin import LocalTwin

pytestmark = pytest.mark.e2e

# Stand-ins with the real file names (as tests/e2e/test_twin.py): routing is what is checked here.
TRAINING_ASL = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}
DEPLOY_ASL = {
    "StartAt": "ShouldFail",
    "States": {
        "ShouldFail": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.fail", "IsPresent": True, "Next": "Failed"}],
            "Default": "Done",
        },
        "Failed": {"Type": "Fail", "Error": "Local.Failed", "Cause": "asked to fail"},
        "Done": {"Type": "Pass", "End": True},
    },
}


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTwin]:
    with stand_in_twin(tmp_path_factory.mktemp("statemachines"), TRAINING_ASL, DEPLOY_ASL) as started:
        yield started


def _states(prefix: str) -> dict[str, str]:
    alarms = boto3.client("cloudwatch").describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"]
    return {alarm["AlarmName"]: alarm["StateValue"] for alarm in alarms}


def test_the_stacks_alarms_start_insufficient_data_and_all_of_them_are_evaluated(twin: LocalTwin) -> None:
    stack = twin.stack_name
    before = _states(stack)
    assert len(before) >= 6, "the template defines the stack's alarms"
    if not twin.alarm_changes:
        assert set(before.values()) == {"INSUFFICIENT_DATA"}

    twin.evaluate_alarms()
    after = _states(stack)

    # Their metrics are published by the twin (SageMaker, Step Functions, SQS), so every one is evaluated: no
    # errors and empty dead-letter queues, notBreaching -> OK.
    assert "INSUFFICIENT_DATA" not in after.values(), after
    assert twin.alarms.refusals == {}
    for name in ("endpoint-5xx", "new-data-dlq", "event-delivery-dlq", "function-failures"):
        assert after[f"{stack}-{name}"] == "OK"


def test_a_drift_alarm_going_to_alarm_starts_retraining_through_the_stacks_rule(twin: LocalTwin) -> None:
    stack = twin.stack_name
    name = f"{stack}-drift-feature-share"
    cloudwatch = boto3.client("cloudwatch")
    cloudwatch.put_metric_alarm(
        AlarmName=name,
        Namespace="mlops",
        MetricName="DriftedFeatureShare",
        Dimensions=[{"Name": "Endpoint", "Value": f"{stack}-endpoint"}],
        Statistic="Maximum",
        Period=3600,
        EvaluationPeriods=1,
        Threshold=0.3,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
        TreatMissingData="notBreaching",
    )
    twin.clock.advance(60)  # a minute boundary: the twin evaluates on its own
    assert _states(name)[name] == "OK"
    cloudwatch.put_metric_data(
        Namespace="mlops",
        MetricData=[
            {
                "MetricName": "DriftedFeatureShare",
                "Dimensions": [{"Name": "Endpoint", "Value": f"{stack}-endpoint"}],
                "Value": 0.5,
            }
        ],
    )
    delivered_before = len(twin.router.deliveries)
    twin.clock.advance(60)

    assert _states(name)[name] == "ALARM"
    assert [(c["from"], c["to"]) for c in twin.alarm_changes if c["alarm"] == name] == [
        ("INSUFFICIENT_DATA", "OK"),
        ("OK", "ALARM"),
    ]
    retrain = twin.stack.functions["RetrainOnDriftFunction"].function_arn
    [delivery] = [d for d in twin.router.deliveries[delivered_before:] if d.target_arn == retrain]
    assert delivery.rule == f"{stack}-drift-alarm"
    assert delivery.error is None
    assert json.loads(delivery.input)["detail"]["alarmName"] == name
    assert delivery.result["action"] == "started", delivery.result


def test_the_functions_embedded_metrics_reach_cloudwatch(twin: LocalTwin) -> None:
    function = twin.stack.functions["RetrainOnDriftFunction"]
    namespace = function.environment["POWERTOOLS_METRICS_NAMESPACE"]
    twin.invoke_function("RetrainOnDriftFunction", {"not": "an alarm event"})  # rejected, and counted

    metrics = boto3.client("cloudwatch").list_metrics(Namespace=namespace)["Metrics"]
    assert "EventRejected" in {metric["MetricName"] for metric in metrics}


def test_a_failed_deploy_execution_sets_off_the_stacks_failure_alarm_and_notifies_its_topic(twin: LocalTwin) -> None:
    stack = twin.stack_name
    name = f"{stack}-deploy-executions-failed"
    twin.evaluate_alarms()
    assert _states(name)[name] == "OK"
    arn = twin.start_execution("deploy", {"fail": True})
    assert twin.wait_for_execution(arn, timeout=60).status == "FAILED"
    twin.clock.advance(60)

    assert _states(name)[name] == "ALARM"
    topic_arn = twin.stack.resources["NotificationTopic"]
    notifications = sns_backends["123456789012"]["us-east-1"].topics[topic_arn].sent_notifications
    alarm_messages = [json.loads(n[1]) for n in notifications if n[2] and n[2].startswith("ALARM:")]
    assert [m["AlarmName"] for m in alarm_messages] == [name]


def test_a_message_in_a_dead_letter_queue_sets_off_its_alarm_until_the_queue_is_empty(twin: LocalTwin) -> None:
    stack = twin.stack_name
    name = f"{stack}-new-data-dlq"
    sqs = boto3.client("sqs")
    queue_url = sqs.get_queue_url(QueueName=twin.stack.resources["NewDataDeadLetterQueue"].rsplit("/", 1)[-1])
    sqs.send_message(QueueUrl=queue_url["QueueUrl"], MessageBody="{}")
    twin.clock.advance(60)
    assert _states(name)[name] == "ALARM"

    sqs.purge_queue(QueueUrl=queue_url["QueueUrl"])
    twin.clock.advance(6 * 60)  # the alarm's five-minute period no longer holds the sample with the message
    assert _states(name)[name] == "OK"
