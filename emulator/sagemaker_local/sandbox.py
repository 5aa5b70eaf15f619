"""SageMaker's container file system for each job and model server: Bubblewrap, or path rewriting where it cannot run.

In a SageMaker container the job's directory is `/opt/ml`, the image around it is the container's own, and a job or
model with EnableNetworkIsolation has no network. Bubblewrap (`bwrap`, unprivileged through user namespaces) gives
each process the same view in a few milliseconds: the job's directory bound at `/opt/ml` (or the model at
`/opt/ml/model`), the rest of the machine read-only, a private `/tmp`, `/dev/shm` and `/dev`, and with network
isolation a network namespace of its own with nothing but loopback, so a script that opens a socket fails as on
SageMaker.

Where `bwrap` is missing or cannot run (no user namespaces), the twin falls back to rewriting the `/opt/ml` prefix
in the command, the working directory and the environment to the job's directory on this machine, and sets
`OPT_ML_ROOT` to it; a script that hard-codes `/opt/ml/...` then fails, and network isolation is not enforced. The
run's output says so once.
"""

from __future__ import annotations

import functools
import logging
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONTAINER_ROOT = "/opt/ml"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
# The variable the fallback sets to the job's directory, for what the contract names by path alone (train.py's
# checkpoint folder and failure file): SageMaker never sets it.
FALLBACK_ROOT_VARIABLE = "OPT_ML_ROOT"
_PROBE_TIMEOUT_SECONDS = 10.0
# Writable and empty in each sandbox, as a container's own: mount points inside the sandbox, not files of this machine.
_PRIVATE_FOLDERS = ("/tmp", "/dev/shm")  # noqa: S108

logger = logging.getLogger(__name__)
# Bubblewrap's --die-with-parent ends the sandbox when the *thread* that started it ends (PR_SET_PDEATHSIG), and a
# model server outlives the request thread that starts it: every container process starts from this one thread,
# which lives as long as the twin's process, so a twin that dies leaves no sandbox behind.
_LAUNCHER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="container-launcher")


@dataclass(frozen=True)
class SandboxSupport:
    """Whether this machine runs Bubblewrap; `reason` says why not."""

    available: bool
    reason: str = ""


@dataclass(frozen=True)
class Launch:
    """What to hand `subprocess.Popen` for one container process."""

    command: list[str]
    cwd: Path
    environment: dict[str, str]


def bwrap_executable() -> str | None:
    return shutil.which("bwrap")


@functools.cache
def sandbox_support() -> SandboxSupport:
    """Probes Bubblewrap once per process: `true` must run, and exit 0, in a sandbox with every option a job gets."""
    if bwrap_executable() is None:
        return SandboxSupport(False, "bwrap is not installed (Debian package bubblewrap)")
    try:
        with tempfile.TemporaryDirectory(prefix="sandbox-probe-") as job_dir:
            options = bwrap_arguments({CONTAINER_ROOT: Path(job_dir)}, CONTAINER_ROOT, network_isolation=True)
            probe = subprocess.run(
                [*options, "--", "true"], capture_output=True, text=True, timeout=_PROBE_TIMEOUT_SECONDS, check=False
            )
    except (OSError, subprocess.TimeoutExpired) as error:
        return SandboxSupport(False, f"bwrap cannot run: {error}")
    if probe.returncode != 0:
        detail = probe.stderr.strip() or f"exit code {probe.returncode}"
        return SandboxSupport(False, f"bwrap cannot run here ({detail}; are user namespaces disabled?)")
    return SandboxSupport(True)


def sandboxed() -> bool:
    """True when container processes run under Bubblewrap; the first time it is not, says so in the run's output."""
    support = sandbox_support()
    if not support.available:
        _warn_fallback_once(support.reason)
    return support.available


@functools.cache
def _warn_fallback_once(reason: str) -> None:
    logger.warning(
        "Local twin: %s. Jobs and model servers run without a sandbox: `/opt/ml` is rewritten to each job's "
        "directory only in the command, the working directory and the environment (a script that hard-codes "
        "/opt/ml/... paths fails), the rest of the machine is writable, and EnableNetworkIsolation is NOT enforced.",
        reason,
    )


def container_launch(
    command: list[str],
    container_cwd: str,
    environment: Mapping[str, str],
    mounts: Mapping[str, Path],
    *,
    network_isolation: bool,
) -> Launch:
    """The launch of `command`, written with container paths, with `mounts` (container path -> host folder) real.

    `environment` is the whole environment the process gets. Sandboxed, the command runs under Bubblewrap as
    written; otherwise every container path in the command, `container_cwd` and `environment` is rewritten to
    its host folder.
    """
    if sandboxed():
        return Launch(
            [*bwrap_arguments(mounts, container_cwd, network_isolation=network_isolation), "--", *command],
            next(iter(mounts.values())),
            dict(environment),
        )
    rewritten = {key: rewrite_paths(value, mounts) for key, value in environment.items()}
    if CONTAINER_ROOT in mounts:
        rewritten[FALLBACK_ROOT_VARIABLE] = str(mounts[CONTAINER_ROOT])
    return Launch(
        [rewrite_paths(part, mounts) for part in command], Path(rewrite_paths(container_cwd, mounts)), rewritten
    )


def start_process(launch: Launch, **popen_options: Any) -> subprocess.Popen[bytes]:
    """`subprocess.Popen` of `launch` (binary pipes), started from the launcher thread (see `_LAUNCHER`)."""

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(launch.command, cwd=launch.cwd, env=launch.environment, **popen_options)

    return _LAUNCHER.submit(start).result()


def rewrite_paths(value: str, mounts: Mapping[str, Path]) -> str:
    """`value` with each container mount point replaced by its host folder (the longest mount point first)."""
    for container_path in sorted(mounts, key=len, reverse=True):
        value = value.replace(container_path, str(mounts[container_path]))
    return value


def bwrap_arguments(mounts: Mapping[str, Path], container_cwd: str, *, network_isolation: bool) -> list[str]:
    """Bubblewrap's options: the machine read-only, `mounts` writable, private /tmp, /dev/shm and /dev."""
    arguments = [bwrap_executable() or "bwrap", "--ro-bind", "/", "/"]
    # A mount point must exist, and the read-only root cannot get a new /opt/ml: /opt becomes a tmpfs holding the
    # machine's own /opt entries again.
    mount_parents = {Path(point).parts[1] for point in mounts}
    for parent in sorted(mount_parents):
        top = Path("/", parent)
        arguments += ["--tmpfs", str(top)]
        if top.is_dir():
            for entry in sorted(top.iterdir()):
                if not any(Path(point) == entry or Path(point).is_relative_to(entry) for point in mounts):
                    arguments += ["--ro-bind", str(entry), str(entry)]
    # A minimal /dev of its own (the machine's device nodes stay out of reach); /proc stays the machine's, read-only:
    # the job shares the twin's process namespace, so a proc mount of its own would show the same, for a few ms more.
    arguments += ["--dev", "/dev"]
    for private in _PRIVATE_FOLDERS:
        arguments += ["--tmpfs", private]
    # The project (its job environment, the twin's serving script) stays visible if it lies under a private folder.
    if any(PROJECT_ROOT.is_relative_to(private) for private in _PRIVATE_FOLDERS):
        arguments += ["--ro-bind", str(PROJECT_ROOT), str(PROJECT_ROOT)]
    for container_path, host_path in sorted(mounts.items()):
        arguments += ["--bind", str(host_path), container_path]
    if network_isolation:
        arguments.append("--unshare-net")
    arguments += ["--die-with-parent", "--chdir", container_cwd]
    return arguments
