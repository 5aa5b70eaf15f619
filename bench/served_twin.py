"""Benchmark: the served twin driven by the AWS CLI against the same chain in-process (`mlops run`).

Both chains start a fresh twin and end at the endpoint's first answer; the data is scikit-learn's breast cancer
set (what `mlops run` uses by default), approval is automatic in both (`mlops run` sets it, `mlops up --approval
auto` here).

- in-process: `mlops run`, from its start until it prints the first held-out row's prediction;
- served: `mlops up --port 0 --approval auto` from its start; once it prints the client lines, `aws s3 cp` of the
  data under the data prefix (the stack's own S3 → EventBridge → queue → retrain_on_new_data chain starts
  `training`); then, as a person at the two terminals does, wait until `mlops up` prints
  `endpoint <name>: InService`, check it with `aws sagemaker describe-endpoint` (polled once a second should it say
  otherwise) and `aws sagemaker-runtime invoke-endpoint` one row; until its answer.

Why it does not poll `describe-endpoint` once a second from the upload on, as it did: each AWS CLI process costs
1.3-1.6 s of CPU (awscli 1.46 imports botocore, OpenSSL and awscrt, and loads SageMaker's service model), so the
poll took ~60% of one of the machine's two cores for the whole of training and deployment. Measured at load 5-6
(`uptime`): 10 CLI processes used 15.2 s of CPU against 32.1 s for the twin's process and its jobs together, and
the describe that saw InService came 11 s after the twin's own line. On AWS that poll competes with nothing, since
training and hosting run on AWS's machines; here it took the cores from the jobs it was waiting for. The chain
still ends through the CLI (describe-endpoint must say InService, then the invocation must answer).

Target: served within 1.2x the in-process time (exit status 1 when missed or when a chain fails). The two run
one after the other on a shared machine: the load average is printed beside the times, and each chain's steps
beside its total.

Run: python bench/served_twin.py
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from sklearn.datasets import load_breast_cancer

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TARGET_RATIO = 1.2
TIMEOUT_SECONDS = 900
FIRST_PREDICTION = re.compile(r"^\s+row 1: score=\S+ predicted=")
EXPORT = re.compile(r"^export (AWS_[A-Z_]+)=(.*)$")
OUTPUT = re.compile(r"^#\s+(\w+) = (\S+)$")
TWIN_UP = re.compile(r"local twin up in")
POLL_SECONDS = 1.0


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def in_process(scratch: Path) -> float:
    """Seconds from starting `mlops run` until it prints its first prediction."""
    started = time.monotonic()
    process = subprocess.Popen(
        [str(BIN / "mlops"), "run", "--work-dir", str(scratch / "run"), "--report", str(scratch / "report.html")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )
    assert process.stdout is not None
    seen: list[str] = []
    try:
        for line in process.stdout:
            seen.append(line)
            if TWIN_UP.search(line):
                print(f"  in-process: twin up at {time.monotonic() - started:.1f} s")
            if FIRST_PREDICTION.match(line):
                return time.monotonic() - started
        raise RuntimeError("mlops run ended without a prediction:\n" + "".join(seen[-30:]))
    finally:
        process.kill()
        process.wait()


def served(scratch: Path) -> float:
    """Seconds from starting `mlops up` until the AWS CLI has the endpoint's first answer."""
    data = scratch / "breast_cancer.csv"
    frame = load_breast_cancer(as_frame=True).frame
    frame.to_csv(data, index=False)
    row = scratch / "row.csv"
    row.write_text(",".join(str(value) for value in frame.drop(columns="target").iloc[0]))
    started = time.monotonic()
    process = subprocess.Popen(
        [str(BIN / "mlops"), "up", "--port", "0", "--approval", "auto", "--work-dir", str(scratch / "up")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    assert process.stdout is not None
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    env["AWS_CONFIG_FILE"] = env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    outputs: dict[str, str] = {}

    def step(what: str) -> None:
        print(f"  served: {what} at {time.monotonic() - started:.1f} s")

    try:
        for line in process.stdout:
            if match := EXPORT.match(line.strip()):
                env[match.group(1)] = match.group(2)
            if match := OUTPUT.match(line.strip()):
                outputs[match.group(1)] = match.group(2)
            if line.startswith("# work dir"):
                break
        if "AWS_ENDPOINT_URL" not in env:
            raise RuntimeError("mlops up printed no client environment")
        step("client lines printed")
        endpoint = outputs["EndpointName"]
        in_service = threading.Event()
        stdout = process.stdout

        def watch_terminal() -> None:
            # What the person sees in the `mlops up` terminal; read to its end, so the pipe never fills.
            for line in stdout:
                if f"endpoint {endpoint}: InService" in line:
                    in_service.set()
            in_service.set()  # mlops up ended: the describe below says how

        threading.Thread(target=watch_terminal, daemon=True).start()

        def aws(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([str(BIN / "aws"), *args], env=env, capture_output=True, text=True, timeout=120)

        copied = aws("s3", "cp", str(data), f"s3://{outputs['DataBucketName']}/incoming/{data.name}")
        if copied.returncode != 0:
            raise RuntimeError(f"aws s3 cp failed: {copied.stderr}")
        step("aws s3 cp done")
        if not in_service.wait(TIMEOUT_SECONDS):
            raise RuntimeError(f"mlops up did not report endpoint {endpoint} InService within {TIMEOUT_SECONDS} s")
        step("mlops up reported InService")
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while True:
            described = aws("sagemaker", "describe-endpoint", "--endpoint-name", endpoint, "--query", "EndpointStatus")
            if described.returncode == 0 and "InService" in described.stdout:
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"endpoint {endpoint} not InService: {described.stdout}{described.stderr}")
            time.sleep(POLL_SECONDS)
        step("aws sagemaker describe-endpoint says InService")
        answer = scratch / "answer.json"
        invoked = aws(
            "sagemaker-runtime", "invoke-endpoint", "--endpoint-name", endpoint, "--content-type", "text/csv",
            "--accept", "application/json",
            "--body", f"fileb://{row}", str(answer),
        )  # fmt: skip
        if invoked.returncode != 0 or "predictions" not in answer.read_text():
            raise RuntimeError(f"invoke-endpoint failed: {invoked.stderr}")
        return time.monotonic() - started
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-served-") as scratch_dir:
        scratch = Path(scratch_dir)
        print(f"load average before: {load_average()}")
        local = in_process(scratch)
        print(f"in-process (mlops run) first answer: {local:.1f} s   load {load_average()}")
        remote = served(scratch)
        print(f"served (mlops up + aws CLI) first answer: {remote:.1f} s   load {load_average()}")
    ratio = remote / local
    met = ratio <= TARGET_RATIO
    print(f"ratio served / in-process: {ratio:.3f}x (target <= {TARGET_RATIO}x: {'met' if met else 'missed'})")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
