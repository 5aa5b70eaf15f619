"""Benchmark: each Lambda handler's cold start against a bare boto3 handler, and the function package's size.

Both sides run the way Lambda's python3.11 runtime runs them, in a fresh interpreter per sample:
- without the build machine's site-packages (`python -S`): a venv holds extras botocore picks up when
  present (the CRT, pyOpenSSL) that the runtime does not, and they would slow both sides alike;
- the handler from the package `sam build` makes (the root Makefile's build target, bytecode included),
  on the path ahead of a stand-in for the runtime's own packages (boto3, botocore and what they need,
  linked from this venv with their bytecode), in Lambda's order (mlops.lambda_runtime);
- with Lambda's environment (`LAMBDA_TASK_ROOT`, a trace header with `Sampled=1`, a daemon address),
  so the X-Ray SDK starts in its Lambda mode and Powertools' Tracer traces as with `Tracing: Active`.

The handler's side is the import of its module plus its first call on a sample from events/; the
bare side imports boto3 and creates the same clients. The AWS endpoint is a closed local port with
one attempt per call, so the first AWS call fails at once: neither side counts any service time, and
the handler's side still pays for building and sending that request. The ratio is the median of
ratios of back-to-back pairs, which cancels most of a shared machine's drifting load.

Run: .venv/bin/python bench/cold_start.py [--samples 11]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops.checks import package_sizes
from mlops.lambda_runtime import interpreter, lambda_environment, runtime_stand_in, unused_local_port

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ROOT / "functions"
EVENTS = ROOT / "events"
TARGET_RATIO = 1.5
PACKAGE_BUDGET_BYTES = 10 * 1024 * 1024
REGION = "us-east-1"

_TIMED_HANDLER = """
import json, sys, time
started = time.perf_counter()
import importlib
module = importlib.import_module(sys.argv[1])

class Context:
    function_name = "bench"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    aws_request_id = "bench-request"
    def get_remaining_time_in_millis(self):
        return 30000

with open(sys.argv[2]) as event_file:
    event = json.load(event_file)
try:
    outcome = module.handler(event, Context())
    error = None
except Exception as raised:
    outcome, error = None, repr(raised)
finished = time.perf_counter()
print("BENCH " + json.dumps({"total": finished - started, "error": error}))
"""

# Each step's cost after the ones before it, in the order a handler pays them. The first two steps are the bare
# handler of the two functions that start training; the rest is what the issue requires of every handler
# (Powertools' Logger, Metrics, Tracer, parser models and idempotency), so their sum over the first two is the
# ratio a handler with no code of its own would have.
BARE_STEPS = ("boto3", "two clients")
_IMPORT_BREAKDOWN = """
import json, time
costs = {}
steps = (
    ("boto3", "import boto3"),
    ("two clients", "boto3.client('stepfunctions'); boto3.client('dynamodb')"),
    ("pydantic", "import pydantic"),
    ("Logger and Metrics", "from aws_lambda_powertools import Logger, Metrics; Logger(); Metrics()"),
    ("Tracer (X-Ray SDK)", "from aws_lambda_powertools import Tracer; Tracer(patch_modules=('botocore',))"),
    ("parser", "from aws_lambda_powertools.utilities.parser import parse"),
    ("EventBridgeModel", "from aws_lambda_powertools.utilities.parser.models import EventBridgeModel"),
    ("idempotency", "import aws_lambda_powertools.utilities.idempotency"),
)
for name, code in steps:
    started = time.perf_counter()
    exec(code)
    costs[name] = time.perf_counter() - started
print("BENCH " + json.dumps(costs))
"""

_TIMED_BARE = """
import json, sys, time
started = time.perf_counter()
import boto3
clients = [boto3.client(service) for service in sys.argv[1].split(",")]

def handler(event, context):
    return {}

