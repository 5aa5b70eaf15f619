"""Execution environments for the twin's in-process Lambda functions: the state AWS keeps per environment, kept so.

On AWS each concurrent invocation of a function runs in an execution environment of its own (a process), and one
environment serves successive invocations: a warm start finds the module state and Powertools' state the previous
invocation left. In the twin every function runs in one process, functions that share a code directory share its
modules (the stack's functions all share `functions/common/observability.py`'s `logger`, `metrics` and `tracer`), and
Powertools keeps part of its state process-wide on purpose: every `Metrics` instance shares one metric set, dimension
set, default dimensions and metadata (class attributes of `Metrics`), and Logger, Tracer and Metrics each keep a
module-level cold-start flag.

`EnvironmentPool` keeps a function's environments: an invocation takes an idle one, or a new one, and gives it back
after. An `ExecutionEnvironment` owns, for as long as it lives:

- a `contextvars.Context` the handler runs in, in which `current_environment()` is that environment (context
  variables a handler sets, Powertools' `thread_safe_append_keys` among them, stay with it as in a process);
- its copy of the state of Powertools' objects (`Metrics`, the metrics providers, `Logger`, its formatters, `Tracer`):
  while `POWERTOOLS_STATE` is held, an attribute of such an object read or written in an environment is that
  environment's, copied at first use from the object as the function's init left it (outside every environment), and
  so are the containers `Metrics` and `Tracer` share between instances as class attributes. Plain containers (dict,
  list, set) are copied, once per environment, so that what two attributes shared they still share; other values
  (the stdlib logger, a handler, a provider) are shared;
- Logger's, Tracer's and Metrics' cold-start flags: true in a new environment, false after its first invocation;
- its function's environment variables (`variables`, the `os.environ` layer `emulator/lambda_local.py` applies).

Not per environment (documented in docs/local-twin.md): module-level variables of the function's own code (Python
binds a module's globals to one dict per process), boto3's default session (the stack's functions make their clients
per invocation from it), the stdlib `logging` registry, its handlers and levels.
"""

from __future__ import annotations

import contextvars
import os
import sys
import threading
import types
import weakref
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, cast

from emulator.moto_patches import MotoPatches

_PLAIN_CONTAINERS = (dict, list, set)
_ABSENT = object()

_CURRENT: ContextVar[ExecutionEnvironment | None] = ContextVar("twin_lambda_execution_environment", default=None)


def current_environment() -> ExecutionEnvironment | None:
    """The execution environment whose invocation this code runs in, or None outside every invocation."""
    return _CURRENT.get()


class ExecutionEnvironment:
    """One function's execution environment: used by one invocation at a time, kept between invocations (warm)."""

    def __init__(self, function_name: str, variables: dict[str, str]) -> None:
        self.function_name = function_name
        self.variables = dict(variables)
        self.invocations = 0
        self.cold_start_flags: dict[str, bool] = {}
        self._context = contextvars.Context()
        self._context.run(_CURRENT.set, self)
        # Per object (by id, dropped with the object): this environment's copy of its attributes.
        self._states: dict[int, tuple[weakref.ref[Any], dict[str, Any]]] = {}
        # Per container of the process's state (by id, kept alive here): this environment's copy of it.
        self._copies: dict[int, tuple[Any, Any]] = {}

    def run(self, handler: Callable[..., Any], *arguments: Any) -> Any:
        """Call `handler` inside this environment (one invocation)."""
        self.invocations += 1
        return self._context.run(handler, *arguments)

    def take_cold_start(self, flag: str) -> bool:
        """Whether this is the environment's cold start for `flag` (Logger, Tracer): true once, then false."""
        if os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "provisioned-concurrency":
            return False
        cold = self.cold_start_flags.get(flag, True)
        self.cold_start_flags[flag] = False
        return cold

    def copy_of(self, value: Any) -> Any:
        """This environment's copy of a plain container of the process's state (the value itself for anything else)."""
        if type(value) not in _PLAIN_CONTAINERS:
            return value
        found = self._copies.get(id(value))
        if found is not None:
            return found[1]
        copy: Any
        if type(value) is dict:
            copy = {}
            self._copies[id(value)] = (value, copy)
            for key, item in list(value.items()):
                copy[key] = self.copy_of(item)
        elif type(value) is list:
            copy = []
            self._copies[id(value)] = (value, copy)
            copy.extend(self.copy_of(item) for item in list(value))
        else:
            copy = set(value)
            self._copies[id(value)] = (value, copy)
        return copy

    def state_of(self, owner: Any) -> dict[str, Any]:
        """This environment's attributes of `owner`, copied from the process's object at first use."""
        key = id(owner)
        found = self._states.get(key)
        if found is not None and found[0]() is owner:
            return found[1]
        base = object.__getattribute__(owner, "__dict__")
        state = {name: self.copy_of(value) for name, value in list(base.items())}
        states = self._states

        def forget(_: Any) -> None:
            states.pop(key, None)

        self._states[key] = (weakref.ref(owner, forget), state)
        return state


