"""Glue for `monitoring`: reads the drift analyzer's (or the model-quality job's) report and puts its metrics.

A network-isolated processing job cannot call CloudWatch, so this function does. Called by a `LambdaStep` with
`{"EndpointName", "ReportS3Uri" (the job's report folder), "ModelPackageArn", "WindowStart", "WindowEnd"}`; reads
`<ReportS3Uri>monitoring_report.json` (schema in docs/interfaces.md) and puts, in the stack's namespace
(`POWERTOOLS_METRICS_NAMESPACE`, the template's ProjectName), timestamped at the window's end:

- `DriftedFeatureShare` (0..1, dimension `Endpoint`): drifted / tested features;
- `CriticalFeatureDrift` (1 or 0, dimension `Endpoint`): whether any critical feature drifted;
- `FeatureDriftScore` (dimensions `Endpoint`, `Feature`): each tested feature's p-value or distance.

A `no_data` report publishes nothing (no data is not drift: the alarms treat missing data as not breaching), and
so does an `insufficient_data` one, which has no verdict.

With `"Report": "model_quality"` and `"MetricName"` (`ModelQuality<Metric>`, e.g. `ModelQualityAuc`: the quality
gate's metric), it reads `<ReportS3Uri>model_quality_report.json` (ml/model_quality.py score) instead and puts its
value under that name (dimension `Endpoint`), which the model-quality alarm watches; an `insufficient_data` report
(too few records after rejections, or labels of one class) publishes nothing.

Returns the report's summary for the state machine (and `mlops run --drift`). A missing, unreadable or malformed
report raises `MonitoringReportError` naming the URI and the field; the state machine's Catch notifies and fails
the run.
"""

from __future__ import annotations

import json
import math
import os
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, TypeGuard

import boto3
from botocore.exceptions import ClientError
from common.observability import count_decision, instrumented_handler, logger
from common.parsing import MISSING_OBJECT_CODES, iso_utc, split_s3_uri, validated_request
from pydantic import AwareDatetime, BaseModel, Field, model_validator

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

REPORT_FILE_NAME = "monitoring_report.json"
REPORT_VERSION = 1
REPORT_STATUSES = ("ok", "no_data", "insufficient_data")
DRIFT_REPORT = "drift"
MODEL_QUALITY_REPORT = "model_quality"
MODEL_QUALITY_REPORT_FILE_NAME = "model_quality_report.json"
MODEL_QUALITY_STATUSES = ("ok", "insufficient_data")
DRIFTED_FEATURE_SHARE = "DriftedFeatureShare"
CRITICAL_FEATURE_DRIFT = "CriticalFeatureDrift"
FEATURE_DRIFT_SCORE = "FeatureDriftScore"
# PutMetricData takes at most 1000 metrics per request.
MAX_METRICS_PER_REQUEST = 1000


class MonitoringReportError(RuntimeError):
    """The analyzer's report is missing or does not follow docs/interfaces.md; the message says where and how."""


