"""checkov CKV_MLOPS_6: a role a service assumes checks both aws:SourceAccount and aws:SourceArn.

Without them any resource of that service, in any account, that is given the role's ARN can act as the role (the
confused deputy). Lambda execution roles are exempt: SAM generates them, a function's role is given to it only
by whoever may iam:PassRole it, and a source condition Lambda did not satisfy would stop every function, which
cannot be tried offline.
"""

from __future__ import annotations

from typing import Any

from checkov.cloudformation.checks.resource.base_resource_check import BaseResourceCheck
from checkov.common.models.enums import CheckCategories, CheckResult

from mlops.checkov_checks.policy_documents import as_list, condition_keys, statements

SERVICES_WITHOUT_SOURCE_KEYS = frozenset({"lambda.amazonaws.com"})
REQUIRED_KEYS = ("aws:sourceaccount", "aws:sourcearn")


def services(statement: dict[str, Any]) -> set[str]:
    principal = statement.get("Principal")
    if not isinstance(principal, dict):
        return set()
    return {service for service in as_list(principal.get("Service", [])) if isinstance(service, str)}


def trust_problems(document: Any) -> list[str]:
    """One line per Allow statement that lets a service assume the role without both source keys."""
    problems = []
    for statement in statements(document):
        assumed_by = services(statement) - SERVICES_WITHOUT_SOURCE_KEYS
        if statement.get("Effect") != "Allow" or not assumed_by:
            continue
        missing = [key for key in REQUIRED_KEYS if key not in condition_keys(statement)]
        if missing:
            problems.append(f"{sorted(assumed_by)} may assume it without {', '.join(missing)}")
    return problems


class ServiceTrustChecksSourceAccountAndArn(BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name="Ensure a role assumed by an AWS service checks aws:SourceAccount and aws:SourceArn",
            id="CKV_MLOPS_6",
            categories=[CheckCategories.IAM],
            supported_resources=["AWS::IAM::Role"],
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        document = (conf.get("Properties") or {}).get("AssumeRolePolicyDocument")
        return CheckResult.FAILED if trust_problems(document) else CheckResult.PASSED


check = ServiceTrustChecksSourceAccountAndArn()
