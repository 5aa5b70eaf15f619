"""Glue for `monitoring`: finds the endpoint, the package it serves and its baseline, and the window's capture files
and ground truth.

Called by a `LambdaStep` with `{"EndpointName", "WindowEnd" (ISO-8601 UTC), "WindowMinutes", "RunS3Uri",
"GroundTruthS3Uri", "GroundTruthMinRecords"}` (RunS3Uri: the execution's `runs/<execution>/monitoring/` folder;
GroundTruthS3Uri: the data bucket's ground-truth prefix). The window is the `WindowMinutes` before `WindowEnd`.
Returns `{"Status": "NoEndpoint"}` when the endpoint does not exist or is being deleted (never deployed, or
reaped: monitoring ends quietly), `{"Status": "NoData"}` when it is still being created or no capture file of any
variant falls in the window (not drift, not a failure), else writes a SageMaker ManifestFile of those files at
`<RunS3Uri>capture.manifest` and returns `{"Status": "Ready", "BaselineS3Uri", "CaptureManifestS3Uri",
"ReportS3Uri", "ModelPackageArn", "WindowStart", "WindowEnd", "CaptureFiles"}`. Both NoData and Ready carry
`GroundTruth`: `{"Status": "Ready", "Records", "Files", "MinRecords", "ManifestS3Uri", "ModelName", ...the model
quality part's S3 folders}` when the window's ground-truth files hold at least `GroundTruthMinRecords` records,
else `{"Status": "Skipped", "Reason", "Records", "Files", "MinRecords"}` (the reason is logged too).

The package is the one the endpoint serves, by its tag `mlops:model-package-arn` (the deploy state machine sets
it), so a redeploy switches to the new package's baseline; the baseline is the S3 folder of the package's
`DriftCheckBaselines.ModelDataQuality.Statistics.S3Uri`. Capture files are SageMaker's
`<DestinationS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/<MM>-<SS>-<fraction>-<id>.jsonl` (UTC): a file is in the
window when the time its folder and name give is at or after the start and before the end. Ground-truth files
follow the same rule: `<GroundTruthS3Uri>yyyy/mm/dd/hh/<MM>-<SS>-<name>.csv`, named after the time they were
written, so each file falls in exactly one run's window (docs/interfaces.md, Ground truth). Its records are its
lines after the header, counted until the minimum is reached (`Records` of a Ready window is at least
`MinRecords`; the model-quality report has the exact count); the model is the one the endpoint's current
production variant (the largest current weight) serves, from its endpoint config.

It only reads (DescribeEndpoint, DescribeEndpointConfig, ListTags, DescribeModelPackage, ListObjectsV2, and the
ground-truth files to count their lines) and writes the manifests: it never invokes the endpoint, so monitoring
never makes an idle endpoint look busy to the reaper. Errors raise `MonitoringWindowError` (an endpoint without
the tag or data capture, a package without a baseline) or `InvalidPayloadError`; the state machine's Catch
notifies and fails the run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError
from common.observability import count_decision, instrumented_handler, logger
from common.parsing import iso_utc, split_s3_uri, validated_request
from pydantic import AwareDatetime, BaseModel, Field

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

# The deploy state machine's tag naming the package an endpoint serves (workflows/deploy.py).
MODEL_PACKAGE_ARN_TAG = "mlops:model-package-arn"
MANIFEST_FILE_NAME = "capture.manifest"
REPORT_FOLDER = "report/"
CAPTURE_SUFFIX = ".jsonl"
GROUND_TRUTH_MANIFEST_FILE_NAME = "ground-truth.manifest"
GROUND_TRUTH_SUFFIX = ".csv"
# The model-quality part's folders under RunS3Uri: the transform's input and output, the labels, the report.
QUALITY_FOLDERS = {
    "FeaturesS3Uri": "quality/features/",
    "LabelsS3Uri": "quality/labels/",
    "PredictionsS3Uri": "quality/predictions/",
    "ReportS3Uri": "quality/report/",
}
# The longest window: pipeline.toml [monitoring] window_minutes allows a day.
MAX_WINDOW_MINUTES = 24 * 60
# SageMaker names a capture file `<MM>-<SS>-<fraction>-<id>.jsonl` after the minute and second it was written.
_CAPTURE_FILE_TIME = re.compile(r"^(?P<minute>[0-5][0-9])-(?P<second>[0-5][0-9])-")
_HOUR_FOLDER = re.compile(r"(?P<year>\d{4})/(?P<month>\d{2})/(?P<day>\d{2})/(?P<hour>\d{2})/[^/]+$")


class MonitoringWindowError(RuntimeError):
    """The endpoint or its package cannot be monitored as deployed; the message says which and what to fix."""


class MonitoringWindowRequest(BaseModel):
    endpoint_name: str = Field(alias="EndpointName", pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
    window_end: AwareDatetime = Field(alias="WindowEnd")
    window_minutes: int = Field(alias="WindowMinutes", ge=1, le=MAX_WINDOW_MINUTES)
    run_s3_uri: str = Field(alias="RunS3Uri", pattern=r"^s3://[^/]+/.+/$")
    ground_truth_s3_uri: str = Field(alias="GroundTruthS3Uri", pattern=r"^s3://[^/]+/(.+/)?$")
    ground_truth_min_records: int = Field(alias="GroundTruthMinRecords", ge=2)

    @property
    def window(self) -> tuple[datetime, datetime]:
        end = self.window_end.astimezone(UTC)
        return end - timedelta(minutes=self.window_minutes), end


def describe_endpoint(sagemaker_client: Any, endpoint_name: str) -> dict[str, Any] | None:
    """DescribeEndpoint, or None when SageMaker says the endpoint does not exist."""
    try:
        return dict(sagemaker_client.describe_endpoint(EndpointName=endpoint_name))
    except ClientError as error:
        message = str(error.response.get("Error", {}).get("Message", ""))
        if error.response.get("Error", {}).get("Code") == "ValidationException" and "Could not find" in message:
            return None
        raise


def served_package_arn(sagemaker_client: Any, endpoint: dict[str, Any]) -> str:
    """The model package the endpoint serves, from its `mlops:model-package-arn` tag."""
    tags = sagemaker_client.list_tags(ResourceArn=endpoint["EndpointArn"]).get("Tags", [])
    arn = next((tag["Value"] for tag in tags if tag["Key"] == MODEL_PACKAGE_ARN_TAG), "")
    if not arn:
        raise MonitoringWindowError(
            f"endpoint {endpoint['EndpointName']} has no tag {MODEL_PACKAGE_ARN_TAG}: monitoring cannot tell which "
            "package (so which baseline) it serves; deploy it with the deploy state machine, which sets the tag"
        )
    return str(arn)


def baseline_prefix(sagemaker_client: Any, package_arn: str) -> str:
    """`s3://.../baseline/`: the folder of the package's DriftCheckBaselines data-quality statistics."""
    package = sagemaker_client.describe_model_package(ModelPackageName=package_arn)
    statistics = (
        ((package.get("DriftCheckBaselines") or {}).get("ModelDataQuality") or {}).get("Statistics") or {}
    ).get("S3Uri", "")
    if not statistics.startswith("s3://") or "/" not in statistics.removeprefix("s3://"):
        raise MonitoringWindowError(
            f"model package {package_arn} has no DriftCheckBaselines.ModelDataQuality.Statistics.S3Uri "
            f"(got {statistics!r}): it was registered without a baseline; retrain it so training registers one"
        )
    return statistics.rsplit("/", 1)[0] + "/"


