"""Blue/green updates in the local SageMaker roll back when an AutoRollbackConfiguration alarm trips while they bake,
with the alarm evaluated by the twin from the metrics the new fleet's errors publish."""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from emulator.alarms import AlarmEvaluator
from emulator.sagemaker_local.deployment_config import traffic_steps

REGION = "us-east-1"
ROLE_ARN = "arn:aws:iam::123456789012:role/local-twin-tests"
ENDPOINT = "blue-green"
SERVING = """
import json, os
def model_fn(model_dir):
    return json.load(open(os.path.join(model_dir, "model.json")))
def input_fn(body, content_type):
    return json.loads(body)
def predict_fn(data, model):
    if model["broken"]:
        raise RuntimeError("this model version is broken")
    return {"version": model["version"]}
def output_fn(prediction, accept):
    return json.dumps(prediction)
"""
ROLLBACK_ALARM = "blue-green-5xx"


def _config(client: Any, bucket: str, version: int, broken: bool = False, capture: dict[str, Any] | None = None) -> str:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        files = {"model.json": json.dumps({"version": version, "broken": broken}), "code/inference.py": SERVING}
        for name, text in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    key = f"rollback/v{version}/model.tar.gz"
    boto3.client("s3", region_name=REGION).put_object(Bucket=bucket, Key=key, Body=archive.getvalue())
    client.create_model(
        ModelName=f"rollback-v{version}",
        PrimaryContainer={"Image": "xgboost:local", "ModelDataUrl": f"s3://{bucket}/{key}"},
        ExecutionRoleArn=ROLE_ARN,
    )
    client.create_endpoint_config(
        EndpointConfigName=f"rollback-cfg-v{version}",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": f"rollback-v{version}",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
        **({"DataCaptureConfig": capture} if capture else {}),
    )
    return f"rollback-cfg-v{version}"


def _invoke() -> dict[str, Any]:
    response = boto3.client("sagemaker-runtime", region_name=REGION).invoke_endpoint(
        EndpointName=ENDPOINT, ContentType="application/json", Body=b"{}"
    )
    return dict(json.loads(response["Body"].read()))


def _settled(client: Any, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described = client.describe_endpoint(EndpointName=ENDPOINT)
        if described["EndpointStatus"] in ("InService", "Failed"):
            return dict(described)
        time.sleep(0.02)
    raise AssertionError(f"endpoint {ENDPOINT} did not settle in {timeout} s")


@pytest.fixture
def evaluated(runtime: Any) -> Iterator[AlarmEvaluator]:
    """The twin's alarm evaluation on the runtime's clock, as LocalTwin wires it."""
    evaluator = AlarmEvaluator(runtime.clock, lambda event: None)
    evaluator.install()
    stop = runtime.clock.on_minute(evaluator.evaluate)
    try:
        yield evaluator
    finally:
        stop()
        evaluator.uninstall()


def _deployment(wait_seconds: int) -> dict[str, Any]:
    return {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": wait_seconds},
            "TerminationWaitInSeconds": 0,
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": ROLLBACK_ALARM}]},
    }


def _rollback_alarm() -> None:
    boto3.client("cloudwatch", region_name=REGION).put_metric_alarm(
        AlarmName=ROLLBACK_ALARM,
        Namespace="AWS/SageMaker",
        MetricName="Invocation5XXErrors",
        Dimensions=[{"Name": "EndpointName", "Value": ENDPOINT}, {"Name": "VariantName", "Value": "AllTraffic"}],
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
        TreatMissingData="notBreaching",
    )


def test_an_update_whose_new_fleet_errors_during_baking_rolls_back_to_the_old_config(
    runtime: Any, bucket: str, evaluated: AlarmEvaluator
) -> None:
    client = boto3.client("sagemaker", region_name=REGION)
    client.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=_config(client, bucket, 1))
    assert _settled(client)["EndpointStatus"] == "InService"
    _rollback_alarm()

    # Baking for an hour of virtual time (3.6 s here): the new fleet takes all traffic meanwhile.
    client.update_endpoint(
        EndpointName=ENDPOINT,
        EndpointConfigName=_config(client, bucket, 2, broken=True),
        DeploymentConfig=_deployment(3600),
    )
    error_codes: list[str] = []
    deadline = time.monotonic() + 30
    while client.describe_endpoint(EndpointName=ENDPOINT)["EndpointStatus"] == "Updating":
        assert time.monotonic() < deadline, "the update neither finished nor rolled back"
        try:
            _invoke()
        except ClientError as error:
            error_codes.append(error.response["Error"]["Code"])
        time.sleep(0.01)
    described = _settled(client)

    assert error_codes, "the new fleet served no traffic during its baking period"
    assert set(error_codes) == {"ModelError"}
    assert described["EndpointStatus"] == "InService"
    assert described["EndpointConfigName"] == "rollback-cfg-v1"
    assert ROLLBACK_ALARM in described["FailureReason"]
    assert "rolled back" in described["FailureReason"]
    assert _invoke() == {"version": 1}
    assert ("OK", "ALARM") in [(c["from"], c["to"]) for c in evaluated.changes if c["alarm"] == ROLLBACK_ALARM]


