"""Imports the Step Functions Data Science SDK once, undoing its side effects on logging and its partition lookup."""

from __future__ import annotations

import logging

_root_level = logging.getLogger().level
# Importing stepfunctions sets the root logger to ERROR, which would silence every caller's logging.
from stepfunctions import steps  # noqa: E402
from stepfunctions.steps import integration_resources  # noqa: E402

logging.getLogger().setLevel(_root_level)


def _partition_discarded() -> str:
    """Stands in for the SDK's partition lookup, whose answer `with_partition_placeholder` always replaces.

    The SDK asks boto3 for the machine's region on every step (a warning without one, and about 0.2 s of
    endpoint-table parsing per step); the exported ASL names `${Partition}` instead.
    """
    return "aws"


integration_resources.get_aws_partition = _partition_discarded

__all__ = ["steps"]
