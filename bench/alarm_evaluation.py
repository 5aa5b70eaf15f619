"""Benchmark: the twin's minute of alarm evaluation, right after start and after hours of stored metric data.

moto keeps every datapoint for ever; the twin evaluates every alarm once per virtual minute. This puts one
datapoint per minute on each of the alarms' metrics for 10 and then for 2,000 virtual minutes (a day and a half),
and times the evaluations of the last minutes at each point. The evaluation should cost about the same however
much is stored (it reads only the periods of its range): target ratio (2,000 minutes / 10 minutes) at most 1.5.

Run: .venv/bin/python bench/alarm_evaluation.py [--alarms 8] [--minutes 2000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alarms", type=int, default=8)
    parser.add_argument("--minutes", type=int, default=2000)
    args = parser.parse_args()
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
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
