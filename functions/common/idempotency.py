"""The idempotency store: Powertools' DynamoDB persistence layer on the stack's table, built at call time.

The table (template.yaml `IdempotencyTable`) has the partition key `id` (string) and TTL on
`expiration`, Powertools' defaults.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

# How long a key is remembered. An alarm transition is redelivered within minutes at most; an S3
# object version can come back much later (an EventBridge archive replay, a DLQ redrive), so its
# record lasts a week. A scheduled firing is redelivered within its rule's and Lambda's retries (an hour each).
ALARM_TRANSITION_MEMORY_SECONDS = 24 * 60 * 60
SCHEDULED_FIRING_MEMORY_SECONDS = 24 * 60 * 60
OBJECT_VERSION_MEMORY_SECONDS = 7 * 24 * 60 * 60


def persistence_layer(table_name: str, dynamodb_client: Any = None) -> DynamoDBPersistenceLayer:
    """Return a persistence layer on `table_name` (from `IDEMPOTENCY_TABLE_NAME`), optionally on a given client.

    The default client comes from boto3's default session, as the function's other clients do: left to
    itself the layer opens a session of its own, which loads botocore's endpoint and service data a
    second time on every cold start.
    """
    return DynamoDBPersistenceLayer(table_name=table_name, boto3_client=dynamodb_client or boto3.client("dynamodb"))


def mark_replayed(response: Any, idempotent_data: DataRecord) -> Any:
    """Response hook: a result served from the store says so, so callers can log and count duplicates."""
    return {**response, "duplicate": True} if isinstance(response, dict) else response


def idempotency_config(context: LambdaContext | None, memory_seconds: int) -> IdempotencyConfig:
    """Return a config that remembers keys for `memory_seconds` and flags replayed results with `duplicate`.

    With the Lambda context registered, an in-progress record left by a crashed or timed-out
    invocation expires with that invocation, so a retry is not blocked for the whole memory period.
    """
    config = IdempotencyConfig(
        expires_after_seconds=memory_seconds, raise_on_no_idempotency_key=True, response_hook=mark_replayed
    )
    if context is not None:
        config.register_lambda_context(context)
    return config
