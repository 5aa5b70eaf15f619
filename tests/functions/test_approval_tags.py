"""functions/approval_tags.py: the approver and the reason as values SageMaker accepts as tags."""

from __future__ import annotations

import unicodedata

import pytest
from approval_tags import (
    AUTO_APPROVAL_REASON,
    NOT_RECORDED,
    TAG_VALUE_MAX_LENGTH,
    ApprovalReasonBlank,
    ApprovalTagsRequest,
    approval_tags,
    tag_value,
)
from hypothesis import given
from hypothesis import strategies as st


def _is_tag_value(text: str) -> bool:
    """SageMaker's Tag.Value: ^([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)$, at most 256 characters."""
    return len(text) <= TAG_VALUE_MAX_LENGTH and all(
        unicodedata.category(c)[0] in "LZN" or c in "_.:/=+-@" for c in text
    )


@given(st.text(max_size=600))
def test_any_text_becomes_a_valid_tag_value(text: str) -> None:
    assert _is_tag_value(tag_value(text))


def test_allowed_characters_are_kept_and_others_replaced() -> None:
    assert tag_value("arn:aws:sts::123456789012:assumed-role/Approver/jane,doe") == (
        "arn:aws:sts::123456789012:assumed-role/Approver/jane_doe"
    )
    assert tag_value("Geprüft: AUC 0.98 (ok)!") == "Geprüft: AUC 0.98 _ok__"


def test_a_long_reason_is_cut_to_256_characters_with_a_mark() -> None:
    value = tag_value("a" * 1000)
    assert len(value) == TAG_VALUE_MAX_LENGTH
    assert value.endswith("...")


def _request(mode: str, **package: object) -> ApprovalTagsRequest:
    return ApprovalTagsRequest.model_validate({"approval_mode": mode, "model_package": package})


def test_the_approver_is_the_last_modifier_then_the_creator_then_not_recorded() -> None:
    modified = {"IamIdentity": {"Arn": "arn:aws:sts::1:assumed-role/Approver/jane"}}
    created = {"IamIdentity": {"Arn": "arn:aws:sts::1:assumed-role/Training/exec"}}

    assert approval_tags(_request("manual", LastModifiedBy=modified, CreatedBy=created, ApprovalDescription="ok")) == {
        "approved_by": "arn:aws:sts::1:assumed-role/Approver/jane",
        "reason": "ok",
    }
    assert (
        approval_tags(_request("auto", CreatedBy=created))["approved_by"] == "arn:aws:sts::1:assumed-role/Training/exec"
    )
    assert approval_tags(_request("auto")) == {"approved_by": NOT_RECORDED, "reason": AUTO_APPROVAL_REASON}


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="approval_mode"):
        _request("sometimes")


def test_a_manual_approval_whose_reason_is_only_white_space_is_refused() -> None:
    approver = {"IamIdentity": {"Arn": "arn:aws:sts::1:assumed-role/Approver/jane"}}
    for blank in (" ", "\t\n ", "\u2003"):
        with pytest.raises(ApprovalReasonBlank, match="assumed-role/Approver/jane with a reason of only white space"):
            approval_tags(_request("manual", LastModifiedBy=approver, ApprovalDescription=blank))
    # Auto mode has no reviewer's reason to check: it records the stack's own.
    assert approval_tags(_request("auto", ApprovalDescription=" "))["reason"] == AUTO_APPROVAL_REASON
