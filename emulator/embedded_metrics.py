"""What CloudWatch Logs does with a Lambda function's embedded metric format (EMF) lines: it turns them into metrics.

Powertools' `Metrics` prints one JSON document per flush to stdout; on AWS the function's log group receives it and
CloudWatch extracts the metrics (`_aws.CloudWatchMetrics`: Namespace, Dimensions as lists of keys whose values are
the document's members, Metrics with Name and Unit, the values being the document's member of that name, a number
or a list of numbers). The twin's functions run in-process, so `EmbeddedMetricTee` sits on stdout for the length of
an invocation, passes every byte through, and the lines that are EMF documents become PutMetricData calls.

One difference, on purpose: a datapoint gets the twin's clock time, not the document's `_aws.Timestamp`. The
functions read the wall clock, which the twin's clock runs ahead of; kept, their datapoints would land in the
twin's past, outside every alarm's evaluation range. A malformed EMF document is logged and publishes nothing, as
CloudWatch keeps it as a plain log line.
"""

from __future__ import annotations

import io
import json
import logging
from typing import Any, TextIO

logger = logging.getLogger(__name__)

# PutMetricData takes at most 1000 datums per call.
_MAX_DATUMS = 1000


class EmbeddedMetricTee(io.TextIOBase):
    """A stdout stand-in that writes through to `target` and keeps the complete lines for `metric_data()`."""

    def __init__(self, target: TextIO) -> None:
        super().__init__()
        self._target = target
        self._pending = ""
        self._lines: list[str] = []

    def write(self, text: str) -> int:
        self._target.write(text)
        self._pending += text
        *complete, self._pending = self._pending.split("\n")
        self._lines += [line for line in complete if '"_aws"' in line]
        return len(text)

    def flush(self) -> None:
        self._target.flush()

    def metric_data(self) -> dict[str, list[dict[str, Any]]]:
        """The datums of every EMF document written so far, by namespace."""
        lines = self._lines + ([self._pending] if '"_aws"' in self._pending else [])
        by_namespace: dict[str, list[dict[str, Any]]] = {}
        for line in lines:
            for namespace, datum in embedded_metrics(line):
                by_namespace.setdefault(namespace, []).append(datum)
        return by_namespace


def embedded_metrics(line: str) -> list[tuple[str, dict[str, Any]]]:
    """The (namespace, PutMetricData datum) pairs of one EMF document; none (and a warning) for a malformed one."""
    try:
        document = json.loads(line)
        directives = document["_aws"]["CloudWatchMetrics"]
        pairs: list[tuple[str, dict[str, Any]]] = []
        for directive in directives:
            namespace = str(directive["Namespace"])
            dimension_sets = directive.get("Dimensions") or [[]]
            for metric in directive["Metrics"]:
                value = document[metric["Name"]]
                values = [float(v) for v in (value if isinstance(value, list) else [value])]
                for keys in dimension_sets:
                    datum: dict[str, Any] = {
                        "MetricName": str(metric["Name"]),
                        "Dimensions": [{"Name": str(key), "Value": str(document[key])} for key in keys],
                        "Values": values,
                        "Unit": str(metric.get("Unit") or "None"),
                    }
                    if metric.get("StorageResolution"):
                        datum["StorageResolution"] = int(metric["StorageResolution"])
                    pairs.append((namespace, datum))
        return pairs
    except (ValueError, KeyError, TypeError) as error:
        logger.warning("An embedded metric format line is malformed and publishes no metric (%s): %.300s", error, line)
        return []


def publish(cloudwatch: Any, by_namespace: dict[str, list[dict[str, Any]]]) -> None:
    """PutMetricData for each namespace's datums."""
    for namespace, datums in by_namespace.items():
        for start in range(0, len(datums), _MAX_DATUMS):
            cloudwatch.put_metric_data(Namespace=namespace, MetricData=datums[start : start + _MAX_DATUMS])
