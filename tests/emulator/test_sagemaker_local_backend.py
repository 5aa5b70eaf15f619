"""The local SageMaker through plain boto3: registry, endpoints with blue/green rollback, runtime invocations."""

from __future__ import annotations

import io
import json
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

REGION = "us-east-1"
ROLE_ARN = "arn:aws:iam::123456789012:role/local-twin-tests"
INFERENCE = """
import json, os
def model_fn(model_dir):
    return json.load(open(os.path.join(model_dir, "model.json")))
def input_fn(body, content_type):
    return json.loads(body)
def predict_fn(data, model):
    return {"version": model["version"], "echo": data}
def output_fn(prediction, accept):
    return json.dumps(prediction)
"""


def _put_model(bucket: str, version: int) -> str:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for name, text in {"model.json": json.dumps({"version": version}), "code/inference.py": INFERENCE}.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    key = f"models/v{version}/model.tar.gz"
    boto3.client("s3", region_name=REGION).put_object(Bucket=bucket, Key=key, Body=archive.getvalue())
    return f"s3://{bucket}/{key}"


def _model_and_config(client: Any, bucket: str, version: int, capture: dict[str, Any] | None = None) -> str:
    client.create_model(
        ModelName=f"model-v{version}",
        PrimaryContainer={"Image": "xgboost:local", "ModelDataUrl": _put_model(bucket, version)},
        ExecutionRoleArn=ROLE_ARN,
    )
    client.create_endpoint_config(
        EndpointConfigName=f"cfg-v{version}",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": f"model-v{version}",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
        **({"DataCaptureConfig": capture} if capture else {}),
    )
    return f"cfg-v{version}"


