"""What the lineage function tests share: the stack's buckets as template.yaml makes them, and a snapshot record."""

from __future__ import annotations

import json
from typing import Any

import boto3
from lambda_test_support import DATA_BUCKET

ARTIFACT_BUCKET = "mlops-artifacts-123456789012-us-east-1"
GOVERNANCE_BUCKET = "mlops-local-governance-123456789012"
KMS_KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
EXECUTION = "manual-0123456789abcdef"
DATA_URI = f"s3://{DATA_BUCKET}/incoming/"
# The one object the event files' snapshot names, and the record the snapshot function writes for it.
SAMPLE_OBJECT_KEY = "incoming/breast_cancer.csv"
SAMPLE_OBJECT_BODY = b"mean radius,target\n17.99,0\n13.5,1\n"
SNAPSHOT_ENVIRONMENT = {
    "DATA_BUCKET_NAME": DATA_BUCKET,
    "DATA_PREFIX": "incoming/",
    "ARTIFACT_BUCKET_NAME": ARTIFACT_BUCKET,
    "KMS_KEY_ARN": KMS_KEY_ARN,
}


def create_stack_buckets(retention_days: int = 30) -> Any:
    """Data and artifact buckets versioned, the governance bucket versioned with Object Lock in GOVERNANCE mode."""
    s3 = boto3.client("s3")
    for bucket in (DATA_BUCKET, ARTIFACT_BUCKET):
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.create_bucket(Bucket=GOVERNANCE_BUCKET, ObjectLockEnabledForBucket=True)
    s3.put_object_lock_configuration(
        Bucket=GOVERNANCE_BUCKET,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": retention_days}},
        },
    )
    return s3


def put_data(s3: Any, key: str, body: bytes) -> str:
    return str(s3.put_object(Bucket=DATA_BUCKET, Key=key, Body=body)["VersionId"])


def read_json(s3: Any, uri: str, version_id: str | None = None) -> Any:
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    extra = {"VersionId": version_id} if version_id else {}
    return json.loads(s3.get_object(Bucket=bucket, Key=key, **extra)["Body"].read())
