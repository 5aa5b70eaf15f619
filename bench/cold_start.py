"""Benchmark: each Lambda handler's cold start against a bare boto3 handler, and each function package's size.

Cold start: in a fresh interpreter per sample, the time to import the handler module and finish its
first call on a sample from events/, against a bare handler that only imports boto3 and creates the
same clients. The AWS endpoint is a closed local port with one attempt per call, so the first AWS
call fails at once: neither side counts any service time, and the handler's side still pays for
building and sending that request. Powertools tracing is off, as it is outside Lambda (with
`Tracing: Active`, importing the X-Ray SDK adds to the handler's side). The ratio is of medians.

Package: built by the root Makefile's build target that `sam build` runs for every event and glue
function (functions/ plus functions/requirements.txt for the python3.11 x86_64 runtime, less the boto3
and botocore the runtime provides), zipped, against a 10 MB budget.

Run: .venv/bin/python bench/cold_start.py [--samples 5] [--skip-package]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
imported = time.perf_counter()

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
print("BENCH " + json.dumps({"import": imported - started, "total": finished - started, "error": error}))
"""

_IMPORT_BREAKDOWN = """
import json, time
costs = {}
for module in ("boto3", "aws_xray_sdk.core", "pydantic", "aws_lambda_powertools.logging",
               "aws_lambda_powertools.metrics", "aws_lambda_powertools.utilities.parser",
               "aws_lambda_powertools.utilities.idempotency"):
    started = time.perf_counter()
    __import__(module)
    costs[module] = time.perf_counter() - started
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
print("BENCH " + json.dumps({"import": finished - started, "total": finished - started, "error": None}))
"""


@dataclass(frozen=True)
class Function:
    module: str
    event: str
    services: tuple[str, ...]  # the clients the handler creates; the bare handler creates the same


def _closed_port() -> int:
    """A local port nothing listens on: every AWS call is refused at once, with no service time counted."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


_ENVIRONMENT = {
    "TRAINING_STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:training",
    "MODEL_NAME": "breast-cancer",
    "DRIFT_ALARM_PREFIX": "breast-cancer-drift",
    "RETRAIN_COOLDOWN_MINUTES": "360",
    "TRAINING_DATA_URI": "s3://mlops-local-data-123456789012-us-east-1/incoming/",
    "IDEMPOTENCY_TABLE_NAME": "idempotency",
    "DATA_BUCKET": "mlops-local-data-123456789012-us-east-1",
    "DATA_PREFIX": "incoming/",
    "ALLOWED_SUFFIXES": ".csv",
    "IDLE_WINDOW_HOURS": "24",
    "MIN_AGE_HOURS": "24",
    "OPT_OUT_TAG": "mlops:reaper-opt-out",
    "MARK_TAG": "mlops:idle-since",
    "MAX_DELETIONS_PER_RUN": "5",
    "REPORT_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:report",
    "AUDIT_EVENT_BUS_NAME": "default",
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
        [sys.executable, "-c", script, *arguments],
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


def cold_starts(samples: int) -> list[tuple[str, float, float, float, str]]:
    """(module, median handler seconds, median bare seconds, ratio, how the first call ended) per function."""
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(FUNCTIONS),
        "PYTHONDONTWRITEBYTECODE": "1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{_closed_port()}",
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_RETRY_MODE": "standard",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "POWERTOOLS_METRICS_NAMESPACE": "Bench",
        "LOG_LEVEL": "CRITICAL",
        **_ENVIRONMENT,
    }
    rows = []
    for function in FUNCTIONS_UNDER_TEST:
        function_environment = {**environment, "POWERTOOLS_SERVICE_NAME": function.module}
        handler_totals, bare_totals, endings = [], [], set()
        for _ in range(samples):
            timed = _run(_TIMED_HANDLER, [function.module, str(EVENTS / function.event)], function_environment)
            handler_totals.append(timed["total"])
            endings.add(timed["error"] or "returned")
            bare = _run(_TIMED_BARE, [",".join(function.services)], function_environment)
            bare_totals.append(bare["total"])
        handler_median, bare_median = statistics.median(handler_totals), statistics.median(bare_totals)
        rows.append((function.module, handler_median, bare_median, handler_median / bare_median, " | ".join(endings)))
    return rows


def _directory_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def package_size() -> tuple[int, int]:
    """(unzipped, zipped) bytes of one function's package, built by the same Makefile target `sam build` runs."""
    with tempfile.TemporaryDirectory() as folder:
        build = Path(folder) / "package"
        build.mkdir()
        subprocess.run(
            ["make", "--no-print-directory", "build-RetrainOnDriftFunction", f"ARTIFACTS_DIR={build}"],
            cwd=FUNCTIONS.parent,
            check=True,
            capture_output=True,
        )
        archive = Path(folder) / "package.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
            for path in sorted(build.rglob("*")):
                if path.is_file():
                    bundle.write(path, path.relative_to(build).as_posix())
        return _directory_bytes(build), archive.stat().st_size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5, help="fresh interpreters per handler (median taken)")
    parser.add_argument("--skip-package", action="store_true", help="do not build the deployment package")
    arguments = parser.parse_args()

    print(f"{'handler':<22} {'import+first call ms':>21} {'bare boto3 ms':>14} {'ratio':>6}  first call ended")
    rows = cold_starts(arguments.samples)
    for module, handler_seconds, bare_seconds, ratio, ending in rows:
        print(f"{module:<22} {1000 * handler_seconds:>21.0f} {1000 * bare_seconds:>14.0f} {ratio:>6.2f}  {ending[:60]}")
    worst = max(row[3] for row in rows)
    print(f"worst ratio {worst:.2f}: {'meets' if worst <= TARGET_RATIO else 'misses'} the target of <= {TARGET_RATIO}")

    breakdown = _run(_IMPORT_BREAKDOWN, [], {"PATH": os.environ.get("PATH", ""), "PYTHONDONTWRITEBYTECODE": "1"})
    print("where a handler's extra time goes (each import after the ones before it, one fresh interpreter):")
    print("  " + ", ".join(f"{module} {1000 * seconds:.0f} ms" for module, seconds in breakdown.items()))

    if not arguments.skip_package:
        try:
            unzipped, zipped = package_size()
        except subprocess.CalledProcessError as error:
            print(f"function package not measured: the Makefile's build target failed ({error})")
            print(error.stderr.decode(errors="replace")[-2000:])
            return 1
        mb = 1024 * 1024
        verdict = "within" if zipped <= PACKAGE_BUDGET_BYTES else "over"
        print(
            f"function package as sam build makes it: {zipped / mb:.1f} MB zipped ({unzipped / mb:.1f} MB unzipped), "
            f"{verdict} the {PACKAGE_BUDGET_BYTES / mb:.0f} MB budget"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
