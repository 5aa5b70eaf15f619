"""The twin's staging never writes or reads outside a job's directory, whatever the S3 key, path or archive says."""

from __future__ import annotations

import io
import json
import os
import tarfile
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from emulator.sagemaker_local.s3io import S3Stager, StagingRefused, extract_tarball

REGION = "us-east-1"
ROLE_ARN = "arn:aws:iam::123456789012:role/local-twin-tests"
TRAVERSING_KEY = "data/../../../escaped.csv"


def _put(bucket: str, key: str, body: bytes = b"a,b\n1,2\n") -> None:
    boto3.client("s3", region_name=REGION).put_object(Bucket=bucket, Key=key, Body=body)


def test_a_key_with_dot_dot_under_the_prefix_is_refused_naming_the_key(bucket: str, tmp_path: Path) -> None:
    _put(bucket, "data/good.csv")
    _put(bucket, TRAVERSING_KEY)
    destination = tmp_path / "job" / "input" / "data"
    with pytest.raises(StagingRefused, match=r"s3://twin-test-artifacts/data/\.\./\.\./\.\./escaped\.csv"):
        S3Stager(REGION).download(f"s3://{bucket}/data/", destination)
    assert not list(tmp_path.rglob("escaped.csv"))


def test_a_key_resolving_through_a_symlink_out_of_the_destination_is_refused(bucket: str, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    destination = tmp_path / "job" / "input"
    destination.mkdir(parents=True)
    (destination / "link").symlink_to(outside, target_is_directory=True)
    _put(bucket, "data/link/planted.csv")
    with pytest.raises(StagingRefused, match=r"data/link/planted\.csv"):
        S3Stager(REGION).download(f"s3://{bucket}/data/", destination)
    assert not (outside / "planted.csv").exists()


def test_keys_that_stay_inside_are_staged_under_their_relative_path(bucket: str, tmp_path: Path) -> None:
    _put(bucket, "data/2026/01/part.csv")
    _put(bucket, "data//leading-slash.csv")
    written = S3Stager(REGION).download(f"s3://{bucket}/data/", tmp_path / "in")
    assert sorted(p.relative_to(tmp_path / "in").as_posix() for p in written) == [
        "2026/01/part.csv",
        "leading-slash.csv",
    ]


def test_an_output_file_linking_out_of_the_job_is_not_uploaded(bucket: str, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("not the job's")
    output = tmp_path / "job" / "output"
    output.mkdir(parents=True)
    (output / "result.csv").write_text("1\n")
    (output / "stolen.txt").symlink_to(secret)
    with pytest.raises(StagingRefused, match=r"output file stolen\.txt"):
        S3Stager(REGION).upload_directory(output, f"s3://{bucket}/out/")
    listed = boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=bucket, Prefix="out/")
    assert "Contents" not in listed


def _tarball(path: Path, members: list[tarfile.TarInfo]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for member in members:
            data = b"x" if member.isfile() else b""
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data) if data else None)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


@pytest.mark.parametrize(
    ("members", "named"),
    [
        ([_member("../escaped")], "'../escaped'"),
        ([_member("/tmp/absolute-member")], "'/tmp/absolute-member'"),
        ([_member("code/ln", tarfile.SYMTYPE, "/etc")], "a link to '/etc'"),
        ([_member("code/ln", tarfile.SYMTYPE, "../../..")], "a link to '../../..'"),
        ([_member("hard", tarfile.LNKTYPE, "../outside")], "a link to '../outside'"),
    ],
    ids=["dot-dot", "absolute", "absolute-symlink", "relative-symlink-out", "hardlink-out"],
)
def test_an_archive_member_escaping_the_destination_is_refused_and_nothing_is_extracted(
    tmp_path: Path, members: list[tarfile.TarInfo], named: str
) -> None:
    archive = _tarball(tmp_path / "model.tar.gz", [_member("code/inference.py"), *members])
    destination = tmp_path / "model"
    with pytest.raises(StagingRefused, match=named):
        extract_tarball(archive, destination)
    assert list(destination.iterdir()) == []


def test_an_archive_with_links_inside_itself_extracts(tmp_path: Path) -> None:
    archive = _tarball(
        tmp_path / "model.tar.gz", [_member("code/inference.py"), _member("code/ln", tarfile.SYMTYPE, "inference.py")]
    )
    extract_tarball(archive, tmp_path / "model")
    assert os.readlink(tmp_path / "model" / "code" / "ln") == "inference.py"


