"""What the glue functions share: the error for a bad `LambdaStep` payload and S3 URI handling."""

from __future__ import annotations

from pydantic import ValidationError


class InvalidPayloadError(ValueError):
    """The state machine passed a payload the function cannot use; the message names the field."""

    @classmethod
    def from_validation(cls, function: str, error: ValidationError) -> InvalidPayloadError:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'payload'}: {problem['msg']}"
            for problem in error.errors(include_url=False)
        )
        return cls(f"{function} payload is invalid ({problems}); see docs/interfaces.md for its fields")


def split_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/key` -> (bucket, key); a ValueError naming the URI when it has no bucket or no key."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not uri.startswith("s3://") or not bucket or not key:
        raise ValueError(f"{uri!r} is not an s3://bucket/key URI")
    return bucket, key
