"""The deploy definition's approval check (separation of duties): who approved and why, before any model is made."""

from __future__ import annotations

import json
from typing import Any

from asl_walk import choice_targets, path_from
from stubbed_engine import StubbedRun, run_stubbed

APPROVER_ARN = "$.model_package.LastModifiedBy.IamIdentity.Arn"


def test_every_way_into_create_model_passes_the_approval_check(deploy_definition: dict[str, Any]) -> None:
    states = deploy_definition["States"]
    into_create_model = [name for name, state in states.items() if state.get("Next") == "CreateModel"]
    into_record = [name for name, state in states.items() if state.get("Next") == "RecordApproval"]

    assert into_create_model == ["RecordApproval"]
    assert into_record == []
    assert states["DescribeModelPackage"]["Next"] == "ReadApprovalMode"
    assert states["ReadApprovalMode"] == {
        "Type": "Pass",
        "Result": {"mode": "${ApprovalMode}"},
        "ResultPath": "$.approval",
        "Next": "CheckApproval",
    }


def test_manual_approval_needs_a_session_of_the_approver_role_and_a_reason(deploy_definition: dict[str, Any]) -> None:
    check = deploy_definition["States"]["CheckApproval"]

    assert choice_targets(check) == [
        "NotifyPackageNotApproved",
        "RecordApproval",
        "NotifyApproverNotRecorded",
        "NotifyApproverNotIndependent",
        "NotifyApprovalWithoutReason",
        "NotifyApprovalWithoutReason",
        "RecordApproval",
    ]
    rules = check["Choices"]
    # Auto mode skips only the reviewer checks, never the Approved status.
    assert rules[0]["Not"] == {"Variable": "$.model_package.ModelApprovalStatus", "StringEquals": "Approved"}
    assert rules[1] == {"Variable": "$.approval.mode", "StringEquals": "auto", "Next": "RecordApproval"}
    # Positive evidence: the approver must match the approver role's sessions; presence is checked first.
    assert rules[2] == {"Variable": APPROVER_ARN, "IsPresent": False, "Next": "NotifyApproverNotRecorded"}
    assert rules[3]["Not"] == {"Variable": APPROVER_ARN, "StringMatches": "${ApproverSessionArnPrefix}*"}
    assert rules[4] == {
        "Variable": "$.model_package.ApprovalDescription",
        "IsPresent": False,
        "Next": "NotifyApprovalWithoutReason",
    }
    assert rules[5]["StringEquals"] == ""


def test_each_refusal_notifies_then_ends_in_its_named_fail(deploy_definition: dict[str, Any]) -> None:
    states = deploy_definition["States"]
    for fail in ("PackageNotApproved", "ApproverNotRecorded", "ApproverNotIndependent", "ApprovalWithoutReason"):
        assert path_from(deploy_definition, f"Notify{fail}") == [f"Notify{fail}", fail]
        assert states[fail]["Type"] == "Fail"
        assert states[fail]["Error"] == fail
        assert states[f"Notify{fail}"]["Resource"] == "arn:${Partition}:states:::sns:publish"
    # The notification names who approved.
    assert APPROVER_ARN in states["NotifyApproverNotIndependent"]["Parameters"]["Message.$"]
    assert APPROVER_ARN in states["NotifyApprovalWithoutReason"]["Parameters"]["Message.$"]


def test_endpoint_is_tagged_with_the_approver_and_the_reason(deploy_definition: dict[str, Any]) -> None:
    states = deploy_definition["States"]
    record = states["RecordApproval"]
    assert record["Parameters"]["FunctionName"] == "${ApprovalTagsFunctionArn}"
    assert record["Parameters"]["Payload"] == {
        "approval_mode.$": "$.approval.mode",
        "model_package.$": "$.model_package",
    }
    tags = {tag["Key"]: tag.get("Value.$") for tag in states["TagEndpoint"]["Parameters"]["Tags"]}
    assert tags["mlops:approved-by"] == "$.approval_tags.Payload.approved_by"
    assert tags["mlops:approval-reason"] == "$.approval_tags.Payload.reason"


def test_a_reason_of_only_white_space_is_refused_by_name_before_any_other_error(
    deploy_definition: dict[str, Any],
) -> None:
    # No Choice rule can tell white space from a reason: the tags function refuses it (functions/approval_tags.py).
    catches = deploy_definition["States"]["RecordApproval"]["Catch"]

    assert catches[0] == {
        "ErrorEquals": ["ApprovalReasonBlank"],
        "ResultPath": "$.error",
        "Next": "NotifyApprovalWithoutReason",
    }
    assert catches[-1]["ErrorEquals"] == ["States.ALL"]


# ---- the check on moto's engine, with every Task stubbed (stubbed_engine.py) --------------------------------------

