"""checkov CKV_MLOPS_4: every EventBridge rule target has a dead-letter queue and an explicit retry policy."""

from __future__ import annotations

from typing import Any

from checkov.cloudformation.checks.resource.base_resource_check import BaseResourceCheck
from checkov.common.models.enums import CheckCategories, CheckResult


class EventTargetsHaveDeadLetterAndRetry(BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name="Ensure every EventBridge rule target has a DeadLetterConfig and a RetryPolicy",
            id="CKV_MLOPS_4",
            categories=[CheckCategories.GENERAL_SECURITY],
            supported_resources=["AWS::Events::Rule"],
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        targets = (conf.get("Properties") or {}).get("Targets") or []
        for target in targets:
            if not isinstance(target, dict):
                return CheckResult.FAILED
            if not (target.get("DeadLetterConfig") or {}).get("Arn") or not target.get("RetryPolicy"):
                return CheckResult.FAILED
        return CheckResult.PASSED


check = EventTargetsHaveDeadLetterAndRetry()
