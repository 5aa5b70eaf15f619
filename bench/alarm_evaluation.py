"""Benchmark: the twin's minute of alarm evaluation, after hours of stored metric data, and a long clock jump.

Part `stored`: moto keeps every datapoint for ever; the twin evaluates every alarm once per virtual minute. This puts
one datapoint per minute on each of the alarms' metrics for 10 and then for 2,000 virtual minutes (a day and a half),
and times the evaluations of the last minutes at each point. The evaluation should cost about the same however
much is stored (it reads only the periods of its range): target ratio (2,000 minutes / 10 minutes) at most 1.5.

Part `advance`: on a started LocalTwin (the stack's alarms), the wall time of one 296-minute `clock.advance` (the
drift command's cooldown jump: services' metrics and every alarm at each minute boundary), against what the old
path takes in the same run: every alarm evaluated in full at every boundary (`skip_unchanged=False`) and the
service metrics put through a boto3 PutMetricData request per boundary, as before. The old path here still words
a reason only for a state change, so it is a little faster than the old code was: the ratio errs low. Target: the
old path takes at least 5 times as long. Median of 3 jumps each, alternated.

Run: .venv/bin/python bench/alarm_evaluation.py [--part stored|advance|all] [--alarms 8] [--minutes 2000]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
for _name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
    os.environ[_name] = "bench"  # moto accepts anything; a real profile must never be used

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402

from emulator.alarms import AlarmEvaluator  # noqa: E402
from emulator.clock import Clock  # noqa: E402

TARGET_RATIO = 1.5
SAMPLES = 30
ADVANCE_MINUTES = 296
ADVANCE_TARGET_SPEEDUP = 5.0
ADVANCE_SAMPLES = 3


def _put_minutes(client: Any, alarms: int, t0: datetime, first: int, last: int) -> None:
    for minute in range(first, last):
        client.put_metric_data(
            Namespace="mlops",
            MetricData=[
                {
                    "MetricName": f"Metric{index}",
                    "Dimensions": [{"Name": "Endpoint", "Value": "bench"}],
                    "Value": float(minute % 7),
                    "Timestamp": t0 + timedelta(minutes=minute, seconds=10),
                }
                for index in range(alarms)
            ],
        )


def _seconds_per_evaluation(evaluator: AlarmEvaluator, t0: datetime, minute: int) -> float:
    timings = []
    for offset in range(SAMPLES):
        started = time.perf_counter()
        evaluator.evaluate(t0 + timedelta(minutes=minute - SAMPLES + offset + 1))
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def _stored(args: argparse.Namespace) -> bool:
    with mock_aws():
        clock = Clock(speed=1.0)
        evaluator = AlarmEvaluator(clock, lambda _event: None)
        evaluator.install()
        client = boto3.client("cloudwatch")
        t0 = clock.now().replace(second=0, microsecond=0) - timedelta(minutes=args.minutes + 10)
        for index in range(args.alarms):
            client.put_metric_alarm(
                AlarmName=f"bench-{index}",
                Namespace="mlops",
                MetricName=f"Metric{index}",
                Dimensions=[{"Name": "Endpoint", "Value": "bench"}],
                Statistic="Maximum",
                Period=60,
                EvaluationPeriods=3,
                DatapointsToAlarm=2,
                Threshold=5.0,
                ComparisonOperator="GreaterThanOrEqualToThreshold",
            )
        try:
            early = max(SAMPLES, 10)
            _put_minutes(client, args.alarms, t0, 0, early)
            short = _seconds_per_evaluation(evaluator, t0, early)
            _put_minutes(client, args.alarms, t0, early, args.minutes)
            long = _seconds_per_evaluation(evaluator, t0, args.minutes)
        finally:
            evaluator.uninstall()
    ratio = long / short
    print(f"{args.alarms} alarms, one datapoint per alarm and minute, median of {SAMPLES} evaluations")
    print(f"  after {early} minutes:  {short * 1000:.2f} ms per evaluation")
    print(f"  after {args.minutes} minutes: {long * 1000:.2f} ms per evaluation")
    print(f"  ratio {ratio:.2f} (target at most {TARGET_RATIO}): {'met' if ratio <= TARGET_RATIO else 'MISSED'}")
    return ratio <= TARGET_RATIO


class _PutMetricDataRequests:
    """Stands for moto's CloudWatch backends in emulator.service_metrics: each put is a boto3 request, the old path."""

    def __init__(self) -> None:
        self._client = boto3.client("cloudwatch")

    def __getitem__(self, _account_or_region: str) -> _PutMetricDataRequests:
        return self

    def put_metric_data(self, namespace: str, metric_data: list[dict[str, Any]]) -> None:
        self._client.put_metric_data(Namespace=namespace, MetricData=metric_data)


def _advance(work_dir: Path) -> bool:
    import emulator.service_metrics
    from emulator.twin import LocalTwin

    logging.disable(logging.INFO)  # one line per alarm change and audit event otherwise
    with LocalTwin(work_dir=work_dir) as twin:
        twin.clock.advance(60)  # the alarms leave INSUFFICIENT_DATA: the jumps time the steady state
        time.sleep(2.0)  # the audit function's first (cold) events are delivered before the timing
        backends = emulator.service_metrics.cloudwatch_backends
        requests = _PutMetricDataRequests()
        timings: dict[str, list[float]] = {"new": [], "old": []}
        for _ in range(ADVANCE_SAMPLES):
            for path in ("new", "old"):
                twin.alarms.skip_unchanged = path == "new"
                emulator.service_metrics.cloudwatch_backends = backends if path == "new" else requests  # type: ignore[assignment]
                try:
                    started = time.perf_counter()
                    twin.clock.advance(ADVANCE_MINUTES * 60)
                    timings[path].append(time.perf_counter() - started)
                finally:
                    emulator.service_metrics.cloudwatch_backends = backends
                    twin.alarms.skip_unchanged = True
        alarms = len(boto3.client("cloudwatch").describe_alarms()["MetricAlarms"])
    new, old = statistics.median(timings["new"]), statistics.median(timings["old"])
    speedup = old / new
    print(f"one {ADVANCE_MINUTES}-minute advance on a started twin ({alarms} alarms), median of {ADVANCE_SAMPLES}")
    print(f"  new: {new:.3f} s; old path (every alarm in full, metrics by request): {old:.3f} s")
    print(
        f"  old / new {speedup:.1f} (target at least {ADVANCE_TARGET_SPEEDUP}): "
        f"{'met' if speedup >= ADVANCE_TARGET_SPEEDUP else 'MISSED'}"
    )
    return speedup >= ADVANCE_TARGET_SPEEDUP


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("stored", "advance", "all"), default="all")
    parser.add_argument("--alarms", type=int, default=8)
    parser.add_argument("--minutes", type=int, default=2000)
    args = parser.parse_args()
    met = True
    if args.part in ("stored", "all"):
        met = _stored(args) and met
    if args.part in ("advance", "all"):
        with tempfile.TemporaryDirectory(prefix="bench-alarm-advance-") as work_dir:
            met = _advance(Path(work_dir)) and met
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
