"""monitoring_window under moto: no endpoint, no data, the served package's baseline, every variant's window files."""

from __future__ import annotations

import json
import logging
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
    served_model_name,
)

BUCKET = "mlops-artifacts"
DATA_BUCKET = "mlops-data"
GROUND_TRUTH = f"s3://{DATA_BUCKET}/ground-truth/"
MIN_RECORDS = 5
ENDPOINT = "mlops-endpoint"
CAPTURE = f"s3://{BUCKET}/data-capture"
RUN = f"s3://{BUCKET}/runs/monitoring-1/monitoring/"
BASELINE_JSON = f"s3://{BUCKET}/runs/training-1/evaluation/baseline/baseline.json"
WINDOW_END = "2026-12-01T12:00:00Z"


def _request(**overrides: Any) -> MonitoringWindowRequest:
    return MonitoringWindowRequest.model_validate({**_payload(), **overrides})


def _payload() -> dict[str, Any]:
    return {
        "EndpointName": ENDPOINT,
        "WindowEnd": WINDOW_END,
        "WindowMinutes": 60,
        "RunS3Uri": RUN,
        "GroundTruthS3Uri": GROUND_TRUTH,
        "GroundTruthMinRecords": MIN_RECORDS,
    }


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
    boto3.client("s3").create_bucket(Bucket=DATA_BUCKET)
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
        "GroundTruth": {
            "Status": "Skipped",
            "Reason": f"0 labelled record(s) in 0 file(s) under {GROUND_TRUTH} from 2026-12-01T11:00:00Z to "
            f"{WINDOW_END}, fewer than the {MIN_RECORDS} needed",
            "Records": 0,
            "Files": 0,
            "MinRecords": MIN_RECORDS,
        },
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


def _ground_truth(key: str, records: int) -> None:
    rows = "".join(f"{i}.0,{i % 2}\n" for i in range(records))
    body = f"f0,target\n{rows}".encode()
    boto3.client("s3").put_object(Bucket=DATA_BUCKET, Key=f"ground-truth/{key}", Body=body)


def test_too_few_labelled_records_skip_model_quality_with_the_reason_and_write_no_manifest(
    deployed: str, caplog: pytest.LogCaptureFixture
) -> None:
    _ground_truth("2026/12/01/11/05-00-labels.csv", MIN_RECORDS - 1)
    _ground_truth("2026/12/01/10/05-00-earlier.csv", 100)  # the previous window's: used by that run only

    with caplog.at_level(logging.INFO):
        result = _find()

    assert result["Status"] == "NoData"
    assert result["GroundTruth"]["Status"] == "Skipped"
    assert (result["GroundTruth"]["Records"], result["GroundTruth"]["Files"]) == (MIN_RECORDS - 1, 1)
    assert f"fewer than the {MIN_RECORDS} needed" in result["GroundTruth"]["Reason"]
    assert boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="runs/").get("KeyCount") == 0
    [logged] = [record for record in caplog.records if record.getMessage() == "model quality skipped"]
    assert logged.reason == result["GroundTruth"]["Reason"]


def test_enough_labelled_records_are_listed_with_the_model_of_the_production_variant(deployed: str) -> None:
    _ground_truth("2026/12/01/11/05-00-a.csv", 3)
    _ground_truth("2026/12/01/11/59-59-b.csv", 2)
    _ground_truth("2026/12/01/11/labels-without-a-time.csv", 100)  # left out, logged
    _ground_truth("2026/12/01/12/00-00-next-window.csv", 100)  # the window's end is not in it

    result = _find()

    assert result["GroundTruth"] == {
        "Status": "Ready",
        "ManifestS3Uri": f"{RUN}ground-truth.manifest",
        "ModelName": "model",
        "FeaturesS3Uri": f"{RUN}quality/features/",
        "LabelsS3Uri": f"{RUN}quality/labels/",
        "PredictionsS3Uri": f"{RUN}quality/predictions/",
        "ReportS3Uri": f"{RUN}quality/report/",
        "Records": 5,
        "Files": 2,
        "MinRecords": MIN_RECORDS,
    }
    # The split job needs the baseline's feature order even when the window has no capture.
    assert result["BaselineS3Uri"] == f"s3://{BUCKET}/runs/training-1/evaluation/baseline/"
    body = boto3.client("s3").get_object(Bucket=BUCKET, Key="runs/monitoring-1/monitoring/ground-truth.manifest")
    assert json.loads(body["Body"].read()) == [
        {"prefix": f"{GROUND_TRUTH}"},
        "2026/12/01/11/05-00-a.csv",
        "2026/12/01/11/59-59-b.csv",
    ]


def test_records_are_counted_only_until_the_minimum_is_reached(deployed: str) -> None:
    _ground_truth("2026/12/01/11/05-00-a.csv", 1000)
    _ground_truth("2026/12/01/11/06-00-b.csv", 1000)

    result = _find()

    # Enough is enough: the split job counts every record; the function stops reading at the minimum.
    assert result["GroundTruth"]["Status"] == "Ready"
    assert result["GroundTruth"]["Records"] == MIN_RECORDS
    assert result["GroundTruth"]["Files"] == 2


def test_the_scored_model_is_the_one_of_the_variant_with_the_largest_current_weight() -> None:
    endpoint = {
        "EndpointName": ENDPOINT,
        "EndpointConfigName": "config",
        "ProductionVariants": [
            {"VariantName": "Blue", "CurrentWeight": 0.1},
            {"VariantName": "Green", "CurrentWeight": 0.9},
        ],
    }

    class _Configs:
        def describe_endpoint_config(self, EndpointConfigName: str) -> dict[str, Any]:
            assert EndpointConfigName == "config"
            return {
                "ProductionVariants": [
                    {"VariantName": "Blue", "ModelName": "old-model"},
                    {"VariantName": "Green", "ModelName": "new-model"},
                ]
            }

    assert served_model_name(_Configs(), endpoint) == "new-model"


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
    [
        ("WindowEnd", "2026-12-01T12:00:00"),
        ("WindowMinutes", 0),
        ("RunS3Uri", "s3://bucket/no-slash"),
        ("GroundTruthS3Uri", "s3://bucket/no-slash"),
        ("GroundTruthMinRecords", 1),
    ],
)
def test_handler_rejects_a_bad_payload_naming_the_field(aws: None, lambda_context: Any, field: str, value: Any) -> None:
    payload = {**_payload(), field: value}

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
    if status == "Creating":
        assert result["GroundTruth"]["Status"] == "Skipped"
        assert "still being created" in result["GroundTruth"]["Reason"]
