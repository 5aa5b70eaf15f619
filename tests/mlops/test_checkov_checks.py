"""The project's checkov checks pass the stack's resources and fail the weakened versions."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from checkov.cloudformation.runner import Runner
from checkov.common.models.enums import CheckResult
from checkov.runner_filter import RunnerFilter

from mlops.checkov_checks import (
    ecr_pull_pinned,
    event_target_dead_letter,
    invoke_endpoint_through_vpce,
    kms_key_separation,
    sagemaker_registry_tags,
    sqs_customer_managed_key,
    state_machine_observability,
    trust_policy_source,
)
from mlops.iam_policy import sam_transformed_template

# The least-privilege checks, with CKV_MLOPS_1's no-execution-data-in-prod rule.
LEAST_PRIVILEGE_CHECK_IDS = [
    module.check.id
    for module in (
        state_machine_observability,
        kms_key_separation,
        trust_policy_source,
        ecr_pull_pinned,
        invoke_endpoint_through_vpce,
    )
]

STATE_MACHINE = {
    "Type": "AWS::StepFunctions::StateMachine",
    "Properties": {
        "LoggingConfiguration": {
            "Level": "ALL",
            "IncludeExecutionData": {"Fn::If": ["IsProd", False, True]},
            "Destinations": [{"CloudWatchLogsLogGroup": {"LogGroupArn": "arn:aws:logs:::log-group:x"}}],
        },
        "TracingConfiguration": {"Enabled": True},
    },
}
MODEL_PACKAGE_GROUP = {
    "Type": "AWS::SageMaker::ModelPackageGroup",
    "Properties": {"Tags": [{"Key": "Project", "Value": "mlops"}, {"Key": "Environment", "Value": "dev"}]},
}
QUEUE = {"Type": "AWS::SQS::Queue", "Properties": {"KmsMasterKeyId": {"Fn::GetAtt": ["EncryptionKey", "Arn"]}}}
RULE = {
    "Type": "AWS::Events::Rule",
    "Properties": {
        "Targets": [
            {
                "Id": "Target",
                "Arn": "arn:aws:states:::x",
                "DeadLetterConfig": {"Arn": "arn:aws:sqs:::dlq"},
                "RetryPolicy": {"MaximumRetryAttempts": 8},
            }
        ]
    },
}

ACCOUNT_ROOT = {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}
KEY = {
    "Type": "AWS::KMS::Key",
    "Properties": {
        "KeyPolicy": {
            "Statement": [
                {
                    "Sid": "Administer",
                    "Effect": "Allow",
                    "Principal": {"AWS": ACCOUNT_ROOT},
                    "Action": ["kms:PutKeyPolicy", "kms:ScheduleKeyDeletion", "kms:DescribeKey"],
                    "Resource": "*",
                },
                {
                    "Sid": "Use",
                    "Effect": "Allow",
                    "Principal": {"AWS": ACCOUNT_ROOT},
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                    "Resource": "*",
                },
            ]
        }
    },
}
SAGEMAKER_TRUST = {
    "Effect": "Allow",
    "Principal": {"Service": "sagemaker.amazonaws.com"},
    "Action": "sts:AssumeRole",
    "Condition": {
        "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
        "ArnLike": {"aws:SourceArn": {"Fn::Sub": "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}:*"}},
    },
}
LAMBDA_TRUST = {"Effect": "Allow", "Principal": {"Service": ["lambda.amazonaws.com"]}, "Action": ["sts:AssumeRole"]}
PULL = {
    "Sid": "Pull",
    "Effect": "Allow",
    "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
    "Resource": {
        "Fn::Sub": [
            "arn:${AWS::Partition}:ecr:${AWS::Region}:${ImageAccount}:repository/sagemaker-xgboost",
            {"ImageAccount": {"Fn::FindInMap": ["ImageRegistry", {"Ref": "AWS::Region"}, "Account"]}},
        ]
    },
}
INVOKE = {
    "Sid": "Invoke",
    "Effect": "Allow",
    "Action": "sagemaker:InvokeEndpoint",
    "Resource": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/mlops-dev-endpoint",
    "Condition": {
        "Fn::If": [
            "IsEndpointInvocationVpcEndpointEnabled",
            {"StringEquals": {"aws:SourceVpce": {"Ref": "EndpointInvocationVpcEndpoint"}}},
            {"Ref": "AWS::NoValue"},
        ]
    },
}
ROLE = {
    "Type": "AWS::IAM::Role",
    "Properties": {
        "AssumeRolePolicyDocument": {"Statement": [SAGEMAKER_TRUST, LAMBDA_TRUST]},
        "Policies": [{"PolicyName": "Jobs", "PolicyDocument": {"Statement": [PULL, INVOKE]}}],
    },
}


def _with_checkov_line_markers(value: Any) -> Any:
    """What checkov's parser hands a check: every mapping with its line numbers added."""
    if isinstance(value, dict):
        return {**{k: _with_checkov_line_markers(v) for k, v in value.items()}, "__startline__": 1, "__endline__": 2}
    if isinstance(value, list):
        return [_with_checkov_line_markers(item) for item in value]
    return value


