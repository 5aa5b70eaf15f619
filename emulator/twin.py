"""`LocalTwin`: the deployed stack in one process: moto, the local SageMaker, in-process Lambda, the stack's rules.

Starting the twin starts `moto.mock_aws` with Step Functions execution on, the local SageMaker (answering moto's
SageMaker APIs) and a fast clock; deploys template.yaml through `emulator.stack`; registers the stack's functions
with the in-process Lambda runner; plugs the project's integrations into moto's engine; creates the state
machines on the executing engine under the names the stack's `Ref`s already point at; and routes events with the
stack's rules. Everything else talks to it through plain boto3 clients, as on AWS.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import boto3
from moto import mock_aws
from moto.stepfunctions.parser.api import ExecutionStatus

from contract.local_account import LOCAL_REGION
from contract.project import TEMPLATE_PATH
from contract.template import template_parameters
from emulator.alarm_evaluation import PUBLISHED_AWS_METRICS
from emulator.alarms import AlarmEvaluator
from emulator.clock import Clock
from emulator.engine import install_local_integrations, uninstall_local_integrations
from emulator.engine_executions import history_mark as _history_mark
from emulator.engine_executions import running_executions as _running_executions
from emulator.eventbridge import Delivery, EventRouter
from emulator.execution_events import ExecutionStatusEvents
from emulator.history import RUNNING, StateRun, state_runs
from emulator.lambda_local import LocalLambdaRunner
from emulator.moto_patches import MotoPatches
from emulator.sagemaker_local import LocalSageMaker
from emulator.service_data_cache import install_service_data_cache
from emulator.service_lookups import install_service_lookups
from emulator.service_metrics import PUBLISHED_METRICS as SERVICE_METRICS
from emulator.service_metrics import ServiceMetrics
from emulator.stack import DEFAULT_STACK_NAME, create_local_network, deploy_stack, same_ids_at_every_start
from emulator.stack_spec import DeployedStack

# Virtual seconds per real second: Wait states, Retry intervals, .sync polls and endpoint start-up take
# a hundredth of their time, while jobs still take the real time their scripts need.
DEFAULT_CLOCK_SPEED = 100.0
DEFAULT_EXECUTION_TIMEOUT_SECONDS = 1800.0
_HISTORY_POLL_SECONDS = 0.1
# Real seconds close() waits for stopped executions to leave their states beyond the longest function timeout (an
# in-process Lambda cannot be interrupted; a `.sync` poll or a Wait wakes at once).
_STOP_WAIT_MARGIN_SECONDS = 30.0
_MOTO_CONFIG = {
    "stepfunctions": {"execute_state_machine": True},
    "lambda": {"use_docker": False},
}


@dataclass(frozen=True)
class ProgressEvent:
    """A state of an execution was entered or exited (from the execution's history)."""

    execution_arn: str
    phase: str  # "entered" or "exited"
    run: StateRun

    @property
    def state_name(self) -> str:
        return self.run.name

    @property
    def timestamp(self) -> datetime:
        return self.run.exited if self.phase == "exited" and self.run.exited else self.run.entered


ProgressCallback = Callable[[ProgressEvent], None]


@dataclass
class ExecutionResult:
    """A finished (or still running) execution: its outcome and one `StateRun` per visit of a state."""

    execution_arn: str
    state_machine_arn: str
    name: str
    status: str
    input: Any
    output: Any
    error: str | None
    cause: str | None
    started: datetime
    stopped: datetime | None
    runs: list[StateRun] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    # Its dates are on the twin's clock, this many times faster than the wall clock (StateRun.clock_speed).
    clock_speed: float = 1.0

    @property
    def succeeded(self) -> bool:
        return self.status == "SUCCEEDED"

    @property
    def seconds(self) -> float | None:
        """How long it ran in real seconds; None while it runs."""
        return None if self.stopped is None else (self.stopped - self.started).total_seconds() / self.clock_speed

    def states_entered(self) -> list[str]:
        """Names of the states the execution entered, in order (a state in a loop appears once per visit)."""
        return [run.name for run in self.runs]


def local_parameter_overrides(
    template: Path, subnet_ids: Iterable[str], security_group_ids: Iterable[str]
) -> dict[str, str]:
    """The twin's parameter values, the one place they are chosen; only those `template` declares are passed.

    Models are registered `Approved` (approval mode auto) so a local run goes on to deploy; the VPC values name
    real subnets and a security group created in moto, so the ASL carries realistic ids.
    """
    chosen = {
        "Environment": "dev",
        "ApprovalMode": "auto",
        "SubnetIds": ",".join(subnet_ids),
        "SecurityGroupIds": ",".join(security_group_ids),
    }
    declared = template_parameters(template)
    return {name: value for name, value in chosen.items() if name in declared}


class LocalTwin:
    """The local twin as a context manager; see the module docstring."""

    def __init__(
        self,
        template: Path = TEMPLATE_PATH,
        statemachines_dir: Path | None = None,
        parameter_overrides: Mapping[str, str] | None = None,
        work_dir: Path | None = None,
        clock_speed: float = DEFAULT_CLOCK_SPEED,
        on_progress: ProgressCallback | None = None,
        stack_name: str = DEFAULT_STACK_NAME,
        parse_first: Sequence[str] = (),
    ) -> None:
        self.template = Path(template)
        # State machines (as `start_execution` names them) the caller starts first: their definitions are parsed
        # first, in the background from their creation on, so that their first StartExecution waits the least. A
        # hint: a name the stack has no state machine for changes nothing.
        self.parse_first = tuple(parse_first)
        self.statemachines_dir = statemachines_dir
        self.parameter_overrides = dict(parameter_overrides or {})
        self.on_progress = on_progress
        self.stack_name = stack_name
        self.clock = Clock(clock_speed)
        self._work_dir = work_dir
        self._owns_work_dir = work_dir is None
        self._mock: Any = None
        self._stack: DeployedStack | None = None
        self._sagemaker: LocalSageMaker | None = None
        self._lambdas: LocalLambdaRunner | None = None
        self._router: EventRouter | None = None
        self._execution_events: ExecutionStatusEvents | None = None
        self._stepfunctions: Any = None
        self._alarms: AlarmEvaluator | None = None
        self._service_metrics: ServiceMetrics | None = None
        self._stop_alarm_clock: Callable[[], None] | None = None
        self._integrations_installed = False
        self._lookups = MotoPatches()
        self._save_lookups: Callable[[], None] | None = None
        self._saved_region: str | None = None
        # The last description of each execution, with the (status, history length) it was read at.
        self._descriptions: dict[str, tuple[tuple[str, int], ExecutionResult]] = {}
        # Set by close() under the lock rules start executions under: once set, no rule starts one, so the
        # executions close() waits for are all there will be.
        self._closing = False
        self._rule_start_lock = threading.Lock()

    # ---- lifecycle --------------------------------------------------------------------------------------------

    def __enter__(self) -> LocalTwin:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def start(self) -> None:
        """Starts moto and the runtime services and deploys the stack; `close()` undoes all of it."""
        if self._mock is not None:
            raise RuntimeError("This LocalTwin is already started")
        self._closing = False
        self._saved_region = os.environ.get("AWS_DEFAULT_REGION")
        os.environ["AWS_DEFAULT_REGION"] = LOCAL_REGION
        self._mock = mock_aws(config=cast(Any, _MOTO_CONFIG))
        self._mock.start()
        try:
            install_service_data_cache(self._lookups)
            self._save_lookups = install_service_lookups(self._lookups)
            self._start_services()
        except BaseException:
            self.close()
            raise

    def _start_services(self) -> None:
        if self._work_dir is None:
            self._work_dir = Path(tempfile.mkdtemp(prefix="mlops-twin-"))
        self._work_dir.mkdir(parents=True, exist_ok=True)
        self._sagemaker = LocalSageMaker(self._work_dir / "sagemaker", self.clock, events=self._route_service_event)
        self._sagemaker.install()
        # The first jobs' and the first model server's interpreters import their libraries on the other core while the
        # stack deploys (warm_containers.py).
        self._sagemaker.prepare_warm_containers()
        # Before the stack deploys, so its alarms start INSUFFICIENT_DATA as on AWS; state changes go to the bus.
        self._alarms = AlarmEvaluator(
            self.clock,
            self._route_service_event,
            region=LOCAL_REGION,
            published_aws_metrics=PUBLISHED_AWS_METRICS | SERVICE_METRICS,
        )
        self._service_metrics = ServiceMetrics(region=LOCAL_REGION)
        self._alarms.install()
        with same_ids_at_every_start():
            subnet_ids, security_group_ids = create_local_network()
            overrides = local_parameter_overrides(self.template, subnet_ids, security_group_ids)
            overrides.update(self.parameter_overrides)
            self._stack = deploy_stack(
                self.template, overrides, stack_name=self.stack_name, statemachines_dir=self.statemachines_dir
            )
        self._lambdas = LocalLambdaRunner(region=LOCAL_REGION, clock=self.clock)
        for function in self._stack.functions.values():
            self._lambdas.register(
                function.function_name, function.handler, function.code_dir, function.environment, function.timeout
            )
        # Lambda's init phase (importing the handlers: Powertools, pydantic; seconds for all of them) runs from deploy
        # time on, beside the first jobs, so an execution's first call to a function takes about as long as a warm one
        # and the twin's start does not wait for it.
        self._lambdas.init_functions_in_background()
        self._lambdas.install()
        install_local_integrations(sagemaker=self._sagemaker, lambdas=self._lambdas, clock=self.clock)
        self._integrations_installed = True
        stepfunctions = boto3.client("stepfunctions")
        first = [self._stack.state_machine(name) for name in self.parse_first if self._stack.has_state_machine(name)]
        for machine in [*first, *(m for m in self._stack.state_machines.values() if m not in first)]:
            stepfunctions.create_state_machine(
                name=machine.name, definition=machine.definition, roleArn=machine.role_arn, type="STANDARD"
            )
        self._router = EventRouter(
            self._stack,
            invoke_function=self._lambdas.invoke,
            start_execution=self._start_from_rule,
            now=self.clock.now,
            region=LOCAL_REGION,
        )
        self._router.install()
        # Step Functions' status change events, which moto's engine does not send, go to the bus as on AWS.
        self._execution_events = ExecutionStatusEvents(self._route_service_event)
        self._execution_events.install()
        # CloudWatch evaluates every minute: so does the twin, at each minute its clock passes while something waits.
        self._stop_alarm_clock = self.clock.on_minute(self._evaluate_alarms_at)

    def close(self) -> None:
        """Stops running executions, endpoint servers and jobs, gives moto its own behaviour back, and stops moto.

        Executions are stopped and waited for before anything is uninstalled: an engine thread left running would
        go on against plain moto (uninstalled integrations, a States.ALL Catch matching States.Runtime again,
        backends being reset), where its failures are swallowed. Every step runs even if one before it fails; the
        first failure is raised at the end.
        """
        failures: list[BaseException] = []
        with self._rule_start_lock:
            self._closing = True

        def step(action: Callable[[], None]) -> None:
            try:
                action()
            except Exception as error:
                failures.append(error)

        if self._stop_alarm_clock is not None:
            self._stop_alarm_clock()
            self._stop_alarm_clock = None
        if self._router is not None:
            # First, so that no rule starts an execution while the running ones are being stopped.
            step(self._router.uninstall)
            self._router = None
        if self._execution_events is not None:
            step(self._execution_events.uninstall)
            self._execution_events = None
        if self._stack is not None and self._integrations_installed:
            step(self._stop_running_executions)
        if self._integrations_installed:
            step(uninstall_local_integrations)
            self._integrations_installed = False
        if self._alarms is not None:
            step(self._alarms.uninstall)
        if self._lambdas is not None:
            step(self._lambdas.uninstall)
        if self._sagemaker is not None:
            step(self._sagemaker.close)
            self._sagemaker = None
        if self._save_lookups is not None:
            step(self._save_lookups)
            self._save_lookups = None
        self._lookups.undo()
        if self._mock is not None:
            step(self._mock.stop)
            self._mock = None
        self._descriptions.clear()
        if self._owns_work_dir and self._work_dir is not None:
            shutil.rmtree(self._work_dir, ignore_errors=True)
            self._work_dir = None
        if self._saved_region is None:
            os.environ.pop("AWS_DEFAULT_REGION", None)
        else:
            os.environ["AWS_DEFAULT_REGION"] = self._saved_region
        if failures:
            raise failures[0]

    def _stop_running_executions(self) -> None:
        """Stop every execution of moto's engine and wait until each one's engine thread has finished evaluating.

        moto marks a stopped execution ABORTED only when its program returns, so RUNNING means the thread is still
        in a state (a `.sync` poll, a Lambda, an SNS publish). An execution a running Lambda starts meanwhile is
        stopped too. Raises `RuntimeError` naming the executions still running after the longest function timeout
        and `_STOP_WAIT_MARGIN_SECONDS`.
        """
        client = boto3.client("stepfunctions")
        stopped: set[str] = set()
        wait_seconds = max((f.timeout for f in self.stack.functions.values()), default=0) + _STOP_WAIT_MARGIN_SECONDS
        deadline = time.monotonic() + wait_seconds
        while running := _running_executions():
            for arn, execution in running.items():
                # moto can stop an execution only once its engine thread has set it up (its environment).
                if arn not in stopped and execution.exec_worker is not None and execution.exec_worker.env is not None:
                    client.stop_execution(executionArn=arn, error="LocalTwin.Closed", cause="the local twin stopped")
                    stopped.add(arn)
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"Executions still running {wait_seconds:.0f} s after the local twin stopped them: "
                    f"{sorted(running)}"
                )
            time.sleep(_HISTORY_POLL_SECONDS)

    # ---- the parts --------------------------------------------------------------------------------------------

    @property
    def stack(self) -> DeployedStack:
        return _started(self._stack)

    @property
    def sagemaker(self) -> LocalSageMaker:
        return _started(self._sagemaker)

    @property
    def lambdas(self) -> LocalLambdaRunner:
        return _started(self._lambdas)

    @property
    def router(self) -> EventRouter:
        return _started(self._router)

    @property
    def alarms(self) -> AlarmEvaluator:
        return _started(self._alarms)

    @property
    def work_dir(self) -> Path:
        return _started(self._work_dir)

    # ---- Step Functions ---------------------------------------------------------------------------------------

    def start_execution(self, state_machine: str, input: Mapping[str, Any], name: str | None = None) -> str:
        """Starts `state_machine` (logical id, name, ARN or `training`/`deploy`) and returns the execution ARN.

        Without a name the twin makes one (`local-<24 hex>`), which the workflows name their jobs after; an execution
        a client starts without a name gets a UUID, as on AWS (emulator/context_object.py).
        """
        machine = self.stack.state_machine(state_machine)
        response = boto3.client("stepfunctions").start_execution(
            stateMachineArn=machine.arn, name=name or _execution_name(), input=json.dumps(input)
        )
        return str(response["executionArn"])

    def list_executions(self, state_machine: str) -> list[dict[str, Any]]:
        """The executions of `state_machine`, newest first (ListExecutions' items)."""
        machine = self.stack.state_machine(state_machine)
        client = boto3.client("stepfunctions")
        executions: list[Any] = []
        for page in client.get_paginator("list_executions").paginate(stateMachineArn=machine.arn):
            executions += page["executions"]
        return sorted(executions, key=lambda item: item["startDate"], reverse=True)

    def describe_execution(self, execution_arn: str) -> ExecutionResult:
        """The execution as it stands: status, output or error, and the state runs from its history."""
        # Callers poll this while jobs run. Reading the history through the API costs milliseconds of CPU per
        # event (moto serialises each), taken from the jobs on a small machine; so it is read again only when the
        # engine has recorded something new, and then only the events since the last read (the history only grows).
        # The mark is taken first: a change during the read below shows on the next call.
        mark = _history_mark(execution_arn)
        cached = self._descriptions.get(execution_arn)
        if mark is not None and cached is not None and cached[0] == mark:
            return replace(cached[1], runs=list(cached[1].runs), history=list(cached[1].history))
        client = self._stepfunctions_client()
        description = client.describe_execution(executionArn=execution_arn)
        known = list(cached[1].history) if cached is not None else []
        # The mark says how many events are new; without one (an execution not yet on the engine), a default page.
        expected = mark[1] - len(known) if mark is not None else 100
        history = known + _events_after(client, execution_arn, len(known), expected)
        error, cause = description.get("error"), description.get("cause")
        for event in reversed(history):
            details = event.get("executionFailedEventDetails") or event.get("executionAbortedEventDetails")
            if details and error is None:
                error, cause = details.get("error"), details.get("cause")
                break
        result = ExecutionResult(
            execution_arn=execution_arn,
            state_machine_arn=description["stateMachineArn"],
            name=description["name"],
            status=description["status"],
            input=_json_or_none(description.get("input")),
            output=_json_or_none(description.get("output")),
            error=error,
            cause=cause,
            started=description["startDate"],
            stopped=description.get("stopDate"),
            runs=state_runs(history, self.clock.speed),
            history=history,
            clock_speed=self.clock.speed,
        )
        if mark is not None:
            self._descriptions[execution_arn] = (mark, result)
        return replace(result, runs=list(result.runs), history=list(result.history))

    def _stepfunctions_client(self) -> Any:
        if self._stepfunctions is None:
            self._stepfunctions = boto3.client("stepfunctions")
        return self._stepfunctions

    def wait_for_execution(
        self,
        execution_arn: str,
        timeout: float = DEFAULT_EXECUTION_TIMEOUT_SECONDS,
        on_runs: Callable[[list[StateRun]], None] | None = None,
    ) -> ExecutionResult:
        """Waits (real seconds) until the execution stops and its closing history event is in.

        Feeds `on_progress` as states start and finish, and `on_runs` (if given) the state runs read at each poll.
        """
        deadline = time.monotonic() + timeout
        reported: set[tuple[int, str]] = set()
        stopped_seen: float | None = None
        read_at = -_RUNNING_REREAD_SECONDS
        while True:
            # Re-reading a history costs tens of milliseconds of CPU, taken from the states running beside it; while
            # states follow each other quickly it is read at most every _RUNNING_REREAD_SECONDS, and at once when
            # the execution stops (progress shows a moment later; what it shows is the history's).
            mark = _history_mark(execution_arn)
            if mark is not None and mark[0] == _RUNNING and time.monotonic() - read_at < _RUNNING_REREAD_SECONDS:
                time.sleep(_HISTORY_POLL_SECONDS)
                continue
            read_at = time.monotonic()
            result = self.describe_execution(execution_arn)
            self._report_progress(execution_arn, result.runs, reported)
            if on_runs is not None:
                on_runs(result.runs)
            # The engine sets the status a moment before it appends the closing event: give that event a
            # moment to land, so callers see the whole history.
            if result.status != "RUNNING":
                now = time.monotonic()
                stopped_seen = stopped_seen or now
                grace_over = now - stopped_seen > _CLOSING_EVENT_GRACE_SECONDS or now > deadline
                if _closes_execution(result.history) or grace_over:
                    return result
            elif time.monotonic() > deadline:
                raise TimeoutError(
                    f"Execution {execution_arn} still RUNNING after {timeout:.0f} s; last states: "
                    f"{', '.join(result.states_entered()[-3:]) or 'none'}. Raise the timeout or look at the job logs "
                    f"under {self.work_dir}."
                )
            time.sleep(_HISTORY_POLL_SECONDS)

    def _report_progress(self, execution_arn: str, runs: list[StateRun], reported: set[tuple[int, str]]) -> None:
        if self.on_progress is None:
            return
        for index, run in enumerate(runs):
            if (index, "entered") not in reported:
                reported.add((index, "entered"))
                self.on_progress(ProgressEvent(execution_arn, "entered", run))
            if run.status != RUNNING and (index, "exited") not in reported:
                reported.add((index, "exited"))
                self.on_progress(ProgressEvent(execution_arn, "exited", run))

    # ---- Lambda, events, data ---------------------------------------------------------------------------------

    def invoke_function(self, name: str, event: Any) -> Any:
        """Runs one of the stack's functions in-process (logical id, handler module, name or ARN) with `event`."""
        return self.lambdas.invoke(self.stack.function(name).function_name, event)

    def put_events(self, entries: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """PutEvents on the twin's default bus; returns PutEvents' result entries."""
        response = boto3.client("events").put_events(Entries=[dict(entry) for entry in entries])
        return list(response["Entries"])

    def drain_queues(self) -> list[Delivery]:
        """Delivers queued messages to their consuming functions (the event source mappings' batches)."""
        return self.router.drain_queues()

    def fire_schedules(self) -> list[Delivery]:
        """Fires the schedule rules whose period has passed on the twin's clock."""
        return self.router.fire_schedules(self.clock.now())

    def busy(self) -> bool:
        """True while a job runs, a model server starts or a Lambda runs: what `clock.skipping_idle_time` waits for."""
        return bool(_started(self._sagemaker).busy() or _started(self._lambdas).busy())

    def evaluate_alarms(self) -> list[dict[str, str]]:
        """Evaluates every CloudWatch alarm once at the clock's now; returns the state changes (see `alarm_changes`)."""
        return self._evaluate_alarms_at(self.clock.now())

    def _evaluate_alarms_at(self, moment: datetime) -> list[dict[str, str]]:
        # The services' minute of metrics first (AWS/States, AWS/SQS), then the evaluation that reads them.
        _started(self._service_metrics).publish(moment)
        return self.alarms.evaluate(moment)

    @property
    def alarm_changes(self) -> list[dict[str, str]]:
        """Every alarm state change so far, oldest first: `{"alarm", "from", "to", "time"}` (ISO-8601 UTC)."""
        return self.alarms.changes

    def upload(self, local_path: Path, bucket_logical_id: str, key: str) -> str:
        """Uploads a file into one of the stack's buckets (as S3 would, with its notifications); returns its URI."""
        bucket = self.stack.resources.get(bucket_logical_id)
        if bucket is None:
            buckets = sorted(k for k, v in self.stack.resources.items() if k.endswith("Bucket"))
            raise KeyError(f"{bucket_logical_id!r} is not a bucket of the stack; its buckets are: {buckets}")
        boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=Path(local_path).read_bytes())
        return f"s3://{bucket}/{key}"

    # ---- routing callbacks ------------------------------------------------------------------------------------

    def _start_from_rule(self, state_machine_arn: str, input_text: str) -> str:
        # A job thread's state-change event can reach a rule while close() runs: refused (the router records the
        # delivery's error), never started behind the executions close() is stopping.
        with self._rule_start_lock:
            if self._closing:
                raise RuntimeError(f"The local twin is closing: a rule did not start {state_machine_arn}")
            # EventBridge names the executions it starts with a UUID.
            response = boto3.client("stepfunctions").start_execution(
                stateMachineArn=state_machine_arn, name=str(uuid.uuid4()), input=input_text
            )
        return str(response["executionArn"])

    def _route_service_event(self, event: dict[str, Any]) -> None:
        # SageMaker state changes can come before the stack (and so the router) exists: nothing listens yet then.
        # Read once: close() sets it to None from another thread than the job's that emits here.
        router = self._router
        if router is not None:
            router.route(event)


