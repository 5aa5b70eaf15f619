"""`mlops up`: the local twin served on 127.0.0.1, so the AWS CLI, boto3 and the SageMaker SDK drive it as AWS.

The command deploys the stack into a twin as `mlops run` does, binds the port first (a port in use is refused
before anything starts), serves every AWS API moto answers from the twin's own backends (`emulator.serve`), and
prints what a client needs as lines a shell can `eval`: the endpoint URL, credentials and region, then the stack's
outputs as comments. While it runs, `ServicePump` does what AWS's services do by themselves (schedules, queue
deliveries, alarm evaluation) and prints what they set off. Ctrl-C or SIGTERM closes the twin: executions,
jobs, model servers and threads are stopped and waited for before the command exits.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, redirect_stdout
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from contract.local_account import LOCAL_REGION
from contract.project import PROJECT_ROOT, TEMPLATE_PATH
from contract.template import template_parameters
from emulator.commands.first_run_bytecode import start_compiler, stop_compiler
from emulator.commands.imported_objects import set_aside_imported_objects
from emulator.serve.server import LOOPBACK, PortInUseError, ServedAPIs, quiet_request_log

UP_DIR = PROJECT_ROOT / ".mlops" / "up"
DEFAULT_PORT = 5000
DEFAULT_APPROVAL = "manual"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# The credentials a client signs with: moto accepts any, and these can never be an account's real ones.
CLIENT_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
# Variables that would make a client sign with another identity or send elsewhere than the twin.
CLEARED_VARIABLES = ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE")


class UpUsageError(ValueError):
    """An option `mlops up` cannot use; the message names it and the values it takes."""


def up_command(
    *,
    port: int = DEFAULT_PORT,
    host: str = LOOPBACK,
    clock_speed: float | None = None,
    approval: str = DEFAULT_APPROVAL,
    work_dir: Path | None = None,
    parameter_overrides: Mapping[str, str] | None = None,
    template: Path = TEMPLATE_PATH,
    out: TextIO | None = None,
) -> int:
    """Runs `mlops up` until SIGINT or SIGTERM; returns the process exit code."""
    out = out or sys.stdout
    try:
        overrides = stack_overrides(template, approval, parameter_overrides or {})
    except UpUsageError as error:
        print(f"mlops up: {error}", file=sys.stderr)
        return EXIT_USAGE
    served = ServedAPIs(host, port)
    try:
        served.bind()
    except PortInUseError as error:
        print(
            f"mlops up: {error.strerror}: stop what holds it or choose another port with --port "
            "(--port 0 takes any free one)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if host != LOOPBACK:
        print(
            f"mlops up: serving on {host}, beyond this machine's loopback: the twin accepts any signature, so whoever "
            "reaches the port drives it",
            file=sys.stderr,
        )
    stop = StopSignal()
    # `kill -USR1 PID` prints every thread's stack to stderr: what a twin that does not stop is waiting on.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    work = work_dir or UP_DIR / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    function_log = work / "functions.log"
    quiet_request_log()
    try:
        with (
            stop.installed(),
            function_log.open("w", encoding="utf-8") as log,
            redirect_stdout(log),
            _served_twin(template, overrides, work, clock_speed, served, out) as twin,
        ):
            print_client_environment(served.url, twin.stack.stack_name, twin.stack.outputs, out)
            print(
                f"# work dir {work} (job logs under twin/sagemaker/, Lambda output in {function_log.name}); "
                "Ctrl-C stops the twin",
                file=out,
                flush=True,
            )
            stop.wait()
            print("# stopping the local twin: executions, jobs and model servers", file=out, flush=True)
    except Exception as error:  # the twin failed to start or to stop: said in one line, the traceback in a file
        details = work / "up-error.log"
        details.write_text(traceback.format_exc(), encoding="utf-8")
        message = f"the local twin failed: {type(error).__name__}: {error} (traceback in {details})"
        print(f"mlops up: {message}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        served.stop()
    print("# the local twin stopped", file=out, flush=True)
    return EXIT_OK


def stack_overrides(template: Path, approval: str, overrides: Mapping[str, str]) -> dict[str, str]:
    """The twin's parameter values: the approval mode, then the user's overrides, each checked against the template."""
    declared = template_parameters(template)
    chosen = {"ApprovalMode": approval, **overrides}
    for name, value in chosen.items():
        declaration = declared.get(name)
        if declaration is None:
            raise UpUsageError(
                f"{name} is no parameter of {template.name}; its parameters: {', '.join(sorted(declared))}"
            )
        allowed = declaration.get("AllowedValues")
        if allowed is not None and value not in [str(item) for item in allowed]:
            flag = "--approval" if name == "ApprovalMode" and name not in overrides else f"--parameter-overrides {name}"
            raise UpUsageError(f"{flag}: {value!r} is not one of {', '.join(str(item) for item in allowed)}")
        if declaration.get("Type") == "Number":
            _check_number(name, value, declaration)
    return chosen


def print_client_environment(url: str, stack_name: str, outputs: Mapping[str, str], out: TextIO) -> None:
    """What a client needs, as lines a shell can `eval`: environment first, then the stack outputs as comments."""
    print(f"# the local twin of stack {stack_name}, served: eval these lines in another shell", file=out)
    print(f"export AWS_ENDPOINT_URL={url}", file=out)
    for name, value in CLIENT_CREDENTIALS.items():
        print(f"export {name}={value}", file=out)
    print(f"export AWS_DEFAULT_REGION={LOCAL_REGION}", file=out)
    print(f"export AWS_REGION={LOCAL_REGION}", file=out)
    # Read by the governance commands (mlops lineage, approve, reject, audit) and by SAM's test conventions.
    print(f"export AWS_SAM_STACK_NAME={stack_name}", file=out)
    print(f"unset {' '.join(CLEARED_VARIABLES)}", file=out)
    print(f"# stack {stack_name} outputs (aws cloudformation describe-stacks --stack-name {stack_name}):", file=out)
    for key, value in sorted(outputs.items()):
        print(f"#   {key} = {value}", file=out)
    out.flush()


@contextmanager
def _served_twin(
    template: Path,
    overrides: Mapping[str, str],
    work: Path,
    clock_speed: float | None,
    served: ServedAPIs,
    out: TextIO,
) -> Iterator[Any]:
    """The twin started and served, with its service pump; all of it stopped on exit, the twin last."""
    started = time.monotonic()
    # Imported here: importing moto takes seconds, and a port in use is refused before that. On a first run the
    # twin's libraries are compiled ahead of the imports (first_run_bytecode.py).
    compiler = start_compiler()
    pump: ServicePump | None = None
    try:
        from emulator.commands.lifecycle import _quiet_library_logs
        from emulator.serve.pump import ServicePump
        from emulator.twin import DEFAULT_CLOCK_SPEED, LocalTwin

        set_aside_imported_objects()
        _quiet_library_logs()
        twin = LocalTwin(
            template=template,
            parameter_overrides=overrides,
            work_dir=work / "twin",
            clock_speed=clock_speed or DEFAULT_CLOCK_SPEED,
            # A client's upload starts training: its definition is parsed first (a hint; any template serves).
            parse_first=("training",),
        )
        with twin:
            served.serve()
            pump = ServicePump(twin, lambda line: _announce(line, out))
            pump.start()
            print(
                f"# local twin up in {time.monotonic() - started:.1f} s, clock {twin.clock.speed:g}x, "
                f"approval {overrides.get('ApprovalMode')}",
                file=out,
            )
            try:
                yield twin
            finally:
                # Clients first (no request reaches a closing twin), then the pump (no rule fires), then the twin.
                served.stop()
                pump.stop()
    finally:
        stop_compiler(compiler)
        if pump is not None:
            pump.join()


def _announce(line: str, out: TextIO) -> None:
    print(f"# {datetime.now(UTC):%H:%M:%S} {line}", file=out, flush=True)


def _check_number(name: str, value: str, declaration: Mapping[str, Any]) -> None:
    try:
        number = float(value)
    except ValueError:
        raise UpUsageError(f"--parameter-overrides {name}: {value!r} is not a number") from None
    low, high = declaration.get("MinValue"), declaration.get("MaxValue")
    if low is not None and number < float(low):
        raise UpUsageError(f"--parameter-overrides {name}: {value} is below its MinValue {low}")
    if high is not None and number > float(high):
        raise UpUsageError(f"--parameter-overrides {name}: {value} is above its MaxValue {high}")


class StopSignal:
    """SIGINT and SIGTERM end the wait; a second one while the twin closes is reported, not obeyed half-way."""

    def __init__(self) -> None:
        self._event = threading.Event()

    @contextmanager
    def installed(self) -> Iterator[None]:
        previous = {number: signal.signal(number, self._handle) for number in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    def wait(self) -> None:
        # A timeout, so the main thread wakes to run the signal handler promptly on every platform.
        while not self._event.wait(0.5):
            pass

    def _handle(self, number: int, frame: FrameType | None) -> None:
        if self._event.is_set():
            print("mlops up: already stopping; the twin closes its jobs and model servers first", file=sys.stderr)
            return
        self._event.set()