def _statements(properties: dict[str, Any]) -> list[dict[str, Any]]:
    return properties["Policies"][0]["PolicyDocument"]["Statement"]


def _weakened(resource: dict[str, Any], change: Any) -> dict[str, Any]:
    mutated = copy.deepcopy(resource)
    change(mutated["Properties"])
    return mutated


@pytest.mark.parametrize(
    ("check", "resource"),
    [
        (state_machine_observability.check, STATE_MACHINE),
        (sagemaker_registry_tags.check, MODEL_PACKAGE_GROUP),
        (sqs_customer_managed_key.check, QUEUE),
        (event_target_dead_letter.check, RULE),
        (kms_key_separation.check, KEY),
        (trust_policy_source.check, ROLE),
        (ecr_pull_pinned.check, ROLE),
        (invoke_endpoint_through_vpce.check, ROLE),
    ],
    ids=[
        "state-machine",
        "registry-tags",
        "queue-key",
        "rule-targets",
        "key-policy",
        "trust",
        "ecr",
        "invoke",
    ],
)
@pytest.mark.parametrize("as_checkov_reads_it", [False, True], ids=["plain", "with-line-markers"])
def test_the_stack_shape_passes(check: Any, resource: dict[str, Any], as_checkov_reads_it: bool) -> None:
    conf = _with_checkov_line_markers(resource) if as_checkov_reads_it else copy.deepcopy(resource)

    assert check.scan_resource_conf(conf) == CheckResult.PASSED


