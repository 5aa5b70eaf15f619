"""The twin's registry records who created and who last changed a package, from the credentials that signed the call."""

from __future__ import annotations

import json
from typing import Any

import boto3

REGION = "us-east-1"
CONTAINERS = {"Containers": [{"Image": "xgboost:local", "ModelDataUrl": "s3://bucket/models/m/output/model.tar.gz"}]}
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "sts:AssumeRole"}
    ],
}


def _session_of(role_name: str, session_name: str) -> tuple[boto3.Session, str]:
    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]
    credentials = boto3.client("sts", region_name=REGION).assume_role(
        RoleArn=role["Arn"], RoleSessionName=session_name
    )["Credentials"]
    session = boto3.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=REGION,
    )
    return session, role["RoleId"]


def _package(client: Any, group: str) -> str:
    client.create_model_package_group(ModelPackageGroupName=group)
    arn: str = client.create_model_package(ModelPackageGroupName=group, InferenceSpecification=CONTAINERS)[
        "ModelPackageArn"
    ]
    return arn


def test_the_twin_records_last_modified_by_as_the_assumed_role_session(runtime: Any) -> None:
    creator, creator_role_id = _session_of("pipeline-training", "training-exec")
    approver, approver_role_id = _session_of("reviewers-approver", "jane")
    arn = _package(creator.client("sagemaker"), "who")

    approver.client("sagemaker").update_model_package(
        ModelPackageArn=arn, ModelApprovalStatus="Approved", ApprovalDescription="reviewed the evaluation"
    )
    package = boto3.client("sagemaker", region_name=REGION).describe_model_package(ModelPackageName=arn)

    assert package["CreatedBy"] == {
        "IamIdentity": {
            "Arn": "arn:aws:sts::123456789012:assumed-role/pipeline-training/training-exec",
            "PrincipalId": f"{creator_role_id}:training-exec",
        }
    }
    assert package["LastModifiedBy"] == {
        "IamIdentity": {
            "Arn": "arn:aws:sts::123456789012:assumed-role/reviewers-approver/jane",
            "PrincipalId": f"{approver_role_id}:jane",
        }
    }
    assert package["ApprovalDescription"] == "reviewed the evaluation"


def test_an_iam_user_key_is_recorded_as_the_user(runtime: Any) -> None:
    iam = boto3.client("iam", region_name=REGION)
    user = iam.create_user(UserName="reviewer")["User"]
    key = iam.create_access_key(UserName="reviewer")["AccessKey"]
    client = boto3.client(
        "sagemaker",
        region_name=REGION,
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
    )
    arn = _package(client, "by-user")

    package = client.describe_model_package(ModelPackageName=arn)

    assert package["CreatedBy"] == {"IamIdentity": {"Arn": user["Arn"], "PrincipalId": user["UserId"]}}


def test_a_key_the_twin_did_not_issue_records_nobody(runtime: Any) -> None:
    # The tests' `testing` key names no principal: the twin records no identity instead of moto's stand-in.
    approver, _ = _session_of("reviewers", "jane")
    client = boto3.client("sagemaker", region_name=REGION)
    arn = _package(client, "anonymous")
    assert "CreatedBy" not in client.describe_model_package(ModelPackageName=arn)

    approver.client("sagemaker").update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")
    client.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Rejected", ApprovalDescription="no")
    package = client.describe_model_package(ModelPackageName=arn)

    # Not the approver's session: the last change was made by a caller the twin cannot name.
    assert "LastModifiedBy" not in package
    assert package["ModelApprovalStatus"] == "Rejected"


def test_the_package_state_change_event_gives_times_in_epoch_milliseconds_as_sagemaker_does(runtime: Any) -> None:
    client = boto3.client("sagemaker", region_name=REGION)
    arn = _package(client, "times")
    described = client.describe_model_package(ModelPackageName=arn)

    events = [event for event in runtime.events if event["detail-type"] == "SageMaker Model Package State Change"]
    detail = events[-1]["detail"]

    assert isinstance(detail["CreationTime"], int)
    assert detail["CreationTime"] == round(described["CreationTime"].timestamp() * 1000)
