"""Start, probe, call and stop the model servers behind local endpoints and transform jobs."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast

from emulator.sagemaker_local.containers import container_path_environment, job_python
from emulator.sagemaker_local.sandbox import container_launch, start_process

if TYPE_CHECKING:
    from emulator.sagemaker_local.warm_containers import WarmContainerPool

SERVING_SCRIPT = Path(__file__).with_name("serving.py")
# Loading a model (importing xgboost, reading the booster) takes a few seconds on a busy machine.
STARTUP_TIMEOUT_SECONDS = 120.0
STOP_TIMEOUT_SECONDS = 10.0
# Where SageMaker's inference container finds the extracted model.
CONTAINER_MODEL_DIR = "/opt/ml/model"
CONTAINER_CODE_DIR = "/opt/ml/code"
# The descriptor number the listening socket gets in a warm container (a cold one keeps the twin's number): above
# any the preloaded libraries hold open.
WARM_LISTEN_FD = 64


def server_environment(variables: dict[str, str]) -> dict[str, str]:
    """The whole environment of a model server's process: the twin's, the job environment's PATH, `variables`."""
    return {**os.environ.copy(), **container_path_environment(), **variables, "PYTHONUNBUFFERED": "1"}


class ModelServerError(RuntimeError):
    """The model server could not start, or answered an invocation with an error status (`status_code`)."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class ModelServerTimeout(RuntimeError):
    """The model server did not answer an invocation within its time limit."""


class ModelServerUnreachable(RuntimeError):
    """The model server's process could not be reached or dropped the connection (stopped mid-request)."""


class ModelServer:
    """One `serving.py` child process for an extracted model, listening on a free port of 127.0.0.1.

    It runs with the job environment's interpreter, in the sandbox where this machine has one, the model bound at
    `/opt/ml/model`. It serves on a listening socket the twin opens on 127.0.0.1 and hands it: a socket stays in
    the network it was made in, so a network-isolated model (`network_isolation`) gets a network namespace of its
    own, where nothing it opens reaches anything, and is still reached on that port.
    """

    def __init__(
        self,
        model_dir: Path,
        environment: dict[str, str],
        log_path: Path,
        *,
        network_isolation: bool = False,
        warm_pool: WarmContainerPool | None = None,
    ) -> None:
        self.model_dir = model_dir
        self.log_path = log_path
        env = server_environment(environment)
        mounts = {CONTAINER_MODEL_DIR: model_dir}
        # Code the twin fetched for the model (an S3 SAGEMAKER_SUBMIT_DIRECTORY) is where the container keeps it.
        submit_directory = env.get("SAGEMAKER_SUBMIT_DIRECTORY", "")
        if submit_directory.startswith("/") and not submit_directory.startswith("/opt/ml/"):
            mounts[CONTAINER_CODE_DIR] = Path(submit_directory)
            env["SAGEMAKER_SUBMIT_DIRECTORY"] = CONTAINER_CODE_DIR
        command = [job_python(), str(SERVING_SCRIPT), "--model-dir", CONTAINER_MODEL_DIR]
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("ab")
        with socket.create_server(("127.0.0.1", 0)) as listener:
            started = self._start_warm(warm_pool, command, env, mounts, listener, network_isolation=network_isolation)
            if started is None:
                started = self._start_cold(command, env, mounts, listener, network_isolation=network_isolation)
        self._process, self._stdout = started
        self.port = 0  # until the server says where it listens
        self.port = self._read_port()
        if warm_pool is not None:
            # The next model server finds a warm container; its imports start once this one is up.
            warm_pool.replenish(command, mounts, network_isolation, env)

    def _start_warm(
        self,
        pool: WarmContainerPool | None,
        command: list[str],
        env: dict[str, str],
        mounts: dict[str, Path],
        listener: socket.socket,
        *,
        network_isolation: bool,
    ) -> tuple[subprocess.Popen[bytes], BinaryIO] | None:
        if pool is None:
            return None
        read_end, write_end = os.pipe()
        try:
            process = pool.start(
                [*command, "--listen-fd", str(WARM_LISTEN_FD)],
                CONTAINER_MODEL_DIR,
                env,
                mounts,
                network_isolation=network_isolation,
                descriptors=lambda: [(write_end, 1), (self._log.fileno(), 2), (listener.fileno(), WARM_LISTEN_FD)],
                output=self._log,
            )
        finally:
            os.close(write_end)
        if process is None:
            os.close(read_end)
            return None
        return process, os.fdopen(read_end, "rb")

    def _start_cold(
        self,
        command: list[str],
        env: dict[str, str],
        mounts: dict[str, Path],
        listener: socket.socket,
        *,
        network_isolation: bool,
    ) -> tuple[subprocess.Popen[bytes], BinaryIO]:
        launch = container_launch(command, CONTAINER_MODEL_DIR, env, mounts, network_isolation=network_isolation)
        launch.command.extend(["--listen-fd", str(listener.fileno())])
        process = start_process(
            launch,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            start_new_session=True,
            pass_fds=(listener.fileno(),),
        )
        assert process.stdout is not None
        return process, cast(BinaryIO, process.stdout)

    def _read_port(self) -> int:
        result: list[str] = []
        reader = threading.Thread(target=lambda: result.append(self._stdout.readline().decode()), daemon=True)
        reader.start()
        reader.join(STARTUP_TIMEOUT_SECONDS)
        line = result[0] if result else ""
        if not line.startswith("LISTENING "):
            self.stop()
            tail = self.log_path.read_text(errors="replace").strip().splitlines()[-15:]
            raise ModelServerError(
                f"The model server for {self.model_dir} did not start: " + ("\n".join(tail) or "no output")
            )
        return int(line.split()[1])

    def _wait_until_refused(self) -> None:
        # The server runs under bwrap, not as the process waited for: it may still be exiting, its socket open.
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while self.port and time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            except OSError:
                return
            time.sleep(0.01)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ping(self) -> bool:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            connection.request("GET", "/ping")
            return connection.getresponse().status == 200
        except OSError:
            return False

    def invoke(
        self, body: bytes, content_type: str, accept: str | None, timeout_seconds: float = 60.0
    ) -> tuple[bytes, str]:
        """POST `/invocations`; raises `ModelServerError` with the status and the model's message on an error status,
        `ModelServerTimeout` when no answer comes within `timeout_seconds`."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout_seconds)
        headers = {"Content-Type": content_type, "Accept": accept or content_type}
        try:
            connection.request("POST", "/invocations", body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
        except TimeoutError as error:
            connection.close()
            raise ModelServerTimeout(f"no answer within {timeout_seconds:g} s") from error
        except (OSError, http.client.HTTPException) as error:
            # A fleet being replaced (an update, a rollback) stops its servers while requests may be in flight.
            raise ModelServerUnreachable(f"{type(error).__name__}: {error}") from error
        if response.status != 200:
            raise ModelServerError(payload.decode(errors="replace"), response.status)
        return payload, response.getheader("Content-Type") or headers["Accept"]

    def stop(self) -> None:
        """Kills the server's process group (the sandbox and the server in it) and returns once its port refuses."""
        if self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=10)
            self._wait_until_refused()
        self._stdout.close()
        self._log.close()
