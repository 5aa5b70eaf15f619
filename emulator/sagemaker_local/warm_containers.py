"""Warm containers: a job's or model server's sandboxed interpreter, started ahead, its libraries already imported.

Half or more of a local job's time is its interpreter importing pandas, scikit-learn and xgboost (about 2.4 s of a
2.6 s preprocessing job here), and a model server pays the same before it answers. On SageMaker that is part of a
container's start, which takes minutes there; in the twin it is on the critical path of every run. A warm container
does it while the machine would otherwise wait: it is the sandbox a job would get (`sandbox.py`: the same options,
its own empty folder bound at each mount point, the same network isolation), running `warm_boot.py` with the job
environment's interpreter and the environment the job would start with. It imports the libraries the project's job
code imports (`ml/`, read by `job_warmup.third_party_imports`), then waits. When a job of the same kind starts, the
twin moves the job's staged folder into the warm container's own (`WarmContainer.adopt`: renames on one file system,
the job's folder keeps its path), hands it the job's command, working directory, environment and log
(`WarmContainer.start`), and it runs the script as `python3 script args` would.

A warm container is only ever used where the job cannot tell the difference:
- the command is `python3`/`python` (the job environment's interpreter) followed by a script, without interpreter
  options;
- the sandbox runs (never in the path-rewriting fallback), with the same mount points and network isolation;
- every environment variable read when an interpreter or its libraries start (`read_at_start`: `PYTHON*`, the thread
  counts of OpenMP and the BLAS libraries, locale, time zone, `PATH`, the libraries' own settings) has the job's
  value; all others are replaced by the job's before its script runs;
- every folder to mount is the twin's own, under its work directory, made for this container alone (a job's folder,
  a model's): moving it is never a risk to anything else.
What differs is only what was imported before the script's first line (`sys.modules` holds the preloaded libraries,
and the interpreter's `sys.orig_argv` names `warm_boot.py`). Anything else starts cold, as before. Set
`MLOPS_WARM_CONTAINERS=0` to start every container cold.

The pool keeps at most one idle container for each kind (mount points, network isolation, start-up variables) and
`MAX_IDLE` in all. A job that found none of its kind gets one for next time; a job that took one asks for its
replacement once it has ended (a model server once it is up), when it no longer competes with the replacement's
imports for the cores. Containers start one at a time, in the order asked for, each once the one before has imported
its libraries. The twin starts the
first ones as it starts (`LocalSageMaker.prepare_warm_containers`), after compiling the libraries' bytecode on a
first run (`job_warmup.compile_job_libraries`: the sandbox cannot write it).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from emulator.sagemaker_local.containers import JOB_VENV, JobEnvironmentMissing, job_python
from emulator.sagemaker_local.job_warmup import compile_job_libraries, third_party_imports
from emulator.sagemaker_local.sandbox import PROJECT_ROOT, container_launch, sandboxed, start_process

BOOT_SCRIPT = Path(__file__).with_name("warm_boot.py")
ENABLE_VARIABLE = "MLOPS_WARM_CONTAINERS"
MAX_IDLE = 4
READY_TIMEOUT_SECONDS = 120.0
_IMPORT_POLL_SECONDS = 0.05
_HEADER = struct.Struct("!I")
_READY = b"R"
_INTERPRETERS = ("python3", "python")
_SHELLS = ("sh", "bash", "dash")
_NAMES_PYTHON = re.compile(r"(?<![\w./-])python3?(?![\w.-])")
# Read when an interpreter, its C libraries or the preloaded Python libraries start: a warm container has these
# from its own start, so they must be the job's.
_START_PREFIXES = (
    "PYTHON",
    "OMP_",
    "GOMP_",
    "KMP_",
    "OPENBLAS_",
    "GOTO",
    "MKL_",
    "BLIS_",
    "VECLIB_",
    "NUMEXPR_",
    "NUMBA_",
    "NPY_",
    "NUMPY_",
    "SCIPY_",
    "PANDAS_",
    "SKLEARN_",
    "JOBLIB_",
    "LOKY_",
    "XGBOOST_",
    "LD_",
    "MALLOC_",
    "GLIBC_",
    "LC_",
)
_START_NAMES = frozenset({"PATH", "HOME", "TZ", "LANG", "LANGUAGE", "TMPDIR", "TEMP", "TMP"})

logger = logging.getLogger(__name__)


def starts_python(command: Sequence[str]) -> str | None:
    """How `command` starts the job's Python: "directly" (`python3 script ...`), "through a shell" (a shell command
    that names `python3`), or None (a warm container would not help it: it starts cold)."""
    if not command:
        return None
    program = Path(command[0])
    if command[0] in _INTERPRETERS or program.parent == JOB_VENV / "bin":
        return "directly" if len(command) >= 2 and not command[1].startswith("-") else None
    if program.name in _SHELLS and any(_NAMES_PYTHON.search(part) for part in command[1:]):
        return "through a shell"
    return None


class WarmContainerUnavailable(RuntimeError):
    """A job's folder cannot be moved into the warm container: the job starts cold."""