handler({}, None)
finished = time.perf_counter()
print("BENCH " + json.dumps({"total": finished - started, "error": None}))
"""


@dataclass(frozen=True)
class Function:
    module: str
    event: str
    services: tuple[str, ...]  # the clients the handler creates; the bare handler creates the same


_ENVIRONMENT = {
    "TRAINING_STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:training",
    "MODEL_NAME": "breast-cancer",
    "DRIFT_ALARM_PREFIX": "mlops-local-drift-",
    "RETRAIN_COOLDOWN_MINUTES": "360",
    "TRAINING_DATA_URI": "s3://mlops-local-data-123456789012-us-east-1/incoming/",
    "IDEMPOTENCY_TABLE_NAME": "idempotency",
    "DATA_BUCKET": "mlops-local-data-123456789012-us-east-1",
    "DATA_PREFIX": "incoming/",
    "ALLOWED_SUFFIXES": ".csv",
    "NEW_DATA_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/new-data",
    "NEW_DATA_DEFER_SECONDS": "900",
    "IDLE_WINDOW_HOURS": "24",
    "MIN_AGE_HOURS": "24",
    "OPT_OUT_TAG": "mlops:reaper-opt-out",
    "MARK_TAG": "mlops:idle-since",
    "MAX_DELETIONS_PER_RUN": "5",
    "REPORT_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:report",
    "AUDIT_EVENT_BUS_NAME": "mlops-audit",
    "AUDIT_STACK_NAME": "mlops",
    "DEPLOY_STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:deploy",
    "ALARM_NAME_PREFIX": "mlops-",
    "REAPER_SCOPE": "managed",
    "MANAGEMENT_TAG": "mlops:model-package-arn",
    "MANAGED_TAG_VALUE_PREFIX": "arn:aws:sagemaker:us-east-1:123456789012:model-package/group/",
    "MODEL_PACKAGE_GROUP_NAME": "group",
}


FUNCTIONS_UNDER_TEST = [
    Function("retrain_on_drift", "retrain_on_drift/alarm.json", ("stepfunctions", "dynamodb")),
    Function("retrain_on_new_data", "retrain_on_new_data/burst.json", ("stepfunctions", "dynamodb")),
    Function(
        "endpoint_reaper",
        "endpoint_reaper/schedule.json",
        ("sagemaker", "cloudwatch", "resourcegroupstaggingapi", "sns", "events"),
    ),
    Function("evaluation_report", "evaluation_report/payload.json", ("s3", "sagemaker")),
    Function("smoke_test", "smoke_test/payload.json", ("s3", "sagemaker-runtime")),
]


def _run(script: str, arguments: list[str], environment: dict[str, str]) -> dict[str, Any]:
    completed = subprocess.run(
        [*interpreter(), "-c", script, *arguments],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("BENCH ")]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f"benchmark subprocess failed ({completed.returncode}): {completed.stderr[-2000:]}")
    return dict(json.loads(lines[-1].removeprefix("BENCH ")))


def build_package(folder: Path) -> Path:
    """The event and glue functions' package, built by the same Makefile target `sam build` runs.

    It is the only folder in `folder`/build, as each function's is in the build folder of `sam build`.
    """
    package = folder / "build" / "task"
    package.mkdir(parents=True)
    completed = subprocess.run(
        ["make", "--no-print-directory", "build-RetrainOnDriftFunction", f"ARTIFACTS_DIR={package}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"the Makefile's build target failed: {completed.stderr[-2000:]}")
    return package


def bench_environment(package: Path, runtime: Path, service: str) -> dict[str, str]:
    """Lambda's environment plus the functions' settings, with AWS answering nothing (see the module docstring)."""
    return {
        **lambda_environment(package, runtime, service, region=REGION),
        "PYTHONWARNINGS": "ignore",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{unused_local_port()}",
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_RETRY_MODE": "standard",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "POWERTOOLS_SERVICE_NAME": service,
        "POWERTOOLS_METRICS_NAMESPACE": "Bench",
        "LOG_LEVEL": "CRITICAL",
        **_ENVIRONMENT,
    }


def cold_starts(package: Path, runtime: Path, samples: int) -> list[tuple[str, float, float, float, str]]:
    """(module, median handler seconds, median bare seconds, median paired ratio, how the first call ended).

    Each sample runs the handler and the bare handler back to back, in alternating order, and takes their
    ratio: on a shared machine the load drifts between samples, and a pair sees nearly the same load.
    """
    rows = []
    for function in FUNCTIONS_UNDER_TEST:
        handler_environment = bench_environment(package, runtime, function.module)
        # The bare handler's package holds nothing but its handler: only the runtime's packages are on its path.
        bare_environment = {**handler_environment, "PYTHONPATH": str(runtime)}
        handler_totals, bare_totals, ratios, endings = [], [], [], set()
        handler_arguments = [function.module, str(EVENTS / function.event)]
        bare_arguments = [",".join(function.services)]
        for sample in range(samples):
            pair = [
                (_TIMED_HANDLER, handler_arguments, handler_environment),
                (_TIMED_BARE, bare_arguments, bare_environment),
            ]
            in_order = pair if sample % 2 == 0 else pair[::-1]  # each side runs first in half the pairs
            timed = {script: _run(script, arguments, environment) for script, arguments, environment in in_order}
            handler, bare = timed[_TIMED_HANDLER], timed[_TIMED_BARE]
            endings.add(handler["error"] or "returned")
            handler_totals.append(handler["total"])
            bare_totals.append(bare["total"])
            ratios.append(handler["total"] / bare["total"])
        rows.append(
            (
                function.module,
                statistics.median(handler_totals),
                statistics.median(bare_totals),
                statistics.median(ratios),
                " | ".join(sorted(endings)),
            )
        )
    return rows


def import_breakdown(package: Path, runtime: Path, samples: int) -> dict[str, float]:
    """Median seconds of each step a handler pays for, after the steps before it."""
    environment = bench_environment(package, runtime, "breakdown")
    runs = [_run(_IMPORT_BREAKDOWN, [], environment) for _ in range(samples)]
    return {step: statistics.median(run[step] for run in runs) for step in runs[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=11, help="handler and bare pairs per function (median taken)")
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        print("building the function package with the Makefile target sam build runs ...", flush=True)
        try:
            package = build_package(folder)
        except RuntimeError as error:
            print(f"function package not built: {error}")
            return 1
        runtime = runtime_stand_in(folder)

        print(f"{'handler':<22} {'import+first call ms':>21} {'bare boto3 ms':>14} {'ratio':>6}  first call ended")
        print("(milliseconds: medians; ratio: median of the pairs' ratios)")
        rows = cold_starts(package, runtime, arguments.samples)
        for module, handler_seconds, bare_seconds, ratio, ending in rows:
            handler_ms, bare_ms = 1000 * handler_seconds, 1000 * bare_seconds
            print(f"{module:<22} {handler_ms:>21.0f} {bare_ms:>14.0f} {ratio:>6.2f}  {ending[:60]}")
        worst = max(row[3] for row in rows)
        verdict = "meets" if worst <= TARGET_RATIO else "misses"
        print(f"worst ratio {worst:.2f}: {verdict} the target of <= {TARGET_RATIO}")

        breakdown = import_breakdown(package, runtime, arguments.samples)
        print("what each step costs, after the ones before it (median of fresh interpreters):")
        print("  " + ", ".join(f"{step} {1000 * seconds:.0f} ms" for step, seconds in breakdown.items()))
        bare = sum(breakdown[step] for step in BARE_STEPS)
        print(
            f"the required libraries alone, with no handler code: {1000 * sum(breakdown.values()):.0f} ms against "
            f"{1000 * bare:.0f} ms for boto3 and two clients, a floor of {sum(breakdown.values()) / bare:.2f}"
        )

        zipped, unzipped = package_sizes(package.parent)[package.name]
        mb = 1024 * 1024
        fits = "within" if zipped <= PACKAGE_BUDGET_BYTES else "over"
        print(
            f"function package as sam build makes it: {zipped / mb:.1f} MB zipped ({unzipped / mb:.1f} MB unzipped), "
            f"{fits} the {PACKAGE_BUDGET_BYTES / mb:.0f} MB budget"
        )
    return 0 if worst <= TARGET_RATIO and zipped <= PACKAGE_BUDGET_BYTES else 1


if __name__ == "__main__":
    sys.exit(main())
