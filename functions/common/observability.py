"""The Powertools Logger, Tracer and Metrics every function shares, and the decorator that wires them to a handler.

Service name and metrics namespace come from `POWERTOOLS_SERVICE_NAME` and
`POWERTOOLS_METRICS_NAMESPACE`. Lambda sets them before it imports the handler, but the local twin
runs every function in one process, where these shared instances were built for whichever function
came first: `instrumented_handler` re-reads both at each call.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger()
# botocore is the only I/O library the functions use; patching only it keeps cold starts shorter when
# tracing is active (the default patches every library the X-Ray SDK knows).
tracer = Tracer(patch_modules=("botocore",))
metrics = Metrics()

Handler = Callable[[Any, Any], Any]


def count_decision(name: str, count: int = 1) -> None:
    """Add `count` to the metric named after a decision (e.g. `RetrainStarted`), so every outcome is graphed."""
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=count)


def _adopt_function_environment() -> None:
    service = os.environ.get("POWERTOOLS_SERVICE_NAME")
    if service:
        logger.append_keys(service=service)
        metrics.service = service
    namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE")
    if namespace:
        metrics.namespace = namespace


def instrumented_handler(correlation_id_path: str) -> Callable[[Handler], Handler]:
    """Log with the Lambda context and a correlation id taken from the event, trace, and flush metrics."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def in_function_environment(event: Any, context: Any) -> Any:
            _adopt_function_environment()
            return handler(event, context)

        traced = tracer.capture_lambda_handler(metrics.log_metrics(in_function_environment))
        return logger.inject_lambda_context(correlation_id_path=correlation_id_path)(traced)

    return decorate
