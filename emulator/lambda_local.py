"""Run the stack's Lambda handlers in-process, for the engine's `lambda:invoke` tasks and for boto3 `lambda.invoke`.

moto's docker-less Lambda backend only echoes the payload. `LocalLambdaRunner.install()` replaces its
`invoke` for the duration of the twin: a registered function runs its real handler with a
`LambdaContext` and its own environment; an exception becomes `FunctionError: Unhandled` with the
`errorType`/`errorMessage`/`stackTrace` payload AWS returns, so `Retry`/`Catch` on error names behave
as on AWS. A function created through the Lambda API (boto3 `create_function`, a zip) that the twin did not register
runs the same way: its zip is extracted once per code version and its handler, environment and timeout are moto's
record of it. CreateFunction refuses a runtime other than Python, or an image package, naming it: the twin can only
run Python handlers in-process (on its own interpreter, whichever `python3.x` the function names).

Invocations run concurrently, as Lambda runs each in an execution environment of its own, functions that share a code
directory (and so its loaded modules) included: each function keeps a pool of `ExecutionEnvironment`s
(emulator/lambda_environments.py), an invocation takes an idle one or a new one and gives it back after, and the
handler runs in it, with that environment's own Powertools state (metric set, dimensions, metadata, log keys, cold-start
flags) and its own function variables in `os.environ` (a per-thread layer over the process's environment,
`_FunctionEnvironments`); its stdout goes to its own embedded-metric tee. What stays process-wide is listed there.

While installed, what a function prints to stdout during an invocation passes through `EmbeddedMetricTee`, and
its embedded metric format lines become CloudWatch metrics, as CloudWatch Logs makes them from the function's log
group on AWS (emulator/embedded_metrics.py).

`init_functions()` runs each function's init phase (importing its handler module, with its own environment)
ahead of the first invocation, as Lambda does before it counts an invocation's duration; the twin runs it on a
thread from start-up on (`init_functions_in_background()`). A function whose init fails is imported again by its
first invoke, which raises the error there.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
import traceback
import uuid
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from moto.awslambda.exceptions import InvalidParameterValueException
from moto.awslambda.models import LambdaFunction
from moto.awslambda_simple.models import LambdaSimpleBackend

from contract.local_account import LOCAL_ACCOUNT_ID, LOCAL_REGION
from emulator.clock import Clock, read_time_from
from emulator.embedded_metrics import EmbeddedMetricTee, publish
from emulator.lambda_environments import POWERTOOLS_STATE, CountedHold, EnvironmentPool
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
        # Loading a handler edits sys.path and sys.modules: one load at a time (re-entrant: an import may invoke).
        self._load_lock = threading.RLock()
        # Each function's execution environments, with the registration they were made for: a function registered
        # again starts with new ones, as Lambda does after an update. Concurrent invocations take different ones.
        self._pools: dict[str, tuple[RegisteredFunction, EnvironmentPool]] = {}
        self._pools_lock = threading.Lock()
        # Invocations running now: work the clock must not skip over (busy()).
        self._running = 0
        self._patches = MotoPatches()
        # Zips of functions created through the Lambda API, extracted once per code version (removed on uninstall),
        # and what each such function was registered from, so that a changed function registers again.
        self._zip_root: Path | None = None
        self._from_lambda_api: dict[str, tuple[Any, ...]] = {}
        self._init_thread: threading.Thread | None = None
        self._stop_init = threading.Event()

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
            if self._stop_init.is_set():
                return
            # An init error belongs to the invocation that needs the handler, where AWS reports it too.
            with _ENVIRONMENTS.applied(self._variables_of(registered)), contextlib.suppress(Exception):
                self._load_handler(registered)

    def init_functions_in_background(self) -> None:
        """`init_functions()` on a thread of its own, so that whoever starts the twin need not wait for the imports.

        An invoke that comes first loads its handler itself: loads take the load lock, so it waits at most for the
        import under way and never sees a half-imported module. `uninstall()` waits for the thread.
        """
        if self._init_thread is not None:
            return
        self._stop_init.clear()
        self._init_thread = threading.Thread(target=self.init_functions, name="lambda-init", daemon=True)
        self._init_thread.start()

    def busy(self) -> bool:
        """True while an invocation runs (Clock.skipping_idle_time must not skip over it)."""
        with self._pools_lock:
            return self._running > 0

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
        pool = self._pool_of(registered)
        environment = pool.take()
        release_powertools = POWERTOOLS_STATE.hold()
        with self._pools_lock:
            self._running += 1
        try:
            with _ENVIRONMENTS.applied(environment.variables), self._embedded_metrics():
                # Loaded outside the environment: an import is the function's init, whose state every new
                # environment starts from.
                handler = self._load_handler(registered)
                POWERTOOLS_STATE.route_loaded()
                started = time.monotonic()
                try:
                    result = environment.run(handler, payload, context)
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
        finally:
            with self._pools_lock:
                self._running -= 1
            release_powertools()
            pool.give_back(environment)
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
        """Tee this thread's stdout for the invocation and publish its EMF metrics after (only while installed)."""
        if _STDOUT.tee() is not None or not self._patches.active:
            # Not installed, or a function invoked by another: the caller's tee takes its lines.
            yield
            return
        # Taken at each invocation, not at install: whoever replaced sys.stdout since (a test's capture) gets the text.
        release = _STDOUT.hold()
        tee = EmbeddedMetricTee(_STDOUT.target)
        try:
            with _STDOUT.routed(tee):
                yield
        finally:
            release()
        try:
            metric_data = tee.metric_data()
            if metric_data:
                publish(boto3.client("cloudwatch", region_name=self.region), metric_data)
        except Exception:
            # CloudWatch Logs extracting metrics never fails the invocation that logged them.
            logging.getLogger(__name__).exception("The embedded metrics of an invocation could not be published")

    def _pool_of(self, registered: RegisteredFunction) -> EnvironmentPool:
        with self._pools_lock:
            found = self._pools.get(registered.function_name)
            if found is None or found[0] is not registered:
                found = (registered, EnvironmentPool(registered.function_name, self._variables_of(registered)))
                self._pools[registered.function_name] = found
            return found[1]

    def _variables_of(self, registered: RegisteredFunction) -> dict[str, str]:
        return {
            "AWS_LAMBDA_FUNCTION_NAME": registered.function_name,
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(registered.timeout),
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            **registered.environment,
        }

    def _load_handler(self, registered: RegisteredFunction) -> Callable[[Any, Any], Any]:
        with self._load_lock:
            return self._load_handler_now(registered)

    def _load_handler_now(self, registered: RegisteredFunction) -> Callable[[Any, Any], Any]:
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
            # The function's own modules were imported through its code directory's (resolved) sys.path entry, so
            # their files start with it: a prefix test, not a resolve() of every module of the process per handler.
            own_prefix = str(registered.code_dir) + os.sep
            for loaded_module in list(sys.modules.values()):
                if (getattr(loaded_module, "__file__", None) or "").startswith(own_prefix):
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
        runner = self

        def invoke_in_process(
            backend: LambdaSimpleBackend,
            function_name: str,
            qualifier: str | None,
            body: Any,
            headers: Any,
            response_headers: Any,
        ) -> str | bytes | None:
            name = _function_name_of(function_name)
            if name not in runner._functions or name in runner._from_lambda_api:
                # Read again at every call: UpdateFunctionCode or UpdateFunctionConfiguration may have changed it.
                runner._register_from_lambda_api(backend.get_function(function_name, qualifier))
            payload = json.loads(body) if body else {}
            try:
                result = runner.invoke(function_name, payload)
            except LambdaInvocationError as failure:
                response_headers["x-amz-function-error"] = "Unhandled"
                return json.dumps(failure.error_payload).encode()
            return json.dumps(result).encode()

        self._patches.replace(LambdaSimpleBackend, "invoke", invoke_in_process)
        original_create = LambdaSimpleBackend.create_function

        def create_function_the_twin_can_run(backend: LambdaSimpleBackend, spec: dict[str, Any]) -> LambdaFunction:
            refusal = _runtime_refusal(spec)
            if refusal is not None:
                raise InvalidParameterValueException(refusal)
            return original_create(backend, spec)

        self._patches.replace(LambdaSimpleBackend, "create_function", create_function_the_twin_can_run)
        self._patches.on_undo(_ENVIRONMENTS.hold())
        self._patches.on_undo(POWERTOOLS_STATE.hold())

    def uninstall(self) -> None:
        """Give moto its own Lambda `invoke` back, and the functions' modules the real `datetime`."""
        if self._init_thread is not None:
            # Its imports patch the functions' clocks: it ends before they are undone.
            self._stop_init.set()
            self._init_thread.join()
            self._init_thread = None
        self._patches.undo()
        self._function_clock_patches.undo()
        if self._zip_root is not None:
            shutil.rmtree(self._zip_root, ignore_errors=True)
            self._zip_root = None
        for name in self._from_lambda_api:
            self._functions.pop(name, None)
            self._handlers.pop(name, None)
        with self._pools_lock:
            self._pools.clear()
        self._from_lambda_api.clear()

    def _register_from_lambda_api(self, function: LambdaFunction) -> None:
        """Register a function moto holds (created by CreateFunction from a zip): its code, handler, variables."""
        refusal = _runtime_refusal({"Runtime": function.run_time, "PackageType": function.package_type})
        if refusal is not None:
            raise InvalidParameterValueException(refusal)
        if not function.handler:
            raise InvalidParameterValueException(f"Function {function.function_name} has no Handler to run")
        if not function.code_bytes:
            raise InvalidParameterValueException(
                f"Function {function.function_name} has no zip the local twin can run (its code is not in the request)"
            )
        digest = hashlib.sha256(function.code_bytes).hexdigest()[:16]
        source = (digest, function.handler, tuple(sorted(function.environment_vars.items())), function.timeout)
        with self._load_lock:
            if self._from_lambda_api.get(function.function_name) == source:
                return
            if self._zip_root is None:
                self._zip_root = Path(tempfile.mkdtemp(prefix="twin-lambda-"))
            code_dir = self._zip_root / f"{function.function_name}-{digest}"
            if not code_dir.is_dir():
                with zipfile.ZipFile(io.BytesIO(function.code_bytes)) as archive:
                    archive.extractall(code_dir)
            self.register(
                function.function_name, function.handler, code_dir, dict(function.environment_vars), function.timeout
            )
            self._from_lambda_api[function.function_name] = source