class PublishRequest(BaseModel):
    endpoint_name: str = Field(alias="EndpointName", pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
    report_s3_uri: str = Field(alias="ReportS3Uri", pattern=r"^s3://[^/]+/.+/$")
    model_package_arn: str = Field(alias="ModelPackageArn", min_length=1)
    window_start: AwareDatetime = Field(alias="WindowStart")
    window_end: AwareDatetime = Field(alias="WindowEnd")
    # Which report the run asks to publish: the drift analyzer's (the default) or the model-quality job's.
    report: Literal["drift", "model_quality"] = Field(alias="Report", default="drift")
    # The model-quality metric's CloudWatch name; required with Report model_quality.
    metric_name: str | None = Field(alias="MetricName", default=None, pattern=r"^ModelQuality[A-Za-z0-9]+$")

    @model_validator(mode="after")
    def _metric_name_for_model_quality(self) -> PublishRequest:
        if self.report == MODEL_QUALITY_REPORT and not self.metric_name:
            raise ValueError("Report model_quality needs MetricName (ModelQuality<Metric>, e.g. ModelQualityAuc)")
        return self


def metrics_namespace(env: dict[str, str] | None = None) -> str:
    """The stack's namespace, read at call time; the function's IAM allows PutMetricData in it only."""
    namespace = (env if env is not None else os.environ).get("POWERTOOLS_METRICS_NAMESPACE", "").strip()
    if not namespace:
        raise MonitoringReportError(
            "environment variable POWERTOOLS_METRICS_NAMESPACE is not set; set it to the stack's ProjectName"
        )
    return namespace


def read_report(s3_client: Any, report_uri: str) -> dict[str, Any]:
    """The drift report, checked for the fields this function and its callers use."""
    report = _read_json(s3_client, report_uri, "MonitorDrift")
    _check_report(report, report_uri)
    return report


def read_model_quality_report(s3_client: Any, report_uri: str) -> dict[str, Any]:
    """The model-quality report, checked for the fields this function and its callers use."""
    report = _read_json(s3_client, report_uri, "ScoreModelQuality")

    def fail(problem: str) -> MonitoringReportError:
        return MonitoringReportError(f"{report_uri}: {problem} (docs/interfaces.md, model-quality report)")

    if report.get("report_version") != REPORT_VERSION:
        raise fail(f"report_version is {report.get('report_version')!r}, expected {REPORT_VERSION}")
    if report.get("status") not in MODEL_QUALITY_STATUSES:
        raise fail(f"status is {report.get('status')!r}, not one of {', '.join(MODEL_QUALITY_STATUSES)}")
    if not isinstance(report.get("metric"), str):
        raise fail(f"metric is {report.get('metric')!r}, not a name")
    if report["status"] == "ok" and not _finite(report.get("value")):
        raise fail(f"status ok with value {report.get('value')!r}, not a number")
    if not isinstance(report.get("records"), dict):
        raise fail(f"records is {report.get('records')!r}, not an object")
    return report


def _read_json(s3_client: Any, report_uri: str, writer: str) -> dict[str, Any]:
    bucket, key = split_s3_uri(report_uri)
    try:
        body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in MISSING_OBJECT_CODES:
            raise
        raise MonitoringReportError(f"{report_uri} does not exist; did the {writer} job write it?") from None
    try:
        report = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise MonitoringReportError(f"{report_uri} is not JSON: {error}") from None
    if not isinstance(report, dict):
        raise MonitoringReportError(f"{report_uri} is a JSON {type(report).__name__}, not an object")
    return report


def _check_report(report: dict[str, Any], uri: str) -> None:
    def fail(problem: str) -> MonitoringReportError:
        return MonitoringReportError(f"{uri}: {problem} (docs/interfaces.md, monitoring report)")

    if report.get("report_version") != REPORT_VERSION:
        raise fail(f"report_version is {report.get('report_version')!r}, expected {REPORT_VERSION}")
    if report.get("status") not in REPORT_STATUSES:
        raise fail(f"status is {report.get('status')!r}, not one of {', '.join(REPORT_STATUSES)}")
    if report["status"] != "ok":
        return
    share = report.get("drifted_share")
    if not (_finite(share) and 0 <= share <= 1):
        raise fail(f"status ok with drifted_share {share!r}, not a number in 0..1")
    for field in ("critical_features_drifted", "drifted_features", "features"):
        if not isinstance(report.get(field), list):
            raise fail(f"{field} is {report.get(field)!r}, not a list")
    for index, feature in enumerate(report["features"]):
        if not isinstance(feature, dict) or not isinstance(feature.get("name"), str):
            raise fail(f"features[{index}] has no name")
        if feature.get("status") == "tested" and feature.get("score") is not None and not _finite(feature["score"]):
            raise fail(f"features[{index}] ({feature['name']}) has score {feature['score']!r}, not a number")


def _finite(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def report_metrics(report: dict[str, Any], endpoint_name: str, timestamp: datetime) -> list[dict[str, Any]]:
    """The MetricData a report calls for: none unless it has a drift verdict (status ok)."""
    if report["status"] != "ok":
        return []
    endpoint = [{"Name": "Endpoint", "Value": endpoint_name}]

    def datum(name: str, value: float, dimensions: list[dict[str, str]], unit: str = "None") -> dict[str, Any]:
        return {"MetricName": name, "Dimensions": dimensions, "Timestamp": timestamp, "Value": value, "Unit": unit}

    data = [
        datum(DRIFTED_FEATURE_SHARE, float(report["drifted_share"]), endpoint),
        datum(CRITICAL_FEATURE_DRIFT, 1.0 if report["critical_features_drifted"] else 0.0, endpoint),
    ]
    for feature in report["features"]:
        if feature.get("status") == "tested" and feature.get("score") is not None:
            dimensions = [*endpoint, {"Name": "Feature", "Value": feature["name"]}]
            data.append(datum(FEATURE_DRIFT_SCORE, float(feature["score"]), dimensions))
    return data


def summary(report: dict[str, Any], request: PublishRequest, report_uri: str, published: int) -> dict[str, Any]:
    """What the run found, for the state machine's output: verdict, records and data-quality counts."""
    return {
        "EndpointName": request.endpoint_name,
        "ModelPackageArn": request.model_package_arn,
        "WindowStart": iso_utc(request.window_start),
        "WindowEnd": iso_utc(request.window_end),
        "ReportUri": report_uri,
        "status": report["status"],
        "dataset_drift": bool(report.get("dataset_drift", False)),
        "drifted_share": report.get("drifted_share"),
        "drifted_features": report.get("drifted_features", []),
        "critical_features_drifted": report.get("critical_features_drifted", []),
        "records": (report.get("records") or {}).get("read", 0),
        "rows_analyzed": (report.get("rows") or {}).get("analyzed", 0),
        "findings": (report.get("data_quality") or {}).get("findings", {}),
        "metrics_published": published,
    }


def model_quality_summary(
    report: dict[str, Any], request: PublishRequest, report_uri: str, published: int
) -> dict[str, Any]:
    """What the model-quality part found, for the state machine's output."""
    records = report["records"]
    return {
        "EndpointName": request.endpoint_name,
        "ModelPackageArn": request.model_package_arn,
        "WindowStart": iso_utc(request.window_start),
        "WindowEnd": iso_utc(request.window_end),
        "ReportUri": report_uri,
        "status": report["status"],
        "metric": report["metric"],
        "metric_name": request.metric_name,
        "value": report.get("value"),
        "reason": report.get("reason"),
        "records": records.get("read", 0),
        "records_rejected": records.get("rejected", 0),
        "records_scored": records.get("scored", 0),
        "metrics_published": published,
    }


def publish_model_quality(
    request: PublishRequest, s3_client: Any, cloudwatch_client: Any, namespace: str
) -> dict[str, Any]:
    """Read the model-quality report, put its metric when it has a value, return its summary."""
    report_uri = f"{request.report_s3_uri}{MODEL_QUALITY_REPORT_FILE_NAME}"
    report = read_model_quality_report(s3_client, report_uri)
    if report["status"] != "ok":
        return model_quality_summary(report, request, report_uri, 0)
    datum = {
        "MetricName": request.metric_name,
        "Dimensions": [{"Name": "Endpoint", "Value": request.endpoint_name}],
        "Timestamp": request.window_end,
        "Value": float(report["value"]),
        "Unit": "None",
    }
    cloudwatch_client.put_metric_data(Namespace=namespace, MetricData=[datum])
    return model_quality_summary(report, request, report_uri, 1)


def publish(request: PublishRequest, s3_client: Any, cloudwatch_client: Any, namespace: str) -> dict[str, Any]:
    """Read the report, put its metrics, return its summary."""
    if request.report == MODEL_QUALITY_REPORT:
        return publish_model_quality(request, s3_client, cloudwatch_client, namespace)
    report_uri = f"{request.report_s3_uri}{REPORT_FILE_NAME}"
    report = read_report(s3_client, report_uri)
    data = report_metrics(report, request.endpoint_name, request.window_end)
    for first in range(0, len(data), MAX_METRICS_PER_REQUEST):
        cloudwatch_client.put_metric_data(Namespace=namespace, MetricData=data[first : first + MAX_METRICS_PER_REQUEST])
    return summary(report, request, report_uri, len(data))


@instrumented_handler(correlation_id_path="EndpointName")
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = validated_request(PublishRequest, event, "publish_monitoring_metrics")
    try:
        result = publish(request, boto3.client("s3"), boto3.client("cloudwatch"), metrics_namespace())
    except MonitoringReportError:
        count_decision("MonitoringReportUnusable")
        raise
    if request.report == MODEL_QUALITY_REPORT:
        count_decision("ModelQualityPublished" if result["metrics_published"] else "ModelQualityWithoutVerdict")
    else:
        count_decision("DatasetDriftFound" if result["dataset_drift"] else "NoDatasetDrift")
    logger.info(f"monitoring report {result['status']}", extra={"summary": result})
    return result