def capture_destination(endpoint: dict[str, Any]) -> str:
    """The endpoint's data capture destination, `s3://bucket/prefix` without a trailing slash."""
    capture = endpoint.get("DataCaptureConfig") or {}
    destination = str(capture.get("DestinationS3Uri", "")).rstrip("/")
    if not capture.get("EnableCapture") or not destination.startswith("s3://"):
        raise MonitoringWindowError(
            f"endpoint {endpoint['EndpointName']} does not capture its data (DataCaptureConfig {capture or 'absent'}): "
            "monitoring has nothing to read; redeploy it with the deploy state machine, whose config enables capture"
        )
    return destination


def hours_of(start: datetime, end: datetime) -> Iterator[datetime]:
    """The start of every UTC hour that overlaps [start, end)."""
    hour = start.replace(minute=0, second=0, microsecond=0)
    while hour < end:
        yield hour
        hour += timedelta(hours=1)


def capture_file_time(key: str) -> datetime | None:
    """When a capture file was written, from its hour folder and its `<MM>-<SS>-` name; None for another name."""
    folder = _HOUR_FOLDER.search(key)
    name = _CAPTURE_FILE_TIME.match(key.rsplit("/", 1)[-1])
    if folder is None or name is None:
        return None
    return datetime(
        int(folder["year"]),
        int(folder["month"]),
        int(folder["day"]),
        int(folder["hour"]),
        int(name["minute"]),
        int(name["second"]),
        tzinfo=UTC,
    )


