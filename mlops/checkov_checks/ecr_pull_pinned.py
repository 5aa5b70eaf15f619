"""checkov CKV_MLOPS_7: image pulls name the registry account; no ECR repository of any account.

`arn:...:ecr:<region>:*:repository/*` lets a job or endpoint run any image anyone shares with the account; the
stack runs only the SageMaker framework images of statemachines/image-uris.json.
"""

from __future__ import annotations

import re
from typing import Any

from checkov.cloudformation.checks.resource.base_resource_check import BaseResourceCheck
from checkov.common.models.enums import CheckCategories, CheckResult

from mlops.checkov_checks.policy_documents import actions, as_list, branches, identity_documents, statements

PULL_ACTIONS = frozenset({"ecr:batchgetimage", "ecr:getdownloadurlforlayer", "ecr:batchchecklayeravailability"})
_SUB_VARIABLE = re.compile(r"\$\{[^}]*\}")
WILDCARD_PULLS = frozenset({"*", "ecr:*", "ecr:batch*", "ecr:get*"})


def _arn_text(resource: Any) -> str | None:
    """The ARN pattern of a resource entry: a string or the template of an `Fn::Sub`; None when not readable."""
    if isinstance(resource, str):
        return resource
    if isinstance(resource, dict) and "Fn::Sub" in resource:
        template = resource["Fn::Sub"]
        return template[0] if isinstance(template, list) else template
    return None


def unpinned_repository(resource: Any) -> bool:
    """True when the ARN leaves the registry account open: `*`, a wildcard in it, or an unreadable value."""
    text = _arn_text(resource)
    if text is None or text == "*":
        return True
    # `${AWS::Partition}` and the like hold colons of their own; each stands for one fixed ARN field.
    parts = _SUB_VARIABLE.sub("${}", text).split(":", 5)
    if len(parts) < 6:
        return True
    account, repository = parts[4], parts[5]
    return "*" in account or not account or repository in ("repository/*", "*")


def unpinned_pulls(document: Any) -> list[str]:
    problems = []
    for statement in statements(document):
        granted = actions(statement)
        pulls = granted & PULL_ACTIONS or granted & WILDCARD_PULLS
        if statement.get("Effect") != "Allow" or not pulls:
            continue
        for entry in as_list(statement.get("Resource", [])):
            for resource in branches(entry):
                if unpinned_repository(resource):
                    problems.append(f"statement {statement.get('Sid', '?')} pulls from {resource!r}")
    return problems


class EcrPullsArePinnedToRegistryAccounts(BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name="Ensure ECR image pulls name the registry account and repository",
            id="CKV_MLOPS_7",
            categories=[CheckCategories.IAM],
            supported_resources=["AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"],
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        documents = identity_documents(conf.get("Properties") or {})
        problems = [problem for document in documents for problem in unpinned_pulls(document)]
        return CheckResult.FAILED if problems else CheckResult.PASSED


check = EcrPullsArePinnedToRegistryAccounts()
