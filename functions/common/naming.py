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


# A model card name: SageMaker's pattern for ModelCardName, at most 63 characters.
MAX_MODEL_CARD_NAME_LENGTH = 63
_MODEL_PACKAGE_ARN = re.compile(
    r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:model-package/(?P<group>[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62})"
    r"/(?P<version>[1-9][0-9]*)$"
)


def model_card_name(package_arn: str) -> str:
    """The one model card of a versioned model package: `<group>-<version>`, the same for every call.

    The version is digits after the last hyphen, so two packages never share a name. A group too long for
    the version to fit is shortened and gets 8 hex characters of its SHA-256, so shortened groups stay apart.
    """
    match = _MODEL_PACKAGE_ARN.match(package_arn)
    if match is None:
        raise ValueError(
            f"{package_arn!r} is not a versioned model package ARN "
            "(arn:<partition>:sagemaker:<region>:<account>:model-package/<group>/<version>)"
        )
    group, version = match["group"], match["version"]
    name = f"{group}-{version}"
    if len(name) <= MAX_MODEL_CARD_NAME_LENGTH:
        return name
    digest = hashlib.sha256(group.encode("utf-8")).hexdigest()[:8]
    room = MAX_MODEL_CARD_NAME_LENGTH - len(digest) - len(version) - 2
    return f"{group[:room].rstrip('-')}-{digest}-{version}"
