"""Reading a model package's lineage manifest, verified: the one reader for `mlops lineage` and the twin's report.

The training state machine records on each package `lineage_manifest_uri`, `lineage_manifest_sha256` and
`lineage_manifest_version_id` (functions/lineage_manifest.py writes the manifest). The version recorded is read,
so a later write to the same key cannot change the lineage; its SHA-256 must equal the recorded one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

URI_PROPERTY = "lineage_manifest_uri"
SHA256_PROPERTY = "lineage_manifest_sha256"
VERSION_PROPERTY = "lineage_manifest_version_id"


class ManifestUnavailableError(Exception):
    """The package names no manifest, or the manifest cannot be read; the message says which."""


class ManifestIntegrityError(ManifestUnavailableError):
    """The manifest's bytes do not have the SHA-256 the model package recorded at registration."""


def read_verified_manifest(s3_client: Any, package: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(manifest, location) of a described package; location: `{"uri", "version_id", "sha256", "verified"}`"""
    properties = package.get("CustomerMetadataProperties") or {}
    arn = package.get("ModelPackageArn", "the model package")
    uri = properties.get(URI_PROPERTY)
    expected = properties.get(SHA256_PROPERTY)
    if not uri or not expected:
        raise ManifestUnavailableError(
            f"model package {arn} has no {URI_PROPERTY}/{SHA256_PROPERTY}: it was registered before lineage "
            f"manifests (its properties: {', '.join(sorted(properties)) or 'none'})"
        )
    bucket, _, key = str(uri).removeprefix("s3://").partition("/")
    version_id = properties.get(VERSION_PROPERTY) or None
    request: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if version_id:
        request["VersionId"] = version_id
    try:
        body = s3_client.get_object(**request)["Body"].read()
    except Exception as error:  # botocore's ClientError or a connection error: either way, no manifest to show
        raise ManifestUnavailableError(f"the lineage manifest {uri} of {arn} cannot be read: {error}") from None
    actual = hashlib.sha256(body).hexdigest()
    if actual != expected:
        where = f"{uri} version {version_id}" if version_id else uri
        raise ManifestIntegrityError(
            f"LINEAGE MANIFEST CHECKSUM MISMATCH for {arn}: {where} has SHA-256 {actual}, but the package recorded "
            f"{expected} at registration. The manifest is not the one registered; treat this model's lineage as "
            "unverified and investigate who wrote the governance bucket."
        )
    manifest: dict[str, Any] = json.loads(body)
    return manifest, {"uri": uri, "version_id": version_id, "sha256": actual, "verified": True}
