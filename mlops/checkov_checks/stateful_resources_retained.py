"""checkov CKV_MLOPS_9: buckets, keys and tables outlive the stack and their replacement (Deletion and UpdateReplace).

They hold the lineage of every model (data versions, artifacts), the key that decrypts them and the idempotency
records; a deleted stack or a property change that replaces the resource must not take them along.
"""

from __future__ import annotations

from typing import Any

from checkov.cloudformation.checks.resource.base_resource_check import BaseResourceCheck
from checkov.common.models.enums import CheckCategories, CheckResult


class StatefulResourcesAreRetained(BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name="Ensure buckets, KMS keys and DynamoDB tables are retained on stack deletion and on replacement",
            id="CKV_MLOPS_9",
            categories=[CheckCategories.BACKUP_AND_RECOVERY],
            supported_resources=["AWS::S3::Bucket", "AWS::KMS::Key", "AWS::DynamoDB::Table"],
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        retained = conf.get("DeletionPolicy") == "Retain" and conf.get("UpdateReplacePolicy") == "Retain"
        return CheckResult.PASSED if retained else CheckResult.FAILED


check = StatefulResourcesAreRetained()