def _runtime_refusal(spec: dict[str, Any]) -> str | None:
    """Why the twin cannot run a function of this CreateFunction request, or None."""
    if spec.get("PackageType", "Zip") == "Image":
        return "The local twin runs Lambda functions in-process from a zip: PackageType 'Image' is not supported"
    runtime = spec.get("Runtime")
    if not isinstance(runtime, str) or not runtime.startswith("python3"):
        return f"The local twin runs only Python Lambda functions (in-process): runtime {runtime!r} is not supported"
    return None


class _FunctionEnvironments:
    """`os.environ` as each invocation's thread sees it: the process's environment with its function's variables.

    Lambda gives every execution environment its own process. In-process, each invoking thread gets a layer of its
    function's variables over the process's environment (its execution environment's, which keeps what a handler
    writes for that environment's next invocation), read and written through `os.environ` while the patch is
    held (from `install()` until `uninstall()`, or for one call of a runner that is not installed). Other threads,
    and a thread the handler starts itself, see the process's environment; a child process gets the process's
    environment too (the layer is not in the C environment).
    """

    def __init__(self) -> None:
        self._layers = threading.local()
        self._patches = MotoPatches()
        self._holds = CountedHold(self._patch, self._patches.undo)

    def layer(self) -> dict[str, str] | None:
        return getattr(self._layers, "variables", None)

    def hold(self) -> Callable[[], None]:
        """Patch os.environ (the first holder does); returns the release."""
        return self._holds.hold()

    @contextmanager
    def applied(self, variables: dict[str, str]) -> Iterator[None]:
        """This thread sees `variables` over the environment until the block ends (a nested call, its own).

        The handler's writes go into `variables` itself: an execution environment keeps them for its next invocation.
        """
        release = self.hold()
        previous = self.layer()
        self._layers.variables = variables
        try:
            yield
        finally:
            self._layers.variables = previous
            release()

    def _patch(self) -> None:
        environ_class = type(os.environ)
        environments = self
        original_get, original_set = environ_class.__getitem__, environ_class.__setitem__
        original_del, original_iter = environ_class.__delitem__, environ_class.__iter__
        original_len = environ_class.__len__

        def getitem(environ: Any, key: str) -> str:
            layer = environments.layer()
            if layer is not None and environ is os.environ and key in layer:
                return layer[key]
            return original_get(environ, key)

        def setitem(environ: Any, key: str, value: str) -> None:
            layer = environments.layer()
            if layer is not None and environ is os.environ:
                layer[key] = value
                return
            original_set(environ, key, value)

        def delitem(environ: Any, key: str) -> None:
            layer = environments.layer()
            if layer is not None and environ is os.environ and key in layer:
                del layer[key]
                return
            original_del(environ, key)

        def iterate(environ: Any) -> Iterator[str]:
            layer = environments.layer()
            if layer is None or environ is not os.environ:
                return original_iter(environ)
            return iter(dict.fromkeys([*list(original_iter(environ)), *layer]))

        def length(environ: Any) -> int:
            layer = environments.layer()
            return original_len(environ) if layer is None or environ is not os.environ else len(list(iterate(environ)))

        def snapshot(environ: Any) -> dict[str, str]:
            # One copy of the process's dict, taken at once: the standard views read each value after listing the
            # keys, so a variable another thread removed in between raised KeyError (a client reading its proxy
            # settings iterates items()). A reader sees the environment from before or after a change, never half.
            data = environ._data.copy()
            whole = {environ.decodekey(key): environ.decodevalue(value) for key, value in data.items()}
            layer = environments.layer()
            return {**whole, **layer} if layer is not None and environ is os.environ else whole

        for name, replacement in (
            ("__getitem__", getitem),
            ("__setitem__", setitem),
            ("__delitem__", delitem),
            ("__iter__", iterate),
            ("__len__", length),
            ("items", lambda environ: snapshot(environ).items()),
            ("values", lambda environ: snapshot(environ).values()),
            ("copy", snapshot),
        ):
            self._patches.replace(environ_class, name, replacement)


class _ThreadRoutedStdout(io.TextIOBase):
    """`sys.stdout` while invocations run: each invoking thread writes to its own tee, other threads write through."""

    def __init__(self) -> None:
        self._tees = threading.local()
        self.target: Any = sys.stdout
        self._holds = CountedHold(self._take_stdout, self._give_stdout_back)

    def tee(self) -> EmbeddedMetricTee | None:
        return getattr(self._tees, "tee", None)

    def hold(self) -> Callable[[], None]:
        """Route sys.stdout through this object (the first holder does); returns the release."""
        return self._holds.hold()

    def _take_stdout(self) -> None:
        self.target, sys.stdout = sys.stdout, self

    def _give_stdout_back(self) -> None:
        if sys.stdout is self:
            sys.stdout = self.target

    @contextmanager
    def routed(self, tee: EmbeddedMetricTee) -> Iterator[None]:
        self._tees.tee = tee
        try:
            yield
        finally:
            self._tees.tee = None

    def write(self, text: str) -> int:
        tee = self.tee()
        return tee.write(text) if tee is not None else self.target.write(text)

    def flush(self) -> None:
        self.target.flush()


_ENVIRONMENTS = _FunctionEnvironments()
_STDOUT = _ThreadRoutedStdout()
