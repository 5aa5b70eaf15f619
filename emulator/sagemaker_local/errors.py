"""SageMaker API errors of the local backend, with the codes AWS uses."""

from __future__ import annotations

from typing import Any


class SageMakerError(Exception):
    """An error the SageMaker API would return: `code` is AWS's error code (e.g. `ValidationException`).

    `fields` are the error shape's members besides the message (a runtime `ModelError`'s `OriginalStatusCode`,
    `OriginalMessage`, `LogStreamArn`), serialised beside it.
    """

    def __init__(self, code: str, message: str, fields: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.fields = dict(fields or {})


def validation_error(message: str) -> SageMakerError:
    return SageMakerError("ValidationException", message)


def not_found(kind: str, name: str) -> SageMakerError:
    # SageMaker answers Describe* on a missing resource with a ValidationException, not a 404.
    return SageMakerError("ValidationException", f"Could not find {kind} '{name}'.")


def already_exists(kind: str, name: str) -> SageMakerError:
    return SageMakerError("ResourceInUse", f"{kind} '{name}' already exists.")


class InferenceCodeUnavailable(ValueError):
    """A model's inference code cannot reach its container, so the container would fail at start-up on SageMaker."""
