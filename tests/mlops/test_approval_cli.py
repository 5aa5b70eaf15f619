"""`mlops approve` / `mlops reject` against the twin (one in-process twin for the module, ApprovalMode manual).

The command is the same boto3 code against AWS and against `mlops up`: the default session, the stack's
outputs, sts:AssumeRole of ApproverRoleArn. Approving a package also starts the stack's deploy state machine
(the approval rule), whose approval check these tests read: who approved and why decide whether it deploys.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from contract.project import TEMPLATE_PATH
from emulator.twin import LocalTwin
from mlops.cli import main

CONTAINERS = {"Containers": [{"Image": "xgboost:local", "ModelDataUrl": "s3://bucket/models/m/output/model.tar.gz"}]}


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTwin]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_SAM_STACK_NAME", "mlops-local")
        with LocalTwin(
            template=TEMPLATE_PATH,
            parameter_overrides={"ApprovalMode": "manual"},
            work_dir=Path(tmp_path_factory.mktemp("approval-twin")),
        ) as started:
            yield started


def _outputs(twin: LocalTwin) -> dict[str, str]:
    [stack] = boto3.client("cloudformation").describe_stacks(StackName=twin.stack_name)["Stacks"]
    return {item["OutputKey"]: item["OutputValue"] for item in stack["Outputs"]}


def _new_package(twin: LocalTwin) -> dict[str, Any]:
    group = _outputs(twin)["ModelPackageGroupName"]
    arn = boto3.client("sagemaker").create_model_package(
        ModelPackageGroupName=group, InferenceSpecification=CONTAINERS
    )["ModelPackageArn"]
    return dict(boto3.client("sagemaker").describe_model_package(ModelPackageName=arn))


def _deploys(twin: LocalTwin) -> list[dict[str, Any]]:
    return twin.list_executions("deploy")


def _deploy_of(twin: LocalTwin, package_arn: str, before: list[dict[str, Any]]) -> Any:
    known = {execution["executionArn"] for execution in before}
    for execution in _deploys(twin):
        if execution["executionArn"] in known:
            continue
        result = twin.wait_for_execution(execution["executionArn"], timeout=120)
        if result.input == {"ModelPackageArn": package_arn}:
            return result
    raise AssertionError(f"no deploy execution started for {package_arn}")


def _session_of_role(role_arn: str, session_name: str) -> boto3.Session:
    credentials = boto3.client("sts").assume_role(RoleArn=role_arn, RoleSessionName=session_name)["Credentials"]
    return boto3.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name="us-east-1",
    )


def test_approve_records_the_approver_role_session_and_the_reason_and_passes_the_check(
    twin: LocalTwin, capsys: pytest.CaptureFixture[str]
) -> None:
    package = _new_package(twin)
    before = _deploys(twin)

    code = main(["approve", str(package["ModelPackageVersion"]), "--reason", "Reviewed the evaluation: AUC 0.98"])

    printed = capsys.readouterr().out
    assert code == 0, printed
    described = boto3.client("sagemaker").describe_model_package(ModelPackageName=package["ModelPackageArn"])
    approver_role_name = _outputs(twin)["ApproverRoleArn"].rsplit("/", 1)[-1]
    assert described["ModelApprovalStatus"] == "Approved"
    assert described["ApprovalDescription"] == "Reviewed the evaluation: AUC 0.98"
    assert described["LastModifiedBy"]["IamIdentity"]["Arn"].startswith(
        f"arn:aws:sts::123456789012:assumed-role/{approver_role_name}/"
    )
    assert f"Approved model package {package['ModelPackageArn']} (was PendingManualApproval)" in printed
    # The approval check passed: the deploy went on to make a model (this package's artifact is a stand-in).
    deploy = _deploy_of(twin, package["ModelPackageArn"], before)
    assert "RecordApproval" in deploy.states_entered()
    assert "CreateModel" in deploy.states_entered()


def test_an_approval_by_a_pipeline_role_does_not_deploy(twin: LocalTwin) -> None:
    # moto lets any caller assume a role (no trust policy check), which is what a misused pipeline role looks like.
    # The twin enforces no IAM by default, so the deploy's check is what refuses it (IAM: test_iam_enforcement.py).
    package = _new_package(twin)
    before = _deploys(twin)
    training_role = boto3.client("iam").get_role(RoleName=_role_name(twin, "TrainingStateMachineRole"))["Role"]
    pipeline = _session_of_role(training_role["Arn"], "training-exec")

    pipeline.client("sagemaker").update_model_package(
        ModelPackageArn=package["ModelPackageArn"], ModelApprovalStatus="Approved", ApprovalDescription="looks fine"
    )

    deploy = _deploy_of(twin, package["ModelPackageArn"], before)
    assert deploy.status == "FAILED"
    assert deploy.error == "ApproverNotIndependent"
    assert "NotifyApproverNotIndependent" in deploy.states_entered()
    assert "CreateModel" not in deploy.states_entered()


def test_an_approval_without_a_reason_does_not_deploy(twin: LocalTwin) -> None:
    package = _new_package(twin)
    before = _deploys(twin)
    approver = _session_of_role(_outputs(twin)["ApproverRoleArn"], "jane")

    approver.client("sagemaker").update_model_package(
        ModelPackageArn=package["ModelPackageArn"], ModelApprovalStatus="Approved"
    )

    deploy = _deploy_of(twin, package["ModelPackageArn"], before)
    assert deploy.error == "ApprovalWithoutReason"
    assert deploy.states_entered()[-2:] == ["NotifyApprovalWithoutReason", "ApprovalWithoutReason"]


def test_reject_records_the_reason(twin: LocalTwin, capsys: pytest.CaptureFixture[str]) -> None:
    package = _new_package(twin)

    code = main(["reject", package["ModelPackageArn"], "--reason", "bias gate too close to its band"])

    assert code == 0, capsys.readouterr().err
    described = boto3.client("sagemaker").describe_model_package(ModelPackageName=package["ModelPackageArn"])
    assert described["ModelApprovalStatus"] == "Rejected"
    assert described["ApprovalDescription"] == "bias gate too close to its band"


@pytest.mark.parametrize(
    ("package", "reason", "message"),
    [
        ("LATEST", "ok", "is not a model package: give its ARN, mlops-local-breast-cancer/<version>"),
        ("1", "   ", "--reason is empty: say why"),
        ("other-group/1", "ok", "model package other-group/1 is not in the stack's model package group"),
        (
            "arn:aws:sagemaker:us-east-1:123456789012:model-package/other-group/1",
            "ok",
            "is not in the stack's model package group mlops-local-breast-cancer",
        ),
        ("999", "ok", "the stack's model package group mlops-local-breast-cancer has no version 999"),
        ("1", "x" * 1025, "--reason has 1025 characters; SageMaker keeps at most 1024"),
    ],
)
def test_approve_refuses_bad_input_naming_it(
    twin: LocalTwin, capsys: pytest.CaptureFixture[str], package: str, reason: str, message: str
) -> None:
    _new_package(twin)

    assert main(["approve", package, "--reason", reason]) == 1
    assert message in capsys.readouterr().err


def test_a_decided_package_cannot_be_approved_and_a_rejected_one_not_rejected_again(
    twin: LocalTwin, capsys: pytest.CaptureFixture[str]
) -> None:
    package = _new_package(twin)
    arn = package["ModelPackageArn"]
    assert main(["reject", arn, "--reason", "metrics regressed"]) == 0
    capsys.readouterr()

    assert main(["approve", arn, "--reason", "changed my mind"]) == 1
    refusal = capsys.readouterr().err
    assert f"model package {arn} is already Rejected" in refusal
    assert "'metrics regressed'" in refusal
    assert main(["reject", arn, "--reason", "again"]) == 1
    assert "is already Rejected" in capsys.readouterr().err


def test_mfa_serial_and_token_go_together(twin: LocalTwin, capsys: pytest.CaptureFixture[str]) -> None:
    package = _new_package(twin)

    assert main(["approve", package["ModelPackageArn"], "--reason", "ok", "--mfa-serial", "arn:aws:iam::1:mfa/j"]) == 1
    assert "--mfa-serial and --mfa-token go together" in capsys.readouterr().err


def test_a_stack_without_the_approver_role_output_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    from mlops.approval import ApprovalError, decide
    from mlops.stack_target import StackTarget, StackTargetError

    target = StackTarget("old-stack", {"ModelPackageGroupName": "g"}, session=None)
    with pytest.raises(StackTargetError, match="stack old-stack has no output ApproverRoleArn"):
        decide(target, "1", "Approved", "reason")
    with pytest.raises(ApprovalError, match="--reason is empty"):
        decide(target, "1", "Approved", "")


def _role_name(twin: LocalTwin, logical_id: str) -> str:
    """The physical name CloudFormation gave a role of the stack (`<stack>-<logical id>-<suffix>`)."""
    roles = boto3.client("iam").list_roles()["Roles"]
    [name] = [r["RoleName"] for r in roles if r["RoleName"].startswith(f"{twin.stack_name}-{logical_id}-")]
    return str(name)
