"""The audit event's checksum and vocabulary, with no imports but the standard library.

The one definition of what an intact audit event is: common.audit builds events with it, and `mlops audit`
(which does not run inside a function) loads this file by path to verify them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Literal

AUDIT_SOURCE = "mlops.audit"
AUDIT_DETAIL_TYPE = "MLOps Audit Event"
SCHEMA_VERSION = 1

Decision = Literal[
    "training_started",
    "training_skipped",
    "endpoint_kept",
    "endpoint_marked",
    "endpoint_deleted",
    "model_approved",
    "model_rejected",
    "deploy_succeeded",
    "deploy_failed",
    "deploy_rolled_back",
    "alarm_state_changed",
]
DECISIONS: tuple[str, ...] = Decision.__args__  # type: ignore[attr-defined]


def canonical_text(detail: Mapping[str, Any]) -> str:
    """The text the checksum covers: every member but `sha256`, keys sorted, no spaces, UTF-8 kept as is."""
    unsigned = {key: value for key, value in detail.items() if key != "sha256"}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def checksum(detail: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_text(detail).encode("utf-8")).hexdigest()


def verify(detail: Mapping[str, Any]) -> str | None:
    """Why `detail` is not an intact audit event (a missing or wrong checksum, an unknown decision), or None."""
    if detail.get("schema_version") != SCHEMA_VERSION:
        return f"schema_version {detail.get('schema_version')!r} is not {SCHEMA_VERSION}"
    if detail.get("decision") not in DECISIONS:
        return f"decision {detail.get('decision')!r} is not one of the audit vocabulary"
    stored = detail.get("sha256")
    if not isinstance(stored, str):
        return "it has no sha256"
    try:
        computed = checksum(detail)
    except ValueError as error:
        return f"its detail cannot be put in canonical form: {error}"
    if computed != stored:
        return f"sha256 mismatch: stored {stored[:12]}..., computed {computed[:12]}...: the event was changed"
    return None
