"""checkov CKV_MLOPS_3: a queue is encrypted with a customer-managed KMS key, not SQS-managed or AWS-managed keys."""

from __future__ import annotations

from typing import Any

from checkov.cloudformation.checks.resource.base_resource_check import BaseResourceCheck
from checkov.common.models.enums import CheckCategories, CheckResult

AWS_MANAGED_SQS_KEY = "alias/aws/sqs"


class SqsQueueUsesCustomerManagedKey(BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name="Ensure SQS queues are encrypted with a customer-managed KMS key",
            id="CKV_MLOPS_3",
            categories=[CheckCategories.ENCRYPTION],
            supported_resources=["AWS::SQS::Queue"],
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        key = (conf.get("Properties") or {}).get("KmsMasterKeyId")
        if not key or key == AWS_MANAGED_SQS_KEY:
            return CheckResult.FAILED
        return CheckResult.PASSED


check = SqsQueueUsesCustomerManagedKey()
