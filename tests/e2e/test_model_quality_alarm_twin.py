"""The stack's model-quality alarm in the twin: quality on ground truth below its threshold puts it in ALARM, the
stack's drift rule routes it to retrain_on_drift, and the training it starts names the alarm, metric and value, which
`mlops run --drift`'s summary reports as the trigger `model-quality`."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from twin_runtime import stand_in_twin

from contract.pipeline_config import load_pipeline_config
from emulator.commands.drift_summary import ExecutionRecord, derive_trigger
from emulator.twin import LocalTwin
from workflows.monitoring import model_quality_metric_name

pytestmark = pytest.mark.e2e

# Stand-ins: what is checked here is the alarm, its routing and the training input retrain_on_drift writes.
TRAINING_ASL = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}
DEPLOY_ASL = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}
# Below pipeline.toml's model_quality_threshold (0.9), which the stack's parameter defaults to.
POOR_QUALITY = 0.62


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTwin]:
    with stand_in_twin(tmp_path_factory.mktemp("statemachines"), TRAINING_ASL, DEPLOY_ASL) as started:
        yield started


def _state(name: str) -> str:
    [alarm] = boto3.client("cloudwatch").describe_alarms(AlarmNames=[name])["MetricAlarms"]
    return str(alarm["StateValue"])


def test_the_model_quality_alarm_starts_a_training_whose_input_names_it(twin: LocalTwin) -> None:
    # GIVEN the stack's model-quality alarm, evaluated once without data (missing data is not a quality problem)
    stack = twin.stack_name
    name = f"{stack}-drift-model-quality"
    config = load_pipeline_config()
    metric = model_quality_metric_name(config.quality_gate.metric)
    namespace = twin.stack.parameters.get("ProjectName", "mlops")
    twin.clock.advance(60)
    assert _state(name) == "OK"

    # WHEN a monitoring run publishes the served model's quality on ground truth below the threshold
    boto3.client("cloudwatch").put_metric_data(
        Namespace=namespace,
        MetricData=[
            {
                "MetricName": metric,
                "Dimensions": [{"Name": "Endpoint", "Value": f"{stack}-endpoint"}],
                "Timestamp": twin.clock.now(),
                "Value": POOR_QUALITY,
            }
        ],
    )
    delivered_before = len(twin.router.deliveries)
    twin.clock.advance(60)

    # THEN it goes to ALARM, retrain_on_drift starts one training, and its input says which alarm and value
    assert _state(name) == "ALARM"
    retrain = twin.stack.functions["RetrainOnDriftFunction"].function_arn
    [delivery] = [d for d in twin.router.deliveries[delivered_before:] if d.target_arn == retrain]
    assert (delivery.rule, delivery.error) == (f"{stack}-drift-alarm", None)
    assert delivery.result["action"] == "started", delivery.result
    [execution] = twin.list_executions("training")
    started = twin.describe_execution(str(execution["executionArn"]))
    trigger = started.input["trigger"]
    assert trigger["type"] == "drift"
    assert trigger["detail"]["alarm_name"] == name
    assert trigger["detail"]["metric"] == f"{namespace}/{metric}"
    assert trigger["detail"]["value"] == pytest.approx(POOR_QUALITY)
    assert trigger["detail"]["threshold"] == pytest.approx(config.monitoring.model_quality_threshold)
    record = ExecutionRecord("training", started.name, started.input, started.status, started.started, started.stopped)
    assert derive_trigger(record) == "model-quality"
