"""lineage_manifest: one training's complete lineage, written encrypted under Object Lock, before registration."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import boto3
import lineage_manifest
import pytest
import training_data_snapshot
from botocore.exceptions import ClientError
from common.parsing import InvalidPayloadError
from lambda_test_support import load_event
from lineage_manifest import LineageError, ManifestRequest
from lineage_support import (
    ARTIFACT_BUCKET,
    DATA_URI,
    EXECUTION,
    GOVERNANCE_BUCKET,
    KMS_KEY_ARN,
    SNAPSHOT_ENVIRONMENT,
    create_stack_buckets,
    put_data,
    read_json,
)
from training_data_snapshot import SnapshotRequest, SnapshotSettings

EVALUATION = {"metrics": {"auc": 0.97, "accuracy": 0.93}, "bias": {"facet": None}}
MANIFEST_KEY = f"lineage/mlops-breast-cancer/{EXECUTION}/manifest.json"


@pytest.fixture
def s3(aws: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in SNAPSHOT_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    s3 = create_stack_buckets()
    s3.put_object(
        Bucket=ARTIFACT_BUCKET, Key=f"runs/{EXECUTION}/evaluation/evaluation.json", Body=json.dumps(EVALUATION)
    )
    return s3


def _trained(s3: Any, objects: dict[str, bytes]) -> dict[str, Any]:
    """Puts the data, snapshots it as the training's first state does, and returns the manifest's payload."""
    for key, body in objects.items():
        put_data(s3, key, body)
    snapshot = training_data_snapshot.snapshot_training_data(
        SnapshotRequest(data_uri=DATA_URI, execution_name=EXECUTION), SnapshotSettings.from_env(), s3
    )
    return {**load_event("lineage_manifest/payload.json"), "snapshot": snapshot}


def _write(s3: Any, payload: dict[str, Any]) -> dict[str, Any]:
    return lineage_manifest.write_lineage(ManifestRequest.model_validate(payload), KMS_KEY_ARN, s3, boto3.client("ecr"))


def test_the_manifest_lists_the_exact_object_versions_trained_on_with_their_sha256(s3: Any) -> None:
    payload = _trained(s3, {"incoming/a.csv": b"x,y\n1,0\n", "incoming/b.csv": b"x,y\n2,1\n"})
    versions = {
        item["Key"]: item["VersionId"]
        for item in s3.list_object_versions(Bucket="mlops-local-data-123456789012-us-east-1")["Versions"]
    }

    result = _write(s3, payload)

    manifest = read_json(s3, result["manifest_uri"])
    assert [(o["key"], o["version_id"], o["sha256"]) for o in manifest["data"]["objects"]] == [
        ("incoming/a.csv", versions["incoming/a.csv"], hashlib.sha256(b"x,y\n1,0\n").hexdigest()),
        ("incoming/b.csv", versions["incoming/b.csv"], hashlib.sha256(b"x,y\n2,1\n").hexdigest()),
    ]
    assert manifest["data"]["snapshot_uri"] == f"s3://{ARTIFACT_BUCKET}/runs/{EXECUTION}/data/"


def test_the_manifest_records_code_image_parameters_job_evaluation_baseline_and_trigger(s3: Any) -> None:
    payload = _trained(s3, {"incoming/a.csv": b"x,y\n1,0\n"})

    result = _write(s3, payload)

    manifest = read_json(s3, result["manifest_uri"])
    assert manifest["code"] == {
        "source_dir_uri": payload["source_dir_uri"],
        "sourcedir_sha256": "0123456789abcdef" * 4,
        "source_commit": "0123456789abcdef0123456789abcdef01234567",
    }
    assert manifest["image"]["uri"] == payload["image_uri"]
    # moto's ECR has no SageMaker registry: the manifest says why there is no digest instead of inventing one.
    assert manifest["image"]["digest"] is None
    assert manifest["image"]["digest_unavailable"]
    assert manifest["preprocessing"]["seed"] == "42"
    assert manifest["preprocessing"]["parameters"]["test-fraction"] == "0.2"
    assert manifest["training"]["hyperparameters"] == {"max_depth": "4", "eta": "0.2"}
    assert manifest["training"]["job_arn"].endswith(f"training-job/{EXECUTION}-train")
    evaluation = s3.get_object(Bucket=ARTIFACT_BUCKET, Key=f"runs/{EXECUTION}/evaluation/evaluation.json")
    report_sha256 = hashlib.sha256(evaluation["Body"].read()).hexdigest()
    assert manifest["evaluation"]["report_sha256"] == report_sha256
    copy = s3.get_object(Bucket=GOVERNANCE_BUCKET, Key=f"lineage/mlops-breast-cancer/{EXECUTION}/evaluation.json")
    assert hashlib.sha256(copy["Body"].read()).hexdigest() == report_sha256
    assert manifest["drift_baseline"] == payload["baseline"]
    assert manifest["trigger"] == {"type": "manual", "objects": []}
    assert manifest["execution"]["arn"] == payload["execution_arn"]


def test_the_manifest_is_kms_encrypted_locked_and_its_sha256_is_what_s3_holds(s3: Any) -> None:
    result = _write(s3, _trained(s3, {"incoming/a.csv": b"x,y\n1,0\n"}))

    head = s3.head_object(Bucket=GOVERNANCE_BUCKET, Key=MANIFEST_KEY, ChecksumMode="ENABLED")
    body = s3.get_object(Bucket=GOVERNANCE_BUCKET, Key=MANIFEST_KEY)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == result["manifest_sha256"]
    assert base64.b64decode(head["ChecksumSHA256"]).hex() == result["manifest_sha256"]
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["ObjectLockMode"] == "GOVERNANCE"
    assert head["VersionId"] == result["manifest_version_id"]
    with pytest.raises(ClientError, match="AccessDenied"):
        s3.delete_object(Bucket=GOVERNANCE_BUCKET, Key=MANIFEST_KEY, VersionId=result["manifest_version_id"])


def test_changing_a_data_object_after_training_does_not_change_the_lineage(s3: Any) -> None:
    payload = _trained(s3, {"incoming/a.csv": b"x,y\n1,0\n"})
    first = _write(s3, payload)

    put_data(s3, "incoming/a.csv", b"x,y\n9,9\n")
    again = _write(s3, payload)

    # A retried state writes the same bytes: the package's SHA-256 still names the manifest.
    assert again["manifest_sha256"] == first["manifest_sha256"]
    manifest = read_json(s3, first["manifest_uri"], first["manifest_version_id"])
    assert manifest["data"]["objects"][0]["sha256"] == hashlib.sha256(b"x,y\n1,0\n").hexdigest()


def test_a_snapshot_record_changed_after_the_snapshot_is_refused(s3: Any) -> None:
    payload = _trained(s3, {"incoming/a.csv": b"x,y\n1,0\n"})
    s3.put_object(Bucket=ARTIFACT_BUCKET, Key=f"runs/{EXECUTION}/data-snapshot.json", Body=b'{"objects": []}')

    with pytest.raises(LineageError, match="changed after the snapshot"):
        _write(s3, payload)


def test_the_handler_refuses_a_payload_without_the_snapshot(s3: Any, lambda_context: Any, monkeypatch) -> None:
    monkeypatch.setenv("KMS_KEY_ARN", KMS_KEY_ARN)
    with pytest.raises(InvalidPayloadError, match="snapshot"):
        lineage_manifest.handler(load_event("lineage_manifest/missing_snapshot.json"), lambda_context)
