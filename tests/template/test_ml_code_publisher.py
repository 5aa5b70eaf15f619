"""The MlCode custom resource: deterministic tarball, region lookup, S3 upload and CloudFormation responses."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import boto3
import pytest
from ml_code_publisher import publisher
from moto import mock_aws

PROJECT_ROOT = Path(__file__).resolve().parents[2]
IMAGE_URIS_FILE = PROJECT_ROOT / "statemachines" / "image-uris.json"
ML_DIR = PROJECT_ROOT / "ml"


def _write_ml_dir(root: Path, files: dict[str, str], mtime: int) -> Path:
    root.mkdir(parents=True)
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        os.utime(path, (mtime, mtime))
    return root


def _handle(event: dict[str, Any], s3_client: Any, region: str = "us-east-1") -> dict[str, Any]:
    """The handler's logic on the source tree's ml/ and image table (the bundle holds copies of both)."""
    return publisher.handle_request(event, s3_client, region, ML_DIR, IMAGE_URIS_FILE)


def _tar_names(tarball: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
        return tar.getnames()


def _event(request_type: str, **properties: Any) -> dict[str, Any]:
    return {
        "RequestType": request_type,
        "ResponseURL": "https://cloudformation-custom-resource-response.example/put",
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/mlops-dev/guid",
        "RequestId": "request-1",
        "LogicalResourceId": "MlCode",
        "ResourceType": "Custom::MlCode",
        "ResourceProperties": {"ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:f", **properties},
    }


def test_tarball_bytes_depend_only_on_names_and_contents(tmp_path: Path) -> None:
    files = {"train.py": "print('train')\n", "mlcore.py": "X = 1\n", "preprocess.py": "print('prep')\n"}
    first = _write_ml_dir(tmp_path / "a", files, mtime=1_600_000_000)
    # Same files written in the opposite order, at another time.
    second = _write_ml_dir(tmp_path / "b", dict(reversed(list(files.items()))), mtime=1_700_000_000)

    assert publisher.build_sourcedir_tarball(first) == publisher.build_sourcedir_tarball(second)


def test_tarball_key_changes_when_a_file_changes(tmp_path: Path) -> None:
    before = _write_ml_dir(tmp_path / "a", {"train.py": "A = 1\n"}, mtime=0)
    after = _write_ml_dir(tmp_path / "b", {"train.py": "A = 2\n"}, mtime=0)

    key_before = publisher.sourcedir_key("code/", publisher.build_sourcedir_tarball(before))
    key_after = publisher.sourcedir_key("code/", publisher.build_sourcedir_tarball(after))

    assert key_before != key_after
    assert key_before.startswith("code/")
    assert key_before.endswith("/sourcedir.tar.gz")


def test_tarball_holds_sorted_modules_at_its_root_without_bytecode(tmp_path: Path) -> None:
    ml_dir = _write_ml_dir(
        tmp_path / "ml",
        {"train.py": "", "mlcore.py": "", "__pycache__/mlcore.cpython-311.pyc": "", "stale.pyc": ""},
        mtime=0,
    )

    assert _tar_names(publisher.build_sourcedir_tarball(ml_dir)) == ["mlcore.py", "train.py"]


def test_empty_ml_folder_is_an_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "ml").mkdir()

    with pytest.raises(FileNotFoundError, match="holds no files"):
        publisher.build_sourcedir_tarball(tmp_path / "ml")


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1", "us-gov-west-1"])
def test_exported_image_table_covers_commercial_and_govcloud_regions(region: str) -> None:
    uri = publisher.image_uri_for_region(publisher.load_image_uris(IMAGE_URIS_FILE), region)

    assert f".dkr.ecr.{region}." in uri
    assert "sagemaker-xgboost" in uri


def test_unknown_region_error_names_the_region_and_the_known_ones() -> None:
    with pytest.raises(publisher.UnknownRegionError, match=r"'mars-north-1'.*eu-west-1, us-east-1"):
        publisher.image_uri_for_region({"us-east-1": "u1", "eu-west-1": "e1"}, "mars-north-1")


def test_image_table_without_image_uris_object_is_rejected(tmp_path: Path) -> None:
    table = tmp_path / "image-uris.json"
    table.write_text('{"us-east-1": "uri"}')

    with pytest.raises(ValueError, match="image_uris"):
        publisher.load_image_uris(table)


@pytest.fixture
def artifact_bucket() -> Any:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="artifacts")
        # Versioned like the stack's bucket, so a second write would show as a second version.
        s3.put_bucket_versioning(Bucket="artifacts", VersioningConfiguration={"Status": "Enabled"})
        key_arn = boto3.client("kms", region_name="us-east-1").create_key()["KeyMetadata"]["Arn"]
        yield s3, key_arn


def test_create_publishes_the_tarball_with_the_stack_key(artifact_bucket: Any) -> None:
    s3, key_arn = artifact_bucket
    event = _event("Create", ArtifactBucket="artifacts", KmsKeyArn=key_arn, KeyPrefix="code/")

    body = _handle(event, s3)

    assert body["Status"] == "SUCCESS", body["Reason"]
    uri = body["Data"]["SourceDirUri"]
    key = uri.removeprefix("s3://artifacts/")
    head = s3.head_object(Bucket="artifacts", Key=key)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == key_arn
    assert body["PhysicalResourceId"] == uri
    assert "sagemaker-xgboost" in body["Data"]["ImageUri"]
    names = _tar_names(s3.get_object(Bucket="artifacts", Key=key)["Body"].read())
    assert {path.name for path in (PROJECT_ROOT / "ml").glob("*.py")} <= set(names)


def test_update_without_code_changes_returns_the_same_uri_and_writes_nothing(artifact_bucket: Any) -> None:
    s3, key_arn = artifact_bucket
    properties = {"ArtifactBucket": "artifacts", "KmsKeyArn": key_arn, "KeyPrefix": "code/"}
    created = _handle(_event("Create", **properties), s3)

    updated = _handle(_event("Update", **properties), s3)

    assert updated["Data"]["SourceDirUri"] == created["Data"]["SourceDirUri"]
    assert len(s3.list_object_versions(Bucket="artifacts")["Versions"]) == 1


class _NoCallsAllowed:
    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"Delete must not call S3, called {name}")


def test_delete_keeps_the_artifacts_and_succeeds() -> None:
    event = {**_event("Delete"), "PhysicalResourceId": "s3://artifacts/code/abc/sourcedir.tar.gz"}

    body = _handle(event, _NoCallsAllowed())

    assert body["Status"] == "SUCCESS"
    assert body["PhysicalResourceId"] == "s3://artifacts/code/abc/sourcedir.tar.gz"


def test_missing_properties_fail_the_request_with_a_reason_instead_of_raising() -> None:
    body = _handle(_event("Create", KeyPrefix="code/"), _NoCallsAllowed())

    assert body["Status"] == "FAILED"
    assert "ArtifactBucket, KmsKeyArn" in body["Reason"]


def test_unknown_region_fails_the_request_with_the_lookup_error(artifact_bucket: Any) -> None:
    s3, key_arn = artifact_bucket
    event = _event("Create", ArtifactBucket="artifacts", KmsKeyArn=key_arn)

    body = _handle(event, s3, "mars-north-1")

    assert body["Status"] == "FAILED"
    assert body["Reason"].startswith("UnknownRegionError: no SageMaker framework image for region 'mars-north-1'")


def test_response_url_must_be_https() -> None:
    with pytest.raises(ValueError, match="https"):
        publisher.send_response("file:///etc/passwd", {"Status": "SUCCESS"})


class _Reply:
    status = 200

    def __enter__(self) -> _Reply:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None


def test_response_is_a_put_of_the_json_body_with_the_empty_content_type_it_was_signed_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[Any] = []

    def fake_urlopen(request: Any, timeout: float) -> _Reply:
        sent.append(request)
        return _Reply()

    # The HTTP boundary: CloudFormation's pre-signed S3 URL.
    monkeypatch.setattr(publisher.urllib.request, "urlopen", fake_urlopen)
    body = publisher.cloudformation_response(_event("Create"), "SUCCESS", "s3://b/k", {"SourceDirUri": "s3://b/k"})

    publisher.send_response("https://example.invalid/signed", body)

    (request,) = sent
    assert request.get_method() == "PUT"
    assert request.get_header("Content-type") == ""
    assert json.loads(request.data) == body
    assert body["RequestId"] == "request-1"
    assert body["LogicalResourceId"] == "MlCode"


def test_the_published_source_commit_is_the_one_sam_build_recorded_in_the_bundle(tmp_path: Path) -> None:
    build_info = tmp_path / "build-info.json"
    build_info.write_text(json.dumps({"source_commit": "0123abcd-dirty"}), encoding="utf-8")

    assert publisher.load_source_commit(build_info) == "0123abcd-dirty"
    missing = publisher.load_source_commit(tmp_path / "absent.json")
    assert missing.startswith("unknown: the bundle has no absent.json")


def test_the_source_commit_is_heads_sha_marked_dirty_with_changes_and_unknown_outside_git(tmp_path: Path) -> None:
    import subprocess

    from contract.source_commit import source_commit

    assert source_commit(tmp_path).startswith("unknown: ")
    git = ["git", "-C", str(tmp_path), "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (tmp_path / "ml.py").write_text("x = 1\n", encoding="utf-8")
    subprocess.run([*git, "add", "ml.py"], check=True)
    subprocess.run([*git, "commit", "-qm", "first"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()

    assert source_commit(tmp_path) == head
    (tmp_path / "ml.py").write_text("x = 2\n", encoding="utf-8")
    assert source_commit(tmp_path) == f"{head}-dirty"
