"""checkov CKV_MLOPS_8: a grant of sagemaker:InvokeEndpoint checks aws:SourceVpce (when the stack's option is on).

The endpoint serves a bank's model: with the interface VPC endpoint enabled, a stolen key used from outside the
VPC must not be able to call it. The condition may sit behind `Fn::If` (the option is a parameter), but a grant
that never checks the key fails.
"""

from __future__ import annotations

from typing import Any

from checkov.cloudformation.checks.resource.base_resource_check import BaseResourceCheck
from checkov.common.models.enums import CheckCategories, CheckResult

from mlops.checkov_checks.policy_documents import actions, condition_keys, identity_documents, statements

INVOKE_ACTIONS = frozenset({"sagemaker:invokeendpoint", "sagemaker:invokeendpointasync", "sagemaker:*", "*"})


def invocations_without_source_vpce(document: Any) -> list[str]:
    return [
        str(statement.get("Sid", "?"))
        for statement in statements(document)
        if statement.get("Effect") == "Allow"
        and actions(statement) & INVOKE_ACTIONS
        and "aws:sourcevpce" not in condition_keys(statement)
    ]


class InvokeEndpointChecksSourceVpce(BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name="Ensure grants of sagemaker:InvokeEndpoint check aws:SourceVpce",
            id="CKV_MLOPS_8",
            categories=[CheckCategories.NETWORKING],
            supported_resources=["AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"],
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        documents = identity_documents(conf.get("Properties") or {})
        found = [sid for document in documents for sid in invocations_without_source_vpce(document)]
        return CheckResult.FAILED if found else CheckResult.PASSED


check = InvokeEndpointChecksSourceVpce()
