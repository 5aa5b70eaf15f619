"""Run the stack's Lambda handlers in-process, for the engine's `lambda:invoke` tasks and for boto3 `lambda.invoke`.

moto's docker-less Lambda backend only echoes the payload. `LocalLambdaRunner.install()` replaces its
`invoke` for the duration of the twin: a registered function runs its real handler with a
`LambdaContext` and its own environment; an exception becomes `FunctionError: Unhandled` with the
`errorType`/`errorMessage`/`stackTrace` payload AWS returns, so `Retry`/`Catch` on error names behave
as on AWS. Functions that are not registered keep moto's behaviour.

While installed, what a function prints to stdout during an invocation passes through `EmbeddedMetricTee`, and
its embedded metric format lines become CloudWatch metrics, as CloudWatch Logs makes them from the function's log
group on AWS (emulator/embedded_metrics.py).

`init_functions()` runs each function's init phase (importing its handler module, with its own environment)
ahead of the first invocation, as Lambda does before it counts an invocation's duration; the twin calls it
at start-up. A function whose init fails is imported again by its first invoke, which raises the error there.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from moto.awslambda_simple.models import LambdaSimpleBackend

from contract.local_account import LOCAL_ACCOUNT_ID, LOCAL_REGION
from emulator.clock import Clock, read_time_from
from emulator.embedded_metrics import EmbeddedMetricTee, publish
from emulator.moto_patches import MotoPatches


class LambdaFunctionNotRegistered(LookupError):
    """Raised by `LocalLambdaRunner.invoke` for a function the twin does not know."""


class LambdaInvocationError(Exception):
    """A handler raised: carries the payload AWS would return with `FunctionError: Unhandled`."""

    def __init__(self, function_name: str, error_payload: dict[str, Any]) -> None:
        super().__init__(f"{function_name} failed: {error_payload['errorType']}: {error_payload['errorMessage']}")
        self.function_name = function_name
        self.error_payload = error_payload


@dataclass
class LambdaContext:
    """The attributes of AWS's Python `LambdaContext` that handlers and Powertools read."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int = 128
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = "local"
    timeout_seconds: int = 3
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self.log_group_name = self.log_group_name or f"/aws/lambda/{self.function_name}"
        self._deadline = time.monotonic() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass(frozen=True)
class RegisteredFunction:
    function_name: str
    handler: str
    code_dir: Path
    environment: dict[str, str]
    timeout: int


def _function_name_of(function_name_or_arn: str) -> str:
    """`name`, `name:qualifier`, `arn:...:function:name[:qualifier]` -> `name`."""
    if function_name_or_arn.startswith("arn:"):
        return function_name_or_arn.split(":")[6]
    return function_name_or_arn.split(":")[0]


