"""monitoring_window under moto: no endpoint, no data, the served package's baseline, every variant's window files."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from common.parsing import InvalidPayloadError
from monitoring_window import (
    MODEL_PACKAGE_ARN_TAG,
    MonitoringWindowError,
    MonitoringWindowRequest,
    capture_file_time,
    find_window,
    handler,
)

BUCKET = "mlops-artifacts"
ENDPOINT = "mlops-endpoint"
CAPTURE = f"s3://{BUCKET}/data-capture"
RUN = f"s3://{BUCKET}/runs/monitoring-1/monitoring/"
BASELINE_JSON = f"s3://{BUCKET}/runs/training-1/evaluation/baseline/baseline.json"
WINDOW_END = "2026-12-01T12:00:00Z"


def _request(**overrides: Any) -> MonitoringWindowRequest:
    payload = {"EndpointName": ENDPOINT, "WindowEnd": WINDOW_END, "WindowMinutes": 60, "RunS3Uri": RUN, **overrides}
    return MonitoringWindowRequest.model_validate(payload)


def _package(baselines: dict[str, Any] | None) -> str:
    sagemaker = boto3.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName="mlops-model")
    extra = {"DriftCheckBaselines": baselines} if baselines is not None else {}
    return sagemaker.create_model_package(
        ModelPackageGroupName="mlops-model",
        InferenceSpecification={
            "Containers": [{"Image": "xgboost:1.7-1"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        **extra,
    )["ModelPackageArn"]


def _endpoint(package_arn: str | None, variants: tuple[str, ...] = ("AllTraffic",), capture: bool = True) -> None:
    sagemaker = boto3.client("sagemaker")
    sagemaker.create_model(
        ModelName="model", ExecutionRoleArn="arn:aws:iam::123456789012:role/model", PrimaryContainer={"Image": "x"}
    )
    config: dict[str, Any] = {
        "EndpointConfigName": "config",
        "ProductionVariants": [
            {"VariantName": name, "ModelName": "model", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}
            for name in variants
        ],
    }
    if capture:
        config["DataCaptureConfig"] = {
            "EnableCapture": True,
            "InitialSamplingPercentage": 100,
            "DestinationS3Uri": CAPTURE,
            "CaptureOptions": [{"CaptureMode": "Input"}],
        }
    sagemaker.create_endpoint_config(**config)
    tags = [{"Key": MODEL_PACKAGE_ARN_TAG, "Value": package_arn}] if package_arn else []
    sagemaker.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName="config", Tags=tags)


def _capture(key: str) -> None:
    boto3.client("s3").put_object(Bucket=BUCKET, Key=f"data-capture/{ENDPOINT}/{key}", Body=b"{}\n")


@pytest.fixture
def bucket(aws: None) -> str:
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    return BUCKET


@pytest.fixture
def deployed(bucket: str) -> str:
    package = _package(
        {"ModelDataQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": BASELINE_JSON}}}
    )
    _endpoint(package, variants=("Blue", "Green"))
    return package


def _find(request: MonitoringWindowRequest | None = None) -> dict[str, Any]:
    return find_window(request or _request(), boto3.client("sagemaker"), boto3.client("s3"))


def test_no_endpoint_ends_the_run_quietly(bucket: str) -> None:
    assert _find() == {
        "Status": "NoEndpoint",
        "EndpointName": ENDPOINT,
        "WindowStart": "2026-12-01T11:00:00Z",
        "WindowEnd": WINDOW_END,
    }


def test_a_window_without_capture_files_is_no_data_and_writes_no_manifest(deployed: str) -> None:
    _capture("Blue/2026/12/01/10/59-59-999-before.jsonl")  # just before the window
    _capture("Blue/2026/12/01/12/00-00-000-after.jsonl")  # the window's end is not in it

    result = _find()

    assert result["Status"] == "NoData"
    assert result["ModelPackageArn"] == deployed
    listed = boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="runs/").get("KeyCount")
    assert listed == 0


def test_ready_window_lists_every_variant_in_a_manifest_relative_to_the_capture_prefix(deployed: str) -> None:
    _capture("Blue/2026/12/01/11/00-00-000-first.jsonl")
    _capture("Green/2026/12/01/11/59-59-123456-last.jsonl")
    _capture("Green/2026/12/01/11/30-00-000-not-capture.json")
    _capture("Blue/2026/12/01/10/30-00-000-earlier.jsonl")

    result = _find()

    assert result == {
        "Status": "Ready",
        "BaselineS3Uri": f"s3://{BUCKET}/runs/training-1/evaluation/baseline/",
        "CaptureManifestS3Uri": f"{RUN}capture.manifest",
        "ReportS3Uri": f"{RUN}report/",
        "ModelPackageArn": deployed,
        "CaptureFiles": 2,
        "EndpointName": ENDPOINT,
        "WindowStart": "2026-12-01T11:00:00Z",
        "WindowEnd": WINDOW_END,
    }
    body = boto3.client("s3").get_object(Bucket=BUCKET, Key="runs/monitoring-1/monitoring/capture.manifest")["Body"]
    assert json.loads(body.read()) == [
        {"prefix": f"s3://{BUCKET}/data-capture/"},
        f"{ENDPOINT}/Blue/2026/12/01/11/00-00-000-first.jsonl",
        f"{ENDPOINT}/Green/2026/12/01/11/59-59-123456-last.jsonl",
    ]


def test_a_window_across_hours_reads_each_hour_folder(deployed: str) -> None:
    _capture("Blue/2026/12/01/10/45-00-000-a.jsonl")
    _capture("Blue/2026/12/01/11/10-00-000-b.jsonl")
    _capture("Blue/2026/12/01/10/15-00-000-too-early.jsonl")

    result = _find(_request(WindowEnd="2026-12-01T11:30:00Z"))

    assert result["CaptureFiles"] == 2
    assert result["WindowStart"] == "2026-12-01T10:30:00Z"


def test_the_baseline_follows_the_package_the_endpoint_serves(bucket: str) -> None:
    other = f"s3://{BUCKET}/runs/training-2/evaluation/baseline/baseline.json"
    package = _package({"ModelDataQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": other}}})
    _endpoint(package)
    _capture("AllTraffic/2026/12/01/11/10-00-000-b.jsonl")

    assert _find()["BaselineS3Uri"] == f"s3://{BUCKET}/runs/training-2/evaluation/baseline/"


def test_a_package_without_drift_baselines_is_a_clear_error(bucket: str) -> None:
    package = _package(None)
    _endpoint(package)

    with pytest.raises(MonitoringWindowError, match=r"has no DriftCheckBaselines\.ModelDataQuality\.Statistics"):
        _find()


def test_an_endpoint_without_the_package_tag_is_a_clear_error(bucket: str) -> None:
    _endpoint(None)

    with pytest.raises(MonitoringWindowError, match=f"has no tag {MODEL_PACKAGE_ARN_TAG}"):
        _find()


def test_an_endpoint_without_data_capture_is_a_clear_error(bucket: str) -> None:
    package = _package(
        {"ModelDataQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": BASELINE_JSON}}}
    )
    _endpoint(package, capture=False)

    with pytest.raises(MonitoringWindowError, match="does not capture its data"):
        _find()


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("p/e/v/2026/12/01/11/07-09-123-uuid.jsonl", datetime(2026, 12, 1, 11, 7, 9, tzinfo=UTC)),
        ("p/e/v/2026/12/01/11/capture.jsonl", None),
        ("p/e/v/2026/12/01/07-09-123-uuid.jsonl", None),
    ],
)
def test_capture_file_time_reads_the_hour_folder_and_the_name(key: str, expected: datetime | None) -> None:
    assert capture_file_time(key) == expected


@pytest.mark.parametrize(
    ("field", "value"),
    [("WindowEnd", "2026-12-01T12:00:00"), ("WindowMinutes", 0), ("RunS3Uri", "s3://bucket/no-slash")],
)
def test_handler_rejects_a_bad_payload_naming_the_field(aws: None, lambda_context: Any, field: str, value: Any) -> None:
    payload = {"EndpointName": ENDPOINT, "WindowEnd": WINDOW_END, "WindowMinutes": 60, "RunS3Uri": RUN, field: value}

    with pytest.raises(InvalidPayloadError, match=field):
        handler(payload, lambda_context)


class _EndpointIn:
    """A SageMaker client whose endpoint is in `status`: moto's endpoints are InService at once."""

    def __init__(self, status: str) -> None:
        self.status = status

    def describe_endpoint(self, EndpointName: str) -> dict[str, Any]:
        return {"EndpointName": EndpointName, "EndpointArn": f"arn:{EndpointName}", "EndpointStatus": self.status}


@pytest.mark.parametrize(("status", "expected"), [("Deleting", "NoEndpoint"), ("Creating", "NoData")])
def test_an_endpoint_being_deleted_or_created_is_not_monitored(status: str, expected: str) -> None:
    result = find_window(_request(), _EndpointIn(status), s3_client=None)

    assert result["Status"] == expected
