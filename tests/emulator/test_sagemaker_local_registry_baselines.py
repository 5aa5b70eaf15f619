"""The local registry keeps a package's DriftCheckBaselines as given and refuses malformed ones as SageMaker does."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, ParamValidationError

from emulator.sagemaker_local.errors import SageMakerError

REGION = "us-east-1"
CONTAINERS = {"Containers": [{"Image": "xgboost:local", "ModelDataUrl": "s3://b/m.tar.gz"}]}
BASELINES = {
    "ModelDataQuality": {
        "Statistics": {"ContentType": "application/json", "S3Uri": "s3://b/runs/e/evaluation/baseline/baseline.json"},
        "Constraints": {
            "ContentType": "application/json",
            "S3Uri": "s3://b/runs/e/preprocess/baseline/constraints.json",
        },
    },
    "ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": "s3://b/runs/e/evaluation.json"}},
}


def _group(name: str) -> Any:
    client = boto3.client("sagemaker", region_name=REGION)
    client.create_model_package_group(ModelPackageGroupName=name)
    return client


def _package_request(group: str, baselines: Any) -> dict[str, Any]:
    return {"ModelPackageGroupName": group, "InferenceSpecification": CONTAINERS, "DriftCheckBaselines": baselines}


def test_describe_model_package_returns_drift_check_baselines_as_registered(runtime: Any) -> None:
    client = _group("kept")

    arn = client.create_model_package(**_package_request("kept", BASELINES))["ModelPackageArn"]

    assert client.describe_model_package(ModelPackageName=arn)["DriftCheckBaselines"] == BASELINES
    assert runtime.sagemaker.call("DescribeModelPackage", {"ModelPackageName": arn})["DriftCheckBaselines"] == BASELINES


@pytest.mark.parametrize(
    ("statistics", "message"),
    [
        (
            {"ContentType": "application/json", "S3Uri": "ftp://b/baseline.json"},
            "1 validation error detected: Value 'ftp://b/baseline.json' at "
            "'driftCheckBaselines.modelDataQuality.statistics.s3Uri' failed to satisfy constraint: Member must "
            "satisfy regular expression pattern: (https|s3)://([^/]+)/?(.*)",
        ),
        (
            {"ContentType": "application/json", "S3Uri": "s3://b/" + "k" * 1020},
            "at 'driftCheckBaselines.modelDataQuality.statistics.s3Uri' failed to satisfy constraint: Member must "
            "have length less than or equal to 1024",
        ),
        (
            {"ContentType": "x" * 257, "S3Uri": "s3://b/baseline.json"},
            "at 'driftCheckBaselines.modelDataQuality.statistics.contentType' failed to satisfy constraint: Member "
            "must have length less than or equal to 256",
        ),
    ],
    ids=["s3uri-pattern", "s3uri-length", "content-type-length"],
)
def test_a_baseline_location_sagemaker_refuses_is_refused_and_nothing_registered(
    runtime: Any, statistics: dict[str, str], message: str
) -> None:
    client = _group("refused")

    with pytest.raises(ClientError) as refused:
        client.create_model_package(**_package_request("refused", {"ModelDataQuality": {"Statistics": statistics}}))

    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert message in refused.value.response["Error"]["Message"]
    assert client.list_model_packages(ModelPackageGroupName="refused")["ModelPackageSummaryList"] == []


@pytest.mark.parametrize(
    ("baselines", "message"),
    [
        (
            {"ModelDataQuality": {"Statistics": {"S3Uri": "s3://b/baseline.json"}}},
            "1 validation error detected: Value null at 'driftCheckBaselines.modelDataQuality.statistics.contentType' "
            "failed to satisfy constraint: Member must not be null",
        ),
        (
            {"ModelDataQuality": {"Statistic": {"ContentType": "application/json", "S3Uri": "s3://b/baseline.json"}}},
            'Unknown parameter in DriftCheckBaselines.ModelDataQuality: "Statistic", must be one of: Statistics, '
            "Constraints",
        ),
        (
            {"ModelDataQuality": {"Statistics": "s3://b/baseline.json"}},
            "Invalid type for parameter DriftCheckBaselines.ModelDataQuality.Statistics, value: 's3://b/baseline.json'",
        ),
        (
            {"ModelDataQuality": {"Statistics": {"ContentType": 7, "S3Uri": "s3://b/baseline.json"}}},
            "Invalid type for parameter DriftCheckBaselines.ModelDataQuality.Statistics.ContentType, value: 7",
        ),
    ],
    ids=["missing-content-type", "unknown-member", "not-a-structure", "not-a-string"],
)
def test_a_malformed_baseline_that_skips_boto3_is_refused_as_botocore_and_sagemaker_would(
    runtime: Any, baselines: dict[str, Any], message: str
) -> None:
    # The optimized `sagemaker:` integration and direct calls reach the backend without botocore's client checks.
    runtime.sagemaker.call("CreateModelPackageGroup", {"ModelPackageGroupName": "direct"})

    with pytest.raises(SageMakerError) as refused:
        runtime.sagemaker.call("CreateModelPackage", _package_request("direct", baselines))
    with pytest.raises(ParamValidationError):
        # What boto3 says of the same request: it never leaves the client.
        boto3.client("sagemaker", region_name=REGION).create_model_package(**_package_request("direct", baselines))

    assert refused.value.code == "ValidationException"
    assert message in refused.value.message
    assert runtime.sagemaker.call("ListModelPackages", {"ModelPackageGroupName": "direct"}) == {
        "ModelPackageSummaryList": []
    }


def test_every_problem_of_a_baseline_is_named_at_once(runtime: Any) -> None:
    runtime.sagemaker.call("CreateModelPackageGroup", {"ModelPackageGroupName": "many"})
    baselines = {"ModelDataQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": "b/baseline.json"}}}
    baselines["ModelQuality"] = {"Statistics": {"ContentType": "application/json"}}

    with pytest.raises(SageMakerError, match=r"^ValidationException: 2 validation errors detected: .*s3Uri.*; .*s3Uri"):
        runtime.sagemaker.call("CreateModelPackage", _package_request("many", baselines))
