"""Benchmark: the endpoint reaper's AWS calls and wall time per endpoint, for fleets of 10 to 5,000 under moto.

Each fleet is 1% idle (at least one endpoint): half of the idle endpoints carry a mark old enough to
be deleted, half are unmarked and get marked; every other endpoint served requests in the idle
window. The reaper runs live (not dry run) with the deletion cap of pipeline.toml, and its report
is sent, so the counts include SNS and EventBridge. Calls are counted with a botocore event hook on
the reaper's own clients, per operation.

Run: .venv/bin/python bench/reaper_scale.py [--sizes 10,100,1000,5000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "functions"))
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
# The stack every audit event names (template.yaml sets it on the reaper).
os.environ.setdefault("AUDIT_STACK_NAME", "mlops-bench")
for _name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
    os.environ[_name] = "bench"  # moto accepts anything; a real profile must never be used

import boto3  # noqa: E402
from common.settings import ReaperSettings  # noqa: E402
from endpoint_reaper import ReaperClients, reap, send_report  # noqa: E402
from moto import mock_aws  # noqa: E402

from contract.pipeline_config import load_pipeline_config  # noqa: E402

TARGET_CALLS_PER_ENDPOINT_AT_5000 = 0.1
METRICS_PER_PUT = 1000  # PutMetricData's per-request limit


def build_fleet(size: int, now: datetime, mark_tag: str) -> int:
    """Create `size` endpoints, 1% of them idle; return how many are idle."""
    sagemaker, cloudwatch = boto3.client("sagemaker"), boto3.client("cloudwatch")
    sagemaker.create_model(
        ModelName="model",
        ExecutionRoleArn="arn:aws:iam::123456789012:role/sagemaker",
        PrimaryContainer={"Image": "xgboost"},
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName="config",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "model",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    idle = max(1, size // 100)
    old_mark = (now - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    busy_data: list[dict[str, Any]] = []
    for index in range(size):
        name = f"endpoint-{index:05d}"
        tags = [{"Key": mark_tag, "Value": old_mark}] if index < idle // 2 else []
        sagemaker.create_endpoint(EndpointName=name, EndpointConfigName="config", Tags=tags)
        if index >= idle:
            busy_data.append(
                {
                    "MetricName": "Invocations",
                    "Dimensions": [
                        {"Name": "EndpointName", "Value": name},
                        {"Name": "VariantName", "Value": "AllTraffic"},
                    ],
                    "Timestamp": now - timedelta(hours=1),
                    "Value": 7.0,
                }
            )
    for start in range(0, len(busy_data), METRICS_PER_PUT):
        cloudwatch.put_metric_data(Namespace="AWS/SageMaker", MetricData=busy_data[start : start + METRICS_PER_PUT])
    return idle


class CallMeter:
    """Counts every call the reaper's clients make, per `service.Operation`, and the time spent inside them.

    The time inside calls is moto's (in-process) serving time; the rest of the run is the reaper's own
    work, the part that does not depend on how fast the service answers.
    """

    def __init__(self, clients: ReaperClients) -> None:
        self.calls: Counter[str] = Counter()
        self.seconds_in_calls = 0.0
        self._started = 0.0
        for client in (clients.sagemaker, clients.cloudwatch, clients.tagging, clients.sns, clients.events):
            client.meta.events.register("before-call", self._before)
            client.meta.events.register("after-call", self._after)

    def _before(self, event_name: str, **_: Any) -> None:
        self.calls[event_name.removeprefix("before-call.")] += 1
        self._started = time.perf_counter()

    def _after(self, **_: Any) -> None:
        self.seconds_in_calls += time.perf_counter() - self._started


def measure(size: int) -> dict[str, Any]:
    config = load_pipeline_config().reaper
    with mock_aws():
        now = datetime.now(UTC)
        started = time.perf_counter()
        idle = build_fleet(size, now, config.mark_tag)
        build_seconds = time.perf_counter() - started
        topic = boto3.client("sns").create_topic(Name="reaper-report")["TopicArn"]
        settings = ReaperSettings(
            idle_window_hours=config.idle_window_hours,
            min_age_hours=0,  # moto stamps creation with the real clock; age is not what is measured
            dry_run=False,
            opt_out_tag=config.opt_out_tag,
            mark_tag=config.mark_tag,
            max_deletions_per_run=config.max_deletions_per_run,
            report_topic_arn=topic,
            audit_event_bus_name="default",
            scope="account",  # the wider scope: every endpoint of the fleet is judged
            management_tag="mlops:model-package-arn",
            managed_tag_value_prefix="",
        )
        clients = ReaperClients.default()
        meter = CallMeter(clients)
        started = time.perf_counter()
        report = reap(clients, settings, now + timedelta(minutes=1))
        undelivered = send_report(clients, settings, report).problems()
        if undelivered:
            raise RuntimeError(f"the reaper's report was not delivered: {undelivered}")
        run_seconds = time.perf_counter() - started
    total = sum(meter.calls.values())
    return {
        "size": size,
        "idle": idle,
        "calls": total,
        "calls_per_endpoint": total / size,
        "ms_per_endpoint": 1000 * run_seconds / size,
        "own_ms_per_endpoint": 1000 * (run_seconds - meter.seconds_in_calls) / size,
        "run_seconds": run_seconds,
        "build_seconds": build_seconds,
        "by_operation": dict(sorted(meter.calls.items())),
        "counts": report.counts(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000,5000", help="comma-separated fleet sizes")
    sizes = [int(size) for size in parser.parse_args().sizes.split(",")]
    print(
        f"{'fleet':>6} {'idle':>5} {'calls':>6} {'calls/endpoint':>15} {'ms/endpoint':>12} "
        f"{'own ms/endpoint':>16} {'run s':>7}  decisions"
    )
    results = []
    for size in sizes:
        result = measure(size)
        results.append(result)
        print(
            f"{result['size']:>6} {result['idle']:>5} {result['calls']:>6} {result['calls_per_endpoint']:>15.4f} "
            f"{result['ms_per_endpoint']:>12.3f} {result['own_ms_per_endpoint']:>16.3f} {result['run_seconds']:>7.2f}  "
            f"{result['counts']}",
            flush=True,
        )
    for result in results:
        print(f"calls by operation at {result['size']}: {result['by_operation']}")
    smallest, largest = results[0], results[-1]
    print(
        f"fleet x{largest['size'] / smallest['size']:.0f} ({smallest['size']} -> {largest['size']}): calls "
        f"x{largest['calls'] / smallest['calls']:.1f}, calls per endpoint "
        f"{smallest['calls_per_endpoint']:.4f} -> {largest['calls_per_endpoint']:.4f}"
    )
    if largest["size"] >= 5000:
        verdict = "meets" if largest["calls_per_endpoint"] <= TARGET_CALLS_PER_ENDPOINT_AT_5000 else "misses"
        print(
            f"{largest['size']} endpoints {verdict} the target of <= {TARGET_CALLS_PER_ENDPOINT_AT_5000} calls/endpoint"
        )
    print("ms/endpoint is dominated by moto serving GetMetricData and ListMetrics in-process (it scans every")
    print("datapoint per query); own ms/endpoint is the reaper's work outside the calls.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
