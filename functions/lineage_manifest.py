"""Glue before `RegisterModelPackage`: one training execution's complete lineage, written under S3 Object Lock.

Called by a `LambdaStep` (workflows/training.py, `WriteLineageManifest`) with the execution's facts: its ARN, name
and start time, the snapshot of its data (functions/training_data_snapshot.py), the trigger, the preprocessing and
training job descriptions as the `.sync` tasks returned them, the evaluation report's URI and the gate's result,
the drift baseline's URIs, the code (`SourceDirUri`, `SourceCommit`) and the image. It writes

    s3://<GovernanceBucket>/lineage/<model package group>/<execution name>/evaluation.json  (a copy of the report)
    s3://<GovernanceBucket>/lineage/<model package group>/<execution name>/manifest.json

with SSE-KMS under the stack key and an S3 SHA-256 checksum; the bucket's default retention (GOVERNANCE mode)
locks each version. The manifest's bytes depend only on the payload and the objects it names (no wall-clock time),
so a retried state writes the same bytes and the same SHA-256 again. Returns `{"manifest_uri", "manifest_sha256",
"manifest_version_id", "evaluation_copy_uri", "evaluation_sha256"}`; the state machine records the first three on
the model package (`lineage_manifest_uri`, `lineage_manifest_sha256`, `lineage_manifest_version_id`).

The sourcedir's SHA-256 is the folder name of its content-addressed key (the ML code publisher names the tarball
`code/<sha256>/sourcedir.tar.gz`, and only it may write there). The image digest comes from ECR's DescribeImages
where the registry answers; SageMaker's framework registries belong to AWS, so it may be unavailable, and the
manifest then says why instead of inventing one.

Errors raise: `InvalidPayloadError` for a bad payload, `LineageError` for a snapshot record or report that cannot
be used (missing, or not matching the SHA-256 the snapshot step returned).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from common.observability import count_decision, instrumented_handler, logger
from common.parsing import MISSING_OBJECT_CODES, split_s3_uri, validated_request
from common.settings import SettingsError
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

MANIFEST_SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
EVALUATION_NAME = "evaluation.json"
_SOURCEDIR_KEY = re.compile(r"/(?P<sha256>[0-9a-f]{64})/sourcedir\.tar\.gz$")
# Script-mode settings SageMaker's SDK adds: part of the job, but not the model's hyperparameters.
_SCRIPT_MODE_HYPERPARAMETERS = ("sagemaker_program", "sagemaker_submit_directory")


class LineageError(RuntimeError):
    """A record the manifest must contain cannot be read or does not match its checksum."""


class Snapshot(BaseModel):
    data_uri: str
    snapshot_uri: str
    record_uri: str = Field(pattern=r"^s3://[^/]+/.+")
    record_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class ManifestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    governance_bucket: str = Field(min_length=3)
    model_package_group_name: str = Field(min_length=1)
    execution_arn: str = Field(min_length=1)
    execution_name: str = Field(pattern=r"^[A-Za-z0-9-]{1,80}$")
    state_machine_arn: str
    data_uri: str
    snapshot: Snapshot
    trigger: dict[str, Any]
    trigger_objects: list[dict[str, Any]] = Field(default_factory=list)
    tune: bool = False
    warm_start_tuning_job: str | None = None
    bias: dict[str, Any] = Field(default_factory=dict)
    preprocess: dict[str, Any]
    training: dict[str, Any]
    evaluation_uri: str = Field(pattern=r"^s3://[^/]+/.+")
    report: dict[str, Any]
    baseline: dict[str, str]
    source_dir_uri: str
    source_commit: str
    image_uri: str


def canonical_json(document: Any) -> bytes:
    """The one serialisation of records whose SHA-256 is compared: sorted keys, two-space indent, a final newline."""
    return json.dumps(document, sort_keys=True, indent=2).encode("utf-8") + b"\n"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read(s3_client: Any, uri: str, what: str) -> bytes:
    bucket, key = split_s3_uri(uri)
    try:
        body: bytes = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in MISSING_OBJECT_CODES:
            raise
        raise LineageError(f"{what} {uri} does not exist") from None
    return body


def read_snapshot_record(s3_client: Any, snapshot: Snapshot) -> dict[str, Any]:
    """The snapshot step's record of data objects, checked against the SHA-256 it returned."""
    body = _read(s3_client, snapshot.record_uri, "the data snapshot record")
    actual = sha256_hex(body)
    if actual != snapshot.record_sha256:
        raise LineageError(
            f"{snapshot.record_uri} has SHA-256 {actual}, not the {snapshot.record_sha256} the snapshot step "
            "returned: the record changed after the snapshot"
        )
    record: dict[str, Any] = json.loads(body)
    return record


