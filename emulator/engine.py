"""Plug the project's integrations into moto's Step Functions engine, and make it wait on the twin's clock.

moto's ASL interpreter (ported from LocalStack) builds one task object per Task state through the
factory `state_task_for`, which its preprocessor imports by name. `install_local_integrations` swaps
that factory so that:

- `arn:aws:states:::sagemaker:<action>[.sync]` runs on `LocalSageMaker` (`.sync` submits, emits
  `TaskSubmitted`, then polls the job's Describe* through the clock and fails with `States.TaskFailed`
  and the describe output as cause, as on AWS);
- `arn:aws:states:::aws-sdk:sagemaker:*` and `aws-sdk:applicationautoscaling:*` reach the local
  SageMaker backend (through moto's patched SageMaker responses) and moto's Application Auto Scaling,
  with AWS's error names (`SageMaker.ValidationException`);
- `lambda:invoke` and `sns:publish` use moto's own integrations (Lambda runs in-process through
  `LocalLambdaRunner.install`);
- anything else (`integration_refusal` says what) is refused by CreateStateMachine naming the state and the
  feature; a definition created before the installation fails its execution with `States.Runtime` and the same.

Every patch of moto is registered here, in `install_local_integrations`; the corrections that are not about
integrations live in their own modules, each saying which moto behaviour it corrects: definition checks with AWS's
messages (`emulator/asl_validation.py`), context-object times and execution names (`emulator/context_object.py`),
GetExecutionHistory's pages (`emulator/execution_history.py`), intrinsic escapes and `States.Format`
(`emulator/intrinsics.py`), JSONata and `Assign` (`emulator/jsonata_engine.py`), the per-definition syntax-tree
cache (`emulator/syntax_tree_cache.py`).

It also routes Wait states, Timestamp waits and Retry intervals through the `Clock`, and makes
`States.ALL` stop matching `States.Runtime` and `States.DataLimitExceeded`, as on AWS, so an
unsupported feature cannot be swallowed by a Catch; and a task of an execution stopped mid-state ends before
its service call instead of running on the values moto's pruned evaluation never pushed. These are moto
internals: moto is pinned exactly and `tests/emulator/test_asl_battery.py` must pass before an upgrade.
"""

from __future__ import annotations

# moto.ec2, imported below by moto's engine (its Batch integration), asks boto3 for ec2's regions in three partitions,
# each answer parsing botocore's whole ec2 model (about 1.1 s of CPU). This is where the twin first imports it, so it is
# imported here first, with boto3's answers remembered on disk for that import only (emulator/service_lookups.py).
from emulator.service_lookups import remembered_available_regions

with remembered_available_regions():
    import moto.ec2.models.availability_zones_and_regions  # noqa: F401

