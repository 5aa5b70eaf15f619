"""Deterministic execution names that are also valid SageMaker job-name stems."""

from __future__ import annotations

import hashlib
import re

# docs/interfaces.md: at most 56 characters, so "<execution>-<suffix>" (suffix <= 6) stays a valid
# 63-character SageMaker name.
MAX_EXECUTION_NAME_LENGTH = 56
# 16 hex characters = 64 bits of the key material's SHA-256: collisions are out of reach for the
# number of executions one state machine will ever see.
DIGEST_LENGTH = 16
_INVALID_RUN = re.compile(r"[^a-zA-Z0-9]+")


def execution_name(prefix: str, key_material: str) -> str:
    """Return `<prefix>-<digest of key_material>`: the same input always gives the same name.

    The prefix is reduced to `[a-zA-Z0-9-]` (other runs of characters become one hyphen) and
    shortened so the whole name fits `MAX_EXECUTION_NAME_LENGTH`; the name starts and ends with an
    alphanumeric character, as SageMaker requires.
    """
    readable = _INVALID_RUN.sub("-", prefix).strip("-")
    if not readable:
        raise ValueError(f"execution name prefix {prefix!r} has no letters or digits; pass e.g. the model name")
    digest = hashlib.sha256(key_material.encode("utf-8")).hexdigest()[:DIGEST_LENGTH]
    room_for_prefix = MAX_EXECUTION_NAME_LENGTH - DIGEST_LENGTH - 1
    return f"{readable[:room_for_prefix].rstrip('-')}-{digest}"
