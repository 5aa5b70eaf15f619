"""Reading what callers send: a validated request or the payload error, errors as one line, S3 URIs, times."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from common.observability import count_decision

Request = TypeVar("Request", bound=BaseModel)


def validation_summary(error: ValidationError) -> str:
    """`detail.state: Field required; ...`: where each problem is and what it is, without echoing the input."""
    return "; ".join(
        f"{'.'.join(str(part) for part in problem['loc']) or '(root)'}: {problem['msg']}"
        for problem in error.errors(include_url=False)
    )


class InvalidPayloadError(ValueError):
    """The state machine passed a payload the function cannot use; the message names the field."""

    @classmethod
    def from_validation(cls, function: str, error: ValidationError) -> InvalidPayloadError:
        return cls(f"{function} payload is invalid ({validation_summary(error)}); see docs/interfaces.md")


# S3 error codes that mean the object a caller named is not there (as opposed to a transient failure).
MISSING_OBJECT_CODES = frozenset({"NoSuchKey", "NoSuchBucket"})


def validated_request(model: type[Request], event: Any, function: str) -> Request:
    """`event` as a `model`; else the `PayloadRejected` decision is counted and `InvalidPayloadError` raised."""
    try:
        return model.model_validate(event)
    except ValidationError as error:
        count_decision("PayloadRejected")
        raise InvalidPayloadError.from_validation(function, error) from None


def split_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/key` -> (bucket, key); a ValueError naming the URI when it has no bucket or no key."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not uri.startswith("s3://") or not bucket or not key:
        raise ValueError(f"{uri!r} is not an s3://bucket/key URI")
    return bucket, key


def iso_utc(instant: datetime) -> str:
    """The one text form of instants in glue payloads: ISO-8601 UTC to the second, with a Z."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
