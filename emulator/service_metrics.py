"""The AWS/States and AWS/SQS metrics the stack's alarms watch, published by the twin as those services publish them.

moto publishes neither. Without them the stack's failure and dead-letter alarms could only ever be refused (or,
worse, stay calm). `ServiceMetrics.publish(now)` runs at each minute boundary of the twin's clock, before the alarms
are evaluated:

- Step Functions: one `ExecutionsStarted` per new execution and one `ExecutionsSucceeded`, `ExecutionsFailed`,
  `ExecutionsAborted` or `ExecutionsTimedOut` per execution that ended, dimension `StateMachineArn`, value 1, unit
  Count (each counted once, for the minute it was seen in).
- SQS: `ApproximateNumberOfMessagesVisible`, `ApproximateNumberOfMessagesNotVisible` and
  `ApproximateNumberOfMessagesDelayed` of every queue, dimension `QueueName`, once a minute, as SQS samples them.

A datapoint is stamped with the start of the minute it describes, as CloudWatch's one-minute datapoints are.

They go straight to moto's CloudWatch backend (its `put_metric_data`, where a PutMetricData request ends, with the
same validation and the same stored datapoints), not through a client: a service publishes its own metrics, and a
request through boto3 and moto's parser cost about 6 ms per minute boundary, four fifths of a long clock jump.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

from moto.cloudwatch.models import cloudwatch_backends
from moto.sqs.models import sqs_backends
from moto.stepfunctions.parser.models import stepfunctions_parser_backends

from contract.local_account import LOCAL_ACCOUNT_ID, LOCAL_REGION
from emulator.alarm_messages import utc

_ENDED = {
    "SUCCEEDED": "ExecutionsSucceeded",
    "FAILED": "ExecutionsFailed",
    "ABORTED": "ExecutionsAborted",
    "TIMED_OUT": "ExecutionsTimedOut",
}
_QUEUE_METRICS = {
    "ApproximateNumberOfMessagesVisible": "approximate_number_of_messages",
    "ApproximateNumberOfMessagesNotVisible": "approximate_number_of_messages_not_visible",
    "ApproximateNumberOfMessagesDelayed": "approximate_number_of_messages_delayed",
}
PUBLISHED_METRICS = frozenset(
    {("AWS/States", "ExecutionsStarted")}
    | {("AWS/States", name) for name in _ENDED.values()}
    | {("AWS/SQS", name) for name in _QUEUE_METRICS}
)


class ServiceMetrics:
    """Publishes the service metrics above for one account and region; see the module docstring."""

    def __init__(self, *, account_id: str = LOCAL_ACCOUNT_ID, region: str = LOCAL_REGION) -> None:
        self.account_id = account_id
        self.region = region
        self._counted: set[tuple[str, str]] = set()  # (execution ARN, "STARTED" or its end status)
        self._sampled_minute: datetime | None = None
        # A minute boundary's thread and a caller of LocalTwin.evaluate_alarms may publish at once: count once.
        self._lock = threading.Lock()

    def publish(self, now: datetime) -> None:
        """Publish what happened since the last call, for the minute before `now`'s minute."""
        # moto keeps timestamps as naive UTC, as its parser gives them to the backend.
        minute = utc(now).replace(second=0, microsecond=0, tzinfo=None) - timedelta(minutes=1)
        with self._lock:
            datums = self._execution_datums(minute)
            if self._sampled_minute != minute:
                self._sampled_minute = minute
                datums.append(("AWS/SQS", self._queue_datums(minute)))
        cloudwatch = cloudwatch_backends[self.account_id][self.region]
        for namespace, metric_data in datums:
            if metric_data:
                cloudwatch.put_metric_data(namespace, metric_data)

    def _execution_datums(self, minute: datetime) -> list[tuple[str, list[dict[str, Any]]]]:
        data: list[dict[str, Any]] = []
        backend = stepfunctions_parser_backends[self.account_id][self.region]
        for machine in list(backend.state_machines):
            for execution in list(machine.executions):
                status = getattr(getattr(execution, "exec_status", None), "value", None)
                arn = str(execution.execution_arn)
                events = ["STARTED"] + ([status] if status in _ENDED else [])
                for event in events:
                    if (arn, event) in self._counted:
                        continue
                    self._counted.add((arn, event))
                    name = "ExecutionsStarted" if event == "STARTED" else _ENDED[event]
                    data.append(_datum(name, "StateMachineArn", str(machine.arn), 1.0, "Count", minute))
        return [("AWS/States", data)] if data else []

    def _queue_datums(self, minute: datetime) -> list[dict[str, Any]]:
        data = []
        for queue in list(sqs_backends[self.account_id][self.region].queues.values()):
            for name, attribute in _QUEUE_METRICS.items():
                data.append(_datum(name, "QueueName", queue.name, float(getattr(queue, attribute)), "Count", minute))
        return data


def _datum(name: str, dimension: str, value: str, number: float, unit: str, minute: datetime) -> dict[str, Any]:
    return {
        "MetricName": name,
        "Dimensions": [{"Name": dimension, "Value": value}],
        "Value": number,
        "Unit": unit,
        "Timestamp": minute,
    }
