"""The monitoring state machine end to end in the twin, on records its endpoint captured: no endpoint, no data,
a window analyzed and published, a failing job, ground truth scored with the served model (too few records, and
enough), and the idle endpoint reaper's view of a monitored endpoint."""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import boto3
import numpy as np
import pytest
from common.settings import ReaperSettings
from endpoint_reaper import ReaperClients, reap
from sklearn.metrics import roc_auc_score
from twin_runtime import stand_in_twin

from emulator.twin import ExecutionResult, LocalTwin

pytestmark = pytest.mark.e2e

# Stand-ins for the two workflows monitoring does not use; monitoring.asl.json is the exported one.
TRAINING_ASL = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}
DEPLOY_ASL = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}
FEATURES = ("f0", "f1")
ROWS_PER_REQUEST = 10
REQUESTS = 5
MODEL_PACKAGE_ARN_TAG = "mlops:model-package-arn"
# Answers every CSV request with one score per row, the logistic of the row's first feature (f0), so a test can
# recompute the model's quality on ground truth; `score,label` lines for text/csv (as ml/inference.py), else JSON.
INFERENCE = """
import json, math
def model_fn(model_dir):
    return None
def input_fn(body, content_type):
    return body.decode() if isinstance(body, bytes) else body
def predict_fn(data, model):
    return [1 / (1 + math.exp(-float(line.split(",")[0]))) for line in data.splitlines() if line.strip()]
def output_fn(prediction, accept):
    if accept == "text/csv":
        return "".join(f"{s!r},{int(s >= 0.5)}\\n" for s in prediction)
    return json.dumps({"predictions": [{"score": s, "label": 0} for s in prediction]})
"""
MODEL_QUALITY_METRIC = "ModelQualityAuc"


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTwin]:
    with stand_in_twin(tmp_path_factory.mktemp("statemachines"), TRAINING_ASL, DEPLOY_ASL) as started:
        yield started


def _endpoint_name(twin: LocalTwin) -> str:
    return f"{twin.stack.stack_name}-endpoint"


def _bucket(twin: LocalTwin) -> str:
    return twin.stack.resources["ArtifactBucket"]


def _put(bucket: str, key: str, body: bytes) -> str:
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=body)
    return f"s3://{bucket}/{key}"


def _baseline(bucket: str, prefix: str) -> str:
    """baseline.csv and baseline.json as training writes them (docs/interfaces.md); returns baseline.json's URI."""
    reference = np.random.default_rng(7).normal(size=(300, len(FEATURES)))
    csv = ",".join(FEATURES) + "\n" + "\n".join(",".join(f"{v:.6f}" for v in row) for row in reference) + "\n"
    _put(bucket, f"{prefix}baseline.csv", csv.encode())
    statistics = {
        "format_version": 1,
        "features": [
            {
                "name": name,
                "type": "numerical",
                "min": float(reference[:, i].min()),
                "max": float(reference[:, i].max()),
            }
            for i, name in enumerate(FEATURES)
        ],
        "critical_features": ["f0"],
    }
    return _put(bucket, f"{prefix}baseline.json", json.dumps(statistics).encode())


