"""The twin applies a bucket's Object Lock as CloudFormation would, or refuses it: never a lock silently dropped."""

from __future__ import annotations

from typing import Any

import pytest

from emulator.stack_emulated import EmulatedTypes
from emulator.stack_spec import StackDeployError

VERSIONED = {"VersioningConfiguration": {"Status": "Enabled"}}


def _lock(properties: dict[str, Any]) -> dict[str, Any] | None:
    return EmulatedTypes._object_lock_configuration("GovernanceBucket", properties)


def test_a_governance_default_retention_becomes_the_s3_api_configuration() -> None:
    properties = {
        **VERSIONED,
        "ObjectLockEnabled": True,
        "ObjectLockConfiguration": {
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": "2557"}},
        },
    }

    assert _lock(properties) == {
        "ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 2557}},
    }


def test_a_bucket_without_object_lock_gets_none() -> None:
    assert _lock(VERSIONED) is None


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        ({**VERSIONED, "ObjectLockConfiguration": {"ObjectLockEnabled": "Enabled"}}, "needs ObjectLockEnabled: true"),
        ({"ObjectLockEnabled": True}, "needs VersioningConfiguration Status Enabled"),
        (
            {
                **VERSIONED,
                "ObjectLockEnabled": True,
                "ObjectLockConfiguration": {"Rule": {"DefaultRetention": {"Mode": "LEGAL", "Days": 1}}},
            },
            "needs Mode GOVERNANCE or COMPLIANCE",
        ),
        (
            {
                **VERSIONED,
                "ObjectLockEnabled": True,
                "ObjectLockConfiguration": {
                    "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1, "Years": 1}}
                },
            },
            "exactly one of Days or Years",
        ),
    ],
    ids=["lock without enabling", "unversioned", "unknown mode", "days and years"],
)
def test_a_lock_the_twin_cannot_apply_as_written_is_refused(properties: dict[str, Any], message: str) -> None:
    with pytest.raises(StackDeployError, match=message):
        _lock(properties)