PACKAGE_ARN = "arn:aws:sagemaker:us-east-1:123456789012:model-package/mlops-dev-breast-cancer/3"
# ${ApproverSessionArnPrefix}'s representative value, plus a session name.
APPROVER_SESSION = "arn:aws:sts::123456789012:assumed-role/mlops-dev-ApproverRole-1A2B3C4D5E6F/jane"
EXECUTION = "approval-0123456789abcdef"
TRAINING_ROLE_SESSION = "arn:aws:sts::123456789012:assumed-role/mlops-dev-TrainingStateMachineRole-1A2B3C/exec"


def _run_with_package(definition: dict[str, Any], package: dict[str, Any]) -> StubbedRun:
    results = {
        "DescribeModelPackage": {
            "ModelPackageArn": PACKAGE_ARN,
            "ModelApprovalStatus": "Approved",
            "CustomerMetadataProperties": {"sample_uri": "s3://bucket/runs/x/preprocess/sample/sample.csv"},
            **package,
        },
        "FindExistingEndpoint": {"Endpoints": []},
        "DescribeEndpoint": {
            "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/mlops-dev-endpoint",
            "EndpointStatus": "InService",
            "EndpointConfigName": f"{EXECUTION}-cfg",
        },
        "RecordApproval": {"Payload": {"approved_by": "someone", "reason": "a reason"}},
    }
    return run_stubbed(definition, results, {"ModelPackageArn": PACKAGE_ARN}, EXECUTION)


def _approved_by(arn: str) -> dict[str, Any]:
    return {"LastModifiedBy": {"IamIdentity": {"Arn": arn, "PrincipalId": "AROAEXAMPLE:session"}}}


def test_an_approval_without_a_reason_does_not_deploy(deploy_definition: dict[str, Any]) -> None:
    for package in (_approved_by(APPROVER_SESSION), {**_approved_by(APPROVER_SESSION), "ApprovalDescription": ""}):
        run = _run_with_package(deploy_definition, package)

        assert run.status == "FAILED"
        assert run.error == "ApprovalWithoutReason"
        assert run.visited[-2:] == ["NotifyApprovalWithoutReason", "ApprovalWithoutReason"]
        assert "CreateModel" not in run.visited
        assert APPROVER_SESSION in run.requests["NotifyApprovalWithoutReason"]["Message"]


def test_an_approval_by_a_pipeline_role_does_not_deploy(deploy_definition: dict[str, Any]) -> None:
    run = _run_with_package(deploy_definition, {**_approved_by(TRAINING_ROLE_SESSION), "ApprovalDescription": "ok"})

    assert run.status == "FAILED"
    assert run.error == "ApproverNotIndependent"
    assert run.visited[-2:] == ["NotifyApproverNotIndependent", "ApproverNotIndependent"]
    assert "CreateModel" not in run.visited
    assert TRAINING_ROLE_SESSION in run.requests["NotifyApproverNotIndependent"]["Message"]


def test_an_approval_by_a_look_alike_role_does_not_deploy(deploy_definition: dict[str, Any]) -> None:
    # The approver role's name as a prefix of another role's: the session ARN's '/' after the name must match too.
    look_alike = APPROVER_SESSION.replace("ApproverRole-1A2B3C4D5E6F/", "ApproverRole-1A2B3C4D5E6FX/")
    run = _run_with_package(deploy_definition, {**_approved_by(look_alike), "ApprovalDescription": "ok"})

    assert run.error == "ApproverNotIndependent"


def test_a_package_without_a_recorded_approver_does_not_deploy(deploy_definition: dict[str, Any]) -> None:
    run = _run_with_package(deploy_definition, {"ApprovalDescription": "ok"})

    assert run.error == "ApproverNotRecorded"
    assert run.visited[-2:] == ["NotifyApproverNotRecorded", "ApproverNotRecorded"]


def test_a_package_that_is_not_approved_does_not_deploy(deploy_definition: dict[str, Any]) -> None:
    package = {**_approved_by(APPROVER_SESSION), "ApprovalDescription": "no", "ModelApprovalStatus": "Rejected"}
    run = _run_with_package(deploy_definition, package)

    assert run.error == "PackageNotApproved"
    assert "Rejected" in run.requests["NotifyPackageNotApproved"]["Message"]


def test_an_approval_by_the_approver_role_with_a_reason_deploys(deploy_definition: dict[str, Any]) -> None:
    run = _run_with_package(deploy_definition, {**_approved_by(APPROVER_SESSION), "ApprovalDescription": "reviewed"})

    assert run.status == "SUCCEEDED", run.cause
    assert run.visited[:4] == ["DescribeModelPackage", "ReadApprovalMode", "CheckApproval", "RecordApproval"]
    assert run.requests["RecordApproval"]["Payload"]["approval_mode"] == "manual"


def test_auto_mode_skips_the_reviewer_checks_but_still_records(deploy_definition: dict[str, Any]) -> None:
    auto = json.loads(json.dumps(deploy_definition).replace("${ApprovalMode}", "auto"))
    run = _run_with_package(auto, {})

    assert run.status == "SUCCEEDED", run.cause
    assert run.requests["RecordApproval"]["Payload"]["approval_mode"] == "auto"
    assert "TagEndpoint" in run.visited
