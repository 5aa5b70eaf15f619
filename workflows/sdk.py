"""Imports the Step Functions Data Science SDK once, undoing its side effects on logging."""

from __future__ import annotations

import logging

_root_level = logging.getLogger().level
# Importing stepfunctions sets the root logger to ERROR, which would silence every caller's logging.
from stepfunctions import steps  # noqa: E402

logging.getLogger().setLevel(_root_level)


class _DropPartitionGuess(logging.Filter):
    """Drops the SDK's warning that it guessed the partition: every Resource gets `${Partition}` instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Using default partition" not in record.getMessage()


logging.getLogger("stepfunctions").addFilter(_DropPartitionGuess())

__all__ = ["steps"]
