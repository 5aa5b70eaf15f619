"""Move job inputs and outputs between moto's S3 and a job's local directories, as SageMaker's agents do."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path
from typing import Any

import boto3

# Files up to this size are uploaded with one PutObject, and downloads stream one GetObject into the file:
# boto3's managed transfers start a thread pool per call (several milliseconds each, a dozen times per
# training execution). Larger uploads keep them, for multipart. The threshold is boto3's own default.
_SINGLE_REQUEST_MAX_BYTES = 8 * 1024 * 1024


def split_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/key/prefix` -> (`bucket`, `key/prefix`); fails naming the value otherwise."""
    if not uri.startswith("s3://") or len(uri) <= len("s3://"):
        raise ValueError(f"Expected an s3://bucket/key URI, got {uri!r}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


class S3Stager:
    """Downloads prefixes into directories and uploads directories to prefixes through moto's S3."""

    def __init__(self, region: str) -> None:
        self._client = boto3.client("s3", region_name=region)

    def download(self, uri: str, destination: Path) -> list[Path]:
        """Copy the object `uri`, or every object under the prefix `uri`, into `destination`."""
        bucket, key = split_s3_uri(uri)
        destination.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        paginator = self._client.get_paginator("list_objects_v2")
        keys = [
            obj["Key"] for page in paginator.paginate(Bucket=bucket, Prefix=key) for obj in page.get("Contents", [])
        ]
        for object_key in keys:
            if object_key.endswith("/"):
                continue
            # SageMaker matches an S3 prefix literally: the part after it is the file's relative path, and
            # a URI naming one object yields that object under its own name.
            relative = Path(object_key).name if object_key == key else object_key[len(key) :].lstrip("/")
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            body = self._client.get_object(Bucket=bucket, Key=object_key)["Body"]
            with target.open("wb") as local_file:
                shutil.copyfileobj(body, local_file)
            written.append(target)
        if not written:
            raise FileNotFoundError(f"No S3 object found at {uri}")
        return written

    def upload_directory(self, source: Path, uri: str, kms_key_id: str | None = None) -> list[str]:
        """Upload every file under `source` to the prefix `uri`; returns the object URIs."""
        bucket, key = split_s3_uri(uri)
        prefix = key.rstrip("/")
        uploaded = []
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            object_key = (
                f"{prefix}/{path.relative_to(source).as_posix()}" if prefix else path.relative_to(source).as_posix()
            )
            self.upload_file(path, f"s3://{bucket}/{object_key}", kms_key_id)
            uploaded.append(f"s3://{bucket}/{object_key}")
        return uploaded

    def upload_file(self, source: Path, uri: str, kms_key_id: str | None = None) -> None:
        bucket, key = split_s3_uri(uri)
        extra: dict[str, Any] = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id} if kms_key_id else {}
        if source.stat().st_size > _SINGLE_REQUEST_MAX_BYTES:
            self._client.upload_file(str(source), bucket, key, ExtraArgs=extra or None)
            return
        with source.open("rb") as body:
            self._client.put_object(Bucket=bucket, Key=key, Body=body, **extra)

    def put_bytes(self, body: bytes, uri: str, kms_key_id: str | None = None) -> None:
        bucket, key = split_s3_uri(uri)
        extra: dict[str, Any] = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id} if kms_key_id else {}
        self._client.put_object(Bucket=bucket, Key=key, Body=body, **extra)


def tar_directory(source: Path, archive: Path) -> Path:
    """Write `source`'s contents (not the folder itself) into the gzipped tarball `archive`, as SageMaker does."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(source.iterdir()):
            tar.add(path, arcname=path.name)
    return archive


def extract_tarball(archive: Path, destination: Path) -> Path:
    """Extract a job's own tarball (model or sourcedir) into `destination`, refusing paths that escape it."""
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:*") as tar:
        tar.extractall(destination, filter="data")
    return destination
