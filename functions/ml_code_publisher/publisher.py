"""Custom resource `Custom::MlCode`: publishes `ml/` as the content-addressed sourcedir tarball SageMaker runs.

SAM uploads only a function's own code, so this function's bundle carries `ml/` and the image URI table
(`image-uris.json`, exported from the SageMaker SDK by `mlops export`); on Create and Update it writes
`<prefix><sha256>/sourcedir.tar.gz` to the artifact bucket with SSE-KMS and returns `SourceDirUri` and
`ImageUri` (the framework container of the stack's region) for the state machines' substitutions, and
`SourceCommit`, the commit `sam build` recorded in the bundle's `build-info.json` (contract/source_commit.py). The
tarball is deterministic (sorted names, fixed times, owners and modes), so the same `ml/` always has the
same key and a redeploy without code changes writes nothing. Delete does nothing: registered models point
at the tarball for their lineage.

Only the standard library and boto3 (both in the Lambda runtime): the CloudFormation response goes out with
urllib, as the `cfn-response` module would send it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import os
import tarfile
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError

BUNDLE_ROOT = Path(__file__).resolve().parent
ML_DIR = BUNDLE_ROOT / "ml"
IMAGE_URIS_FILE = BUNDLE_ROOT / "image-uris.json"
BUILD_INFO_FILE = BUNDLE_ROOT / "build-info.json"

# Files that a local run, a tool or an editor may leave in a code folder: never archived, so they cannot change an
# archive's hash. The one rule of the project: the local twin builds its Lambda zips with `archive_files` too.
IGNORED_DIRECTORIES = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"})
IGNORED_NAMES = frozenset({".DS_Store"})
IGNORED_SUFFIXES = frozenset({".pyc", ".pyo"})
# Any fixed value works; 0 (the epoch) is what reproducible-build tools use.
_FIXED_MTIME = 0
_RESPONSE_TIMEOUT_SECONDS = 30

logger = logging.getLogger(__name__)


class UnknownRegionError(LookupError):
    """The image URI table has no container for the stack's region."""


@dataclass(frozen=True)
class PublishedCode:
    source_dir_uri: str
    image_uri: str
    source_commit: str


def archive_files(directory: Path) -> list[Path]:
    """The files under `directory` that belong in an archive of it, sorted by their path inside it."""
    files = []
    for path in directory.rglob("*"):
        relative = path.relative_to(directory)
        if (
            path.is_file()
            and not IGNORED_DIRECTORIES.intersection(relative.parts)
            and path.name not in IGNORED_NAMES
            and path.suffix not in IGNORED_SUFFIXES
        ):
            files.append(path)
    return sorted(files, key=lambda path: path.relative_to(directory).as_posix())


def sourcedir_files(ml_dir: Path) -> list[Path]:
    """The files of `ml_dir` that go into the tarball, sorted by their path inside it."""
    if not ml_dir.is_dir():
        raise FileNotFoundError(f"ml code folder not found: {ml_dir}; the bundle must carry ml/ (see the Makefile)")
    files = archive_files(ml_dir)
    if not files:
        raise FileNotFoundError(f"ml code folder {ml_dir} holds no files to publish")
    return files


def build_sourcedir_tarball(ml_dir: Path) -> bytes:
    """A gzipped tar of `ml_dir` at its root whose bytes depend only on the files' names and contents."""
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sourcedir_files(ml_dir):
            data = path.read_bytes()
            info = tarfile.TarInfo(path.relative_to(ml_dir).as_posix())
            info.size = len(data)
            info.mtime = _FIXED_MTIME
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    compressed = io.BytesIO()
    # gzip writes the time and the file name into its header unless told otherwise.
    with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, mtime=_FIXED_MTIME) as gz:
        gz.write(tar_bytes.getvalue())
    return compressed.getvalue()


def sourcedir_key(prefix: str, tarball: bytes) -> str:
    """`<prefix><sha256>/sourcedir.tar.gz`: the folder changes exactly when the content does.

    The object itself keeps the name `sourcedir.tar.gz` because SageMaker stages an S3 object under its own
    name, and the processing entrypoint and `sagemaker_submit_directory` name that file (docs/interfaces.md).
    """
    return f"{prefix}{hashlib.sha256(tarball).hexdigest()}/sourcedir.tar.gz"


def image_uri_for_region(image_uris: Mapping[str, str], region: str) -> str:
    """The framework container URI of `region` from the exported table, or an error naming the known regions."""
    try:
        return image_uris[region]
    except KeyError:
        raise UnknownRegionError(
            f"no SageMaker framework image for region {region!r} in image-uris.json "
            f"(it has {', '.join(sorted(image_uris)) or 'none'}); deploy to one of those regions, "
            "or add the region to the export and run `mlops export` and `sam build` again"
        ) from None


def load_image_uris(path: Path = IMAGE_URIS_FILE) -> dict[str, str]:
    """The `image_uris` table (`{region: image URI}`) of the file `mlops export` writes next to the state machines."""
    document = json.loads(path.read_text(encoding="utf-8"))
    table = document.get("image_uris") if isinstance(document, dict) else None
    if not isinstance(table, dict) or not all(isinstance(uri, str) for uri in table.values()):
        raise ValueError(f"{path} needs an object `image_uris` mapping regions to image URIs; run mlops export")
    return table


