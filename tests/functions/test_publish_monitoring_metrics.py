"""publish_monitoring_metrics under moto: the report's metrics in the stack's namespace, none without a verdict."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from common.parsing import InvalidPayloadError
from lambda_test_support import NAMESPACE
from moto.cloudwatch.models import cloudwatch_backends
from moto.core import DEFAULT_ACCOUNT_ID
from publish_monitoring_metrics import (
    CRITICAL_FEATURE_DRIFT,
    DRIFTED_FEATURE_SHARE,
    FEATURE_DRIFT_SCORE,
    MonitoringReportError,
    handler,
)

BUCKET = "mlops-artifacts"
ENDPOINT = "mlops-endpoint"
REPORT_PREFIX = "runs/monitoring-1/monitoring/report/"
# Recent, so CloudWatch (moto) keeps the data points.
WINDOW_END = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
PAYLOAD = {
    "EndpointName": ENDPOINT,
    "ReportS3Uri": f"s3://{BUCKET}/{REPORT_PREFIX}",
    "ModelPackageArn": "arn:aws:sagemaker:us-east-1:123456789012:model-package/mlops-model/1",
    "WindowStart": (WINDOW_END - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "WindowEnd": WINDOW_END.strftime("%Y-%m-%dT%H:%M:%SZ"),
}


def _feature(name: str, score: float | None, drifted: bool, status: str = "tested") -> dict[str, Any]:
    return {
        "name": name,
        "type": "numerical",
        "test": "ks",
        "score": score,
        "threshold": 0.05,
        "drifted": drifted,
        "status": status,
        "reference_size": 100,
        "current_size": 50 if status == "tested" else 3,
    }


DRIFTED_REPORT: dict[str, Any] = {
    "report_version": 1,
    "status": "ok",
    "dataset_drift": True,
    "drifted_share": 0.5,
    "drift_share_threshold": 0.5,
    "features_tested": 2,
    "drifted_features": ["radius"],
    "critical_features": ["radius"],
    "critical_features_drifted": ["radius"],
    "features": [
        _feature("radius", 0.001, True),
        _feature("texture", 0.6, False),
        _feature("area", None, False, status="insufficient_data"),
    ],
    "data_quality": {"findings": {"missing_values": 2, "out_of_range_values": 0}, "per_feature": {}},
    "records": {"files": 2, "read": 50, "rejected": 0, "rejections": {}, "rejection_examples": []},
    "rows": {"read": 50, "analyzed": 50},
    "window": {"first_inference_time": None, "last_inference_time": None},
    "settings": {"min_records": 30, "drift_share": 0.5, "thresholds": {}},
}
NO_DATA_REPORT: dict[str, Any] = {
    **copy.deepcopy(DRIFTED_REPORT),
    "status": "no_data",
    "dataset_drift": False,
    "drifted_share": None,
    "features_tested": 0,
    "drifted_features": [],
    "critical_features_drifted": [],
    "features": [],
    "records": {"files": 1, "read": 0, "rejected": 0, "rejections": {}, "rejection_examples": []},
}


def _put_report(body: bytes | dict[str, Any]) -> None:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    boto3.client("s3").put_object(Bucket=BUCKET, Key=f"{REPORT_PREFIX}monitoring_report.json", Body=data)


def _published() -> list[tuple[str, str, dict[Any, Any], float]]:
    """(namespace, metric, dimensions, value) of every data point in the stack's namespace, in a stable order."""
    backend = cloudwatch_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    points = [
        (d.namespace, d.name, {dim.name: dim.value for dim in d.dimensions}, float(d.value))  # type: ignore[attr-defined]
        for d in backend.get_all_metrics()
        if d.namespace == NAMESPACE
    ]
    return sorted(points, key=lambda point: (point[1], sorted(point[2].items())))


@pytest.fixture
def bucket(aws: None) -> str:
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    return BUCKET


def test_a_drifted_report_publishes_share_critical_drift_and_each_tested_feature(
    bucket: str, lambda_context: Any
) -> None:
    _put_report(DRIFTED_REPORT)

    result = handler(dict(PAYLOAD), lambda_context)

    assert _published() == [
        (NAMESPACE, CRITICAL_FEATURE_DRIFT, {"Endpoint": ENDPOINT}, 1.0),
        (NAMESPACE, DRIFTED_FEATURE_SHARE, {"Endpoint": ENDPOINT}, 0.5),
        (NAMESPACE, FEATURE_DRIFT_SCORE, {"Endpoint": ENDPOINT, "Feature": "radius"}, 0.001),
        (NAMESPACE, FEATURE_DRIFT_SCORE, {"Endpoint": ENDPOINT, "Feature": "texture"}, 0.6),
    ]
    assert result["dataset_drift"] is True
    assert result["metrics_published"] == 4
    assert result["records"] == 50
    assert result["findings"] == {"missing_values": 2, "out_of_range_values": 0}
    assert result["WindowEnd"] == PAYLOAD["WindowEnd"]


def test_metrics_are_timestamped_at_the_window_end(bucket: str, lambda_context: Any) -> None:
    _put_report(DRIFTED_REPORT)

    handler(dict(PAYLOAD), lambda_context)

    stats = boto3.client("cloudwatch").get_metric_statistics(
        Namespace=NAMESPACE,
        MetricName=DRIFTED_FEATURE_SHARE,
        Dimensions=[{"Name": "Endpoint", "Value": ENDPOINT}],
        StartTime=WINDOW_END - timedelta(seconds=1),
        EndTime=WINDOW_END + timedelta(seconds=1),
        Period=60,
        Statistics=["Maximum"],
    )["Datapoints"]
    assert [point["Maximum"] for point in stats] == [0.5]


