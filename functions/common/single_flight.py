"""One `training` execution per model at a time: a lease item in the idempotency table names the execution.

Both triggers take the lease before `StartExecution` with a conditional write, so two interleaved
triggers cannot both start: the second finds the lease held and defers. The lease is never released
when an execution ends; the next trigger finds the execution it names no longer RUNNING
(`DescribeExecution`) and takes the lease over, conditionally on it still naming that execution.

A lease naming an execution that does not exist yet is held for `START_GRACE_SECONDS` after it
was written: the invocation that wrote it may still be about to start it. After that the writer
has ended (Lambda stops every invocation within its 900-second maximum timeout), so an execution
still missing was never started and the lease may be taken.

The item: `id` = `training-lease.<model>` (Powertools' records are `<prefix>#<hash>`, so the key
cannot collide with one), `execution_arn`, `acquired_at` (epoch seconds). It has no `expiration`,
so the table's TTL never removes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

# Lambda's maximum timeout: no invocation that wrote a lease can still be running after it.
START_GRACE_SECONDS = 900


@dataclass(frozen=True)
class LeaseOutcome:
    """Whether this caller holds the lease for its execution now; when not, who does and why."""

    acquired: bool
    reason: str
    holder_arn: str | None = None


def execution_status(sfn_client: Any, execution_arn: str) -> str | None:
    """The execution's status (`RUNNING`, `SUCCEEDED`, ...), or None when no execution has this ARN."""
    try:
        return str(sfn_client.describe_execution(executionArn=execution_arn)["status"])
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ExecutionDoesNotExist":
            return None
        raise


@dataclass(frozen=True)
class TrainingLease:
    """The per-model lease in the idempotency table."""

    dynamodb_client: Any
    table_name: str
    model_name: str
    sfn_client: Any

    @property
    def key(self) -> dict[str, dict[str, str]]:
        return {"id": {"S": f"training-lease.{self.model_name}"}}

    def acquire(self, execution_arn: str, now: datetime) -> LeaseOutcome:
        """Take the lease for `execution_arn`, unless another execution holds it and may still be running."""
        item = self.dynamodb_client.get_item(TableName=self.table_name, Key=self.key, ConsistentRead=True).get("Item")
        condition = "attribute_not_exists(id)"
        values: dict[str, Any] = {}
        if item is not None:
            holder = item["execution_arn"]["S"]
            if holder == execution_arn:
                return LeaseOutcome(True, "the lease already names this execution (a redelivery)", holder)
            status = execution_status(self.sfn_client, holder)
            if status == "RUNNING":
                return LeaseOutcome(False, f"training execution {holder} holds the lease and is RUNNING", holder)
            age = now.timestamp() - int(item["acquired_at"]["N"])
            if status is None and age < START_GRACE_SECONDS:
                return LeaseOutcome(
                    False, f"the lease names {holder}, not started yet: its trigger may still be starting it", holder
                )
            condition = "execution_arn = :holder"
            values = {":holder": {"S": holder}}
        try:
            self.dynamodb_client.put_item(
                TableName=self.table_name,
                Item={
                    **self.key,
                    "execution_arn": {"S": execution_arn},
                    "acquired_at": {"N": str(int(now.timestamp()))},
                },
                ConditionExpression=condition,
                **({"ExpressionAttributeValues": values} if values else {}),
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            return LeaseOutcome(False, "another trigger took the lease at the same moment")
        return LeaseOutcome(True, "lease taken")

    def release(self, execution_arn: str) -> None:
        """Give the lease up for an execution that surely did not start, so the next trigger need not wait."""
        try:
            self.dynamodb_client.delete_item(
                TableName=self.table_name,
                Key=self.key,
                ConditionExpression="execution_arn = :mine",
                ExpressionAttributeValues={":mine": {"S": execution_arn}},
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