def load_source_commit(path: Path = BUILD_INFO_FILE) -> str:
    """The `source_commit` `sam build` wrote into the bundle; a bundle without one says so rather than guessing."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"unknown: the bundle has no {path.name} (built without the Makefile's build-MlCodePublisherFunction)"
    commit = document.get("source_commit") if isinstance(document, dict) else None
    if not isinstance(commit, str) or not commit:
        raise ValueError(f"{path} needs a string `source_commit`; rebuild with sam build")
    return commit


def publish_tarball(s3_client: Any, bucket: str, key: str, kms_key_arn: str, tarball: bytes) -> str:
    """Uploads the tarball unless the key already holds it; returns its `s3://` URI."""
    try:
        s3_client.head_object(Bucket=bucket, Key=key)
        logger.info("sourcedir already published", extra={"bucket": bucket, "key": key})
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
            raise
        s3_client.put_object(
            Bucket=bucket,
            Key=key,
            Body=tarball,
            ContentType="application/gzip",
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=kms_key_arn,
        )
        logger.info("sourcedir published", extra={"bucket": bucket, "key": key, "bytes": len(tarball)})
    return f"s3://{bucket}/{key}"


def publish_ml_code(
    s3_client: Any,
    properties: Mapping[str, Any],
    region: str,
    ml_dir: Path = ML_DIR,
    image_uris_file: Path = IMAGE_URIS_FILE,
    source_commit: str | None = None,
) -> PublishedCode:
    """Create/Update: writes the tarball named by `properties` and looks up the region's image.

    `source_commit` defaults to the bundle's `build-info.json`; the twin, which publishes from the tree, passes it.
    """
    missing = [name for name in ("ArtifactBucket", "KmsKeyArn") if not properties.get(name)]
    if missing:
        raise ValueError(f"Custom::MlCode needs the properties {', '.join(missing)}; add them in template.yaml")
    image_uri = image_uri_for_region(load_image_uris(image_uris_file), region)
    tarball = build_sourcedir_tarball(ml_dir)
    key = sourcedir_key(str(properties.get("KeyPrefix", "")), tarball)
    uri = publish_tarball(s3_client, str(properties["ArtifactBucket"]), key, str(properties["KmsKeyArn"]), tarball)
    commit = source_commit if source_commit is not None else load_source_commit()
    return PublishedCode(source_dir_uri=uri, image_uri=image_uri, source_commit=commit)


def cloudformation_response(
    event: Mapping[str, Any],
    status: str,
    physical_resource_id: str,
    data: Mapping[str, str] | None = None,
    reason: str = "",
) -> dict[str, Any]:
    """The body CloudFormation expects at the request's ResponseURL."""
    return {
        "Status": status,
        "Reason": reason[:1000] or status,
        "PhysicalResourceId": physical_resource_id,
        "StackId": event["StackId"],
        "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
        "NoEcho": False,
        "Data": dict(data or {}),
    }


def send_response(response_url: str, body: Mapping[str, Any]) -> None:
    """PUTs the response to the pre-signed URL; the empty content type is what the URL was signed for."""
    if not response_url.startswith("https://"):
        raise ValueError(f"ResponseURL must be an https pre-signed URL, got {response_url[:60]!r}")
    payload = json.dumps(body).encode("utf-8")
    request = urllib.request.Request(  # noqa: S310  (scheme checked above)
        response_url,
        data=payload,
        method="PUT",
        headers={"Content-Type": "", "Content-Length": str(len(payload))},
    )
    with urllib.request.urlopen(request, timeout=_RESPONSE_TIMEOUT_SECONDS) as reply:  # noqa: S310
        logger.info("CloudFormation response sent", extra={"status": body["Status"], "http_status": reply.status})


def handle_request(
    event: Mapping[str, Any],
    s3_client: Any,
    region: str,
    ml_dir: Path = ML_DIR,
    image_uris_file: Path = IMAGE_URIS_FILE,
) -> dict[str, Any]:
    """Turns one custom resource request into the response body; never raises, so CloudFormation never waits."""
    request_type = event.get("RequestType")
    physical_id = str(event.get("PhysicalResourceId") or f"{event.get('LogicalResourceId', 'MlCode')}-unpublished")
    try:
        if request_type == "Delete":
            # Registered model packages point at the tarball; it stays with the bucket.
            return cloudformation_response(event, "SUCCESS", physical_id, reason="artifacts kept for lineage")
        if request_type not in ("Create", "Update"):
            raise ValueError(f"unknown RequestType {request_type!r}: expected Create, Update or Delete")
        published = publish_ml_code(s3_client, event.get("ResourceProperties", {}), region, ml_dir, image_uris_file)
    except Exception as exc:  # any failure must reach CloudFormation as FAILED, with the reason
        logger.exception("MlCode request failed", extra={"request_type": request_type})
        return cloudformation_response(event, "FAILED", physical_id, reason=f"{type(exc).__name__}: {exc}")
    return cloudformation_response(
        event,
        "SUCCESS",
        published.source_dir_uri,
        data={
            "SourceDirUri": published.source_dir_uri,
            "ImageUri": published.image_uri,
            "SourceCommit": published.source_commit,
        },
    )


def handler(event: dict[str, Any], context: Any) -> None:
    """Lambda entry point of the MlCode custom resource."""
    logger.setLevel(os.environ.get("LOG_LEVEL", "INFO"))
    body = handle_request(event, boto3.client("s3"), os.environ["AWS_REGION"])
    send_response(event["ResponseURL"], body)
