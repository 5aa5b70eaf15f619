"""checkov CKV_MLOPS_5: no key-policy statement allows both administering a KMS key and using it.

A bank's reviewers sign off key administrators and key users separately; one statement granting both makes every
administrator a user of the data under the key (and the reverse).
"""

from __future__ import annotations

from typing import Any

from checkov.cloudformation.checks.resource.base_resource_check import BaseResourceCheck
from checkov.common.models.enums import CheckCategories, CheckResult

from mlops.checkov_checks.policy_documents import actions, statements

# Cryptographic operations: what "use" of a key means in AWS KMS's own terms; kms:* and kms:Generate* count too.
USE_ACTIONS = frozenset(
    {
        "kms:decrypt",
        "kms:encrypt",
        "kms:generatedatakey",
        "kms:generatedatakeypair",
        "kms:generatedatakeypairwithoutplaintext",
        "kms:generatedatakeywithoutplaintext",
        "kms:reencryptfrom",
        "kms:reencryptto",
        "kms:sign",
        "kms:verify",
        "kms:generatemac",
        "kms:verifymac",
        "kms:derivesharedsecret",
    }
)
ADMINISTRATION_ACTIONS = frozenset(
    {
        "kms:cancelkeydeletion",
        "kms:createalias",
        "kms:deletealias",
        "kms:disablekey",
        "kms:disablekeyrotation",
        "kms:enablekey",
        "kms:enablekeyrotation",
        "kms:putkeypolicy",
        "kms:rotatekeyondemand",
        "kms:schedulekeydeletion",
        "kms:tagresource",
        "kms:untagresource",
        "kms:updatealias",
        "kms:updatekeydescription",
        "kms:deleteimportedkeymaterial",
        "kms:importkeymaterial",
    }
)


def _matches(granted: str, family: frozenset[str]) -> bool:
    if granted in ("*", "kms:*"):
        return True
    if granted.endswith("*"):
        return any(action.startswith(granted[:-1]) for action in family)
    return granted in family


def grants_administration_and_use(statement: dict[str, Any]) -> bool:
    granted = actions(statement)
    return any(_matches(action, ADMINISTRATION_ACTIONS) for action in granted) and any(
        _matches(action, USE_ACTIONS) for action in granted
    )


class KeyPolicySeparatesAdministrationFromUse(BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name="Ensure no KMS key policy statement allows both key administration and cryptographic use",
            id="CKV_MLOPS_5",
            categories=[CheckCategories.ENCRYPTION],
            supported_resources=["AWS::KMS::Key"],
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        policy = (conf.get("Properties") or {}).get("KeyPolicy")
        if not policy:
            return CheckResult.FAILED
        for statement in statements(policy):
            if statement.get("Effect") == "Allow" and grants_administration_and_use(statement):
                return CheckResult.FAILED
        return CheckResult.PASSED


check = KeyPolicySeparatesAdministrationFromUse()