def _started(part: Any) -> Any:
    if part is None:
        raise RuntimeError("The LocalTwin is not started: use it as a context manager or call start()")
    return part


_CLOSING_EVENT_GRACE_SECONDS = 2.0
_RUNNING_REREAD_SECONDS = 0.5
_RUNNING = str(ExecutionStatus.RUNNING)
_CLOSING_EVENT_TYPES = {"ExecutionSucceeded", "ExecutionFailed", "ExecutionAborted", "ExecutionTimedOut"}


def _events_after(client: Any, execution_arn: str, known: int, expected: int) -> list[Any]:
    """The history's events after the first `known`, oldest first: read newest first, in pages of about the
    `expected` number of new events, until event `known + 1` (events are numbered from 1 and never change)."""
    newest_first: list[Any] = []
    pages = client.get_paginator("get_execution_history").paginate(
        executionArn=execution_arn,
        reverseOrder=True,
        PaginationConfig={"PageSize": min(max(expected, 1), 1000)},
    )
    for page in pages:
        for event in page["events"]:
            if event["id"] <= known:
                return newest_first[::-1]
            newest_first.append(event)
    return newest_first[::-1]


def _closes_execution(history: list[Any]) -> bool:
    return bool(history) and history[-1].get("type") in _CLOSING_EVENT_TYPES


def _execution_name() -> str:
    return f"local-{uuid.uuid4().hex[:24]}"


def _json_or_none(text: Any) -> Any:
    if not isinstance(text, str):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text
