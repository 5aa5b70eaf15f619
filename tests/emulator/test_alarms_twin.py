"""Alarms in the whole twin: the stack's alarms start INSUFFICIENT_DATA, evaluate on the clock, and a drift alarm's
state change reaches retrain_on_drift through the stack's own rule."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator

import boto3
import pytest

from contract.project import PROJECT_ROOT
from emulator.twin import LocalTwin

pytestmark = pytest.mark.e2e

# Stand-ins with the real file names (as tests/e2e/test_twin.py): routing is what is checked here.
TRAINING_ASL = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}
DEPLOY_ASL = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTwin]:
    statemachines = tmp_path_factory.mktemp("statemachines")
    (statemachines / "training.asl.json").write_text(json.dumps(TRAINING_ASL), encoding="utf-8")
    (statemachines / "deploy.asl.json").write_text(json.dumps(DEPLOY_ASL), encoding="utf-8")
    shutil.copy(PROJECT_ROOT / "statemachines" / "image-uris.json", statemachines)
    with LocalTwin(template=PROJECT_ROOT / "template.yaml", statemachines_dir=statemachines) as started:
        yield started


def _states(prefix: str) -> dict[str, str]:
    alarms = boto3.client("cloudwatch").describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"]
    return {alarm["AlarmName"]: alarm["StateValue"] for alarm in alarms}


def test_the_stacks_alarms_start_insufficient_data_and_those_the_twin_cannot_feed_are_refused(twin: LocalTwin) -> None:
    stack = twin.stack_name
    endpoint_alarm = f"{stack}-endpoint-5xx"
    before = _states(stack)
    assert before, "the template defines alarms"
    if not twin.alarm_changes:
        assert set(before.values()) == {"INSUFFICIENT_DATA"}

    twin.evaluate_alarms()
    after = _states(stack)

    # The rollback alarm's metric is published by the local SageMaker: no data, notBreaching -> OK.
    assert after[endpoint_alarm] == "OK"
    refused = twin.alarms.refusals
    for name in (f"{stack}-training-executions-failed", f"{stack}-new-data-dlq"):
        assert after[name] == "INSUFFICIENT_DATA"
        assert "does not publish metric" in refused[name]


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