class LocalLambdaRunner:
    """In-process Lambda: `register` the stack's functions, `install` into moto, `invoke` by name or ARN."""

    def __init__(
        self, region: str = LOCAL_REGION, account_id: str = LOCAL_ACCOUNT_ID, clock: Clock | None = None
    ) -> None:
        self.region = region
        self.account_id = account_id
        # The twin's clock, which the functions' own `datetime.now()` reads (clock.read_time_from says why). Those
        # rebindings are kept apart from the invoke patch, which `install()` must still find absent.
        self.clock = clock
        self._function_clock_patches = MotoPatches()
        self._functions: dict[str, RegisteredFunction] = {}
        # Each handler with the registration it was loaded for: a function registered again loads afresh.
        self._handlers: dict[str, tuple[RegisteredFunction, Callable[[Any, Any], Any]]] = {}
        # The process has one os.environ: calls are serialised so each sees only its own function's environment.
        # Re-entrant because a handler may invoke another function.
        self._environment_lock = threading.RLock()
        self._patches = MotoPatches()
        # The stdout tee of the invocation running now (a function invoked by another shares its caller's).
        self._metric_tee: EmbeddedMetricTee | None = None

    def register(
        self, function_name: str, handler: str, code_dir: Path, environment: dict[str, str], timeout: int
    ) -> None:
        """Make `function_name` runnable: `handler` is `module.function` inside `code_dir`."""
        module_name, _, function = handler.rpartition(".")
        if not module_name or not function:
            raise ValueError(f"Handler {handler!r} of {function_name} must look like 'module.function'")
        code_dir = Path(code_dir).resolve()
        if not code_dir.is_dir():
            raise FileNotFoundError(f"Code directory {code_dir} of function {function_name} does not exist")
        self._functions[function_name] = RegisteredFunction(
            function_name, handler, code_dir, dict(environment), int(timeout)
        )
        self._handlers.pop(function_name, None)

    def init_functions(self) -> None:
        """Import every registered function's handler module now, each with its own environment (Lambda's init).

        An import that fails is left to the function's first invoke, which imports again and raises.
        """
        for registered in list(self._functions.values()):
            # An init error belongs to the invocation that needs the handler, where AWS reports it too.
            with self._environment_lock, self._function_environment(registered), contextlib.suppress(Exception):
                self._load_handler(registered)

    @property
    def function_names(self) -> list[str]:
        return sorted(self._functions)

    def invoke(self, function_name_or_arn: str, payload: Any) -> Any:
        """Run the handler with `payload` and return its result; raise `LambdaInvocationError` when it raises."""
        name = _function_name_of(function_name_or_arn)
        registered = self._functions.get(name)
        if registered is None:
            raise LambdaFunctionNotRegistered(
                f"Lambda function {name!r} is not registered with the local twin; known: {self.function_names}"
            )
        context = LambdaContext(
            function_name=name,
            invoked_function_arn=f"arn:aws:lambda:{self.region}:{self.account_id}:function:{name}",
            timeout_seconds=registered.timeout,
        )
        with self._environment_lock, self._function_environment(registered), self._embedded_metrics():
            handler = self._load_handler(registered)
            started = time.monotonic()
            try:
                result = handler(payload, context)
            except Exception as error:
                raise LambdaInvocationError(
                    name,
                    {
                        "errorMessage": str(error),
                        "errorType": type(error).__name__,
                        "requestId": context.aws_request_id,
                        "stackTrace": traceback.format_exception(error)[1:],
                    },
                ) from error
            elapsed = time.monotonic() - started
        if elapsed > registered.timeout:
            # The handler cannot be interrupted in-process; report the timeout AWS would have enforced.
            raise LambdaInvocationError(
                name,
                {
                    "errorMessage": f"{context.aws_request_id} Task timed out after {registered.timeout:.2f} seconds",
                    "errorType": "Sandbox.Timedout",
                },
            )
        return result

    @contextmanager
    def _embedded_metrics(self) -> Iterator[None]:
        """Tee stdout for the invocation and publish its EMF metrics afterwards (only while installed into moto)."""
        if self._metric_tee is not None or not self._patches.active:
            yield
            return
        saved = sys.stdout
        tee = EmbeddedMetricTee(saved)
        sys.stdout = self._metric_tee = tee
        try:
            yield
        finally:
            if sys.stdout is tee:
                sys.stdout = saved
            self._metric_tee = None
            try:
                metric_data = tee.metric_data()
                if metric_data:
                    publish(boto3.client("cloudwatch", region_name=self.region), metric_data)
            except Exception:
                # CloudWatch Logs extracting metrics never fails the invocation that logged them.
                logging.getLogger(__name__).exception("The embedded metrics of an invocation could not be published")

    @contextmanager
    def _function_environment(self, registered: RegisteredFunction) -> Iterator[None]:
        lambda_environment = {
            "AWS_LAMBDA_FUNCTION_NAME": registered.function_name,
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(registered.timeout),
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            **registered.environment,
        }
        saved = {key: os.environ.get(key) for key in lambda_environment}
        os.environ.update(lambda_environment)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def _load_handler(self, registered: RegisteredFunction) -> Callable[[Any, Any], Any]:
        cached = self._handlers.get(registered.function_name)
        if cached is not None and cached[0] is registered:
            return cached[1]
        module_name, _, function = registered.handler.rpartition(".")
        if str(registered.code_dir) not in sys.path:
            sys.path.insert(0, str(registered.code_dir))
        loaded = sys.modules.get(module_name)
        if (
            loaded is not None
            and registered.code_dir not in Path(getattr(loaded, "__file__", "") or "/").resolve().parents
        ):
            # A module of the same name from another code directory (an earlier twin in this process): a new
            # Lambda environment imports the function's own code afresh.
            del sys.modules[module_name]
        module = importlib.import_module(module_name)
        module_file = Path(getattr(module, "__file__", "") or "").resolve()
        if registered.code_dir not in module_file.parents:
            raise ImportError(
                f"Handler module {module_name!r} of {registered.function_name} resolved to {module_file}, "
                f"outside its code directory {registered.code_dir}: rename one of the modules"
            )
        if self.clock is not None:
            for loaded_module in list(sys.modules.values()):
                if registered.code_dir in Path(getattr(loaded_module, "__file__", None) or "/").resolve().parents:
                    read_time_from(self.clock, loaded_module, self._function_clock_patches)
        handler = getattr(module, function, None)
        if not callable(handler):
            raise AttributeError(f"Handler {registered.handler!r} of {registered.function_name} is not a function")
        self._handlers[registered.function_name] = (registered, handler)
        return handler

    def install(self) -> None:
        """Route moto's docker-less Lambda `invoke` (boto3 and the engine's `lambda:invoke`) to this runner."""
        if self._patches.active:
            return
        original = LambdaSimpleBackend.invoke
        runner = self

        def invoke_in_process(
            backend: LambdaSimpleBackend,
            function_name: str,
            qualifier: str | None,
            body: Any,
            headers: Any,
            response_headers: Any,
        ) -> str | bytes | None:
            if _function_name_of(function_name) not in runner._functions:
                return original(backend, function_name, qualifier, body, headers, response_headers)
            payload = json.loads(body) if body else {}
            try:
                result = runner.invoke(function_name, payload)
            except LambdaInvocationError as failure:
                response_headers["x-amz-function-error"] = "Unhandled"
                return json.dumps(failure.error_payload).encode()
            return json.dumps(result).encode()

        self._patches.replace(LambdaSimpleBackend, "invoke", invoke_in_process)
        _read_the_environment_whole(self._patches)

    def uninstall(self) -> None:
        """Give moto its own Lambda `invoke` back, and the functions' modules the real `datetime`."""
        self._patches.undo()
        self._function_clock_patches.undo()


def _read_the_environment_whole(patches: MotoPatches) -> None:
    """`os.environ.items()`, `values()` and `copy()` read one copy of the environment, taken at once.

    An invocation sets its function's variables in the process's one environment and removes them after, while
    the twin's other threads go on (a client reading its proxy settings iterates `os.environ.items()`). The
    standard mapping view reads each key's value after listing the keys, so a variable removed in between raised
    KeyError in that other thread. A copy of the environment's dict is taken in one step, so a reader sees the
    environment from before or after a change, never half of it.
    """
    environ_class = type(os.environ)

    def snapshot(environ: Any) -> dict[str, str]:
        data = environ._data.copy()
        return {environ.decodekey(key): environ.decodevalue(value) for key, value in data.items()}

    patches.replace(environ_class, "items", lambda environ: snapshot(environ).items())
    patches.replace(environ_class, "values", lambda environ: snapshot(environ).values())
    patches.replace(environ_class, "copy", snapshot)
