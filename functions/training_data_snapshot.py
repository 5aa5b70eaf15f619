"""Glue for `training`'s first task: the exact data a training reads, recorded and frozen before preprocessing.

Called by a `LambdaStep` with `{"data_uri": "s3://<DataBucket>/<prefix>", "execution_name": "...", "data_versions":
[]}`. The data
location must lie under the stack's data prefix (`DATA_BUCKET_NAME`, `DATA_PREFIX`): anything else raises
`DataLocationError`, which the state machine turns into the named Fail `DataOutsideStackPrefix`.

Every object under `data_uri` is read once, by `GetObject` of its current version: that one response gives the
`VersionId`, the `ETag` and the bytes, whose SHA-256 this function computes while streaming them. The SHA-256 is
computed here rather than taken from S3's additional checksums because those exist only when the uploader asked
for them, and a multipart upload's is a checksum of part checksums, not of the object; a hash of the bytes read is
defined for every object and is what a reproducer can recompute. Then `CopyObject` copies exactly that version
(by `VersionId`) to `s3://<ArtifactBucket>/runs/<execution>/data/<path below the prefix>`, which preprocessing
reads: an object overwritten in the data bucket after this step cannot change what the training reads, nor its
lineage. SageMaker reads a prefix, not object versions, so the copy is what closes that race.

`data_versions` (`[{"key", "version_id", "sha256"}]`, from `mlops lineage --training-input`) pins the data instead
of taking the current versions: exactly those versions are read, each must still exist and hash to its recorded
SHA-256, and each key must lie under `data_uri`; that is how an execution reproduces an earlier one's data.

The list of objects is written to `runs/<execution>/data-snapshot.json` (it can exceed what a state may carry);
the result is `{"data_uri", "snapshot_uri", "record_uri", "record_sha256", "object_count", "total_bytes"}`.
A retry of the same execution that finds the record returns it instead of snapshotting newer versions; one that
finds copies the new record would not list (an object of an earlier attempt deleted since) refuses.

Errors raise: `InvalidPayloadError` (bad payload), `DataLocationError` (outside the stack's data prefix),
`SnapshotError` (no objects, an unversioned bucket, an object CopyObject cannot copy in one request).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError
from common.observability import count_decision, instrumented_handler, logger
from common.parsing import MISSING_OBJECT_CODES, validated_request
from common.settings import SettingsError
from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from collections.abc import Mapping

    from aws_lambda_powertools.utilities.typing import LambdaContext

# CopyObject copies at most 5 GiB in one request; larger objects would need a multipart copy.
MAX_COPY_BYTES = 5 * 1024**3
READ_CHUNK_BYTES = 8 * 1024 * 1024
SNAPSHOT_FOLDER = "data/"
RECORD_NAME = "data-snapshot.json"
CHECKSUM_ALGORITHM = "SHA-256"


class DataLocationError(ValueError):
    """The execution's data_uri is not under the stack's data bucket and prefix."""


class SnapshotError(RuntimeError):
    """The data cannot be snapshotted as lineage needs it; the message names the object or bucket and why."""


class PinnedVersion(BaseModel):
    key: str = Field(min_length=1)
    version_id: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class SnapshotRequest(BaseModel):
    data_uri: str = Field(pattern=r"^s3://[^/]+(/.*)?$")
    execution_name: str = Field(pattern=r"^[A-Za-z0-9-]{1,80}$")
    data_versions: list[PinnedVersion] = Field(default_factory=list)


@dataclass(frozen=True)
class SnapshotSettings:
    data_bucket: str
    data_prefix: str
    artifact_bucket: str
    kms_key_arn: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SnapshotSettings:
        source = os.environ if env is None else env
        values = {}
        for field_name, variable in (
            ("data_bucket", "DATA_BUCKET_NAME"),
            ("data_prefix", "DATA_PREFIX"),
            ("artifact_bucket", "ARTIFACT_BUCKET_NAME"),
            ("kms_key_arn", "KMS_KEY_ARN"),
        ):
            value = source.get(variable, "").strip()
            if not value:
                raise SettingsError(f"environment variable {variable} is not set; set it in the function's Environment")
            values[field_name] = value
        if not values["data_prefix"].endswith("/"):
            raise SettingsError(f"environment variable DATA_PREFIX={values['data_prefix']!r} must end with '/'")
        return cls(**values)


def check_data_location(data_uri: str, settings: SnapshotSettings) -> tuple[str, str]:
    """(bucket, key prefix) of `data_uri`, which must lie under the stack's data bucket and prefix."""
    bucket, _, prefix = data_uri.removeprefix("s3://").partition("/")
    stack_location = f"s3://{settings.data_bucket}/{settings.data_prefix}"
    segments = prefix.split("/")
    if bucket != settings.data_bucket or not prefix.startswith(settings.data_prefix) or ".." in segments:
        raise DataLocationError(
            f"data_uri {data_uri} is outside the stack's data location {stack_location}: training reads only data "
            "under it (upload there, or start the execution without data_uri)"
        )
    return bucket, prefix