def _wait_for_job(client: Any, name: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described: dict[str, Any] = client.describe_processing_job(ProcessingJobName=name)
        if described["ProcessingJobStatus"] not in ("InProgress", "Stopping"):
            return described
        time.sleep(0.05)
    raise AssertionError(f"processing job {name} still running after {timeout} s")


def _processing_job(client: Any, name: str, inputs: list[dict[str, Any]], outputs: list[dict[str, Any]]) -> None:
    client.create_processing_job(
        ProcessingJobName=name,
        RoleArn=ROLE_ARN,
        AppSpecification={"ImageUri": "local", "ContainerEntrypoint": ["/bin/sh", "-c", "true"]},
        ProcessingResources={"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1}},
        ProcessingInputs=inputs,
        ProcessingOutputConfig={"Outputs": outputs},
    )


def test_a_processing_job_given_a_traversing_key_fails_naming_it(runtime: Any, bucket: str) -> None:
    _put(bucket, "data/good.csv")
    _put(bucket, TRAVERSING_KEY)
    client = boto3.client("sagemaker", region_name=REGION)
    data_input = {
        "S3Uri": f"s3://{bucket}/data/",
        "LocalPath": "/opt/ml/processing/input/data",
        "S3DataType": "S3Prefix",
        "S3InputMode": "File",
    }
    _processing_job(client, "traversal", [{"InputName": "data", "S3Input": data_input}], [])
    described = _wait_for_job(client, "traversal")
    assert described["ProcessingJobStatus"] == "Failed"
    assert described["FailureReason"].startswith("ClientError: S3 object ")
    assert TRAVERSING_KEY in described["FailureReason"]
    assert not list(runtime.work_dir.rglob("escaped.csv"))


@pytest.mark.parametrize("local_path", ["/opt/ml/processing/../../../../outside", "/tmp/not-a-container-path"])
def test_a_processing_local_path_outside_the_job_is_refused(runtime: Any, bucket: str, local_path: str) -> None:
    _put(bucket, "data/good.csv")
    client = boto3.client("sagemaker", region_name=REGION)
    output = {
        "OutputName": "out",
        "S3Output": {"S3Uri": f"s3://{bucket}/out/", "LocalPath": local_path, "S3UploadMode": "EndOfJob"},
    }
    name = f"local-path-{abs(hash(local_path)) % 10_000}"
    _processing_job(client, name, [], [output])
    described = _wait_for_job(client, name)
    assert described["ProcessingJobStatus"] == "Failed"
    assert f"LocalPath {local_path!r}" in described["FailureReason"]


# ---------------------------------------------------------------- ManifestFile inputs, and what the twin refuses


def _manifest(bucket: str, entries: list[Any], key: str = "runs/x/capture.manifest") -> str:
    _put(bucket, key, json.dumps(entries).encode())
    return f"s3://{bucket}/{key}"


def test_a_manifest_stages_each_listed_object_by_its_key_relative_to_the_prefix(bucket: str, tmp_path: Path) -> None:
    _put(bucket, "capture/ep/AllTraffic/2026/12/01/11/00-01-000-a.jsonl", b"a\n")
    _put(bucket, "capture/ep/Blue/2026/12/01/11/30-00-000-b.jsonl", b"b\n")
    _put(bucket, "capture/ep/AllTraffic/2026/12/01/11/59-00-000-not-listed.jsonl", b"c\n")
    manifest = _manifest(
        bucket,
        [
            {"prefix": f"s3://{bucket}/capture/"},
            "ep/AllTraffic/2026/12/01/11/00-01-000-a.jsonl",
            "ep/Blue/2026/12/01/11/30-00-000-b.jsonl",
        ],
    )

    written = S3Stager(REGION).download_manifest(manifest, tmp_path / "in")

    assert sorted(p.relative_to(tmp_path / "in").as_posix() for p in written) == [
        "ep/AllTraffic/2026/12/01/11/00-01-000-a.jsonl",
        "ep/Blue/2026/12/01/11/30-00-000-b.jsonl",
    ]
    assert (tmp_path / "in" / "ep/Blue/2026/12/01/11/30-00-000-b.jsonl").read_bytes() == b"b\n"


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ({"prefix": "s3://b/"}, "must be a JSON list starting with"),
        (["capture/a.jsonl"], "must be a JSON list starting with"),
        ([{"prefix": "s3://b/capture/"}], "lists no object"),
        ([{"prefix": "s3://b/capture/"}, 3], "entries after the prefix must be keys"),
    ],
)
def test_a_malformed_manifest_is_refused_naming_it(bucket: str, tmp_path: Path, entries: Any, message: str) -> None:
    with pytest.raises(StagingRefused, match=message):
        S3Stager(REGION).download_manifest(_manifest(bucket, entries), tmp_path / "in")