import importlib
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import ClientError
from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
from moto.stepfunctions.parser.asl.component.common.error_name import error_equals_decl
from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
    FailureEvent,
    FailureEventException,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import StatesErrorNameType
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.state.choice.state_choice import StateChoice
from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_factory
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import (
    ActivityResource,
    LambdaResource,
    Resource,
    ResourceCondition,
    ServiceResource,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service import StateTaskService
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk import (
    StateTaskServiceAwsSdk,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (
    StateTaskServiceCallback,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.state_task import StateTask
from moto.stepfunctions.parser.asl.component.state.exec.state_task.state_task_lambda import StateTaskLambda
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.timestamp import Timestamp
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction
from moto.stepfunctions.parser.asl.eval.environment import Environment
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.stepfunctions.parser.asl.parse import preprocessor
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

from emulator.asl_validation import install_definition_checks, map_refusal
from emulator.asl_verdicts import AcceptedDefinitions
from emulator.clock import Clock, read_time_from
from emulator.context_object import aws_timestamp, install_context_object
from emulator.engine_clients import one_client_per_service
from emulator.execution_history import install_execution_history_pages
from emulator.intrinsics import install_intrinsic_escapes
from emulator.jsonata_engine import install_jsonata
from emulator.moto_patches import MotoPatches
from emulator.sagemaker_local import SYNC_JOBS, SageMakerError, SyncJob
from emulator.syntax_tree_cache import SyntaxTreeCache

if TYPE_CHECKING:
    from emulator.lambda_local import LocalLambdaRunner
    from emulator.sagemaker_local import LocalSageMaker

ENGINE_LOGGER = "moto.stepfunctions.parser"

# Optimised integrations moto itself serves correctly offline (tests/emulator/test_asl_battery.py runs each).
# events:putEvents is not among them: moto's EventBridge would bypass the twin's own event router.
_MOTO_SERVED_INTEGRATIONS = {("lambda", "invoke"), ("sns", "publish"), ("sqs", "sendMessage")}
# aws-sdk service names of Step Functions that boto3 spells differently.
_AWS_SDK_BOTO_NAMES = {"applicationautoscaling": "application-autoscaling"}
# How Step Functions prefixes aws-sdk error names per service (`SageMaker.ValidationException`).
_AWS_SDK_ERROR_PREFIXES = {
    "sagemaker": "SageMaker",
    "applicationautoscaling": "ApplicationAutoScaling",
    "cloudwatch": "CloudWatch",
    "dynamodb": "DynamoDb",
    "s3": "S3",
    "sns": "Sns",
    "sqs": "Sqs",
}
# aws-sdk calls moto's pinned engine gets wrong, each with what it gets wrong: refused rather than half-run.
_AWS_SDK_KNOWN_BROKEN = {("s3", "getObject"): "the engine does not convert the object Body to a string"}
# How often a `.sync` task re-reads its job's Describe*, in virtual seconds. The poll also wakes up as
# soon as the job changes state, so this bounds the latency only for jobs that never report.
SYNC_POLL_SECONDS = 30.0
# Distinct definitions whose syntax trees are kept: a twin has a handful, a test session a few hundred.
_SYNTAX_TREE_CACHE_SIZE = 256
_TERMINAL_RUNTIME_ERRORS = {StatesErrorNameType.StatesRuntime, StatesErrorNameType.StatesStatesDataLimitExceeded}


@dataclass
class _Installation:
    sagemaker: LocalSageMaker
    lambdas: LocalLambdaRunner
    clock: Clock
    patches: MotoPatches = field(default_factory=MotoPatches)


_installed: _Installation | None = None
_install_lock = threading.Lock()


def _services() -> _Installation:
    if _installed is None:
        raise RuntimeError("The local integrations are not installed: call install_local_integrations() first")
    return _installed


def _pascal(action: str) -> str:
    return action[:1].upper() + action[1:]


def _step_functions_json(value: Any) -> Any:
    """A service response as Step Functions' optimised integrations return it: dates as epoch milliseconds."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return int(moment.timestamp() * 1000)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _step_functions_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_step_functions_json(item) for item in value]
    return value


def _iso_timestamps(value: Any) -> Any:
    """A boto3 response with its datetimes as ISO-8601 UTC strings, as the aws-sdk integrations return them."""
    if isinstance(value, datetime):
        return aws_timestamp(value)
    if isinstance(value, dict):
        return {key: _iso_timestamps(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_iso_timestamps(item) for item in value]
    return value


def _state_name(env: Environment) -> str:
    state = env.states.context_object.context_object_data.get("State")
    return str(state["Name"]) if state else "<unknown>"


def _failure_details(**details: Any) -> EventDetails:
    # EventDetails is a total TypedDict in moto's stubs although each event carries exactly one of its keys.
    return cast(EventDetails, details)


def _task_failed(task: StateTaskService, env: Environment, error: str, cause: str) -> FailureEvent:
    error_name = StatesErrorName.from_name(error) if error.startswith("States.") else CustomErrorName(error)
    return FailureEvent(
        env=env,
        error_name=error_name,
        event_type=HistoryEventType.TaskFailed,
        event_details=_failure_details(
            taskFailedEventDetails=TaskFailedEventDetails(
                error=error,
                cause=cause,
                resource=task._get_sfn_resource(),
                resourceType=task._get_sfn_resource_type(),
            )
        ),
    )


def _unsupported(task: StateTaskService, env: Environment, feature: str) -> FailureEventException:
    cause = (
        f"State {_state_name(env)!r} uses {feature}, which the local twin does not support. "
        "Change the state machine, or add the integration to emulator/engine.py and docs/local-twin.md."
    )
    return FailureEventException(
        failure_event=_task_failed(task, env, StatesErrorNameType.StatesRuntime.to_name(), cause)
    )


def _service_error_name(prefix: str, code: str) -> str:
    return f"{prefix}.{code if code.endswith('Exception') else code + 'Exception'}"


class _SyncJobFailed(Exception):
    """A `.sync` job ended Failed or Stopped; carries its Describe* output, which AWS puts in the cause."""

    def __init__(self, description: dict[str, Any]) -> None:
        super().__init__(json.dumps(description))
        self.description = description


class _JobPoller:
    """The `.sync` resolver: waits for the job to change (at most one poll interval), then reads its Describe*."""

    def __init__(self, services: _Installation, job: SyncJob, job_name: str) -> None:
        self._services = services
        self._job = job
        self._job_name = job_name

    def __call__(self) -> dict[str, Any] | None:
        sagemaker, job = self._services.sagemaker, self._job
        sagemaker.wait_for_job_change(job.kind, self._job_name, self._services.clock.real_seconds(SYNC_POLL_SECONDS))
        description = sagemaker.call(job.describe_action, {job.name_parameter: self._job_name})
        status = description[job.status_field]
        if status == "Completed":
            return cast(dict[str, Any], _step_functions_json(description))
        if status in ("Failed", "Stopped"):
            raise _SyncJobFailed(_step_functions_json(description))
        return None

    def stop(self) -> None:
        self._services.sagemaker.call(self._job.stop_action, {self._job.name_parameter: self._job_name})


class LocalSageMakerTask(StateTaskServiceCallback):
    """`arn:aws:states:::sagemaker:<action>[.sync]` served by `LocalSageMaker`."""

    def __init__(self) -> None:
        # moto's callback code needs a task token endpoint whenever an integration pattern runs, so the
        # token pattern is declared here too; _eval_execution still refuses '.waitForTaskToken' for SageMaker.
        patterns: set[Any] = {ResourceCondition.Sync, ResourceCondition.WaitForTaskToken}
        super().__init__(supported_integration_patterns=patterns)

    def _validate_service_integration_is_supported(self) -> None:
        # Checked when the state runs, so that the failure names the state.
        return

    def _eval_execution(self, env: Environment) -> None:
        _refuse_at_run_time(self, env)
        super()._eval_execution(env)

    def _eval_service_task(
        self, env: Environment, resource_runtime_part: Any, normalised_parameters: dict, state_credentials: Any
    ) -> None:
        response = _services().sagemaker.call(_pascal(self.resource.api_action), normalised_parameters)
        env.stack.append(_step_functions_json(response))

    def _build_sync_resolver(
        self, env: Environment, resource_runtime_part: Any, normalised_parameters: dict, state_credentials: Any
    ) -> Callable[[], Any]:
        job = SYNC_JOBS[_pascal(self.resource.api_action)]
        return _JobPoller(_services(), job, normalised_parameters[job.name_parameter])

    def _eval_sync(
        self,
        env: Environment,
        sync_resolver: Callable[[], Any] | None,
        timeout_seconds: int | None,
        callback_endpoint: Any,
        heartbeat_endpoint: Any,
    ) -> Any:
        # moto's loop sleeps 0.5 s between polls; the poller here blocks on the job instead.
        assert isinstance(sync_resolver, _JobPoller), "a .sync SageMaker task always polls its job"
        while env.is_running():
            result = sync_resolver()
            if result is not None:
                return result
        # The execution was stopped or the state timed out: like Step Functions, stop the job it started.
        sync_resolver.stop()
        return None

    def _from_error(self, env: Environment, ex: Exception) -> FailureEvent:
        if isinstance(ex, _SyncJobFailed):
            return _task_failed(self, env, StatesErrorNameType.StatesTaskFailed.to_name(), str(ex))
        if isinstance(ex, SageMakerError):
            return _task_failed(self, env, _service_error_name("SageMaker", ex.code), ex.message)
        return super()._from_error(env=env, ex=ex)


class LocalAwsSdkTask(StateTaskServiceAwsSdk):
    """`arn:aws:states:::aws-sdk:<service>:<action>` with AWS's error names and boto service names."""

    def _get_boto_service_name(self, boto_service_name: str | None = None) -> str:
        api_name = boto_service_name or self.resource.api_name
        return _AWS_SDK_BOTO_NAMES.get(api_name, super()._get_boto_service_name(api_name))

    def _eval_execution(self, env: Environment) -> None:
        _refuse_at_run_time(self, env)
        super()._eval_execution(env)

    def _eval_service_task(
        self, env: Environment, resource_runtime_part: Any, normalised_parameters: dict, state_credentials: Any
    ) -> None:
        super()._eval_service_task(env, resource_runtime_part, normalised_parameters, state_credentials)
        # botocore parses timestamps into datetimes, which the execution's JSON output cannot hold.
        env.stack.append(_iso_timestamps(env.stack.pop()))

    def _from_error(self, env: Environment, ex: Exception) -> FailureEvent:
        if isinstance(ex, ClientError):
            prefix = _AWS_SDK_ERROR_PREFIXES.get(self.resource.api_name.lower(), _pascal(self.resource.api_name))
            error = _service_error_name(prefix, ex.response["Error"]["Code"])
            metadata = ex.response.get("ResponseMetadata", {})
            cause = (
                f"{ex.response['Error'].get('Message', '')} (Service: {prefix}, "
                f"Status Code: {metadata.get('HTTPStatusCode', 400)}, Request ID: {metadata.get('RequestId', '')})"
            )
            return _task_failed(self, env, error, cause)
        return super()._from_error(env=env, ex=ex)


class UnsupportedTask(StateTaskServiceCallback):
    """A Task whose resource the twin cannot run: fails the execution, naming the state and the resource.

    CreateStateMachine refuses such a definition already (`task_refusal`); this stays for a definition created
    before the integrations were installed.
    """

    def __init__(self) -> None:
        super().__init__(supported_integration_patterns=set())

    def _validate_service_integration_is_supported(self) -> None:
        return

    def _get_sfn_resource_type(self) -> str:
        return getattr(getattr(self, "resource", None), "service_name", "unsupported")

    def _eval_execution(self, env: Environment) -> None:
        _refuse_at_run_time(self, env)
        raise AssertionError(f"task_refusal accepted {self.resource.resource_arn} but no task serves it")

    def _eval_service_task(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("an unsupported task never calls a service")


def integration_refusal(resource: Resource) -> str | None:
    """What in a Task's resource the twin cannot run (the feature, for a message), or None when it runs it."""
    arn, condition = resource.resource_arn, getattr(resource, "condition", None)
    if isinstance(resource, LambdaResource):
        return None
    if isinstance(resource, ActivityResource):
        return f"the activity {arn} (no activity workers run locally)"
    if not isinstance(resource, ServiceResource):
        return f"the resource {arn!r}"
    if resource.service_name == "sagemaker":
        action = _pascal(resource.api_action)
        if not _services().sagemaker.supports(action):
            return f"the SageMaker action {action!r} ({arn})"
        if condition == ResourceCondition.Sync and action not in SYNC_JOBS:
            return f"'.sync' on {action!r} ({arn})"
        return None if condition in (None, ResourceCondition.Sync) else f"the '.{condition}' pattern ({arn})"
    if resource.service_name == "aws-sdk":
        service, action = resource.api_name, resource.api_action
        if condition is not None:
            return f"the '.{condition}' pattern ({arn})"
        if service == "sagemaker" and not _services().sagemaker.supports(_pascal(action)):
            return f"the SageMaker API {_pascal(action)!r} ({arn})"
        broken = _AWS_SDK_KNOWN_BROKEN.get((service, action))
        return None if broken is None else f"{arn} ({broken})"
    if (resource.service_name, resource.api_action) in _MOTO_SERVED_INTEGRATIONS:
        return None if condition is None else f"the '.{condition}' pattern of {arn}"
    return f"the integration {arn}"


def _refuse_at_run_time(task: StateTaskService, env: Environment) -> None:
    feature = integration_refusal(task.resource)
    if feature is not None:
        raise _unsupported(task, env, feature)


def task_refusal(state_name: str, path: str, state: dict[str, Any]) -> str | None:
    """CreateStateMachine's check of a Task state's `Resource` (emulator/asl_validation.py runs it)."""
    resource_arn = state.get("Resource") if state.get("Type") == "Task" else None
    if not isinstance(resource_arn, str):
        return None
    try:
        resource = Resource.from_resource_arn(resource_arn)
    except Exception:
        # Not an ARN at all: moto's parser, which runs next, reports the definition.
        return None
    return f"the resource {resource_arn!r}" if resource is None else integration_refusal(resource)


def _local_state_task_for(resource: Resource) -> StateTask:
    if integration_refusal(resource) is not None:
        return UnsupportedTask()
    if isinstance(resource, ServiceResource) and resource.service_name == "sagemaker":
        return LocalSageMakerTask()
    if isinstance(resource, ServiceResource) and resource.service_name == "aws-sdk":
        return LocalAwsSdkTask()
    return state_task_factory.state_task_for(resource)


def _any_choice_matches(choice: StateChoice, env: Environment) -> bool:
    """Whether one of the Choice state's rules matches its input (rules are pure, so evaluating them is safe)."""
    for rule in choice.choices_decl.rules:
        rule.eval(env)
        if env.stack.pop() is True:
            return True
    return False


class _ExecutionStopped(Exception):
    """The execution was stopped before its task called its service: the call must not be made."""


def _tasks_stop_with_their_execution(patches: MotoPatches) -> None:
    """A task whose execution is stopped mid-state ends quietly instead of running on half-evaluated values.

    moto prunes each component's `eval` once the execution is stopped, but a task's `_eval_execution` still pops
    the values those components would have pushed: a stop that lands inside a task pops the state's input where
    the resource's region belongs ("'dict' object has no attribute 'region'"), or calls the service with the
    input as parameters. So a stopped task stops, before its service call, and an error raised only because
    parts of it were pruned is not recorded against an execution that is already aborted. A running execution's
    errors are untouched: they fail the state (an internal one as States.Runtime, which no States.ALL catches).
    """
    for task_class in (StateTaskService, StateTaskLambda):
        original_execution = task_class.__dict__["_eval_execution"]

        def execution_unless_stopped(self: StateTask, env: Environment, _original: Any = original_execution) -> None:
            if env.is_running():
                try:
                    _original(self, env)
                    return
                except Exception:
                    if env.is_running():
                        raise
            # The state that waits for this task pops its result even when stopped: leave it the input, unchanged.
            env.stack.append(env.states.get_input())

        patches.replace(task_class, "_eval_execution", execution_unless_stopped)

    original_before = StateTaskService._before_eval_execution

    def before_service_call(self: StateTaskService, env: Environment, *args: Any, **kwargs: Any) -> None:
        # The last moment before the service call; the parameters were evaluated before it, so if the execution
        # is still running here they are whole.
        if not env.is_running():
            raise _ExecutionStopped()
        original_before(self, env, *args, **kwargs)

    patches.replace(StateTaskService, "_before_eval_execution", before_service_call)


# moto's Step Functions modules that stamp times (execution start and stop dates, history event timestamps, a
# state's EnteredTime, map runs, versions): on the twin's clock, as the Lambdas and the alarms are.
_MODULES_STAMPING_TIMES = (
    "moto.stepfunctions.parser.models",
    "moto.stepfunctions.parser.backend.execution",
    "moto.stepfunctions.parser.backend.state_machine",
    "moto.stepfunctions.parser.backend.alias",
    "moto.stepfunctions.parser.backend.activity",
    "moto.stepfunctions.parser.asl.eval.event.event_manager",
    "moto.stepfunctions.parser.asl.component.state.state",
    "moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor.map_run_record",
    "moto.stepfunctions.parser.asl.component.state.exec.state_parallel.branches_decl",
)


class _ClockTime:
    """Stands in for the `time` module inside moto's retrier so that Retry intervals use the clock."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def sleep(self, seconds: float) -> None:
        self._clock.sleep(seconds)


def install_local_integrations(*, sagemaker: LocalSageMaker, lambdas: LocalLambdaRunner, clock: Clock) -> None:
    """Plug the local SageMaker, the in-process Lambda runner and the clock into moto's engine.

    Call inside an active `moto.mock_aws(...)`; undo with `uninstall_local_integrations()`. The SageMaker backend
    and the Lambda runner answer moto's own APIs once their owner (the twin) has installed them.
    """
    global _installed
    with _install_lock:
        if _installed is not None:
            raise RuntimeError("Local integrations are already installed: uninstall them before installing again")
        installation = _Installation(sagemaker=sagemaker, lambdas=lambdas, clock=clock)
        patches = installation.patches

        patches.replace(preprocessor, "state_task_for", _local_state_task_for)
        syntax_trees = SyntaxTreeCache(_SYNTAX_TREE_CACHE_SIZE)
        patches.replace(AmazonStateLanguageParser, "parse", staticmethod(syntax_trees.parse))

        def wait_interval(self: WaitFunction, env: Environment, wait_seconds: int) -> None:
            if wait_seconds > 0:
                # program_state_event is set when the execution stops, which must interrupt the wait.
                clock.wait(env.program_state_event, wait_seconds)

        patches.replace(WaitFunction, "_wait_interval", wait_interval)

        def timestamp_wait_seconds(self: Timestamp, env: Environment) -> int:
            self.string.eval(env=env)
            timestamp_text: str = env.stack.pop()
            timestamp = self._from_timestamp_string(timestamp=timestamp_text)
            if timestamp is None:
                raise FailureEventException(self._create_failure_event(env, timestamp_text))
            # The ASL timestamp format ends in Z: it is UTC, compared here with the twin's virtual now.
            return int((timestamp.replace(tzinfo=UTC) - clock.now()).total_seconds())

        patches.replace(Timestamp, "_get_wait_seconds", timestamp_wait_seconds)
        patches.replace(retrier_decl, "time", _ClockTime(clock))
        for module_name in _MODULES_STAMPING_TIMES:
            read_time_from(clock, importlib.import_module(module_name), patches)
        one_client_per_service(patches)

        original_error_equals = error_equals_decl.ErrorEqualsDecl._eval_body

        def error_equals_as_on_aws(self: Any, env: Environment) -> None:
            error_name = env.stack[-1]
            terminal = isinstance(error_name, StatesErrorName) and error_name.typ in _TERMINAL_RUNTIME_ERRORS
            if terminal and error_name not in self.error_names:
                env.stack.pop()
                env.stack.append(False)
                return
            original_error_equals(self, env)

        patches.replace(error_equals_decl.ErrorEqualsDecl, "_eval_body", error_equals_as_on_aws)

        original_choice = StateChoice._eval_state

        def choice_fails_as_on_aws(self: StateChoice, env: Environment) -> None:
            if self.default_state is None and not _any_choice_matches(self, env):
                # moto raises a bare RuntimeError (States.Runtime); AWS fails with States.NoChoiceMatched.
                raise FailureEventException(
                    failure_event=FailureEvent(
                        env=env,
                        error_name=StatesErrorName(typ=StatesErrorNameType.StatesNoChoiceMatched),
                        event_type=HistoryEventType.TaskFailed,
                        event_details=_failure_details(
                            taskFailedEventDetails=TaskFailedEventDetails(
                                error=StatesErrorNameType.StatesNoChoiceMatched.to_name(),
                                cause=f"No Matches! Choice state {self.name!r} has no rule matching its input "
                                "and no Default.",
                            )
                        ),
                    )
                )
            original_choice(self, env)

        patches.replace(StateChoice, "_eval_state", choice_fails_as_on_aws)
        _tasks_stop_with_their_execution(patches)
        install_context_object(patches)
        install_execution_history_pages(patches)
        install_intrinsic_escapes(patches)
        install_jsonata(patches, clock)
        install_definition_checks(patches, [task_refusal, map_refusal], AcceptedDefinitions(), syntax_trees.warm)

        engine_logger = logging.getLogger(ENGINE_LOGGER)
        previous_level = engine_logger.level
        # moto logs every handled task failure at ERROR with a huge repr; the history has the facts.
        engine_logger.setLevel(logging.CRITICAL)
        patches.on_undo(lambda: engine_logger.setLevel(previous_level))
        _installed = installation


def uninstall_local_integrations() -> None:
    """Restore moto's engine as it was; a no-op when nothing is installed."""
    global _installed
    with _install_lock:
        if _installed is None:
            return
        _installed.patches.undo()
        _installed = None
