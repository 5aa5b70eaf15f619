"""A function's embedded metric format lines become CloudWatch metrics in the twin, as CloudWatch Logs makes them."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from moto import mock_aws
from moto.cloudwatch.models import cloudwatch_backends

from emulator.alarms import AlarmEvaluator
from emulator.clock import Clock
from emulator.embedded_metrics import embedded_metrics
from emulator.lambda_local import LocalLambdaRunner

# What Powertools' Metrics prints at flush (two values of one metric, one dimension set of key "service").
POWERTOOLS_LINE = {
    "_aws": {
        "Timestamp": 1796124268866,
        "CloudWatchMetrics": [
            {
                "Namespace": "mlops",
                "Dimensions": [["service"], ["service", "Endpoint"]],
                "Metrics": [{"Name": "RetrainStarted", "Unit": "Count"}, {"Name": "Latency", "Unit": "Seconds"}],
            }
        ],
    },
    "service": "retrain-on-drift",
    "Endpoint": "mlops-dev-endpoint",
    "RetrainStarted": [1.0, 1.0],
    "Latency": 0.25,
}
HANDLER = f"""
import json
LINE = {json.dumps(json.dumps(POWERTOOLS_LINE))}
def handler(event, context):
    print("a plain log line")
    print(LINE)
    return "done"
"""


def test_each_metric_and_dimension_set_of_an_emf_line_is_one_datum() -> None:
    pairs = embedded_metrics(json.dumps(POWERTOOLS_LINE))

    assert [(namespace, d["MetricName"], [x["Name"] for x in d["Dimensions"]]) for namespace, d in pairs] == [
        ("mlops", "RetrainStarted", ["service"]),
        ("mlops", "RetrainStarted", ["service", "Endpoint"]),
        ("mlops", "Latency", ["service"]),
        ("mlops", "Latency", ["service", "Endpoint"]),
    ]
    assert pairs[0][1]["Values"] == [1.0, 1.0]
    assert pairs[0][1]["Unit"] == "Count"
    assert pairs[2][1]["Values"] == [0.25]
    assert "Timestamp" not in pairs[0][1]  # the twin's clock stamps it


def test_a_malformed_emf_line_publishes_nothing_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    broken = {**POWERTOOLS_LINE}
    del broken["Latency"]
    with caplog.at_level(logging.WARNING, logger="emulator.embedded_metrics"):
        assert embedded_metrics(json.dumps(broken)) == []
    assert "malformed" in caplog.text


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[tuple[LocalLambdaRunner, Clock]]:
    code_dir = tmp_path / "emf_code"
    code_dir.mkdir()
    (code_dir / "emf_handler.py").write_text(HANDLER)
    runner = LocalLambdaRunner()
    runner.register("emf-fn", "emf_handler.handler", code_dir, {}, 30)
    clock = Clock(speed=1.0)
    with mock_aws(config={"lambda": {"use_docker": False}}):
        alarms = AlarmEvaluator(clock, lambda event: None)
        alarms.install()
        runner.install()
        try:
            yield runner, clock
        finally:
            runner.uninstall()
            alarms.uninstall()


def test_an_invocations_emf_output_becomes_metrics_at_the_twins_time(
    runner: tuple[LocalLambdaRunner, Clock], capsys: pytest.CaptureFixture[str]
) -> None:
    lambdas, clock = runner
    clock.advance(3 * 3600)
    assert lambdas.invoke("emf-fn", {}) == "done"

    printed = capsys.readouterr().out
    assert "a plain log line" in printed  # stdout still gets everything
    assert '"RetrainStarted"' in printed
    data = cloudwatch_backends["123456789012"]["us-east-1"].metric_data
    started = [d for d in data if d.name == "RetrainStarted"]
    assert len(started) == 4  # two values, two dimension sets
    assert {d.namespace for d in data} == {"mlops"}
    assert all(abs(d.timestamp - clock.now().replace(tzinfo=None)) < timedelta(minutes=1) for d in data)
