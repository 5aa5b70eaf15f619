"""mlops lineage on moto: from an endpoint or package to its verified manifest, and the input reproducing it."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from mlops.lineage import LineageError, LineageIntegrityError, lineage_command, lineage_view, training_input
from mlops.stack_target import StackTarget

GROUP = "mlops-local-breast-cancer"
GOVERNANCE = "mlops-local-governance"
MANIFEST_KEY = f"lineage/{GROUP}/manual-1/manifest.json"
MANIFEST = {
    "schema_version": 1,
    "execution": {"arn": "arn:aws:states:us-east-1:123456789012:execution:mlops-local-training:manual-1"},
    "trigger": {"type": "manual", "objects": []},
    "data": {
        "data_uri": "s3://data/incoming/",
        "snapshot_uri": "s3://artifacts/runs/manual-1/data/",
        "pinned": False,
        "objects": [
            {"key": "incoming/a.csv", "version_id": "v-a", "sha256": "a" * 64, "size": 10, "etag": "e"},
            {"key": "incoming/b.csv", "version_id": "v-b", "sha256": "b" * 64, "size": 20, "etag": "f"},
        ],
    },
    "preprocessing": {
        "job_name": "manual-1-prep",
        "parameters": {"seed": "42"},
        "seed": "42",
        "bias_facet": {"facet_column": "", "sensitive_values": []},
    },
    "code": {
        "source_dir_uri": "s3://artifacts/code/abc/sourcedir.tar.gz",
        "sourcedir_sha256": "abc",
        "source_commit": "c1",
    },
    "image": {"uri": "img:1", "digest": None, "digest_unavailable": "no registry"},
    "training": {"job_name": "manual-1-train", "tuned": False, "hyperparameters": {"max_depth": "4"}},
    "evaluation": {
        "metric_name": "auc",
        "metric_value": 0.99,
        "report_uri": "s3://artifacts/runs/manual-1/evaluation/evaluation.json",
        "report_sha256": "d" * 64,
        "governance_copy_uri": f"s3://{GOVERNANCE}/lineage/{GROUP}/manual-1/evaluation.json",
        "bias_gate": {"passed": True, "reason": "no facet assessed"},
    },
    "drift_baseline": {"statistics_uri": "s3://artifacts/runs/manual-1/evaluation/baseline/baseline.json"},
}


@pytest.fixture
def target(monkeypatch: pytest.MonkeyPatch) -> Iterator[StackTarget]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=GOVERNANCE)
        s3.put_bucket_versioning(Bucket=GOVERNANCE, VersioningConfiguration={"Status": "Enabled"})
        boto3.client("sagemaker").create_model_package_group(ModelPackageGroupName=GROUP)
        outputs = {
            "SourceDirUri": "s3://artifacts/code/abc/sourcedir.tar.gz",
            "SourceCommit": "c1",
            "GovernanceBucketName": GOVERNANCE,
        }
        yield StackTarget(stack_name="mlops-local", outputs=outputs, session=boto3.Session())


def _register(properties: dict[str, str]) -> str:
    return str(
        boto3.client("sagemaker").create_model_package(
            ModelPackageGroupName=GROUP,
            ModelApprovalStatus="PendingManualApproval",
            CustomerMetadataProperties=properties,
            InferenceSpecification={
                "Containers": [{"Image": "img:1", "ModelDataUrl": "s3://artifacts/model.tar.gz"}],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
        )["ModelPackageArn"]
    )


def _registered_with_manifest(manifest: dict[str, Any] = MANIFEST) -> tuple[str, str]:
    body = json.dumps(manifest, sort_keys=True, indent=2).encode() + b"\n"
    version = boto3.client("s3").put_object(Bucket=GOVERNANCE, Key=MANIFEST_KEY, Body=body)["VersionId"]
    arn = _register(
        {
            "lineage_manifest_uri": f"s3://{GOVERNANCE}/{MANIFEST_KEY}",
            "lineage_manifest_sha256": hashlib.sha256(body).hexdigest(),
            "lineage_manifest_version_id": version,
        }
    )
    return arn, version


def test_the_manifest_checksum_is_verified_against_the_package(target: StackTarget) -> None:
    arn, version = _registered_with_manifest()

    view = lineage_view(target, arn)

    assert view["manifest"]["verified"] is True
    assert view["manifest"]["version_id"] == version
    assert [o["version_id"] for o in view["lineage"]["data"]["objects"]] == ["v-a", "v-b"]


def test_a_manifest_whose_bytes_differ_from_the_registered_sha256_is_a_loud_error(target: StackTarget) -> None:
    body = json.dumps(MANIFEST).encode()
    boto3.client("s3").put_object(Bucket=GOVERNANCE, Key=MANIFEST_KEY, Body=body)
    arn = _register({"lineage_manifest_uri": f"s3://{GOVERNANCE}/{MANIFEST_KEY}", "lineage_manifest_sha256": "0" * 64})

    with pytest.raises(LineageIntegrityError, match=r"CHECKSUM MISMATCH.*recorded 0{64}"):
        lineage_view(target, arn)


def test_the_recorded_version_is_read_so_a_later_write_to_the_key_does_not_change_the_lineage(
    target: StackTarget,
) -> None:
    arn, _ = _registered_with_manifest()
    boto3.client("s3").put_object(Bucket=GOVERNANCE, Key=MANIFEST_KEY, Body=b'{"data": {"objects": []}}')

    view = lineage_view(target, arn)

    assert len(view["lineage"]["data"]["objects"]) == 2


def test_a_package_registered_without_a_manifest_is_refused_naming_its_properties(target: StackTarget) -> None:
    arn = _register({"metric_name": "auc"})

    with pytest.raises(LineageError, match=r"no lineage_manifest_uri.*metric_name"):
        lineage_view(target, arn)


def test_an_unknown_endpoint_is_refused_naming_it(target: StackTarget) -> None:
    with pytest.raises(LineageError, match="no-such-endpoint is neither a model package ARN nor an endpoint"):
        lineage_view(target, "no-such-endpoint")


def test_the_training_input_pins_every_object_version_and_sha256_of_the_manifest(target: StackTarget) -> None:
    arn, _ = _registered_with_manifest()

    execution_input, differences = training_input(target, lineage_view(target, arn))

    assert execution_input["data_uri"] == "s3://data/incoming/"
    assert execution_input["data_versions"] == [
        {"key": "incoming/a.csv", "version_id": "v-a", "sha256": "a" * 64},
        {"key": "incoming/b.csv", "version_id": "v-b", "sha256": "b" * 64},
    ]
    assert execution_input["tune"] is False
    assert execution_input["trigger"] == {"type": "manual", "detail": {"reproduces": MANIFEST["execution"]["arn"]}}
    assert differences == []


def test_the_training_input_names_what_the_stack_runs_differently_now(target: StackTarget) -> None:
    arn, _ = _registered_with_manifest()
    target.outputs["SourceCommit"] = "c2"

    _, differences = training_input(target, lineage_view(target, arn))

    assert differences == ["the stack's SourceCommit is c2, the manifest's c1"]


def test_the_command_prints_the_view_and_exits_1_with_the_error(
    target: StackTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    arn, _ = _registered_with_manifest()
    monkeypatch.setattr("mlops.lineage.stack_target", lambda name: target)
    out, err = io.StringIO(), io.StringIO()

    assert lineage_command(arn, out=out, err=err) == 0
    assert "incoming/a.csv  version v-a" in out.getvalue()
    assert "(verified)" in out.getvalue()
    assert lineage_command("no-such-endpoint", out=out, err=err) == 1
    assert err.getvalue().startswith("mlops lineage: no-such-endpoint is neither")
