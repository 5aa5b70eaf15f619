"""The project's checkov checks pass the stack's resources and fail the weakened versions."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from checkov.common.models.enums import CheckResult

from mlops.checkov_checks import (
    event_target_dead_letter,
    sagemaker_registry_tags,
    sqs_customer_managed_key,
    state_machine_observability,
)

STATE_MACHINE = {
    "Type": "AWS::StepFunctions::StateMachine",
    "Properties": {
        "LoggingConfiguration": {
            "Level": "ALL",
            "IncludeExecutionData": True,
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
    ],
    ids=["state-machine", "registry-tags", "queue-key", "rule-targets"],
)
def test_the_stack_shape_passes(check: Any, resource: dict[str, Any]) -> None:
    assert check.scan_resource_conf(copy.deepcopy(resource)) == CheckResult.PASSED


@pytest.mark.parametrize(
    ("check", "resource", "change"),
    [
        (state_machine_observability.check, STATE_MACHINE, lambda p: p["LoggingConfiguration"].update(Level="ERROR")),
        (
            state_machine_observability.check,
            STATE_MACHINE,
            lambda p: p["LoggingConfiguration"].update(IncludeExecutionData=False),
        ),
        (state_machine_observability.check, STATE_MACHINE, lambda p: p.pop("TracingConfiguration")),
        (sagemaker_registry_tags.check, MODEL_PACKAGE_GROUP, lambda p: p["Tags"].pop()),
        (sqs_customer_managed_key.check, QUEUE, lambda p: p.update(KmsMasterKeyId="alias/aws/sqs")),
        (sqs_customer_managed_key.check, QUEUE, lambda p: p.pop("KmsMasterKeyId")),
        (event_target_dead_letter.check, RULE, lambda p: p["Targets"][0].pop("DeadLetterConfig")),
        (event_target_dead_letter.check, RULE, lambda p: p["Targets"][0].pop("RetryPolicy")),
    ],
    ids=[
        "errors-only-logging",
        "no-execution-data",
        "no-tracing",
        "missing-tag",
        "aws-managed-queue-key",
        "unencrypted-queue",
        "target-without-dlq",
        "target-without-retry",
    ],
)
def test_a_weakened_resource_fails(check: Any, resource: dict[str, Any], change: Any) -> None:
    assert check.scan_resource_conf(_weakened(resource, change)) == CheckResult.FAILED
