"""training_data_snapshot: the exact object versions a training reads, recorded with checksums and frozen."""

from __future__ import annotations

import hashlib
from typing import Any

import boto3
import pytest
import training_data_snapshot
from common.parsing import InvalidPayloadError
from lambda_test_support import DATA_BUCKET, load_event
from lineage_support import (
    ARTIFACT_BUCKET,
    DATA_URI,
    EXECUTION,
    SNAPSHOT_ENVIRONMENT,
    create_stack_buckets,
    put_data,
    read_json,
)
from training_data_snapshot import DataLocationError, SnapshotError, SnapshotRequest, SnapshotSettings


@pytest.fixture
def s3(aws: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in SNAPSHOT_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    return create_stack_buckets()


def _snapshot(s3: Any, data_uri: str = DATA_URI, execution: str = EXECUTION) -> dict[str, Any]:
    request = SnapshotRequest(data_uri=data_uri, execution_name=execution)
    return training_data_snapshot.snapshot_training_data(request, SnapshotSettings.from_env(), s3)


def test_the_snapshot_lists_each_object_with_its_version_etag_and_sha256(s3: Any) -> None:
    first = put_data(s3, "incoming/a.csv", b"x,y\n1,0\n")
    second = put_data(s3, "incoming/more/b.csv", b"x,y\n2,1\n")
    put_data(s3, "ground-truth/c.csv", b"outside the data_uri")

    result = _snapshot(s3)

    record = read_json(s3, result["record_uri"])
    assert [(o["key"], o["version_id"], o["sha256"]) for o in record["objects"]] == [
        ("incoming/a.csv", first, hashlib.sha256(b"x,y\n1,0\n").hexdigest()),
        ("incoming/more/b.csv", second, hashlib.sha256(b"x,y\n2,1\n").hexdigest()),
    ]
    assert record["objects"][0]["etag"] == hashlib.md5(b"x,y\n1,0\n").hexdigest()  # noqa: S324  (S3's ETag)
    assert record["checksum_algorithm"] == "SHA-256"
    assert result["object_count"] == 2
    assert result["snapshot_uri"] == f"s3://{ARTIFACT_BUCKET}/runs/{EXECUTION}/data/"
    assert (
        result["record_sha256"]
        == hashlib.sha256(
            s3.get_object(Bucket=ARTIFACT_BUCKET, Key=f"runs/{EXECUTION}/data-snapshot.json")["Body"].read()
        ).hexdigest()
    )


def test_preprocessing_reads_the_snapshotted_versions_even_when_an_object_changes_afterwards(s3: Any) -> None:
    put_data(s3, "incoming/a.csv", b"x,y\n1,0\n")
    put_data(s3, "incoming/more/b.csv", b"x,y\n2,1\n")
    _snapshot(s3)

    put_data(s3, "incoming/a.csv", b"x,y\n9,9\n")

    copy = s3.get_object(Bucket=ARTIFACT_BUCKET, Key=f"runs/{EXECUTION}/data/a.csv")
    assert copy["Body"].read() == b"x,y\n1,0\n"
    assert copy["ServerSideEncryption"] == "aws:kms"
    nested = s3.get_object(Bucket=ARTIFACT_BUCKET, Key=f"runs/{EXECUTION}/data/more/b.csv")["Body"].read()
    assert nested == b"x,y\n2,1\n"


def test_a_retry_of_the_execution_returns_its_recorded_snapshot_not_newer_versions(s3: Any) -> None:
    version = put_data(s3, "incoming/a.csv", b"x,y\n1,0\n")
    first = _snapshot(s3)
    put_data(s3, "incoming/a.csv", b"x,y\n9,9\n")

    again = _snapshot(s3)

    assert again == first
    assert read_json(s3, again["record_uri"])["objects"][0]["version_id"] == version


@pytest.mark.parametrize(
    "data_uri",
    [
        f"s3://{DATA_BUCKET}/ground-truth/",
        "s3://another-bucket/incoming/",
        f"s3://{DATA_BUCKET}/incoming/../ground-truth/",
        f"s3://{DATA_BUCKET}/",
    ],
    ids=["other prefix", "other bucket", "dot-dot", "bucket root"],
)
def test_a_data_location_outside_the_stack_prefix_is_refused_naming_both(s3: Any, data_uri: str) -> None:
    put_data(s3, "ground-truth/c.csv", b"labels")

    with pytest.raises(DataLocationError, match=rf"{data_uri}.*outside.*s3://{DATA_BUCKET}/incoming/"):
        _snapshot(s3, data_uri)

    assert "Contents" not in s3.list_objects_v2(Bucket=ARTIFACT_BUCKET)


def test_no_objects_under_the_data_uri_is_refused(s3: Any) -> None:
    with pytest.raises(SnapshotError, match="no objects under"):
        _snapshot(s3)


def test_an_unversioned_data_bucket_is_refused_since_its_data_cannot_be_named(aws: None, monkeypatch) -> None:
    for name, value in SNAPSHOT_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=DATA_BUCKET)
    s3.create_bucket(Bucket=ARTIFACT_BUCKET)
    s3.put_object(Bucket=DATA_BUCKET, Key="incoming/a.csv", Body=b"x")

    with pytest.raises(SnapshotError, match="not versioned"):
        _snapshot(s3)


