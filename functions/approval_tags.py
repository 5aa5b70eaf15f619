"""Glue for `deploy`: the package's approver and reason as values SageMaker accepts as endpoint tags.

Called by a `LambdaStep` with `{"approval_mode": "manual"|"auto", "model_package": <DescribeModelPackage>}`.
Returns `approved_by` and `reason`, each in SageMaker's tag value character set
(`^([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)$`) and at most 256 characters: every other character becomes `_`, and a
longer value is cut to 253 characters plus `...`. The full reason stays on the package (`ApprovalDescription`).

The Step Functions intrinsics can split a string but cannot join or replace, so this cannot be done in the ASL.
The approver is the package's `LastModifiedBy` (who last changed its approval), else its `CreatedBy` (an auto
approval: the training state machine registered it `Approved`), else `not-recorded`; the reason is its
`ApprovalDescription`, else (auto mode only) a sentence saying the stack approves automatically. The deploy state
machine has already refused a manual approval without an approver of the approver role or without a reason; a
manual approval whose reason is only white space, which no Choice rule can tell from a reason, is refused here
with `ApprovalReasonBlank` (the state machine's ApprovalWithoutReason path). Raises `InvalidPayloadError` for a bad
payload.
"""

from __future__ import annotations

import unicodedata
from typing import TYPE_CHECKING, Any, Literal

from common.observability import count_decision, instrumented_handler, logger
from common.parsing import validated_request
from pydantic import BaseModel

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

TAG_VALUE_MAX_LENGTH = 256
_TAG_VALUE_PUNCTUATION = frozenset("_.:/=+-@")
_TRUNCATION_MARK = "..."
NOT_RECORDED = "not-recorded"
AUTO_APPROVAL_REASON = "ApprovalMode auto: the stack approves every model that passes its gates"


class ApprovalReasonBlank(Exception):
    """A manual approval whose ApprovalDescription is only white space: approved without a reason."""


class ApprovalTagsRequest(BaseModel):
    approval_mode: Literal["manual", "auto"]
    model_package: dict[str, Any]


def tag_value(text: str) -> str:
    """`text` in SageMaker's tag value charset (letters, separators, numbers, `_.:/=+-@`), at most 256 characters."""
    cleaned = "".join(
        char if unicodedata.category(char)[0] in "LZN" or char in _TAG_VALUE_PUNCTUATION else "_" for char in text
    )
    if len(cleaned) > TAG_VALUE_MAX_LENGTH:
        cleaned = cleaned[: TAG_VALUE_MAX_LENGTH - len(_TRUNCATION_MARK)] + _TRUNCATION_MARK
    return cleaned


def _identity_arn(package: dict[str, Any], member: str) -> str | None:
    identity = (package.get(member) or {}).get("IamIdentity") or {}
    arn = identity.get("Arn")
    return arn if isinstance(arn, str) and arn else None


def approval_tags(request: ApprovalTagsRequest) -> dict[str, str]:
    """The endpoint's `mlops:approved-by` and `mlops:approval-reason` values for the package (module docstring)."""
    package = request.model_package
    approver = _identity_arn(package, "LastModifiedBy") or _identity_arn(package, "CreatedBy") or NOT_RECORDED
    reason = str(package.get("ApprovalDescription") or "").strip()
    if not reason and request.approval_mode == "manual":
        raise ApprovalReasonBlank(
            f"model package {package.get('ModelPackageArn')} was approved by {approver} with a reason of only white "
            "space: approve it again with a reason (mlops approve --reason)"
        )
    if not reason:
        reason = AUTO_APPROVAL_REASON
    return {"approved_by": tag_value(approver), "reason": tag_value(reason)}


@instrumented_handler(correlation_id_path="model_package.ModelPackageArn")
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    request = validated_request(ApprovalTagsRequest, event, "approval_tags")
    result = approval_tags(request)
    count_decision("ApprovalTagged")
    logger.info("approval tags", extra={"model_package_arn": request.model_package.get("ModelPackageArn"), **result})
    return result
