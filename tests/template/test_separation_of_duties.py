"""template.yaml's separation of duties: who may approve, who may not, and prod's refusal of auto approval."""

from __future__ import annotations

from typing import Any

import pytest

from mlops.iam_policy import sam_transformed_template


@pytest.fixture(scope="module")
def transformed() -> dict[str, Any]:
    return sam_transformed_template()


def _roles(template: dict[str, Any]) -> set[str]:
    return {logical_id for logical_id, r in template["Resources"].items() if r["Type"] == "AWS::IAM::Role"}


def _statements(document: Any) -> list[dict[str, Any]]:
    statements = document.get("Statement", [])
    return statements if isinstance(statements, list) else [statements]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_every_pipeline_role_is_denied_approval(transformed: dict[str, Any]) -> None:
    deny = transformed["Resources"]["PipelineRolesCannotApprove"]["Properties"]
    attached = {role["Ref"] for role in deny["Roles"]}

    # Every role of the stack but the approver's, including those SAM generates for functions: a new role fails here.
    assert attached == _roles(transformed) - {"ApproverRole"}
    assert _statements(deny["PolicyDocument"]) == [
        {
            "Sid": "OnlyTheApproverRoleDecidesApproval",
            "Effect": "Deny",
            "Action": "sagemaker:UpdateModelPackage",
            "Resource": "*",
        }
    ]


def test_no_pipeline_role_is_granted_update_model_package(transformed: dict[str, Any]) -> None:
    granted = [
        f"{logical_id}/{policy['PolicyName']}/{statement.get('Sid', '?')}"
        for logical_id in _roles(transformed) - {"ApproverRole"}
        for policy in transformed["Resources"][logical_id]["Properties"].get("Policies", [])
        for statement in _statements(policy["PolicyDocument"])
        if isinstance(statement, dict)
        and statement.get("Effect") == "Allow"
        and any(
            str(a).lower() in ("sagemaker:updatemodelpackage", "sagemaker:*", "*")
            for a in _as_list(statement.get("Action"))
        )
    ]
    assert granted == []


def test_the_approver_role_decides_only_the_stack_packages(transformed: dict[str, Any]) -> None:
    role = transformed["Resources"]["ApproverRole"]["Properties"]
    [policy] = role["Policies"]
    [decide] = [s for s in _statements(policy["PolicyDocument"]) if "sagemaker:UpdateModelPackage" in s["Action"]]

    assert decide["Effect"] == "Allow"
    resource = decide["Resource"]["Fn::Sub"][0]
    assert resource.endswith(":model-package/${AWS::StackName}-${ModelName}/*")
    assert transformed["Outputs"]["ApproverRoleArn"]["Value"] == {"Fn::GetAtt": ["ApproverRole", "Arn"]}


def test_only_the_named_principal_may_assume_the_approver_role_with_mfa_on_request(
    transformed: dict[str, Any],
) -> None:
    [trust] = _statements(transformed["Resources"]["ApproverRole"]["Properties"]["AssumeRolePolicyDocument"])

    assert trust["Action"] == "sts:AssumeRole"
    assert trust["Principal"]["AWS"]["Fn::If"][0] == "HasApproverPrincipal"
    assert trust["Principal"]["AWS"]["Fn::If"][1] == {"Ref": "ApproverPrincipalArn"}
    assert trust["Condition"]["Fn::If"] == [
        "IsApproverMfaRequired",
        {"Bool": {"aws:MultiFactorAuthPresent": "true"}},
        {"Ref": "AWS::NoValue"},
    ]
    assert transformed["Parameters"]["ApproverRequiresMfa"]["AllowedValues"] == ["true", "false"]


def test_a_prod_stack_refuses_auto_approval(transformed: dict[str, Any]) -> None:
    rule = transformed["Rules"]["ProdApprovesByHand"]

    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "Environment"}, "prod"]}
    assert rule["Assertions"][0]["Assert"] == {"Fn::Equals": [{"Ref": "ApprovalMode"}, "manual"]}


def test_the_deploy_knows_the_approver_role_sessions(transformed: dict[str, Any]) -> None:
    substitutions = transformed["Resources"]["DeployStateMachine"]["Properties"]["DefinitionSubstitutions"]

    assert substitutions["ApproverSessionArnPrefix"] == {
        "Fn::Sub": "arn:${AWS::Partition}:sts::${AWS::AccountId}:assumed-role/${ApproverRole}/"
    }
    assert substitutions["ApprovalMode"] == {"Ref": "ApprovalMode"}