def container_arguments(arguments: list[str]) -> dict[str, str]:
    """`["--seed", "42", ...]` -> `{"seed": "42", ...}`: the preprocessing parameters as the job received them."""
    parameters: dict[str, str] = {}
    index = 0
    while index < len(arguments):
        name = arguments[index]
        if name.startswith("--") and index + 1 < len(arguments) and not arguments[index + 1].startswith("--"):
            parameters[name[2:]] = arguments[index + 1]
            index += 2
        else:
            parameters[name.lstrip("-")] = "true"
            index += 1
    return parameters


def sourcedir_sha256(source_dir_uri: str) -> str | None:
    match = _SOURCEDIR_KEY.search(source_dir_uri)
    return match.group("sha256") if match else None


def image_digest(ecr_client: Any, image_uri: str) -> dict[str, Any]:
    """`{"digest": "sha256:..."}` from ECR, or `{"digest": None, "digest_unavailable": why}`."""
    match = re.match(r"^(?P<registry>\d{12})\.dkr\.ecr\.[^/]+/(?P<repository>[^:@]+)(?::(?P<tag>[^@]+))?", image_uri)
    if not match or not match.group("tag"):
        return {"digest": None, "digest_unavailable": f"{image_uri} is not an ECR image URI with a tag"}
    try:
        details = ecr_client.describe_images(
            registryId=match.group("registry"),
            repositoryName=match.group("repository"),
            imageIds=[{"imageTag": match.group("tag")}],
        )["imageDetails"]
    except (ClientError, BotoCoreError) as error:
        return {"digest": None, "digest_unavailable": f"ECR DescribeImages did not answer: {error}"}
    if not details:
        return {"digest": None, "digest_unavailable": "ECR DescribeImages returned no image for the tag"}
    return {"digest": details[0].get("imageDigest"), "digest_source": "ECR DescribeImages"}


def _training_section(training: dict[str, Any], tune: bool) -> dict[str, Any]:
    hyperparameters = {
        name: value
        for name, value in (training.get("HyperParameters") or {}).items()
        if name not in _SCRIPT_MODE_HYPERPARAMETERS
    }
    channels = {
        channel.get("ChannelName"): channel.get("DataSource", {}).get("S3DataSource", {}).get("S3Uri")
        for channel in training.get("InputDataConfig") or []
    }
    return {
        "job_name": training.get("TrainingJobName"),
        "job_arn": training.get("TrainingJobArn"),
        "tuning_job_arn": training.get("TuningJobArn"),
        "tuned": tune,
        "hyperparameters": hyperparameters,
        "input_channels": channels,
        "final_metrics": {
            metric.get("MetricName"): metric.get("Value") for metric in training.get("FinalMetricDataList") or []
        },
        "model_artifact": (training.get("ModelArtifacts") or {}).get("S3ModelArtifacts"),
    }


