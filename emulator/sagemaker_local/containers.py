"""SageMaker's container contract on this machine: a directory per job stands for `/opt/ml`, jobs run as processes.

Every job and model server runs with the job environment's interpreter (`.venv-job`, requirements/job.lock: the
packages of the framework container the twin stands for, see requirements/job-container.txt), inside the sandbox
of `sandbox.py` where this machine can run it.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from emulator.sagemaker_local.sandbox import CONTAINER_ROOT, PROJECT_ROOT, container_launch, start_process

if TYPE_CHECKING:
    from emulator.sagemaker_local.warm_containers import WarmContainer, WarmContainerPool

logger = logging.getLogger(__name__)
# The job environment `make run` and `make test` install (Makefile JOB_VENV).
JOB_VENV = PROJECT_ROOT / ".venv-job"


class JobEnvironmentMissing(FileNotFoundError):
    """The job environment is not installed: no job or model server can start."""


def job_python() -> str:
    """The job environment's interpreter; raises JobEnvironmentMissing naming the fix when it is not installed."""
    python = JOB_VENV / "bin" / "python"
    if not python.is_file():
        raise JobEnvironmentMissing(
            f"The job environment {JOB_VENV} is not installed (requirements/job.lock): run `make install-run`"
        )
    return str(python)


def container_path_environment() -> dict[str, str]:
    """PATH with the job environment's bin first, so `python3` in a job is the container's interpreter."""
    return {"PATH": os.pathsep.join([str(Path(job_python()).parent), os.environ.get("PATH", "")])}


def container_environment(variables: Mapping[str, str]) -> dict[str, str]:
    """A job process's whole environment: the twin's, the job environment's PATH, unbuffered output, `variables`."""
    return {**os.environ.copy(), **container_path_environment(), "PYTHONUNBUFFERED": "1", **variables}


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
    """Runs one job's command in its container, logging stdout and stderr together to `log_path`.

    `command`, `container_cwd` and `environment` use container paths; `mounts` maps each container path the job
    writes (`/opt/ml`) to its host folder. With `network_isolation` (EnableNetworkIsolation) the job has no network.
    With `warm_pool` the job starts in a warm container of that pool where one may take it (warm_containers.py).
    """

    def __init__(
        self,
        command: list[str],
        container_cwd: str,
        environment: Mapping[str, str],
        log_path: Path,
        mounts: Mapping[str, Path],
        *,
        network_isolation: bool = False,
        warm_pool: WarmContainerPool | None = None,
    ) -> None:
        full_environment = container_environment(environment)
        launch = container_launch(command, container_cwd, full_environment, mounts, network_isolation=network_isolation)
        self._launch = launch
        self._container_command = list(command)
        self._container_cwd = container_cwd
        self._container_environment = full_environment
        self._mounts = dict(mounts)
        self._network_isolation = network_isolation
        self._warm_pool = warm_pool
        self.command = launch.command
        self.cwd = launch.cwd
        self.environment = launch.environment
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
        warm = None
        if self._warm_pool is not None:
            warm = self._warm_pool.claim(
                self._container_command, self._mounts, self._network_isolation, self._container_environment
            )
        with self.log_path.open("wb") as log:
            with self._lock:
                if self._killed:
                    if warm is not None:
                        warm.discard()
                    return -signal.SIGKILL
                if warm is not None:
                    self._process = warm.process
            if warm is not None and not self._hand_over(warm, log):
                with self._lock:
                    self._process = None
                warm = None
            if warm is None:
                with self._lock:
                    if self._killed:
                        return -signal.SIGKILL
                    try:
                        self._process = start_process(
                            self._launch,
                            stdin=subprocess.DEVNULL,
                            stdout=log,
                            stderr=subprocess.STDOUT,
                            start_new_session=True,
                        )
                    except OSError as error:
                        log.write(f"Cannot start {self.command[0]!r}: {error}\n".encode())
                        return 127
            assert self._process is not None
            try:
                return self._process.wait(timeout=max_runtime_seconds)
            except subprocess.TimeoutExpired:
                self.runtime_exceeded = True
                self.kill()
                return self._process.wait()
            finally:
                if self._warm_pool is not None:
                    # The next job of this kind finds a warm container; its imports start once this job no longer
                    # needs the cores.
                    self._warm_pool.replenish(
                        self._container_command, self._mounts, self._network_isolation, self._container_environment
                    )

    def _hand_over(self, warm: WarmContainer, log: BinaryIO) -> bool:
        """Gives the job to `warm`; False (the log emptied again) when it cannot take it and the job starts cold."""
        refusal = warm.start(
            self._container_command,
            self._container_cwd,
            self._container_environment,
            [(log.fileno(), 1), (log.fileno(), 2)],
            log,
        )
        if refusal is None:
            return True
        logger.warning("Starting %s cold: %s", self.log_path.name, refusal)
        warm.discard()
        log.seek(0)
        log.truncate()
        return False

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