def _wait_in_service(client: Any, name: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described = client.describe_endpoint(EndpointName=name)
        if described["EndpointStatus"] in ("InService", "Failed"):
            return described
        time.sleep(0.05)
    raise AssertionError(f"endpoint {name} not InService after {timeout} s")


def _invoke(name: str) -> dict[str, Any]:
    response = boto3.client("sagemaker-runtime", region_name=REGION).invoke_endpoint(
        EndpointName=name, ContentType="application/json", Body=b'{"rows": 1}'
    )
    return json.loads(response["Body"].read())


def test_update_with_a_firing_rollback_alarm_keeps_the_old_model_serving(runtime: Any, bucket: str) -> None:
    client = boto3.client("sagemaker", region_name=REGION)
    client.create_endpoint(EndpointName="blue-green", EndpointConfigName=_model_and_config(client, bucket, 1))
    assert client.describe_endpoint(EndpointName="blue-green")["EndpointStatus"] == "Creating"
    assert _wait_in_service(client, "blue-green")["EndpointConfigName"] == "cfg-v1"
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    cloudwatch.put_metric_alarm(
        AlarmName="errors-high",
        MetricName="Invocation5XXErrors",
        Namespace="AWS/SageMaker",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    cloudwatch.set_alarm_state(AlarmName="errors-high", StateValue="ALARM", StateReason="test")

    client.update_endpoint(
        EndpointName="blue-green",
        EndpointConfigName=_model_and_config(client, bucket, 2),
        DeploymentConfig={"AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "errors-high"}]}},
    )
    assert client.describe_endpoint(EndpointName="blue-green")["EndpointStatus"] == "Updating"
    described = _wait_in_service(client, "blue-green")

    assert described["EndpointConfigName"] == "cfg-v1"
    assert _invoke("blue-green")["version"] == 1


def test_invocations_publish_the_metric_the_reaper_reads(runtime: Any, bucket: str) -> None:
    client = boto3.client("sagemaker", region_name=REGION)
    client.create_endpoint(EndpointName="metered", EndpointConfigName=_model_and_config(client, bucket, 1))
    _wait_in_service(client, "metered")

    assert _invoke("metered") == {"version": 1, "echo": {"rows": 1}}

    metrics = boto3.client("cloudwatch", region_name=REGION).list_metrics(
        Namespace="AWS/SageMaker", MetricName="Invocations"
    )
    dimensions = [{d["Name"]: d["Value"] for d in m["Dimensions"]} for m in metrics["Metrics"]]
    assert {"EndpointName": "metered", "VariantName": "AllTraffic"} in dimensions


def test_invoking_an_endpoint_that_is_still_creating_is_a_validation_error(runtime: Any, bucket: str) -> None:
    client = boto3.client("sagemaker", region_name=REGION)
    client.create_endpoint(EndpointName="not-yet", EndpointConfigName=_model_and_config(client, bucket, 1))

    with pytest.raises(ClientError) as error:
        _invoke("not-yet")

    # The runtime's code: its service model has no ValidationException.
    assert error.value.response["Error"]["Code"] == "ValidationError"
    assert "Creating" in error.value.response["Error"]["Message"]


def test_deleting_an_endpoint_stops_its_server_and_keeps_model_and_config(runtime: Any, bucket: str) -> None:
    client = boto3.client("sagemaker", region_name=REGION)
    client.create_endpoint(EndpointName="reaped", EndpointConfigName=_model_and_config(client, bucket, 1))
    _wait_in_service(client, "reaped")
    url = runtime.sagemaker.endpoint_url("reaped")
    assert urllib.request.urlopen(f"{url}/ping", timeout=5).status == 200  # noqa: S310 (local server)

    client.delete_endpoint(EndpointName="reaped")

    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{url}/ping", timeout=5)  # noqa: S310
    assert client.list_endpoints()["Endpoints"] == []
    assert (
        client.describe_endpoint_config(EndpointConfigName="cfg-v1")["ProductionVariants"][0]["ModelName"] == "model-v1"
    )
    assert client.describe_model(ModelName="model-v1")["PrimaryContainer"]["Image"] == "xgboost:local"


def test_model_packages_page_filter_and_resolve_by_short_name(runtime: Any) -> None:
    client = boto3.client("sagemaker", region_name=REGION)
    client.create_model_package_group(ModelPackageGroupName="pages")
    container = {"Containers": [{"Image": "xgboost:local", "ModelDataUrl": "s3://b/m.tar.gz"}]}
    for status in ("Approved", "Rejected", "Approved"):
        client.create_model_package(
            ModelPackageGroupName="pages", InferenceSpecification=container, ModelApprovalStatus=status
        )

    first = client.list_model_packages(
        ModelPackageGroupName="pages", MaxResults=2, SortBy="CreationTime", SortOrder="Descending"
    )
    rest = client.list_model_packages(
        ModelPackageGroupName="pages",
        MaxResults=2,
        NextToken=first["NextToken"],
        SortBy="CreationTime",
        SortOrder="Descending",
    )
    approved = client.list_model_packages(ModelPackageGroupName="pages", ModelApprovalStatus="Approved")

    versions = [p["ModelPackageVersion"] for p in first["ModelPackageSummaryList"] + rest["ModelPackageSummaryList"]]
    assert versions == [3, 2, 1]
    assert "NextToken" not in rest
    assert sorted(p["ModelPackageVersion"] for p in approved["ModelPackageSummaryList"]) == [1, 3]
    assert client.describe_model_package(ModelPackageName="pages/2")["ModelApprovalStatus"] == "Rejected"


def test_an_invalid_approval_status_is_refused_naming_the_value(runtime: Any) -> None:
    client = boto3.client("sagemaker", region_name=REGION)
    client.create_model_package_group(ModelPackageGroupName="strict")
    arn = client.create_model_package(
        ModelPackageGroupName="strict",
        InferenceSpecification={"Containers": [{"Image": "i", "ModelDataUrl": "s3://b/m.tar.gz"}]},
    )["ModelPackageArn"]

    with pytest.raises(ClientError, match="'Maybe'"):
        client.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Maybe")


def test_data_capture_writes_each_request_and_response_as_sagemaker_does(runtime: Any, bucket: str) -> None:
    kms_key = boto3.client("kms", region_name=REGION).create_key()["KeyMetadata"]["Arn"]
    capture = {
        "EnableCapture": True,
        "InitialSamplingPercentage": 100,
        "DestinationS3Uri": f"s3://{bucket}/data-capture/",
        "KmsKeyId": kms_key,
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]},
    }
    client = boto3.client("sagemaker", region_name=REGION)
    client.create_endpoint(EndpointName="captured", EndpointConfigName=_model_and_config(client, bucket, 1, capture))
    described = _wait_in_service(client, "captured")

    _invoke("captured")

    assert described["DataCaptureConfig"]["CaptureStatus"] == "Started"
    s3 = boto3.client("s3", region_name=REGION)
    objects = s3.list_objects_v2(Bucket=bucket, Prefix="data-capture/captured/AllTraffic/")["Contents"]
    assert len(objects) == 1
    assert objects[0]["Key"].endswith(".jsonl")
    stored = s3.get_object(Bucket=bucket, Key=objects[0]["Key"])
    assert stored["ServerSideEncryption"] == "aws:kms"
    record = json.loads(stored["Body"].read())
    assert record["captureData"]["endpointInput"] == {
        "observedContentType": "application/json",
        "mode": "INPUT",
        "data": '{"rows": 1}',
        "encoding": "JSON",
    }
    assert json.loads(record["captureData"]["endpointOutput"]["data"]) == {"version": 1, "echo": {"rows": 1}}
    assert record["eventVersion"] == "0"


@pytest.mark.parametrize("size", [1_000, 9 * 1024 * 1024], ids=["one-request", "multipart"])
def test_job_files_round_trip_through_s3_encrypted_whatever_their_size(
    runtime: Any, bucket: str, tmp_path: Path, size: int
) -> None:
    kms_key = boto3.client("kms", region_name=REGION).create_key()["KeyMetadata"]["Arn"]
    source = tmp_path / "out" / "model.tar.gz"
    source.parent.mkdir()
    source.write_bytes(bytes(range(256)) * (size // 256) + b"end")

    runtime.sagemaker.stager.upload_file(source, f"s3://{bucket}/jobs/model.tar.gz", kms_key)
    downloaded = runtime.sagemaker.stager.download(f"s3://{bucket}/jobs/model.tar.gz", tmp_path / "in")

    assert [path.read_bytes() for path in downloaded] == [source.read_bytes()]
    head = boto3.client("s3", region_name=REGION).head_object(Bucket=bucket, Key="jobs/model.tar.gz")
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", kms_key)


def test_the_tagging_api_finds_tagged_endpoints_until_they_are_deleted(runtime: Any, bucket: str) -> None:
    # The endpoint reaper's managed scope finds its endpoints with GetResources, not ListTags.
    client = boto3.client("sagemaker", region_name=REGION)
    tagging = boto3.client("resourcegroupstaggingapi", region_name=REGION)
    config = _model_and_config(client, bucket, 1)
    arn = client.create_endpoint(
        EndpointName="tagged", EndpointConfigName=config, Tags=[{"Key": "mlops:managed", "Value": "yes"}]
    )["EndpointArn"]
    _wait_in_service(client, "tagged")

    found = tagging.get_resources(TagFilters=[{"Key": "mlops:managed"}], ResourceTypeFilters=["sagemaker:endpoint"])
    assert [(r["ResourceARN"], r["Tags"]) for r in found["ResourceTagMappingList"]] == [
        (arn, [{"Key": "mlops:managed", "Value": "yes"}])
    ]
    other_type = tagging.get_resources(ResourceTypeFilters=["sagemaker:model"])["ResourceTagMappingList"]
    assert arn not in [r["ResourceARN"] for r in other_type]

    client.delete_endpoint(EndpointName="tagged")

    after = tagging.get_resources(TagFilters=[{"Key": "mlops:managed"}])["ResourceTagMappingList"]
    assert after == []


def test_the_local_sagemaker_is_busy_from_create_endpoint_until_its_server_has_started(
    runtime: Any, bucket: str
) -> None:
    client = boto3.client("sagemaker", region_name=REGION)
    config = _model_and_config(client, bucket, 1)
    assert runtime.sagemaker.busy() is False

    client.create_endpoint(EndpointName="busy-endpoint", EndpointConfigName=config)
    busy_at_the_call = runtime.sagemaker.busy()
    _wait_in_service(client, "busy-endpoint")

    assert busy_at_the_call is True
    assert runtime.sagemaker.busy() is False