def build_manifest(
    request: ManifestRequest, record: dict[str, Any], evaluation_sha256: str, evaluation_copy_uri: str, image: dict
) -> dict[str, Any]:
    """The manifest document (docs/interfaces.md, lineage manifest)."""
    preprocess = request.preprocess
    app = preprocess.get("AppSpecification") or {}
    parameters = container_arguments([str(argument) for argument in app.get("ContainerArguments") or []])
    report = request.report
    sha = sourcedir_sha256(request.source_dir_uri)
    return {
        "schema_version": MANIFEST_SCHEMA_VERSION,
        "model_package_group": request.model_package_group_name,
        "execution": {
            "arn": request.execution_arn,
            "name": request.execution_name,
            "state_machine_arn": request.state_machine_arn,
        },
        "trigger": {**request.trigger, "objects": request.trigger_objects},
        "data": {
            "data_uri": request.data_uri,
            "snapshot_uri": record.get("snapshot_uri"),
            "record_uri": request.snapshot.record_uri,
            "record_sha256": request.snapshot.record_sha256,
            "checksum_algorithm": record.get("checksum_algorithm"),
            "pinned": record.get("pinned", False),
            "objects": record.get("objects", []),
        },
        "preprocessing": {
            "job_name": preprocess.get("ProcessingJobName"),
            "job_arn": preprocess.get("ProcessingJobArn"),
            "parameters": parameters,
            "seed": parameters.get("seed"),
            "bias_facet": request.bias,
        },
        "code": {
            "source_dir_uri": request.source_dir_uri,
            "sourcedir_sha256": sha,
            "source_commit": request.source_commit,
        },
        "image": {"uri": request.image_uri, **image},
        "training": {
            **_training_section(request.training, request.tune),
            "warm_start_tuning_job": request.warm_start_tuning_job,
        },
        "evaluation": {
            "report_uri": request.evaluation_uri,
            "report_sha256": evaluation_sha256,
            "governance_copy_uri": evaluation_copy_uri,
            "metric_name": report.get("metric_name"),
            "metric_value": report.get("metric_value"),
            "metrics": report.get("metrics"),
            "champion_value": report.get("champion_value"),
            "champion_model_package_arn": report.get("champion_model_package_arn"),
            "bias_gate": {key: (report.get("bias_gate") or {}).get(key) for key in ("passed", "reason")},
        },
        "drift_baseline": dict(request.baseline),
    }


def _put(s3_client: Any, bucket: str, key: str, body: bytes, kms_key_arn: str) -> str:
    """Writes one locked record; returns its version id."""
    response = s3_client.put_object(
        Bucket=bucket,
        Key=key,
        Body=body,
        ContentType="application/json",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=kms_key_arn,
        # Object Lock buckets require an integrity checksum on every put; SHA-256 is also what the manifest states.
        ChecksumAlgorithm="SHA256",
    )
    return str(response.get("VersionId", ""))


def write_lineage(request: ManifestRequest, kms_key_arn: str, s3_client: Any, ecr_client: Any) -> dict[str, Any]:
    """Copies the evaluation report and writes the manifest; returns where and their SHA-256."""
    folder = f"lineage/{request.model_package_group_name}/{request.execution_name}/"
    record = read_snapshot_record(s3_client, request.snapshot)
    if record.get("data_uri") != request.data_uri:
        raise LineageError(
            f"{request.snapshot.record_uri} records {record.get('data_uri')}, not this execution's {request.data_uri}"
        )
    evaluation = _read(s3_client, request.evaluation_uri, "the evaluation report")
    evaluation_key = folder + EVALUATION_NAME
    _put(s3_client, request.governance_bucket, evaluation_key, evaluation, kms_key_arn)
    evaluation_copy_uri = f"s3://{request.governance_bucket}/{evaluation_key}"
    evaluation_sha256 = sha256_hex(evaluation)
    image = image_digest(ecr_client, request.image_uri)
    manifest = build_manifest(request, record, evaluation_sha256, evaluation_copy_uri, image)
    body = canonical_json(manifest)
    manifest_key = folder + MANIFEST_NAME
    version_id = _put(s3_client, request.governance_bucket, manifest_key, body, kms_key_arn)
    return {
        "manifest_uri": f"s3://{request.governance_bucket}/{manifest_key}",
        "manifest_sha256": sha256_hex(body),
        "manifest_version_id": version_id,
        "evaluation_copy_uri": evaluation_copy_uri,
        "evaluation_sha256": evaluation_sha256,
    }


def _kms_key_arn() -> str:
    value = os.environ.get("KMS_KEY_ARN", "").strip()
    if not value:
        raise SettingsError("environment variable KMS_KEY_ARN is not set; set it in the function's Environment")
    return value


@instrumented_handler(correlation_id_path="execution_name")
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    kms_key_arn = _kms_key_arn()
    request = validated_request(ManifestRequest, event, "lineage_manifest")
    result = write_lineage(request, kms_key_arn, boto3.client("s3"), boto3.client("ecr"))
    count_decision("LineageManifestWritten")
    logger.info("lineage manifest written", extra={"result": result})
    return result