def test_the_handler_refuses_an_outside_location_with_the_error_the_state_machine_catches(
    s3: Any, lambda_context: Any
) -> None:
    with pytest.raises(DataLocationError):
        training_data_snapshot.handler(load_event("training_data_snapshot/outside_prefix.json"), lambda_context)
    with pytest.raises(InvalidPayloadError, match="execution_name"):
        training_data_snapshot.handler(load_event("training_data_snapshot/missing_execution_name.json"), lambda_context)


def test_pinned_data_versions_are_read_exactly_even_after_the_objects_changed(s3: Any) -> None:
    old = put_data(s3, "incoming/a.csv", b"x,y\n1,0\n")
    put_data(s3, "incoming/a.csv", b"x,y\n9,9\n")
    put_data(s3, "incoming/new.csv", b"arrived later")
    pinned = [{"key": "incoming/a.csv", "version_id": old, "sha256": hashlib.sha256(b"x,y\n1,0\n").hexdigest()}]

    request = SnapshotRequest(data_uri=DATA_URI, execution_name="reproduce-1", data_versions=pinned)
    result = training_data_snapshot.snapshot_training_data(request, SnapshotSettings.from_env(), s3)

    record = read_json(s3, result["record_uri"])
    assert record["pinned"] is True
    assert [(o["key"], o["version_id"]) for o in record["objects"]] == [("incoming/a.csv", old)]
    copied = s3.get_object(Bucket=ARTIFACT_BUCKET, Key="runs/reproduce-1/data/a.csv")["Body"].read()
    assert copied == b"x,y\n1,0\n"


def test_a_pinned_version_whose_bytes_differ_from_its_recorded_sha256_is_refused(s3: Any) -> None:
    version = put_data(s3, "incoming/a.csv", b"x,y\n1,0\n")
    pinned = [{"key": "incoming/a.csv", "version_id": version, "sha256": "0" * 64}]

    request = SnapshotRequest(data_uri=DATA_URI, execution_name="reproduce-2", data_versions=pinned)
    with pytest.raises(SnapshotError, match="not the pinned"):
        training_data_snapshot.snapshot_training_data(request, SnapshotSettings.from_env(), s3)


def test_a_copy_left_by_an_earlier_attempt_that_the_snapshot_does_not_list_is_refused(s3: Any) -> None:
    put_data(s3, "incoming/a.csv", b"x,y\n1,0\n")
    s3.put_object(Bucket=ARTIFACT_BUCKET, Key=f"runs/{EXECUTION}/data/gone.csv", Body=b"an object deleted since")

    with pytest.raises(SnapshotError, match="holds copies the snapshot does not list"):
        _snapshot(s3)
