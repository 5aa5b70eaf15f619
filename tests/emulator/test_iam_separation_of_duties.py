"""Separation of duties by IAM, acting as each role of the deployed template in moto's access-control mode.

The twin deploys template.yaml into moto, so the roles, their inline policies and the PipelineRolesCannotApprove
managed policy are the template's own, not copies. With `INITIAL_NO_AUTH_ACTION_COUNT` at 0 moto evaluates every
request's identity policies (not resource policies, permission boundaries or SCPs); the twin names the model
package a SageMaker request is about as its resource (emulator/sagemaker_local/backend.py). moto does not check
trust policies when access control is off, so each role is assumed before it is switched on.

moto 5.2.5 stores the inline policies of a role its CloudFormation creates as dicts, which its access control
cannot read (KeyError 'policy_document'), with the statements an `!If` removes left as nulls; the fixture
stores each one as the same document in JSON, without the nulls, before any test runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import settings
from moto.iam.models import iam_backends

from contract.local_account import LOCAL_ACCOUNT_ID
from contract.project import TEMPLATE_PATH
from emulator.twin import LocalTwin
from mlops.iam_policy import sam_transformed_template

CONTAINERS = {"Containers": [{"Image": "xgboost:local", "ModelDataUrl": "s3://bucket/models/m/output/model.tar.gz"}]}


def _pipeline_role_ids() -> list[str]:
    """Every role of the transformed template but ApproverRole: the state machines', functions', jobs', rules'."""
    resources = sam_transformed_template()["Resources"]
    return sorted(
        logical_id
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::IAM::Role" and logical_id != "ApproverRole"
    )


PIPELINE_ROLES = _pipeline_role_ids()


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTwin]:
    with LocalTwin(
        template=TEMPLATE_PATH,
        parameter_overrides={"ApprovalMode": "manual"},
        work_dir=Path(tmp_path_factory.mktemp("iam-twin")),
    ) as started:
        _reput_inline_policies_as_json(started.stack_name)
        yield started


def _reput_inline_policies_as_json(stack_name: str) -> None:
    # Through moto's backend: its GetRolePolicy cannot serialise a dict-stored document either.
    for role in iam_backends[LOCAL_ACCOUNT_ID]["aws"].roles.values():
        if role.name.startswith(f"{stack_name}-"):
            for name, document in list(role.policies.items()):
                if not isinstance(document, str):
                    # moto resolves a statement `!If [cond, ..., !Ref AWS::NoValue]` to null, where
                    # CloudFormation leaves the statement out.
                    statements = [s for s in document.get("Statement", []) if s is not None]
                    role.policies[name] = json.dumps({**document, "Statement": statements})


@pytest.fixture
def package_arn(twin: LocalTwin) -> str:
    group = f"{twin.stack_name}-breast-cancer"
    response = boto3.client("sagemaker").create_model_package(
        ModelPackageGroupName=group, InferenceSpecification=CONTAINERS
    )
    return str(response["ModelPackageArn"])


def _role_arn(twin: LocalTwin, logical_id: str) -> str:
    roles = boto3.client("iam").list_roles()["Roles"]
    [arn] = [r["Arn"] for r in roles if r["RoleName"].startswith(f"{twin.stack_name}-{logical_id}-")]
    return str(arn)


def _sagemaker_as(role_arn: str) -> Any:
    credentials = boto3.client("sts").assume_role(RoleArn=role_arn, RoleSessionName="separation-test")["Credentials"]
    return boto3.client(
        "sagemaker",
        region_name="us-east-1",
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )


@pytest.fixture
def enforce_iam(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Switches moto's access control on for the calls made after `enforce_iam()`."""

    def switch_on() -> None:
        monkeypatch.setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)

    return switch_on


def test_the_pipeline_roles_are_found_in_the_template() -> None:
    # Guards the parametrisation below: the template's roles, not an empty or hand-written list.
    assert {"TrainingStateMachineRole", "DeployStateMachineRole", "SageMakerJobRole"} <= set(PIPELINE_ROLES)
    assert len(PIPELINE_ROLES) >= 15


@pytest.mark.parametrize("logical_id", PIPELINE_ROLES)
def test_a_pipeline_role_cannot_approve(twin: LocalTwin, package_arn: str, enforce_iam: Any, logical_id: str) -> None:
    sagemaker = _sagemaker_as(_role_arn(twin, logical_id))
    enforce_iam()

    with pytest.raises(ClientError) as refused:
        sagemaker.update_model_package(
            ModelPackageArn=package_arn, ModelApprovalStatus="Approved", ApprovalDescription="self-approval"
        )

    _assert_access_denied(refused.value)


def test_the_explicit_deny_holds_even_when_a_pipeline_role_is_granted_approval(
    twin: LocalTwin, package_arn: str, enforce_iam: Any
) -> None:
    # A later, too broad grant to a pipeline role must not let it approve: the managed policy's Deny wins.
    role_arn = _role_arn(twin, "TrainingStateMachineRole")
    grant = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "sagemaker:UpdateModelPackage", "Resource": "*"}],
    }
    boto3.client("iam").put_role_policy(
        RoleName=role_arn.rsplit("/", 1)[-1], PolicyName="TooBroad", PolicyDocument=json.dumps(grant)
    )
    sagemaker = _sagemaker_as(role_arn)
    enforce_iam()

    with pytest.raises(ClientError) as refused:
        sagemaker.update_model_package(ModelPackageArn=package_arn, ModelApprovalStatus="Approved")

    _assert_access_denied(refused.value)


def test_the_approver_role_can_approve_and_reject_the_stack_packages(
    twin: LocalTwin, package_arn: str, enforce_iam: Any
) -> None:
    [stack] = boto3.client("cloudformation").describe_stacks(StackName=twin.stack_name)["Stacks"]
    approver_arn = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}["ApproverRoleArn"]
    sagemaker = _sagemaker_as(approver_arn)
    enforce_iam()

    sagemaker.update_model_package(
        ModelPackageArn=package_arn, ModelApprovalStatus="Rejected", ApprovalDescription="reviewed: not yet"
    )

    assert sagemaker.describe_model_package(ModelPackageName=package_arn)["ModelApprovalStatus"] == "Rejected"


def _assert_access_denied(error: ClientError) -> None:
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert "sagemaker:UpdateModelPackage" in str(error.response)
