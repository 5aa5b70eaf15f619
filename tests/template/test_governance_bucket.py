"""The governance bucket as a model-risk reviewer reads it: locked, encrypted, written by one role, bypassed by none.

Each rule is also checked on a weakened copy of the template, so that no check passes vacuously.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import stack_rules
from samtranslator.yaml_helper import yaml_parse

from contract.project import PROJECT_ROOT
from mlops.iam_policy import sam_transformed_template

TEMPLATE_PATH = PROJECT_ROOT / "template.yaml"
GOVERNANCE = f"arn:aws:s3:::{stack_rules.STAND_IN_BUCKETS['GovernanceBucket']}"
ARTIFACTS = f"arn:aws:s3:::{stack_rules.STAND_IN_BUCKETS['ArtifactBucket']}"
MANIFEST = f"{GOVERNANCE}/lineage/mlops-dev-breast-cancer/manual-1/manifest.json"
SNAPSHOT_COPY = f"{ARTIFACTS}/runs/manual-1/data/breast_cancer.csv"


@pytest.fixture(scope="module")
def declared() -> dict[str, Any]:
    return yaml_parse(TEMPLATE_PATH.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def transformed_once() -> dict[str, Any]:
    return sam_transformed_template(TEMPLATE_PATH)


@pytest.fixture
def transformed(transformed_once: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(transformed_once)


def _roles_that_may(template: dict[str, Any], actions: tuple[str, ...], arn: str) -> list[str]:
    return sorted(
        logical_id
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::IAM::Role" and any(stack_rules.may(resource, a, arn) for a in actions)
    )


def _weaken(template: dict[str, Any], role_id: str, statement: dict[str, Any]) -> None:
    template["Resources"][role_id]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"].append(statement)


def test_the_governance_bucket_locks_every_version_in_governance_mode_for_the_parameters_days(
    declared: dict[str, Any],
) -> None:
    bucket = declared["Resources"]["GovernanceBucket"]["Properties"]
    assert bucket["ObjectLockEnabled"] is True
    assert bucket["ObjectLockConfiguration"] == {
        "ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": {"Ref": "GovernanceRetentionDays"}}},
    }
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    [encryption] = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["KMSMasterKeyID"] == {"Fn::GetAtt": ["EncryptionKey", "Arn"]}
    assert bucket["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": "AccessLogBucket"}
    assert declared["Outputs"]["GovernanceBucketName"]["Value"] == {"Ref": "GovernanceBucket"}


def test_only_the_lineage_manifest_function_may_write_the_governance_bucket(transformed: dict[str, Any]) -> None:
    assert _roles_that_may(transformed, ("s3:PutObject",), MANIFEST) == ["LineageManifestFunctionRole"]


def test_another_role_writing_the_governance_bucket_is_reported(transformed: dict[str, Any]) -> None:
    _weaken(transformed, "SmokeTestFunctionRole", {"Effect": "Allow", "Action": "s3:*", "Resource": "*"})

    assert _roles_that_may(transformed, ("s3:PutObject",), MANIFEST) == [
        "LineageManifestFunctionRole",
        "SmokeTestFunctionRole",
    ]


def test_no_role_of_the_stack_may_bypass_governance_retention_or_change_a_lock(transformed: dict[str, Any]) -> None:
    actions = (
        "s3:BypassGovernanceRetention",
        "s3:PutObjectRetention",
        "s3:PutObjectLegalHold",
        "s3:DeleteObjectVersion",
    )
    assert _roles_that_may(transformed, actions, MANIFEST) == []


def test_a_role_that_may_bypass_governance_retention_is_reported(transformed: dict[str, Any]) -> None:
    _weaken(
        transformed,
        "LineageManifestFunctionRole",
        {"Effect": "Allow", "Action": "s3:BypassGovernanceRetention", "Resource": f"{GOVERNANCE}/*"},
    )

    assert _roles_that_may(transformed, ("s3:BypassGovernanceRetention",), MANIFEST) == ["LineageManifestFunctionRole"]


def test_the_bucket_policy_denies_writes_by_anyone_but_the_manifest_function_and_insecure_transport(
    declared: dict[str, Any],
) -> None:
    statements = declared["Resources"]["GovernanceBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    by_sid = {statement["Sid"]: statement for statement in statements}
    guard = by_sid["OnlyTheLineageManifestFunctionWrites"]
    assert guard["Effect"] == "Deny"
    assert guard["Principal"] == "*"
    assert {"s3:PutObject", "s3:PutObjectRetention", "s3:PutObjectLegalHold"} <= set(guard["Action"])
    assert guard["Condition"] == {
        "ArnNotEquals": {"aws:PrincipalArn": {"Fn::GetAtt": ["LineageManifestFunctionRole", "Arn"]}}
    }
    assert by_sid["DenyInsecureTransport"]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert {"DenyPutsNotEncryptedWithKms", "DenyPutsWithAnotherKmsKey"} <= set(by_sid)


def test_only_the_snapshot_function_writes_the_data_a_training_reads(transformed: dict[str, Any]) -> None:
    assert _roles_that_may(transformed, ("s3:PutObject",), SNAPSHOT_COPY) == ["SnapshotTrainingDataFunctionRole"]
    policy = transformed["Resources"]["ArtifactBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    guard = next(s for s in policy if s.get("Sid") == "OnlyTheSnapshotFunctionWritesTrainingDataSnapshots")
    assert guard["Effect"] == "Deny"
    assert guard["Condition"]["ArnNotEquals"]["aws:PrincipalArn"] == {
        "Fn::GetAtt": ["SnapshotTrainingDataFunctionRole", "Arn"]
    }


def test_the_snapshot_function_reads_only_the_stacks_data_prefix(transformed: dict[str, Any]) -> None:
    role = transformed["Resources"]["SnapshotTrainingDataFunctionRole"]
    data = f"arn:aws:s3:::{stack_rules.STAND_IN_BUCKETS['DataBucket']}"

    assert stack_rules.may(role, "s3:GetObjectVersion", f"{data}/incoming/a.csv")
    assert not stack_rules.may(role, "s3:GetObject", f"{data}/ground-truth/labels.csv")
    assert not stack_rules.may(role, "s3:PutObject", f"{data}/incoming/a.csv")