def window_keys(
    s3_client: Any, bucket: str, folder_prefix: str, suffix: str, start: datetime, end: datetime
) -> tuple[list[str], list[str]]:
    """(keys under `folder_prefix`yyyy/mm/dd/hh/ whose folder and name time is in [start, end), keys ending in
    `suffix` whose name gives no time), over the hour folders the window overlaps."""
    paginator = s3_client.get_paginator("list_objects_v2")
    keys: list[str] = []
    unrecognised: list[str] = []
    for hour in hours_of(start, end):
        for page in paginator.paginate(Bucket=bucket, Prefix=f"{folder_prefix}{hour:%Y/%m/%d/%H}/"):
            for item in page.get("Contents", []):
                key = item["Key"]
                if not key.endswith(suffix):
                    continue
                written = capture_file_time(key)
                if written is None:
                    unrecognised.append(key)
                elif start <= written < end:
                    keys.append(key)
    return keys, unrecognised


def window_capture_keys(
    s3_client: Any, destination: str, endpoint: dict[str, Any], start: datetime, end: datetime
) -> tuple[list[str], list[str]]:
    """(keys in the window, keys skipped for a name SageMaker does not write), over every variant, sorted."""
    bucket, prefix = split_s3_uri(destination + "/")
    variants = sorted(variant["VariantName"] for variant in endpoint.get("ProductionVariants") or [])
    keys: list[str] = []
    unrecognised: list[str] = []
    for variant in variants:
        found, odd = window_keys(
            s3_client, bucket, f"{prefix}{endpoint['EndpointName']}/{variant}/", CAPTURE_SUFFIX, start, end
        )
        keys.extend(found)
        unrecognised.extend(odd)
    return sorted(keys), sorted(unrecognised)


def served_model_name(sagemaker_client: Any, endpoint: dict[str, Any]) -> str:
    """The model of the endpoint's current production variant: the largest current weight, then the first name."""
    variants = endpoint.get("ProductionVariants") or []
    if not variants:
        raise MonitoringWindowError(f"endpoint {endpoint['EndpointName']} has no production variant to score with")
    current = sorted(variants, key=lambda v: (-float(v.get("CurrentWeight", 0.0)), v["VariantName"]))[0]
    config = sagemaker_client.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    models = {v["VariantName"]: v.get("ModelName", "") for v in config.get("ProductionVariants") or []}
    if not models.get(current["VariantName"]):
        raise MonitoringWindowError(
            f"endpoint config {endpoint['EndpointConfigName']} names no model for variant {current['VariantName']} "
            f"of endpoint {endpoint['EndpointName']}: redeploy it with the deploy state machine"
        )
    return str(models[current["VariantName"]])


def count_records(s3_client: Any, bucket: str, key: str, enough: int) -> int:
    """A ground-truth file's records (its non-blank lines after the header), read as a stream and only until
    `enough` are counted: the decision needs no more, and the function's time stays bounded by the minimum."""
    body = s3_client.get_object(Bucket=bucket, Key=key)["Body"]
    lines = 0
    try:
        for line in body.iter_lines():
            lines += 1 if line.strip() else 0
            if lines - 1 >= enough:
                break
    finally:
        body.close()
    return max(0, lines - 1)


def find_ground_truth(
    request: MonitoringWindowRequest, s3_client: Any, sagemaker_client: Any, endpoint: dict[str, Any]
) -> dict[str, Any]:
    """The window's ground truth: Ready with its manifest and the model to score, or Skipped with the reason."""
    start, end = request.window
    bucket, prefix = split_s3_uri(request.ground_truth_s3_uri)
    keys, unrecognised = window_keys(s3_client, bucket, prefix, GROUND_TRUTH_SUFFIX, start, end)
    keys.sort()
    if unrecognised:
        logger.warning(
            "ground-truth files whose names give no time (yyyy/mm/dd/hh/<MM>-<SS>-<name>.csv) were left out",
            extra={"count": len(unrecognised), "examples": sorted(unrecognised)[:5]},
        )
    minimum = request.ground_truth_min_records
    records = 0
    for key in keys:
        records += count_records(s3_client, bucket, key, enough=minimum - records)
        if records >= minimum:
            break
    counts = {"Records": records, "Files": len(keys), "MinRecords": minimum}
    if records < minimum:
        where = f"{request.ground_truth_s3_uri} from {iso_utc(start)} to {iso_utc(end)}"
        reason = f"{records} labelled record(s) in {len(keys)} file(s) under {where}, fewer than the {minimum} needed"
        logger.info("model quality skipped", extra={"reason": reason, **counts})
        return {"Status": "Skipped", "Reason": reason, **counts}
    manifest_uri = f"{request.run_s3_uri}{GROUND_TRUTH_MANIFEST_FILE_NAME}"
    write_manifest(s3_client, manifest_uri, f"s3://{bucket}/{prefix}".rstrip("/"), keys)
    folders = {name: f"{request.run_s3_uri}{folder}" for name, folder in QUALITY_FOLDERS.items()}
    return {
        "Status": "Ready",
        "ManifestS3Uri": manifest_uri,
        "ModelName": served_model_name(sagemaker_client, endpoint),
        **folders,
        **counts,
    }


