"""Move job inputs and outputs between moto's S3 and a job's local directories, as SageMaker's agents do."""

from __future__ import annotations

import json
import posixpath
import shutil
import tarfile
from pathlib import Path
from typing import Any

import boto3

# Files up to this size are uploaded with one PutObject, and downloads stream one GetObject into the file:
# boto3's managed transfers start a thread pool per call (several milliseconds each, a dozen times per
# training execution). Larger uploads keep them, for multipart. The threshold is boto3's own default.
_SINGLE_REQUEST_MAX_BYTES = 8 * 1024 * 1024


class StagingRefused(ValueError):
    """A staging target resolves outside its destination: the job fails with this as its reason, as a ClientError."""


def inside_destination(destination: Path, target: Path, what: str) -> Path:
    """`target`, once it is certain to stay inside `destination` after `..`, absolute parts and symlinks resolve.

    Every path the twin writes a job's data to, reads its outputs from or extracts an archive member to goes
    through here: an S3 key, a container path or a tar member must never reach the rest of the machine.
    """
    base = destination.resolve()
    resolved = target.resolve()
    if resolved != base and base not in resolved.parents:
        raise StagingRefused(f"{what} resolves to {resolved}, outside {base}: refused")
    return target


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
            target = inside_destination(destination, destination / relative, f"S3 object s3://{bucket}/{object_key}")
            target.parent.mkdir(parents=True, exist_ok=True)
            body = self._client.get_object(Bucket=bucket, Key=object_key)["Body"]
            with target.open("wb") as local_file:
                shutil.copyfileobj(body, local_file)
            written.append(target)
        if not written:
            raise FileNotFoundError(f"No S3 object found at {uri}")
        return written

    def download_manifest(self, manifest_uri: str, destination: Path) -> list[Path]:
        """Stage the objects a SageMaker ManifestFile lists, each under `destination` by its key relative to the prefix.

        The manifest is `[{"prefix": "s3://bucket/prefix/"}, "relative/key", ...]`, as SageMaker reads it for
        `S3DataType: ManifestFile`. A manifest that is not that shape, or lists an object that does not exist,
        fails the job with the reason (StagingRefused, FileNotFoundError).
        """
        entries = self._manifest_entries(manifest_uri)
        prefix_uri = entries[0]["prefix"]
        bucket, prefix = split_s3_uri(prefix_uri)
        destination.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        for relative in entries[1:]:
            target = inside_destination(destination, destination / relative, f"manifest entry {relative!r}")
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                body = self._client.get_object(Bucket=bucket, Key=prefix + relative)["Body"]
            except self._client.exceptions.NoSuchKey:
                raise FileNotFoundError(
                    f"manifest {manifest_uri} lists s3://{bucket}/{prefix}{relative}, which does not exist"
                ) from None
            with target.open("wb") as local_file:
                shutil.copyfileobj(body, local_file)
            written.append(target)
        return written

    def _manifest_entries(self, manifest_uri: str) -> list[Any]:
        bucket, key = split_s3_uri(manifest_uri)
        try:
            text = self._client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except self._client.exceptions.NoSuchKey:
            raise FileNotFoundError(f"No manifest file found at {manifest_uri}") from None
        try:
            entries = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise StagingRefused(f"manifest {manifest_uri} is not JSON: {error}") from None
        if (
            not isinstance(entries, list)
            or not entries
            or not isinstance(entries[0], dict)
            or not str(entries[0].get("prefix", "")).startswith("s3://")
        ):
            raise StagingRefused(
                f'manifest {manifest_uri} must be a JSON list starting with {{"prefix": "s3://bucket/prefix/"}}'
            )
        if len(entries) == 1:
            raise StagingRefused(f"manifest {manifest_uri} lists no object")
        bad = [entry for entry in entries[1:] if not isinstance(entry, str) or not entry]
        if bad:
            raise StagingRefused(f"manifest {manifest_uri}: entries after the prefix must be keys, got {bad[:3]!r}")
        return entries

    def upload_directory(self, source: Path, uri: str, kms_key_id: str | None = None) -> list[str]:
        """Upload every file under `source` to the prefix `uri`; returns the object URIs."""
        bucket, key = split_s3_uri(uri)
        prefix = key.rstrip("/")
        uploaded = []
        # Every file is checked before the first upload, so a refused output leaves no partial upload behind.
        files = [
            inside_destination(source, path, f"output file {path.relative_to(source).as_posix()}")
            for path in sorted(p for p in source.rglob("*") if p.is_file())
        ]
        for path in files:
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
    """Extract a job's own tarball (model or sourcedir) into `destination`, refusing members and links that escape it.

    Nothing is extracted unless every member passes: a refused archive leaves no partial copy behind.
    """
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:*") as tar:
        for member in tar.getmembers():
            what = f"member {member.name!r} of {archive.name}"
            inside_destination(destination, destination / member.name, what)
            if member.issym():
                link_target = posixpath.join(posixpath.dirname(member.name), member.linkname)
                inside_destination(destination, destination / link_target, f"{what} (a link to {member.linkname!r})")
            elif member.islnk():
                inside_destination(
                    destination, destination / member.linkname, f"{what} (a link to {member.linkname!r})"
                )
        try:
            # The data filter stays as a second guard (device files, permissions) in case a member slips through.
            tar.extractall(destination, filter="data")
        except tarfile.TarError as error:
            raise StagingRefused(f"{archive.name}: {error}") from error
    return destination
