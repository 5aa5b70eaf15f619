"""checkov CKV_MLOPS_2: the SageMaker model registry's resources carry the Project and Environment tags."""

from __future__ import annotations

from typing import Any

from checkov.cloudformation.checks.resource.base_resource_check import BaseResourceCheck
from checkov.common.models.enums import CheckCategories, CheckResult

REQUIRED_TAG_KEYS = frozenset({"Project", "Environment"})


class SageMakerRegistryTagged(BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name="Ensure SageMaker model package groups are tagged with Project and Environment",
            id="CKV_MLOPS_2",
            categories=[CheckCategories.CONVENTION],
            supported_resources=["AWS::SageMaker::ModelPackageGroup"],
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        tags = (conf.get("Properties") or {}).get("Tags") or []
        keys = {tag.get("Key") for tag in tags if isinstance(tag, dict)}
        return CheckResult.PASSED if keys >= REQUIRED_TAG_KEYS else CheckResult.FAILED


check = SageMakerRegistryTagged()