@pytest.mark.parametrize(
    ("check", "resource", "change"),
    [
        (state_machine_observability.check, STATE_MACHINE, lambda p: p["LoggingConfiguration"].update(Level="ERROR")),
        (
            state_machine_observability.check,
            STATE_MACHINE,
            lambda p: p["LoggingConfiguration"].update(IncludeExecutionData=True),
        ),
        (state_machine_observability.check, STATE_MACHINE, lambda p: p.pop("TracingConfiguration")),
        (sagemaker_registry_tags.check, MODEL_PACKAGE_GROUP, lambda p: p["Tags"].pop()),
        (sqs_customer_managed_key.check, QUEUE, lambda p: p.update(KmsMasterKeyId="alias/aws/sqs")),
        (sqs_customer_managed_key.check, QUEUE, lambda p: p.pop("KmsMasterKeyId")),
        (event_target_dead_letter.check, RULE, lambda p: p["Targets"][0].pop("DeadLetterConfig")),
        (event_target_dead_letter.check, RULE, lambda p: p["Targets"][0].pop("RetryPolicy")),
        (
            state_machine_observability.check,
            STATE_MACHINE,
            lambda p: p["LoggingConfiguration"].update(IncludeExecutionData={"Fn::If": ["IsProd", True, False]}),
        ),
        (kms_key_separation.check, KEY, lambda p: p["KeyPolicy"]["Statement"][0]["Action"].append("kms:Decrypt")),
        (kms_key_separation.check, KEY, lambda p: p["KeyPolicy"]["Statement"][1]["Action"].append("kms:*")),
        (kms_key_separation.check, KEY, lambda p: p["KeyPolicy"]["Statement"][0].update(Action="kms:*")),
        (
            trust_policy_source.check,
            ROLE,
            lambda p: p["AssumeRolePolicyDocument"]["Statement"][0]["Condition"].pop("ArnLike"),
        ),
        (
            trust_policy_source.check,
            ROLE,
            lambda p: p["AssumeRolePolicyDocument"]["Statement"][0]["Condition"].pop("StringEquals"),
        ),
        (
            ecr_pull_pinned.check,
            ROLE,
            lambda p: _statements(p)[0].update(
                Resource={"Fn::Sub": "arn:${AWS::Partition}:ecr:${AWS::Region}:*:repository/*"}
            ),
        ),
        (ecr_pull_pinned.check, ROLE, lambda p: _statements(p)[0].update(Action="ecr:*", Resource="*")),
        (invoke_endpoint_through_vpce.check, ROLE, lambda p: _statements(p)[1].pop("Condition")),
        (
            invoke_endpoint_through_vpce.check,
            ROLE,
            lambda p: _statements(p).append({"Effect": "Allow", "Action": "sagemaker:*", "Resource": "*"}),
        ),
    ],
    ids=[
        "errors-only-logging",
        "execution-data-in-prod",
        "no-tracing",
        "missing-tag",
        "aws-managed-queue-key",
        "unencrypted-queue",
        "target-without-dlq",
        "target-without-retry",
        "execution-data-only-in-prod",
        "administrator-decrypts",
        "user-administers",
        "kms-star",
        "trust-without-source-arn",
        "trust-without-source-account",
        "pull-from-any-account",
        "ecr-star",
        "invoke-without-source-vpce",
        "sagemaker-star",
    ],
)
def test_a_weakened_resource_fails(check: Any, resource: dict[str, Any], change: Any) -> None:
    assert check.scan_resource_conf(_weakened(resource, change)) == CheckResult.FAILED


def _statement(role: dict[str, Any], sid: str) -> dict[str, Any]:
    statements = role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    return next(s for s in statements if isinstance(s, dict) and s.get("Sid") == sid)


def test_the_least_privilege_checks_fail_the_weakened_stack_as_checkov_parses_it(tmp_path: Path) -> None:
    # GIVEN the deployed form of the stack with one control of each check undone
    template = sam_transformed_template()
    resources = template["Resources"]
    resources["SageMakerJobRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Condition"].pop("ArnLike")
    _statement(resources["SageMakerModelRole"], "PullTheFrameworkImage")["Resource"] = {
        "Fn::Sub": "arn:${AWS::Partition}:ecr:${AWS::Region}:*:repository/*"
    }
    resources["EncryptionKey"]["Properties"]["KeyPolicy"]["Statement"][0]["Action"].append("kms:Decrypt")
    _statement(resources["SmokeTestFunctionRole"], "InvokeTheStackEndpoint").pop("Condition")
    resources["DeployStateMachine"]["Properties"]["LoggingConfiguration"]["IncludeExecutionData"] = True
    path = tmp_path / "template.json"
    path.write_text(json.dumps(template), encoding="utf-8")

    # WHEN checkov runs the project's checks on it
    report = Runner().run(
        root_folder=None,
        files=[str(path)],
        runner_filter=RunnerFilter(framework=["cloudformation"], checks=LEAST_PRIVILEGE_CHECK_IDS),
    )

    # THEN each check fails the resource it guards, and only that one
    assert not isinstance(report, list)
    assert sorted((c.check_id, c.resource) for c in report.failed_checks) == [
        ("CKV_MLOPS_1", "AWS::StepFunctions::StateMachine.DeployStateMachine"),
        ("CKV_MLOPS_5", "AWS::KMS::Key.EncryptionKey"),
        ("CKV_MLOPS_6", "AWS::IAM::Role.SageMakerJobRole"),
        ("CKV_MLOPS_7", "AWS::IAM::Role.SageMakerModelRole"),
        ("CKV_MLOPS_8", "AWS::IAM::Role.SmokeTestFunctionRole"),
    ]