class EnvironmentPool:
    """A function's execution environments: `take()` an idle one (the most recently used) or a new one; `give_back`."""

    def __init__(self, function_name: str, variables: dict[str, str]) -> None:
        self._function_name = function_name
        self._variables = dict(variables)
        self._idle: list[ExecutionEnvironment] = []
        self._lock = threading.Lock()
        self.created = 0

    def take(self) -> ExecutionEnvironment:
        with self._lock:
            if self._idle:
                return self._idle.pop()
            self.created += 1
        return ExecutionEnvironment(self._function_name, self._variables)

    def give_back(self, environment: ExecutionEnvironment) -> None:
        with self._lock:
            self._idle.append(environment)


class CountedHold:
    """A process-wide change in place while anyone holds it: the first hold makes it, the last release undoes it.

    Each release counts once, however often it is called.
    """

    def __init__(self, make: Callable[[], None], undo: Callable[[], None]) -> None:
        self._make = make
        self._undo = undo
        self._holders = 0
        self._lock = threading.Lock()

    def hold(self) -> Callable[[], None]:
        with self._lock:
            self._holders += 1
            if self._holders == 1:
                self._make()
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            with self._lock:
                self._holders -= 1
                if self._holders == 0:
                    self._undo()

        return release


def _class_attribute(owner_type: type, name: str) -> Any:
    for klass in owner_type.__mro__:
        found = klass.__dict__.get(name, _ABSENT)
        if found is not _ABSENT:
            return found
    return _ABSENT


def _is_data_descriptor(attribute: Any) -> bool:
    return hasattr(type(attribute), "__set__") or hasattr(type(attribute), "__delete__")