def _model_archive(bucket: str) -> str:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        data = INFERENCE.encode()
        info = tarfile.TarInfo("code/inference.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return _put(bucket, "models/monitoring-test/output/model.tar.gz", archive.getvalue())


@pytest.fixture
def served(twin: LocalTwin) -> Iterator[dict[str, str]]:
    """The stack endpoint serving a package with a baseline, capturing its input as deploy configures it."""
    sagemaker = boto3.client("sagemaker")
    bucket = _bucket(twin)
    group = f"{twin.stack.stack_name}-breast-cancer"
    statistics_uri = _baseline(bucket, "runs/training-monitoring-test/evaluation/baseline/")
    package = sagemaker.create_model_package(
        ModelPackageGroupName=group,
        InferenceSpecification={
            "Containers": [{"Image": "xgboost:local", "ModelDataUrl": _model_archive(bucket)}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        DriftCheckBaselines={
            "ModelDataQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": statistics_uri}}
        },
    )["ModelPackageArn"]
    suffix = package.rsplit("/", 1)[-1]
    sagemaker.create_model(
        ModelName=f"monitoring-test-model-{suffix}",
        PrimaryContainer={
            "Image": "xgboost:local",
            "ModelDataUrl": f"s3://{bucket}/models/monitoring-test/output/model.tar.gz",
            "Environment": {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"},
        },
        ExecutionRoleArn=twin.stack.outputs.get("SageMakerModelRoleArn", "arn:aws:iam::123456789012:role/model"),
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=f"monitoring-test-cfg-{suffix}",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": f"monitoring-test-model-{suffix}",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
        DataCaptureConfig={
            "EnableCapture": True,
            "InitialSamplingPercentage": 100,
            "DestinationS3Uri": f"s3://{bucket}/data-capture/",
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        },
    )
    name = _endpoint_name(twin)
    sagemaker.create_endpoint(
        EndpointName=name,
        EndpointConfigName=f"monitoring-test-cfg-{suffix}",
        Tags=[{"Key": MODEL_PACKAGE_ARN_TAG, "Value": package}],
    )
    for _ in range(600):
        if sagemaker.describe_endpoint(EndpointName=name)["EndpointStatus"] == "InService":
            break
        twin.clock.sleep(1)
    assert sagemaker.describe_endpoint(EndpointName=name)["EndpointStatus"] == "InService"
    yield {"endpoint": name, "package": package, "statistics": statistics_uri}
    # The reaper test deletes it itself.
    with contextlib.suppress(sagemaker.exceptions.ClientError):
        sagemaker.delete_endpoint(EndpointName=name)


def _send_traffic(endpoint: str, shift: float = 0.0, seed: int = 5) -> None:
    # Seed 5 draws an unshifted sample whose KS p-values against the baseline (0.69, 0.58) are far from 0.05.
    runtime = boto3.client("sagemaker-runtime")
    rows = np.random.default_rng(seed).normal(size=(REQUESTS * ROWS_PER_REQUEST, len(FEATURES))) + shift
    for first in range(0, len(rows), ROWS_PER_REQUEST):
        body = "\n".join(",".join(f"{v:.6f}" for v in row) for row in rows[first : first + ROWS_PER_REQUEST])
        runtime.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Body=body.encode())


def _monitor(twin: LocalTwin, window_end: datetime) -> ExecutionResult:
    arn = twin.start_execution(
        "monitoring",
        {"EndpointName": _endpoint_name(twin), "WindowEnd": window_end.strftime("%Y-%m-%dT%H:%M:%SZ")},
    )
    return twin.wait_for_execution(arn, timeout=300)


def _window_end_after_traffic(twin: LocalTwin) -> datetime:
    # Capture file times are whole seconds; the window's end is exclusive.
    return twin.clock.now() + timedelta(seconds=2)


def _drift_metrics(twin: LocalTwin) -> list[dict[str, Any]]:
    """The stack's metrics about an endpoint's data (dimension Endpoint), which the drift alarms watch.

    The functions' own decision counts (dimension service, Powertools' embedded metrics) share the namespace.
    """
    namespace = twin.stack.parameters.get("ProjectName", "mlops")
    metrics = boto3.client("cloudwatch").list_metrics(Namespace=namespace)["Metrics"]
    return [m for m in metrics if any(d["Name"] == "Endpoint" for d in m["Dimensions"])]


def _invocation_count(endpoint: str, start: datetime, end: datetime) -> float:
    points = boto3.client("cloudwatch").get_metric_statistics(
        Namespace="AWS/SageMaker",
        MetricName="Invocations",
        Dimensions=[{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": "AllTraffic"}],
        StartTime=start,
        EndTime=end,
        Period=60,
        Statistics=["Sum"],
    )["Datapoints"]
    return sum(point["Sum"] for point in points)


def test_without_an_endpoint_monitoring_ends_in_no_endpoint(twin: LocalTwin) -> None:
    result = _monitor(twin, twin.clock.now())

    assert result.status == "SUCCEEDED", result.cause
    assert result.states_entered()[-1] == "NoEndpoint"


def test_a_window_without_captured_records_ends_in_no_data_and_publishes_nothing(
    twin: LocalTwin, served: dict[str, str]
) -> None:
    before = _drift_metrics(twin)

    result = _monitor(twin, twin.clock.now())

    assert result.status == "SUCCEEDED", result.cause
    assert result.states_entered()[-1] == "NoData"
    assert "MonitorDrift" not in result.states_entered()
    assert _drift_metrics(twin) == before


def test_captured_records_are_analyzed_against_the_served_baseline_and_published(
    twin: LocalTwin, served: dict[str, str]
) -> None:
    _send_traffic(served["endpoint"])

    result = _monitor(twin, _window_end_after_traffic(twin))

    assert result.status == "SUCCEEDED", result.cause
    assert result.states_entered()[-6:] == [
        "MonitorDrift",
        "PublishMonitoringMetrics",
        "GroundTruthStatus",
        "ModelQualitySkipped",
        "MonitoringOutcome",
        "Monitored",
    ]
    summary = result.output["published"]["Payload"]
    assert summary["status"] == "ok"
    assert summary["records"] == REQUESTS
    assert summary["rows_analyzed"] == REQUESTS * ROWS_PER_REQUEST
    assert summary["dataset_drift"] is False
    assert summary["metrics_published"] == 2 + len(FEATURES)
    names = {metric["MetricName"] for metric in _drift_metrics(twin)}
    assert {"DriftedFeatureShare", "CriticalFeatureDrift", "FeatureDriftScore"} <= names


def test_shifted_traffic_is_reported_as_dataset_drift(twin: LocalTwin, served: dict[str, str]) -> None:
    twin.clock.advance(2 * 3600)  # past the windows of the other tests' traffic
    _send_traffic(served["endpoint"], shift=3.0)

    result = _monitor(twin, _window_end_after_traffic(twin))

    summary = result.output["published"]["Payload"]
    assert (summary["dataset_drift"], summary["drifted_share"]) == (True, 1.0)
    assert summary["critical_features_drifted"] == ["f0"]


def test_a_failing_job_ends_in_monitoring_failed_notified_and_publishes_nothing(
    twin: LocalTwin, served: dict[str, str]
) -> None:
    twin.clock.advance(2 * 3600)
    _send_traffic(served["endpoint"])
    bucket, key = served["statistics"].removeprefix("s3://").split("/", 1)
    boto3.client("s3").delete_object(Bucket=bucket, Key=key.replace("baseline.json", "baseline.csv"))
    before = _drift_metrics(twin)

    result = _monitor(twin, _window_end_after_traffic(twin))

    assert (result.status, result.error) == ("FAILED", "MonitoringFailed")
    entered = result.states_entered()
    assert "MonitorDrift" in entered
    assert "NotifyMonitoringFailed" in entered
    assert "PublishMonitoringMetrics" not in entered
    assert _drift_metrics(twin) == before


def _ground_truth(twin: LocalTwin, records: int, seed: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """A labelled file named after the twin's now (docs/interfaces.md, Ground truth): (f0 values, labels).

    Its header puts the label between the features: the split reads columns by name.
    """
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(records, len(FEATURES)))
    labels = (features[:, 0] + rng.normal(scale=1.0, size=records) > 0).astype(int)
    lines = [
        "f1,target,f0",
        *(f"{row[1]:.6f},{label},{row[0]:.6f}" for row, label in zip(features, labels, strict=True)),
    ]
    now = twin.clock.now()
    key = f"ground-truth/{now:%Y/%m/%d/%H}/{now:%M-%S}-labels.csv"
    _put(twin.stack.resources["DataBucket"], key, ("\n".join(lines) + "\n").encode())
    # The file holds what it was written with: six decimals.
    return np.round(features[:, 0], 6), labels


def _model_quality_points(twin: LocalTwin, endpoint: str) -> list[float]:
    namespace = twin.stack.parameters.get("ProjectName", "mlops")
    points = boto3.client("cloudwatch").get_metric_statistics(
        Namespace=namespace,
        MetricName=MODEL_QUALITY_METRIC,
        Dimensions=[{"Name": "Endpoint", "Value": endpoint}],
        StartTime=twin.clock.now() - timedelta(days=2),
        EndTime=twin.clock.now() + timedelta(days=1),
        Period=60,
        Statistics=["Minimum"],
    )["Datapoints"]
    return [point["Minimum"] for point in points]


def test_too_few_labelled_records_skip_model_quality_with_the_reason_and_start_no_transform(
    twin: LocalTwin, served: dict[str, str]
) -> None:
    twin.clock.advance(2 * 3600)
    _ground_truth(twin, records=10)
    before = _model_quality_points(twin, served["endpoint"])

    result = _monitor(twin, _window_end_after_traffic(twin))

    assert result.status == "SUCCEEDED", result.cause
    entered = result.states_entered()
    assert entered[-3:] == ["ModelQualitySkipped", "MonitoringOutcome", "NoData"]
    assert "TransformGroundTruth" not in entered
    skipped = result.output["model_quality"]
    assert skipped["Status"] == "Skipped"
    assert "10 labelled record(s) in 1 file(s)" in skipped["Reason"]
    assert f"fewer than the {skipped['MinRecords']} needed" in skipped["Reason"]
    assert _model_quality_points(twin, served["endpoint"]) == before


def test_enough_labelled_records_are_scored_by_a_batch_transform_of_the_served_model_and_published(
    twin: LocalTwin, served: dict[str, str]
) -> None:
    twin.clock.advance(2 * 3600)
    f0, labels = _ground_truth(twin, records=120)
    # The stand-in model scores a row with the logistic of f0: the AUC of its scores is the AUC of f0.
    expected = float(roc_auc_score(labels, 1 / (1 + np.exp(-f0))))

    result = _monitor(twin, _window_end_after_traffic(twin))

    assert result.status == "SUCCEEDED", result.cause
    entered = result.states_entered()
    assert entered[-6:] == [
        "SplitGroundTruth",
        "TransformGroundTruth",
        "ScoreModelQuality",
        "PublishModelQuality",
        "MonitoringOutcome",
        "NoData",
    ]
    transform = boto3.client("sagemaker").describe_transform_job(
        TransformJobName=result.output["transform"]["TransformJobName"]
    )
    assert transform["ModelName"].startswith("monitoring-test-model-")
    published = result.output["quality_published"]["Payload"]
    assert (published["status"], published["metric"], published["records_scored"]) == ("ok", "auc", 120)
    assert published["value"] == pytest.approx(expected, abs=1e-9)
    assert _model_quality_points(twin, served["endpoint"])[-1:] == [pytest.approx(expected, abs=1e-9)]


def test_a_monitoring_run_never_invokes_the_endpoint(twin: LocalTwin, served: dict[str, str]) -> None:
    twin.clock.advance(2 * 3600)
    start = twin.clock.now()
    _send_traffic(served["endpoint"])
    sent = _invocation_count(served["endpoint"], start - timedelta(minutes=5), twin.clock.now() + timedelta(hours=1))

    result = _monitor(twin, _window_end_after_traffic(twin))

    assert result.status == "SUCCEEDED", result.cause
    after = _invocation_count(served["endpoint"], start - timedelta(minutes=5), twin.clock.now() + timedelta(hours=1))
    assert (sent, after) == (REQUESTS, REQUESTS)


def test_after_the_reaper_deletes_the_endpoint_the_next_run_ends_no_endpoint(
    twin: LocalTwin, served: dict[str, str]
) -> None:
    # GIVEN a monitored endpoint whose only activity is monitoring after its traffic stopped
    twin.clock.advance(2 * 3600)
    _send_traffic(served["endpoint"])
    assert _monitor(twin, _window_end_after_traffic(twin)).status == "SUCCEEDED"
    settings = ReaperSettings(
        idle_window_hours=1,
        min_age_hours=0,
        dry_run=False,
        opt_out_tag="mlops:reaper-opt-out",
        mark_tag="mlops:idle-since",
        max_deletions_per_run=5,
        report_topic_arn=twin.stack.resources["NotificationTopic"],
        audit_event_bus_name="default",
        scope="account",
        management_tag=MODEL_PACKAGE_ARN_TAG,
        managed_tag_value_prefix="",
    )
    clients = ReaperClients.default()

    # WHEN the reaper marks it idle, monitoring runs again, and the reaper comes back after its idle window
    twin.clock.advance(2 * 3600)
    marked = reap(clients, settings, twin.clock.now())
    assert [(d.endpoint, d.action) for d in marked.decisions] == [(served["endpoint"], "marked")]
    assert _monitor(twin, twin.clock.now()).states_entered()[-1] == "NoData"
    twin.clock.advance(2 * 3600)
    deleted = reap(clients, settings, twin.clock.now())

    # THEN monitoring did not keep it busy, and the next run ends quietly
    assert [(d.endpoint, d.action) for d in deleted.decisions] == [(served["endpoint"], "deleted")]
    result = _monitor(twin, twin.clock.now())
    assert result.status == "SUCCEEDED", result.cause
    assert result.states_entered()[-1] == "NoEndpoint"