def write_manifest(s3_client: Any, manifest_uri: str, destination: str, keys: list[str]) -> None:
    """A SageMaker ManifestFile: the common prefix first, then each object's key relative to it."""
    bucket, prefix = split_s3_uri(destination + "/")
    manifest = [{"prefix": f"s3://{bucket}/{prefix}"}, *(key[len(prefix) :] for key in keys)]
    manifest_bucket, manifest_key = split_s3_uri(manifest_uri)
    # The bucket's default encryption (the stack key) applies; its policy refuses any other key.
    s3_client.put_object(
        Bucket=manifest_bucket,
        Key=manifest_key,
        Body=json.dumps(manifest).encode("utf-8"),
        ContentType="application/json",
    )


def find_window(request: MonitoringWindowRequest, sagemaker_client: Any, s3_client: Any) -> dict[str, Any]:
    """What the monitoring run has to analyze, or why it has nothing to (see the module docstring)."""
    start, end = request.window
    window = {"EndpointName": request.endpoint_name, "WindowStart": iso_utc(start), "WindowEnd": iso_utc(end)}
    endpoint = describe_endpoint(sagemaker_client, request.endpoint_name)
    if endpoint is None or endpoint.get("EndpointStatus") == "Deleting":
        # Never deployed, reaped, or being reaped: nothing serves, so nothing is monitored.
        return {"Status": "NoEndpoint", **window}
    if endpoint.get("EndpointStatus") == "Creating":
        # A first deployment still starting has served nothing yet, and has no model to score ground truth with.
        reason = "the endpoint is still being created: no model serves yet to score ground truth with"
        logger.info("model quality skipped", extra={"reason": reason})
        skipped = {"Status": "Skipped", "Reason": reason, "MinRecords": request.ground_truth_min_records}
        return {"Status": "NoData", "GroundTruth": skipped, **window}
    package_arn = served_package_arn(sagemaker_client, endpoint)
    baseline = baseline_prefix(sagemaker_client, package_arn)
    destination = capture_destination(endpoint)
    keys, unrecognised = window_capture_keys(s3_client, destination, endpoint, start, end)
    if unrecognised:
        logger.warning(
            "capture files with names SageMaker does not write were left out",
            extra={"count": len(unrecognised), "examples": unrecognised[:5]},
        )
    ground_truth = find_ground_truth(request, s3_client, sagemaker_client, endpoint)
    # The model-quality part splits ground truth by the baseline's feature order, with or without capture.
    served = {"BaselineS3Uri": baseline, "ModelPackageArn": package_arn, "GroundTruth": ground_truth}
    if not keys:
        return {"Status": "NoData", **served, **window}
    manifest_uri = f"{request.run_s3_uri}{MANIFEST_FILE_NAME}"
    write_manifest(s3_client, manifest_uri, destination, keys)
    return {
        "Status": "Ready",
        "CaptureManifestS3Uri": manifest_uri,
        "ReportS3Uri": f"{request.run_s3_uri}{REPORT_FOLDER}",
        "CaptureFiles": len(keys),
        **served,
        **window,
    }


@instrumented_handler(correlation_id_path="EndpointName")
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = validated_request(MonitoringWindowRequest, event, "monitoring_window")
    try:
        result = find_window(request, boto3.client("sagemaker"), boto3.client("s3"))
    except MonitoringWindowError:
        count_decision("MonitoringWindowUnusable")
        raise
    count_decision(f"MonitoringWindow{result['Status']}")
    logger.info(f"monitoring window {result['Status']}", extra={"window": result})
    return result