class _PowertoolsState:
    """While held, Powertools' process-wide state is each execution environment's own (see the module's docstring).

    Powertools is routed where it is loaded: `hold()` routes the modules already imported, `route_loaded()` (after
    each handler load) those imported since. The last release puts every class and module back.
    """

    # (module, class) whose instances' attributes, and class-level containers, are per environment.
    ROUTED_CLASSES = (
        ("aws_lambda_powertools.metrics.metrics", "Metrics"),
        ("aws_lambda_powertools.metrics.provider.base", "BaseProvider"),
        ("aws_lambda_powertools.metrics.base", "MetricManager"),
        ("aws_lambda_powertools.logging.logger", "Logger"),
        ("aws_lambda_powertools.logging.formatter", "BasePowertoolsFormatter"),
        ("aws_lambda_powertools.tracing.tracer", "Tracer"),
    )
    # (module, function) answering "is this the cold start?" through a module global.
    COLD_START_FUNCTIONS = (
        ("aws_lambda_powertools.logging.logger", "_is_cold_start"),
        ("aws_lambda_powertools.tracing.tracer", "_is_cold_start"),
    )
    # Modules whose `is_cold_start` global other modules read and write as an attribute.
    COLD_START_MODULES = ("aws_lambda_powertools.metrics.provider.cold_start",)

    def __init__(self) -> None:
        self._patches = MotoPatches()
        self._routed: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._held = False
        self._holds = CountedHold(self._route, self._unroute)

    def hold(self) -> Callable[[], None]:
        """Route Powertools (the first holder does); returns the release."""
        return self._holds.hold()

    def route_loaded(self) -> None:
        """Route what has been imported since (a no-op when nothing new is loaded, or nobody holds the routing)."""
        with self._lock:
            if self._held:
                self._route_loaded_now()

    def _route(self) -> None:
        with self._lock:
            self._held = True
            self._route_loaded_now()

    def _unroute(self) -> None:
        with self._lock:
            self._held = False
            self._patches.undo()
            self._routed.clear()

    def _route_loaded_now(self) -> None:
        for module_name, class_name in self.ROUTED_CLASSES:
            klass = getattr(sys.modules.get(module_name), class_name, None)
            if isinstance(klass, type) and (module_name, class_name) not in self._routed:
                self._route_class(klass)
                self._routed.add((module_name, class_name))
        for module_name, function_name in self.COLD_START_FUNCTIONS:
            module = sys.modules.get(module_name)
            if module is not None and (module_name, function_name) not in self._routed:
                self._route_cold_start_function(module, function_name, f"{module_name}.{function_name}")
                self._routed.add((module_name, function_name))
        for module_name in self.COLD_START_MODULES:
            module = sys.modules.get(module_name)
            if module is not None and (module_name, "is_cold_start") not in self._routed:
                self._patches.replace(module, "__class__", _ColdStartModule)
                self._routed.add((module_name, "is_cold_start"))

    def _route_class(self, klass: type) -> None:
        # The methods the class has now (object's, for these classes), called as functions of (instance, name, ...).
        original_get = cast(Callable[[Any, str], Any], klass.__getattribute__)
        original_set = cast(Callable[[Any, str, Any], None], klass.__setattr__)
        original_del = cast(Callable[[Any, str], None], klass.__delattr__)

        def getattribute(owner: Any, name: str) -> Any:
            environment = _CURRENT.get()
            if environment is None or name.startswith("__"):
                return original_get(owner, name)
            on_class = _class_attribute(type(owner), name)
            if on_class is not _ABSENT and _is_data_descriptor(on_class):
                # A property: its getter reads the fields it needs through here.
                return original_get(owner, name)
            state = environment.state_of(owner)
            if name in state:
                return state[name]
            base = object.__getattribute__(owner, "__dict__")
            if name in base:
                # Set on the process's object after this environment copied it (an init that came later).
                value = state[name] = environment.copy_of(base[name])
                return value
            value = original_get(owner, name)
            # A container on the class (Metrics' shared metric set) is this environment's copy; a method is itself.
            return environment.copy_of(value) if value is on_class else value

        def setattribute(owner: Any, name: str, value: Any) -> None:
            environment = _CURRENT.get()
            if environment is None or name.startswith("__"):
                original_set(owner, name, value)
                return
            on_class = _class_attribute(type(owner), name)
            if on_class is not _ABSENT and _is_data_descriptor(on_class):
                original_set(owner, name, value)
                return
            environment.state_of(owner)[name] = value

        def deleteattribute(owner: Any, name: str) -> None:
            environment = _CURRENT.get()
            state = environment.state_of(owner) if environment is not None and not name.startswith("__") else None
            if state is None or _is_data_descriptor(_class_attribute(type(owner), name)):
                original_del(owner, name)
                return
            if name not in state:
                raise AttributeError(name)
            del state[name]

        self._patches.replace(klass, "__getattribute__", getattribute)
        self._patches.replace(klass, "__setattr__", setattribute)
        self._patches.replace(klass, "__delattr__", deleteattribute)

    def _route_cold_start_function(self, module: types.ModuleType, function_name: str, flag: str) -> None:
        original = getattr(module, function_name)

        def is_cold_start() -> bool:
            environment = _CURRENT.get()
            return original() if environment is None else environment.take_cold_start(flag)

        self._patches.replace(module, function_name, is_cold_start)


class _ColdStartModule(types.ModuleType):
    """Powertools' metrics cold-start module, its `is_cold_start` flag per execution environment."""

    _FLAG = "aws_lambda_powertools.metrics.provider.cold_start.is_cold_start"

    @property
    def is_cold_start(self) -> bool:
        environment = _CURRENT.get()
        if environment is None:
            return bool(self.__dict__["is_cold_start"])
        if os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "provisioned-concurrency":
            return False
        return environment.cold_start_flags.get(self._FLAG, True)

    @is_cold_start.setter
    def is_cold_start(self, value: bool) -> None:
        environment = _CURRENT.get()
        if environment is None:
            self.__dict__["is_cold_start"] = value
        else:
            environment.cold_start_flags[self._FLAG] = bool(value)


POWERTOOLS_STATE = _PowertoolsState()
