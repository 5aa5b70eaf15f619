"""SageMaker's container contract on this machine: a directory per job stands for `/opt/ml`, jobs run as processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

CONTAINER_ROOT = "/opt/ml"


def container_path_environment() -> dict[str, str]:
    """PATH with this interpreter's bin first, so `python3` in a job is the twin's virtualenv."""
    venv_bin = str(Path(sys.executable).parent)
    return {"PATH": os.pathsep.join([venv_bin, os.environ.get("PATH", "")])}


def rewrite_container_paths(value: Any, root: Path) -> Any:
    """Replace the `/opt/ml` prefix in every string of `value` (str, list, dict) with the job's root directory."""
    if isinstance(value, str):
        return value.replace(CONTAINER_ROOT, str(root))
    if isinstance(value, list):
        return [rewrite_container_paths(item, root) for item in value]
    if isinstance(value, dict):
        return {key: rewrite_container_paths(item, root) for key, item in value.items()}
    return value


class ContainerProcess:
    """Runs one job's command with its environment, logging stdout and stderr together to `log_path`."""

    def __init__(self, command: list[str], cwd: Path, environment: dict[str, str], log_path: Path) -> None:
        self.command = command
        self.cwd = cwd
        self.environment = {**os.environ.copy(), **container_path_environment(), "PYTHONUNBUFFERED": "1", **environment}
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._killed = False
        self.runtime_exceeded = False

    def run(self, max_runtime_seconds: float | None = None) -> int:
        """Start the command and wait for it; returns its exit code (negative when killed by a signal).

        After `max_runtime_seconds` (real seconds: work is never sped up) the job is killed and
        `runtime_exceeded` is set, as SageMaker ends a job at its StoppingCondition.
        """
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            with self._lock:
                if self._killed:
                    return -signal.SIGKILL
                try:
                    self._process = subprocess.Popen(
                        self.command,
                        cwd=self.cwd,
                        env=self.environment,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                except OSError as error:
                    log.write(f"Cannot start {self.command[0]!r}: {error}\n".encode())
                    return 127
            try:
                return self._process.wait(timeout=max_runtime_seconds)
            except subprocess.TimeoutExpired:
                self.runtime_exceeded = True
                self.kill()
                return self._process.wait()

    def kill(self) -> None:
        """Kill the job's whole process group (a shell entrypoint's children too)."""
        with self._lock:
            self._killed = True
            process = self._process
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                return

    def log_lines(self) -> list[str]:
        if not self.log_path.exists():
            return []
        return self.log_path.read_text(errors="replace").splitlines()


def failure_reason(exit_code: int, failure_files: Iterable[Path], log_lines: list[str], tail: int = 10) -> str:
    """SageMaker's FailureReason: the job's own failure file if it wrote one, else the last lines it printed."""
    for failure_file in failure_files:
        if failure_file.is_file() and failure_file.read_text(errors="replace").strip():
            return "AlgorithmError: " + failure_file.read_text(errors="replace").strip()[:1024]
    last_lines = "\n".join(line for line in log_lines[-tail:] if line.strip())
    return f"AlgorithmError: ExecuteUserScriptError: exit code {exit_code}\n{last_lines}"[:1024]