def test_an_update_whose_alarm_stays_calm_through_baking_completes(
    runtime: Any, bucket: str, evaluated: AlarmEvaluator
) -> None:
    client = boto3.client("sagemaker", region_name=REGION)
    client.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=_config(client, bucket, 1))
    _settled(client)
    _rollback_alarm()
    client.update_endpoint(
        EndpointName=ENDPOINT, EndpointConfigName=_config(client, bucket, 2), DeploymentConfig=_deployment(300)
    )
    while client.describe_endpoint(EndpointName=ENDPOINT)["EndpointStatus"] == "Updating":
        _invoke()
        time.sleep(0.01)
    described = _settled(client)

    assert described["EndpointConfigName"] == "rollback-cfg-v2"
    assert "FailureReason" not in described
    assert _invoke() == {"version": 2}
    states = boto3.client("cloudwatch", region_name=REGION).describe_alarms(AlarmNames=[ROLLBACK_ALARM])
    assert states["MetricAlarms"][0]["StateValue"] == "OK"


@pytest.mark.parametrize(
    ("routing", "instances", "steps"),
    [
        ({"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}, 1, [1.0]),
        (
            {"Type": "CANARY", "WaitIntervalInSeconds": 0, "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1}},
            4,
            [0.25, 1.0],
        ),
        (
            {"Type": "LINEAR", "WaitIntervalInSeconds": 0, "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 40}},
            5,
            [0.4, 0.8, 1.0],
        ),
    ],
)
def test_traffic_moves_to_the_new_fleet_in_the_routing_configurations_steps(
    routing: dict[str, Any], instances: int, steps: list[float]
) -> None:
    config = {"ProductionVariants": [{"VariantName": "AllTraffic", "InitialInstanceCount": instances}]}
    deployment = {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": routing}}
    assert traffic_steps(deployment, config) == pytest.approx(steps)
    assert traffic_steps(None, config) == [1.0]


def test_traffic_the_new_fleet_serves_while_baking_is_captured_by_the_new_configs_rules(
    runtime: Any, bucket: str, evaluated: AlarmEvaluator
) -> None:
    client = boto3.client("sagemaker", region_name=REGION)
    client.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=_config(client, bucket, 1))
    _settled(client)
    capture = {
        "EnableCapture": True,
        "InitialSamplingPercentage": 100,
        "DestinationS3Uri": f"s3://{bucket}/capture",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
    }
    client.update_endpoint(
        EndpointName=ENDPOINT,
        EndpointConfigName=_config(client, bucket, 2, capture=capture),
        DeploymentConfig=_deployment(1800),
    )
    answers = []
    while client.describe_endpoint(EndpointName=ENDPOINT)["EndpointStatus"] == "Updating":
        answers.append(_invoke()["version"])
        time.sleep(0.01)

    assert 2 in answers, "the new fleet took no traffic while baking"
    listed = boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=bucket, Prefix=f"capture/{ENDPOINT}/")
    assert listed.get("KeyCount", 0) >= answers.count(2)