def read_at_start(variable: str) -> bool:
    """True for an environment variable an interpreter or the preloaded libraries read as they start."""
    return variable in _START_NAMES or variable.startswith(_START_PREFIXES)


def warm_containers_enabled() -> bool:
    return os.environ.get(ENABLE_VARIABLE, "1").strip().lower() not in ("0", "false", "no", "off")


@dataclass(frozen=True)
class ContainerKind:
    """What a warm container must share with the job it takes: mount points, network isolation, start-up variables."""

    mount_points: tuple[str, ...]
    network_isolation: bool
    start_environment: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, mount_points: Sequence[str], network_isolation: bool, environment: Mapping[str, str]) -> ContainerKind:
        return cls(
            tuple(sorted(mount_points)),
            network_isolation,
            tuple(sorted((name, value) for name, value in environment.items() if read_at_start(name))),
        )


class WarmContainer:
    """One waiting `warm_boot.py` process in its sandbox, with a folder of its own for each mount point."""

    def __init__(self, kind: ContainerKind, folder: Path, environment: Mapping[str, str], preload: list[str]) -> None:
        self.kind = kind
        self.folder = folder
        self.mount_folders = {point: folder / f"mount-{index}" for index, point in enumerate(kind.mount_points)}
        for mount_folder in self.mount_folders.values():
            mount_folder.mkdir()
        self._boot_log_path = folder / "boot.log"
        self._control, child = socket.socketpair()
        launch = container_launch(
            [job_python(), str(BOOT_SCRIPT), "--control-fd", str(child.fileno()), "--preload", json.dumps(preload)],
            "/",
            dict(environment),
            self.mount_folders,
            network_isolation=kind.network_isolation,
        )
        try:
            with self._boot_log_path.open("wb") as boot_log:
                self.process = start_process(
                    launch,
                    stdin=subprocess.DEVNULL,
                    stdout=boot_log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    pass_fds=(child.fileno(),),
                )
        finally:
            child.close()

    def alive(self) -> bool:
        return self.process.poll() is None

    def imported(self) -> bool:
        """True once the process has imported its libraries (it said so on the control socket) or has ended."""
        if not self.alive():
            return True
        try:
            return bool(self._control.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
        except BlockingIOError:
            return False
        except OSError:
            return True  # taken by a job meanwhile: its control socket is closed

    def adopt(self, mounts: Mapping[str, Path]) -> None:
        """Makes each mount's host folder this container's own: its entries move in, and it takes the folder's path.

        On failure everything moved is moved back and `WarmContainerUnavailable` is raised: the job's folder is as
        it was, for a cold start.
        """
        for point, target in mounts.items():
            if os.stat(target).st_dev != os.stat(self.mount_folders[point]).st_dev:
                raise WarmContainerUnavailable(f"{target} is on another file system than the warm container's folder")
        moved: list[tuple[Path, Path]] = []
        renamed: list[tuple[Path, Path]] = []
        try:
            for point, target in mounts.items():
                source = self.mount_folders[point]
                for entry in sorted(target.iterdir()):
                    entry.rename(source / entry.name)
                    moved.append((source / entry.name, entry))
                target.rmdir()
                source.rename(target)
                renamed.append((target, source))
        except OSError as error:
            for target, source in reversed(renamed):
                target.rename(source)
                target.mkdir()
            for now_at, was_at in reversed(moved):
                was_at.parent.mkdir(parents=True, exist_ok=True)
                now_at.rename(was_at)
            raise WarmContainerUnavailable(f"cannot move the job's folder into a warm container: {error}") from error
        self.mount_folders = dict(mounts)

    def start(
        self,
        argv: list[str],
        cwd: str,
        environment: Mapping[str, str],
        descriptors: Sequence[tuple[int, int]],
        output: BinaryIO,
    ) -> str | None:
        """Hands the waiting process its job: `argv` from `cwd` with `environment`, each `(fd, number)` placed there.

        Waits until its libraries are imported, then writes what they printed meanwhile to `output` (the job's log,
        where a cold start prints it too). Returns None once the job runs, or why the container could not take it:
        then the caller starts the job cold (its folders, adopted, are plain folders at the job's paths).
        """
        self._control.settimeout(READY_TIMEOUT_SECONDS)
        try:
            ready = self._control.recv(1)
            if ready != _READY:
                return "the warm container ended before it was ready: " + self.boot_output()[-500:]
            output.write(self._boot_log_path.read_bytes())
            output.flush()
            # Bubblewrap sets PWD to the folder it starts a command in; the job's own sandbox would have.
            request = {
                "argv": argv,
                "cwd": cwd,
                "env": {**environment, "PWD": cwd},
                "fds": [number for _fd, number in descriptors],
                "shim": starts_python(argv) == "through a shell",
            }
            payload = json.dumps(request).encode()
            socket.send_fds(self._control, [_HEADER.pack(len(payload))], [fd for fd, _number in descriptors])
            self._control.sendall(payload)
        except OSError as error:
            return f"the warm container did not take its job: {error}"
        finally:
            self._control.close()
        return None

    def boot_output(self) -> str:
        try:
            return self._boot_log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def discard(self) -> None:
        """Ends an unused container and removes the folders it still owns (never a folder it adopted)."""
        self._control.close()
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


class WarmContainerPool:
    """Idle warm containers by kind, for the jobs and model servers of one local SageMaker (see the module doc).

    `owner_dir` is the twin's work directory: only folders under it are ever moved into a warm container.
    """

    def __init__(self, owner_dir: Path, code_dir: Path = PROJECT_ROOT / "ml") -> None:
        self.owner_dir = owner_dir.resolve()
        self._folder = self.owner_dir / "warm-containers"
        self._code_dir = code_dir
        self._preload: list[str] | None = None
        # Oldest first, for MAX_IDLE to end the longest unused.
        self._idle: OrderedDict[WarmContainer, ContainerKind] = OrderedDict()
        self._starting: Counter[ContainerKind] = Counter()
        self._lock = threading.Lock()
        self._closed = False
        self._queue: deque[tuple[ContainerKind, dict[str, str]]] = deque()
        self._worker: threading.Thread | None = None
        # How many containers a job took (a figure for the benchmarks and the tests).
        self.taken = 0

    def prepare(
        self, mount_points: Sequence[str], network_isolation: bool, environment: Mapping[str, str], count: int = 1
    ) -> None:
        """Starts, in the background, idle containers for jobs of this kind until `count` are idle or starting."""
        if not self._usable():
            return
        self._start_in_background(ContainerKind.of(mount_points, network_isolation, environment), environment, count)

    def replenish(
        self,
        command: Sequence[str],
        mounts: Mapping[str, Path],
        network_isolation: bool,
        environment: Mapping[str, str],
    ) -> None:
        """After a job (or once a model server is up): a container for the next of its kind, if a warm one may take
        such a job and none is idle or starting."""
        if self._usable() and self._may_take(command, mounts):
            self.prepare(list(mounts), network_isolation, environment)

    def claim(
        self,
        command: Sequence[str],
        mounts: Mapping[str, Path],
        network_isolation: bool,
        environment: Mapping[str, str],
    ) -> WarmContainer | None:
        """A warm container that has adopted `mounts` for this job, or None: then start it cold.

        None when the job is not one a warm container may take (see the module doc) or none of its kind is idle;
        in the latter case one is started for the next job of the kind. A replacement for one taken is the caller's
        to ask for (`prepare`), when the machine has the time: after a job, once a model server is up.
        """
        if not (self._usable() and self._may_take(command, mounts)):
            return None
        kind = ContainerKind.of(list(mounts), network_isolation, environment)
        with self._lock:
            container = next((idle for idle, its_kind in self._idle.items() if its_kind == kind), None)
            if container is not None:
                del self._idle[container]
        if container is None:
            self._start_in_background(kind, environment)
            logger.debug("No warm container of this kind is idle (%s): starting cold", kind)
            return None
        if not container.alive():
            logger.warning("A warm container ended before its job: %s", container.boot_output()[-500:])
            container.discard()
            return None
        try:
            container.adopt(mounts)
        except WarmContainerUnavailable as error:
            logger.warning("Starting a container cold: %s", error)
            container.discard()
            return None
        with self._lock:
            self.taken += 1
        return container

    def wait_until_started(self, timeout: float) -> bool:
        """Waits until every container asked for has started and imported; False if not after `timeout` seconds."""
        with self._lock:
            worker = self._worker
        if worker is not None:
            worker.join(timeout)
        return worker is None or not worker.is_alive()

    def idle_kinds(self) -> list[ContainerKind]:
        with self._lock:
            return list(self._idle.values())

    def start(
        self,
        command: list[str],
        container_cwd: str,
        environment: Mapping[str, str],
        mounts: Mapping[str, Path],
        *,
        network_isolation: bool,
        descriptors: Callable[[], Sequence[tuple[int, int]]],
        output: BinaryIO,
    ) -> subprocess.Popen[bytes] | None:
        """Starts the job in a warm container and returns its process, or None: start it cold then.

        `descriptors` gives the `(fd, number)` pairs the job gets (its log as 1 and 2); `output` is its log.
        """
        container = self.claim(command, mounts, network_isolation, environment)
        if container is None:
            return None
        refusal = container.start(command, container_cwd, environment, descriptors(), output)
        if refusal is not None:
            logger.warning("Starting a container cold: %s", refusal)
            container.discard()
            return None
        return container.process

    def close(self) -> None:
        """Ends every idle container and waits for the ones still starting."""
        with self._lock:
            self._closed = True
            idle = list(self._idle)
            self._idle.clear()
            self._queue.clear()
            worker = self._worker
        for container in idle:
            container.discard()
        if worker is not None:
            worker.join()
        shutil.rmtree(self._folder, ignore_errors=True)

    def _usable(self) -> bool:
        if self._closed or not warm_containers_enabled() or not sandboxed():
            return False
        try:
            job_python()
        except JobEnvironmentMissing:
            return False
        return True

    def _may_take(self, command: Sequence[str], mounts: Mapping[str, Path]) -> bool:
        return (
            starts_python(command) is not None
            and bool(mounts)
            and all(
                path.is_dir() and path.resolve().is_relative_to(self.owner_dir) and path.resolve() != self.owner_dir
                for path in mounts.values()
            )
        )

    def _start_in_background(self, kind: ContainerKind, environment: Mapping[str, str], count: int = 1) -> None:
        with self._lock:
            if self._closed:
                return
            missing = count - self._starting[kind] - sum(1 for its_kind in self._idle.values() if its_kind == kind)
            for _ in range(missing):
                self._starting[kind] += 1
                self._queue.append((kind, dict(environment)))
            if missing <= 0 or self._worker is not None:
                return
            self._worker = threading.Thread(target=self._start_queued, name="warm-containers", daemon=True)
        self._worker.start()

    def _start_queued(self) -> None:
        """Starts the queued containers one at a time, each once the one before has imported its libraries.

        One at a time: on a machine whose other cores are busy (the twin starting, a job running), the container
        needed first is ready soonest.
        """
        while True:
            with self._lock:
                if self._closed or not self._queue:
                    self._worker = None
                    return
                kind, environment = self._queue.popleft()
            container = self._start_one(kind, environment)
            unused: list[WarmContainer] = []
            with self._lock:
                self._starting[kind] -= 1
                if container is not None and self._closed:
                    unused.append(container)
                elif container is not None:
                    self._idle[container] = kind
                    while len(self._idle) > MAX_IDLE:
                        unused.append(self._idle.popitem(last=False)[0])
            for extra in unused:
                extra.discard()
            if container is not None and container not in unused:
                self._wait_while_importing(container)

    def _wait_while_importing(self, container: WarmContainer) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            with self._lock:
                if self._closed or container not in self._idle:
                    return  # taken by a job, whose start waits for it, or the pool is closing
            if container.imported():
                return
            time.sleep(_IMPORT_POLL_SECONDS)

    def _start_one(self, kind: ContainerKind, environment: dict[str, str]) -> WarmContainer | None:
        try:
            if self._preload is None:
                compile_job_libraries(self._code_dir)
                self._preload = third_party_imports(self._code_dir)
            self._folder.mkdir(parents=True, exist_ok=True)
            return WarmContainer(
                kind, Path(tempfile.mkdtemp(prefix="warm-", dir=self._folder)), environment, self._preload
            )
        except Exception as error:  # a container that cannot be started ahead starts cold
            logger.warning("Could not start a warm container (jobs start cold): %s", error)
            return None
