"""Helpers the Lambda function tests share: event files, constants, reading executions back."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"
IDEMPOTENCY_TABLE = "mlops-idempotency"
DATA_BUCKET = "mlops-data-123456789012-us-east-1"
MODEL_NAME = "breast-cancer"
SERVICE = "mlops-tests"
NAMESPACE = "MlopsTests"


def load_event(relative_path: str) -> dict[str, Any]:
    """A deep copy of a file in events/, so a test may mutate it."""
    return copy.deepcopy(json.loads((EVENTS_DIR / relative_path).read_text()))


def executions(state_machine_arn: str) -> list[dict[str, Any]]:
    """Every execution of the state machine with its parsed input."""
    sfn = boto3.client("stepfunctions")
    found = []
    for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=state_machine_arn):
        for execution in page["executions"]:
            described = sfn.describe_execution(executionArn=execution["executionArn"])
            found.append({**execution, "input": json.loads(described["input"])})
    return found


def utc(text: str) -> datetime:
    """`2024-05-14T10:00` -> an aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)