def test_no_critical_drift_publishes_zero(bucket: str, lambda_context: Any) -> None:
    report = copy.deepcopy(DRIFTED_REPORT)
    report["critical_features_drifted"] = []
    _put_report(report)

    handler(dict(PAYLOAD), lambda_context)

    assert (NAMESPACE, CRITICAL_FEATURE_DRIFT, {"Endpoint": ENDPOINT}, 0.0) in _published()


@pytest.mark.parametrize("status", ["no_data", "insufficient_data"])
def test_a_report_without_a_verdict_publishes_nothing(bucket: str, lambda_context: Any, status: str) -> None:
    _put_report({**NO_DATA_REPORT, "status": status})

    result = handler(dict(PAYLOAD), lambda_context)

    assert _published() == []
    assert result["status"] == status
    assert result["metrics_published"] == 0
    assert result["dataset_drift"] is False


def test_a_missing_report_is_a_clear_error(bucket: str, lambda_context: Any) -> None:
    with pytest.raises(MonitoringReportError, match=r"monitoring_report\.json does not exist"):
        handler(dict(PAYLOAD), lambda_context)
    assert _published() == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "is not JSON"),
        (b"[1, 2]", "is a JSON list, not an object"),
        ({**DRIFTED_REPORT, "report_version": 2}, "report_version is 2, expected 1"),
        ({**DRIFTED_REPORT, "status": "drifted"}, "status is 'drifted'"),
        ({**DRIFTED_REPORT, "drifted_share": 1.5}, "drifted_share 1.5, not a number in 0..1"),
        ({**DRIFTED_REPORT, "features": [{"score": 0.1}]}, r"features\[0\] has no name"),
    ],
)
def test_a_malformed_report_is_a_clear_error_and_publishes_nothing(
    bucket: str, lambda_context: Any, body: Any, message: str
) -> None:
    _put_report(body)

    with pytest.raises(MonitoringReportError, match=message):
        handler(dict(PAYLOAD), lambda_context)
    assert _published() == []


def test_without_a_namespace_nothing_is_published(
    bucket: str, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _put_report(DRIFTED_REPORT)
    monkeypatch.delenv("POWERTOOLS_METRICS_NAMESPACE")

    with pytest.raises(MonitoringReportError, match="POWERTOOLS_METRICS_NAMESPACE is not set"):
        handler(dict(PAYLOAD), lambda_context)


# ---- the model-quality report --------------------------------------------------------------------------------

QUALITY_PREFIX = "runs/monitoring-1/monitoring/quality/report/"
QUALITY_PAYLOAD = {
    **PAYLOAD,
    "Report": "model_quality",
    "MetricName": "ModelQualityAuc",
    "ReportS3Uri": f"s3://{BUCKET}/{QUALITY_PREFIX}",
}
QUALITY_REPORT: dict[str, Any] = {
    "report_version": 1,
    "status": "ok",
    "metric": "auc",
    "value": 0.8125,
    "reason": None,
    "min_records": 50,
    "files": 2,
    "records": {
        "read": 64,
        "rejected": 1,
        "rejection_examples": ["a.csv data row 3: label 'x' is not 0 or 1"],
        "scored": 63,
    },
    "metrics": {"auc": 0.8125},
}


def _put_quality_report(report: dict[str, Any]) -> None:
    body = json.dumps(report).encode()
    boto3.client("s3").put_object(Bucket=BUCKET, Key=f"{QUALITY_PREFIX}model_quality_report.json", Body=body)


def test_a_model_quality_report_publishes_its_value_under_the_metric_name(bucket: str, lambda_context: Any) -> None:
    _put_quality_report(QUALITY_REPORT)

    result = handler(dict(QUALITY_PAYLOAD), lambda_context)

    assert _published() == [(NAMESPACE, "ModelQualityAuc", {"Endpoint": ENDPOINT}, 0.8125)]
    assert (result["status"], result["metric"], result["value"]) == ("ok", "auc", 0.8125)
    assert (result["records"], result["records_rejected"], result["records_scored"]) == (64, 1, 63)
    assert result["metrics_published"] == 1


def test_a_model_quality_report_without_a_verdict_publishes_nothing(bucket: str, lambda_context: Any) -> None:
    reason = "the labels hold only class [1]: auc needs records of both classes 0 and 1"
    _put_quality_report({**QUALITY_REPORT, "status": "insufficient_data", "value": None, "reason": reason})

    result = handler(dict(QUALITY_PAYLOAD), lambda_context)

    assert _published() == []
    assert (result["status"], result["reason"], result["metrics_published"]) == ("insufficient_data", reason, 0)


@pytest.mark.parametrize(
    ("report", "message"),
    [
        ({**QUALITY_REPORT, "status": "no_data"}, "status is 'no_data'"),
        ({**QUALITY_REPORT, "value": None}, "status ok with value None"),
        ({**QUALITY_REPORT, "report_version": 3}, "report_version is 3"),
    ],
)
def test_a_malformed_model_quality_report_is_a_clear_error(
    bucket: str, lambda_context: Any, report: dict[str, Any], message: str
) -> None:
    _put_quality_report(report)

    with pytest.raises(MonitoringReportError, match=message):
        handler(dict(QUALITY_PAYLOAD), lambda_context)
    assert _published() == []


def test_a_model_quality_request_without_a_metric_name_is_rejected(bucket: str, lambda_context: Any) -> None:
    payload = {key: value for key, value in QUALITY_PAYLOAD.items() if key != "MetricName"}

    with pytest.raises(InvalidPayloadError, match="MetricName"):
        handler(payload, lambda_context)