def test_a_manifest_entry_escaping_the_destination_is_refused(bucket: str, tmp_path: Path) -> None:
    _put(bucket, "escaped.jsonl")
    manifest = _manifest(bucket, [{"prefix": f"s3://{bucket}/capture/"}, "../escaped.jsonl"])

    with pytest.raises(StagingRefused, match=r"manifest entry '\.\./escaped\.jsonl'"):
        S3Stager(REGION).download_manifest(manifest, tmp_path / "job" / "in")
    assert not list(tmp_path.rglob("escaped.jsonl"))


def test_a_manifest_listing_a_missing_object_names_it(bucket: str, tmp_path: Path) -> None:
    manifest = _manifest(bucket, [{"prefix": f"s3://{bucket}/capture/"}, "gone.jsonl"])

    with pytest.raises(FileNotFoundError, match=f"s3://{bucket}/capture/gone.jsonl, which does not exist"):
        S3Stager(REGION).download_manifest(manifest, tmp_path / "in")


def test_a_processing_job_with_a_manifest_input_sees_the_listed_files(runtime: Any, bucket: str) -> None:
    _put(bucket, "capture/ep/v/2026/12/01/11/00-01-000-a.jsonl", b"a\n")
    manifest = _manifest(bucket, [{"prefix": f"s3://{bucket}/capture/"}, "ep/v/2026/12/01/11/00-01-000-a.jsonl"])
    client = boto3.client("sagemaker", region_name=REGION)
    capture_input = {
        "S3Uri": manifest,
        "LocalPath": "/opt/ml/processing/input/capture",
        "S3DataType": "ManifestFile",
        "S3InputMode": "File",
    }
    output = {
        "OutputName": "out",
        "S3Output": {
            "S3Uri": f"s3://{bucket}/out/",
            "LocalPath": "/opt/ml/processing/output",
            "S3UploadMode": "EndOfJob",
        },
    }
    client.create_processing_job(
        ProcessingJobName="manifest-input",
        RoleArn=ROLE_ARN,
        AppSpecification={
            "ImageUri": "local",
            "ContainerEntrypoint": [
                "/bin/sh",
                "-c",
                "cd /opt/ml/processing/input/capture && find . -type f | sort > /opt/ml/processing/output/files.txt",
            ],
        },
        ProcessingResources={"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1}},
        ProcessingInputs=[{"InputName": "capture", "S3Input": capture_input}],
        ProcessingOutputConfig={"Outputs": [output]},
    )

    described = _wait_for_job(client, "manifest-input")

    assert described["ProcessingJobStatus"] == "Completed", described.get("FailureReason")
    listed = boto3.client("s3", region_name=REGION).get_object(Bucket=bucket, Key="out/files.txt")["Body"].read()
    assert listed.decode().splitlines() == ["./ep/v/2026/12/01/11/00-01-000-a.jsonl"]


@pytest.mark.parametrize(
    ("field", "value", "staged"),
    [
        ("S3DataType", "AugmentedManifestFile", "S3Prefix, ManifestFile"),
        ("S3DataType", "S3Directory", "S3Prefix, ManifestFile"),
        ("S3CompressionType", "Gzip", "None"),
    ],
)
def test_a_processing_input_the_twin_cannot_stage_fails_the_job_naming_it(
    runtime: Any, bucket: str, field: str, value: str, staged: str
) -> None:
    _put(bucket, "data/good.csv")
    client = boto3.client("sagemaker", region_name=REGION)
    data_input = {
        "S3Uri": f"s3://{bucket}/data/",
        "LocalPath": "/opt/ml/processing/input/data",
        "S3DataType": "S3Prefix",
        "S3InputMode": "File",
        field: value,
    }
    name = f"refused-{field}-{value}".lower()
    _processing_job(client, name, [{"InputName": "data", "S3Input": data_input}], [])

    described = _wait_for_job(client, name)

    assert described["ProcessingJobStatus"] == "Failed"
    assert described["FailureReason"] == (
        f"ClientError: ProcessingInput 'data': {field} {value!r} is not supported by the local twin "
        f"(it stages {staged}); "
        "change the input or run the job on AWS"
    )
    assert not list(runtime.work_dir.rglob("good.csv"))