def _record_key(execution_name: str) -> str:
    return f"runs/{execution_name}/{RECORD_NAME}"


def _existing_record(s3_client: Any, settings: SnapshotSettings, execution_name: str) -> dict[str, Any] | None:
    try:
        body = s3_client.get_object(Bucket=settings.artifact_bucket, Key=_record_key(execution_name))["Body"].read()
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in MISSING_OBJECT_CODES:
            return None
        raise
    record: dict[str, Any] = json.loads(body)
    return record


def _current_keys(s3_client: Any, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(item["Key"] for item in page.get("Contents", []) if not item["Key"].endswith("/"))
    return sorted(keys)


def _read_version(s3_client: Any, bucket: str, key: str, version_id: str | None = None) -> dict[str, Any]:
    """One version of an object (default: the current one): its version id, ETag, size and the bytes' SHA-256."""
    try:
        response = s3_client.get_object(Bucket=bucket, Key=key, **({"VersionId": version_id} if version_id else {}))
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code")
        if version_id and code in {"NoSuchVersion", "NoSuchKey", "InvalidArgument", "404"}:
            raise SnapshotError(
                f"s3://{bucket}/{key} version {version_id} no longer exists ({code}): the data cannot be reproduced "
                "(the data bucket expires superseded versions after its lifecycle rule's days)"
            ) from None
        raise
    version_id = response.get("VersionId")
    if not version_id or version_id == "null":
        raise SnapshotError(
            f"s3://{bucket}/{key} has no version id: bucket {bucket} is not versioned, so the data trained on could "
            "not be named; enable versioning on it (template.yaml does)"
        )
    digest = hashlib.sha256()
    body = response["Body"]
    for chunk in iter(lambda: body.read(READ_CHUNK_BYTES), b""):
        digest.update(chunk)
    return {
        "bucket": bucket,
        "key": key,
        "version_id": version_id,
        "etag": str(response.get("ETag", "")).strip('"'),
        "size": int(response.get("ContentLength", 0)),
        "sha256": digest.hexdigest(),
        "last_modified": response["LastModified"].isoformat() if response.get("LastModified") else None,
    }


def snapshot_training_data(request: SnapshotRequest, settings: SnapshotSettings, s3_client: Any) -> dict[str, Any]:
    """Records and copies every object under `data_uri` (see the module's docstring); returns the result."""
    bucket, prefix = check_data_location(request.data_uri, settings)
    run = f"runs/{request.execution_name}/"
    snapshot_uri = f"s3://{settings.artifact_bucket}/{run}{SNAPSHOT_FOLDER}"
    record_uri = f"s3://{settings.artifact_bucket}/{_record_key(request.execution_name)}"
    existing = _existing_record(s3_client, settings, request.execution_name)
    if existing is not None:
        if existing.get("data_uri") != request.data_uri or existing.get("pinned", False) != bool(request.data_versions):
            raise SnapshotError(
                f"{record_uri} already records {existing.get('data_uri')}, not {request.data_uri}: an execution "
                "name is reused with other data"
            )
        logger.info("snapshot already taken", extra={"record_uri": record_uri})
        count_decision("SnapshotReused")
        return _result(existing, record_uri, snapshot_uri)
    pinned = {version.key: version for version in request.data_versions}
    if pinned:
        outside = [key for key in pinned if not key.startswith(prefix)]
        if outside:
            raise DataLocationError(f"data_versions name keys outside {request.data_uri}: {', '.join(outside[:5])}")
        keys = sorted(pinned)
    else:
        keys = _current_keys(s3_client, bucket, prefix)
    if not keys:
        raise SnapshotError(f"no objects under {request.data_uri}: nothing to train on")
    # Paths below the prefix's folder, as SageMaker stages an S3Prefix input.
    base = prefix[: prefix.rfind("/") + 1]
    objects = []
    for key in keys:
        wanted = pinned.get(key)
        entry = _read_version(s3_client, bucket, key, wanted.version_id if wanted else None)
        if wanted and entry["sha256"] != wanted.sha256:
            raise SnapshotError(
                f"s3://{bucket}/{key} version {wanted.version_id} has SHA-256 {entry['sha256']}, not the pinned "
                f"{wanted.sha256}: it is not the data recorded"
            )
        if entry["size"] > MAX_COPY_BYTES:
            raise SnapshotError(
                f"s3://{bucket}/{key} is {entry['size']} bytes, above the {MAX_COPY_BYTES} a single CopyObject copies; "
                "split it into smaller objects"
            )
        relative = key[len(base) :]
        if ".." in relative.split("/"):
            raise SnapshotError(f"s3://{bucket}/{key} has a '..' segment: its copy would land outside {snapshot_uri}")
        target = f"{run}{SNAPSHOT_FOLDER}{relative}"
        s3_client.copy_object(
            Bucket=settings.artifact_bucket,
            Key=target,
            CopySource={"Bucket": bucket, "Key": key, "VersionId": entry["version_id"]},
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=settings.kms_key_arn,
        )
        objects.append({**entry, "snapshot_key": target})
    # A copy left by an earlier attempt of this execution whose object has gone since would be read by
    # preprocessing without being in the record: refuse rather than train on data the lineage does not name.
    copied = set(_current_keys(s3_client, settings.artifact_bucket, f"{run}{SNAPSHOT_FOLDER}"))
    unlisted = sorted(copied - {entry["snapshot_key"] for entry in objects})
    if unlisted:
        raise SnapshotError(
            f"{snapshot_uri} holds copies the snapshot does not list ({', '.join(unlisted[:5])}): an earlier attempt "
            "of this execution copied objects that are gone now; start a new execution"
        )
    record = {
        "data_uri": request.data_uri,
        "snapshot_uri": snapshot_uri,
        "checksum_algorithm": CHECKSUM_ALGORITHM,
        "pinned": bool(pinned),
        "objects": objects,
    }
    body = json.dumps(record, sort_keys=True, indent=2).encode("utf-8") + b"\n"
    s3_client.put_object(
        Bucket=settings.artifact_bucket,
        Key=_record_key(request.execution_name),
        Body=body,
        ContentType="application/json",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=settings.kms_key_arn,
    )
    count_decision("SnapshotTaken")
    return _result(record, record_uri, snapshot_uri)


def _result(record: dict[str, Any], record_uri: str, snapshot_uri: str) -> dict[str, Any]:
    body = json.dumps(record, sort_keys=True, indent=2).encode("utf-8") + b"\n"
    objects = record.get("objects", [])
    return {
        "data_uri": record.get("data_uri"),
        "snapshot_uri": snapshot_uri,
        "record_uri": record_uri,
        "record_sha256": hashlib.sha256(body).hexdigest(),
        "object_count": len(objects),
        "total_bytes": sum(int(entry.get("size", 0)) for entry in objects),
    }


@instrumented_handler(correlation_id_path="execution_name")
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = SnapshotSettings.from_env()
    request = validated_request(SnapshotRequest, event, "training_data_snapshot")
    try:
        result = snapshot_training_data(request, settings, boto3.client("s3"))
    except DataLocationError:
        count_decision("DataOutsideStackPrefix")
        raise
    logger.info("training data snapshotted", extra={"result": result})
    return result
