"""The Powertools Logger, Tracer and Metrics every function shares, and the correlation id it logs.

Service name and metrics namespace come from `POWERTOOLS_SERVICE_NAME` and
`POWERTOOLS_METRICS_NAMESPACE`, which Lambda sets before it imports the handler module.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger()
tracer = Tracer()
metrics = Metrics()


def count_decision(name: str) -> None:
    """Add one to the metric named after a decision (e.g. `RetrainStarted`), so every outcome is graphed."""
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
