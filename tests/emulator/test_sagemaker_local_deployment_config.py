"""The twin refuses the DeploymentConfigs SageMaker refuses, also through aws-sdk:sagemaker:updateEndpoint."""

from __future__ import annotations

import io
import tarfile
import time
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from emulator.sagemaker_local.deployment_config import check_deployment_config
from emulator.sagemaker_local.errors import SageMakerError

REGION = "us-east-1"
ROLE_ARN = "arn:aws:iam::123456789012:role/local-twin-tests"
HALF_THE_FLEET = "must be less than or equal to 50% of the variant's total instance count"
INFERENCE = "def model_fn(model_dir):\n    return lambda data: data\n"


def _routing(routing: dict[str, Any]) -> dict[str, Any]:
    return {
        "BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": routing, "TerminationWaitInSeconds": 300},
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "errors-high"}]},
    }


def _canary(size_type: str, value: int) -> dict[str, Any]:
    return _routing({"Type": "CANARY", "CanarySize": {"Type": size_type, "Value": value}, "WaitIntervalInSeconds": 300})


def _fleet(instances: int) -> dict[str, Any]:
    return {"ProductionVariants": [{"VariantName": "AllTraffic", "InitialInstanceCount": instances}]}


@pytest.mark.parametrize(
    ("deployment", "instances"),
    [
        (_canary("CAPACITY_PERCENT", 10), 1),
        (_canary("CAPACITY_PERCENT", 50), 1),
        (_canary("INSTANCE_COUNT", 1), 1),
        (_canary("INSTANCE_COUNT", 2), 3),
        (_canary("CAPACITY_PERCENT", 60), 10),
    ],
    ids=["10%-of-1", "50%-of-1", "1-of-1", "2-of-3", "60%-of-10"],
)
def test_a_canary_larger_than_half_the_new_fleet_is_a_validation_error(
    deployment: dict[str, Any], instances: int
) -> None:
    with pytest.raises(SageMakerError, match=HALF_THE_FLEET) as refused:
        check_deployment_config(deployment, _fleet(instances))
    assert refused.value.code == "ValidationException"
    assert "'AllTraffic'" in refused.value.message


@pytest.mark.parametrize(
    ("deployment", "instances"),
    [
        (_canary("CAPACITY_PERCENT", 10), 2),
        (_canary("INSTANCE_COUNT", 1), 2),
        (_canary("CAPACITY_PERCENT", 50), 3),
        (_routing({"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 300}), 1),
        ({"AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "errors-high"}]}}, 1),
        (None, 1),
    ],
    ids=["10%-of-2", "1-of-2", "50%-of-3", "all-at-once-on-1", "rollback-only", "none"],
)
def test_what_sagemaker_accepts_passes(deployment: dict[str, Any] | None, instances: int) -> None:
    check_deployment_config(deployment, _fleet(instances))


@pytest.mark.parametrize(
    ("routing", "message"),
    [
        ({"Type": "BLUE", "WaitIntervalInSeconds": 0}, "Type 'BLUE' is not valid"),
        ({"Type": "ALL_AT_ONCE"}, "WaitIntervalInSeconds is required"),
        ({"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 3601}, "WaitIntervalInSeconds 3601 is out of range"),
        ({"Type": "CANARY", "WaitIntervalInSeconds": 60}, "CanarySize is required for Type CANARY"),
        (
            {"Type": "CANARY", "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 0}, "WaitIntervalInSeconds": 60},
            "Value at least 1",
        ),
    ],
    ids=["type", "no-wait", "wait-range", "no-canary-size", "zero-size"],
)
def test_malformed_traffic_routing_is_a_validation_error_naming_the_field(
    routing: dict[str, Any], message: str
) -> None:
    with pytest.raises(SageMakerError, match=message):
        check_deployment_config(_routing(routing), _fleet(4))


def _endpoint_in_service(client: Any, bucket: str) -> None:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        data = INFERENCE.encode()
        info = tarfile.TarInfo("code/inference.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    boto3.client("s3", region_name=REGION).put_object(Bucket=bucket, Key="m/model.tar.gz", Body=archive.getvalue())
    client.create_model(
        ModelName="m",
        PrimaryContainer={"Image": "xgboost:local", "ModelDataUrl": f"s3://{bucket}/m/model.tar.gz"},
        ExecutionRoleArn=ROLE_ARN,
    )
    for name in ("cfg-1", "cfg-2"):
        client.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": "m",
                    "InitialInstanceCount": 1,
                    "InstanceType": "ml.m5.large",
                }
            ],
        )
    client.create_endpoint(EndpointName="dev", EndpointConfigName="cfg-1")
    deadline = time.monotonic() + 60
    while client.describe_endpoint(EndpointName="dev")["EndpointStatus"] != "InService":
        assert time.monotonic() < deadline, "endpoint not InService"
        time.sleep(0.05)


def test_update_endpoint_with_a_canary_on_one_instance_is_refused_and_the_endpoint_untouched(
    runtime: Any, bucket: str
) -> None:
    client = boto3.client("sagemaker", region_name=REGION)
    _endpoint_in_service(client, bucket)

    with pytest.raises(ClientError) as refused:
        client.update_endpoint(
            EndpointName="dev", EndpointConfigName="cfg-2", DeploymentConfig=_canary("CAPACITY_PERCENT", 10)
        )

    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert HALF_THE_FLEET in refused.value.response["Error"]["Message"]
    described = client.describe_endpoint(EndpointName="dev")
    assert (described["EndpointStatus"], described["EndpointConfigName"]) == ("InService", "cfg-1")


def _update_through_the_sdk_integration(runtime: Any, deployment: dict[str, Any]) -> Any:
    definition = {
        "StartAt": "UpdateEndpoint",
        "States": {
            "UpdateEndpoint": runtime.task(
                "arn:aws:states:::aws-sdk:sagemaker:updateEndpoint",
                {"EndpointName": "dev", "EndpointConfigName": "cfg-2", "DeploymentConfig": deployment},
            )
        },
    }
    return runtime.run(definition)


def test_the_aws_sdk_update_endpoint_integration_runs_all_at_once_on_one_instance(runtime: Any, bucket: str) -> None:
    client = boto3.client("sagemaker", region_name=REGION)
    _endpoint_in_service(client, bucket)

    outcome = _update_through_the_sdk_integration(
        runtime, _routing({"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 300})
    )

    assert outcome.status == "SUCCEEDED", outcome.cause
    assert outcome.output["EndpointArn"].endswith(":endpoint/dev")
    assert client.describe_endpoint(EndpointName="dev")["EndpointStatus"] in ("Updating", "InService")


def test_the_aws_sdk_integration_fails_a_one_instance_canary_with_sagemakers_error(runtime: Any, bucket: str) -> None:
    _endpoint_in_service(boto3.client("sagemaker", region_name=REGION), bucket)

    outcome = _update_through_the_sdk_integration(runtime, _canary("CAPACITY_PERCENT", 10))

    assert (outcome.status, outcome.error) == ("FAILED", "SageMaker.ValidationException")
    assert HALF_THE_FLEET in outcome.cause
