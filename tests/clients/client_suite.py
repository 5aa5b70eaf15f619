"""The client suite's harness: the target clients talk to, the AWS CLI, and `mlops up` as a process.

conftest.py says which target a session uses (`mlops up`, or a real stack named by AWS_SAM_STACK_NAME).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

AWS_CLI = str(Path(sys.executable).parent / "aws")
MLOPS = str(Path(sys.executable).parent / "mlops")
# The twin's clock for the suite: an hour passes in 12 real seconds (the reaper's idle window of two in 24), jobs take
# their real time.
SUITE_CLOCK_SPEED = 300
# The reaper in its default managed scope (it finds the stack's endpoints with the tagging API), deleting for real,
# with an idle window the suite's clock passes in seconds.
SUITE_PARAMETER_OVERRIDES = (
    "ReaperDryRun=false",
    "ReaperIdleWindowHours=2",
    "ReaperMinAgeHours=0",
)
# Real seconds `mlops up` may take to deploy the stack on a loaded 2-core machine.
UP_START_SECONDS = 180
UP_STOP_SECONDS = 120
_EXPORT = re.compile(r"^export (AWS_[A-Z_]+)=(.*)$")
_STACK = re.compile(r"^# stack (\S+) outputs")


class AwsCliError(RuntimeError):
    """The AWS CLI exited non-zero; the message has its command line and stderr."""

    def __init__(self, args: tuple[str, ...], code: int, stderr: str) -> None:
        super().__init__(f"aws {' '.join(args)} exited {code}: {stderr.strip()}")
        self.stderr = stderr


@dataclass
class Target:
    """Where the clients go: their environment, the stack's name and outputs, and how long things may take there."""

    env: dict[str, str]
    stack_name: str
    is_twin: bool
    # Real seconds a training or a deploy may take on this target.
    execution_timeout: float
    outputs: dict[str, str] = field(default_factory=dict)

    def aws(self, *args: str, timeout: float = 120) -> Any:
        """Runs the AWS CLI with `args` and JSON output; the parsed output (None when it printed nothing)."""
        completed = subprocess.run(
            [AWS_CLI, *args, "--output", "json"], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if completed.returncode != 0:
            raise AwsCliError(args, completed.returncode, completed.stderr)
        return json.loads(completed.stdout) if completed.stdout.strip() else None

    def run_cli(self, *args: str, timeout: float = 120) -> str:
        """Runs the AWS CLI with `args` as they are (`aws s3 cp` prints text); its stdout."""
        completed = subprocess.run([AWS_CLI, *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if completed.returncode != 0:
            raise AwsCliError(args, completed.returncode, completed.stderr)
        return completed.stdout

    def load_outputs(self) -> None:
        stacks = self.aws("cloudformation", "describe-stacks", "--stack-name", self.stack_name)["Stacks"]
        self.outputs = {output["OutputKey"]: output["OutputValue"] for output in stacks[0].get("Outputs", [])}


def wait_for(description: str, probe: Callable[[], Any], timeout: float, interval: float = 2.0) -> Any:
    """Polls `probe` until it returns something truthy; fails the test naming `description` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{description}: not within {timeout:.0f} s")
        time.sleep(interval)


def client_environment(exports: dict[str, str]) -> dict[str, str]:
    """This process's environment without its AWS variables, plus what `mlops up` printed; no profile files."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    env.update(exports)
    env["AWS_CONFIG_FILE"] = env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    return env


@dataclass
class ServedTwin:
    """A running `mlops up` process and what it printed."""

    process: subprocess.Popen[str]
    exports: dict[str, str]
    stack_name: str
    lines: list[str]

    @property
    def url(self) -> str:
        return self.exports["AWS_ENDPOINT_URL"]

    def stop(self) -> int:
        """SIGINT, as Ctrl-C; the exit code once it has stopped everything."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=UP_STOP_SECONDS)
        finally:
            if self.process.poll() is None:
                self.process.kill()


def start_served_twin(work_dir: Path, *extra: str) -> ServedTwin:
    """Starts `mlops up --port 0` and reads its output until the client lines are printed."""
    work_dir.mkdir(parents=True, exist_ok=True)
    stderr = (work_dir / "up.stderr").open("w")
    process = subprocess.Popen(
        [MLOPS, "up", "--port", "0", "--work-dir", str(work_dir), *extra],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env={name: value for name, value in os.environ.items() if name != "AWS_ENDPOINT_URL"},
    )
    assert process.stdout is not None
    exports: dict[str, str] = {}
    stack_name = ""
    lines: list[str] = []
    deadline = time.monotonic() + UP_START_SECONDS
    for line in process.stdout:
        lines.append(line)
        if match := _EXPORT.match(line.strip()):
            exports[match.group(1)] = match.group(2)
        if match := _STACK.match(line):
            stack_name = match.group(1)
        if line.startswith("# work dir"):
            break
        if time.monotonic() > deadline:
            break
    if "AWS_ENDPOINT_URL" not in exports or not stack_name:
        process.kill()
        process.wait()
        pytest.fail(f"mlops up printed no client environment: {''.join(lines)}\n{(work_dir / 'up.stderr').read_text()}")
    # The rest of its output (announcements) is drained so the process never blocks on a full pipe.
    threading.Thread(target=_keep_reading, args=(process.stdout, lines), daemon=True).start()
    return ServedTwin(process, exports, stack_name, lines)


def _keep_reading(stream: Any, lines: list[str]) -> None:
    for line in stream:
        lines.append(line)


def client_suite_target(served_twin: ServedTwin | None) -> Target:
    """The target of the session: the served twin's, or the real stack's named by AWS_SAM_STACK_NAME."""
    if served_twin is None:
        real = json.loads(os.environ.get("MLOPS_CLIENT_SUITE_AWS_ENVIRONMENT") or "{}")
        env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
        env.update(real)
        found = Target(env, os.environ["AWS_SAM_STACK_NAME"], is_twin=False, execution_timeout=3600)
    else:
        found = Target(
            client_environment(served_twin.exports), served_twin.stack_name, is_twin=True, execution_timeout=900
        )
    found.load_outputs()
    return found
