"""`LocalSageMaker`: the one SageMaker backend of the twin, for ASL tasks and for plain boto3 calls alike.

Jobs run the `ml/` scripts as child processes (see `jobs.py`), tuning searches with `tuning.py`,
endpoints serve models from `serving.py` child processes on 127.0.0.1, and the model registry keeps
packages with their approval status. `call(action, params)` is the API by action name
(`CreateTrainingJob`, ...), with SageMaker's request and Describe* shapes; `install()` makes moto's
SageMaker and SageMaker Runtime responses answer from here, so a Lambda handler's
`boto3.client("sagemaker").describe_endpoint(...)` and an ASL `aws-sdk:sagemaker:describeEndpoint` see
the same state.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import random
import re
import shutil
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
from moto.core.exceptions import ServiceException
from moto.sagemaker.responses import SageMakerResponse
from moto.sagemakerruntime.responses import SageMakerRuntimeResponse

from emulator.clock import Clock
from emulator.sagemaker_local.deployment_config import check_deployment_config
from emulator.sagemaker_local.endpoints import ModelServer, ModelServerError
from emulator.sagemaker_local.errors import SageMakerError, already_exists, not_found, validation_error
from emulator.sagemaker_local.jobs import JobRecord, ProcessingRunner, TrainingRunner, TransformRunner
from emulator.sagemaker_local.s3io import S3Stager, extract_tarball
from emulator.sagemaker_local.tuning import Observation, ParameterSpace, strategy_for

DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT = "123456789012"
# Virtual seconds an endpoint stays Creating/Updating after its model server answers /ping: long enough
# for a Wait/Describe/Choice loop in the ASL to see the transition, as it would on AWS (minutes there).
ENDPOINT_TRANSITION_SECONDS = 120.0


@dataclass(frozen=True)
class SyncJob:
    """How a `.sync` task follows a job: its Describe* and Stop* actions, name parameter and status field."""

    kind: str
    describe_action: str
    stop_action: str
    name_parameter: str
    status_field: str


SYNC_JOBS: dict[str, SyncJob] = {
    "CreateTrainingJob": SyncJob(
        "training", "DescribeTrainingJob", "StopTrainingJob", "TrainingJobName", "TrainingJobStatus"
    ),
    "CreateProcessingJob": SyncJob(
        "processing", "DescribeProcessingJob", "StopProcessingJob", "ProcessingJobName", "ProcessingJobStatus"
    ),
    "CreateTransformJob": SyncJob(
        "transform", "DescribeTransformJob", "StopTransformJob", "TransformJobName", "TransformJobStatus"
    ),
    "CreateHyperParameterTuningJob": SyncJob(
        "tuning",
        "DescribeHyperParameterTuningJob",
        "StopHyperParameterTuningJob",
        "HyperParameterTuningJobName",
        "HyperParameterTuningJobStatus",
    ),
}
_TERMINAL_JOB_STATUSES = {"Completed", "Failed", "Stopped"}
_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_TUNING_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}$")
_APPROVAL_STATUSES = {"Approved", "Rejected", "PendingManualApproval"}


def _snake(action: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", action).lower()


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()
    raise TypeError(f"Cannot serialise {type(value).__name__} in a SageMaker response")


def _restorer(owner: type, attribute: str) -> Callable[[], None]:
    """Undo for patching `owner.attribute`: put the original back, or remove an attribute that was added."""
    original = owner.__dict__.get(attribute)

    def restore() -> None:
        if original is None:
            delattr(owner, attribute)
        else:
            setattr(owner, attribute, original)

    return restore


def _paginate(items: list[dict[str, Any]], params: dict[str, Any], key: str) -> dict[str, Any]:
    start = int(params.get("NextToken") or 0)
    size = int(params.get("MaxResults") or 100)
    page = items[start : start + size]
    result: dict[str, Any] = {key: page}
    if start + size < len(items):
        result["NextToken"] = str(start + size)
    return result


def _sorted(items: list[dict[str, Any]], params: dict[str, Any], name_key: str) -> list[dict[str, Any]]:
    sort_key = {"Name": name_key}.get(params.get("SortBy") or "CreationTime", "CreationTime")
    return sorted(
        items, key=lambda item: item.get(sort_key) or "", reverse=params.get("SortOrder", "Descending") == "Descending"
    )


class _ServiceError(ServiceException):
    """A SageMaker error for moto to serialise.

    Defined outside moto's package on purpose: moto then takes the error model of the service that answers.
    """


@dataclass
class _TuningProgress:
    """What a tuning job launched and learned, kept beside its Describe* record."""

    trainings: list[str] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)


@dataclass
class _Endpoint:
    description: dict[str, Any]
    servers: dict[str, ModelServer]
    generation: int = 0
    # The DataCaptureConfig of the endpoint config now serving, as given to CreateEndpointConfig.
    capture: dict[str, Any] | None = None


class LocalSageMaker:
    """The local SageMaker: see the module docstring. `close()` stops endpoint servers and kills running jobs.

    A training job gets `cpus_per_job` threads (`SM_NUM_CPUS`, `OMP_NUM_THREADS`) when it is set; by default a
    lone training gets every core and a tuning job's parallel trainings share them, as separate instances would.
    """

    def __init__(
        self,
        work_dir: Path,
        clock: Clock,
        max_parallel: int | None = None,
        events: Callable[[dict[str, Any]], None] | None = None,
        region: str = DEFAULT_REGION,
        account_id: str = DEFAULT_ACCOUNT,
        endpoint_transition_seconds: float = ENDPOINT_TRANSITION_SECONDS,
        cpus_per_job: int | None = None,
    ) -> None:
        if cpus_per_job is not None and cpus_per_job < 1:
            raise ValueError(f"cpus_per_job must be at least 1 (or None to share the cores), got {cpus_per_job!r}")
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self.max_parallel = max_parallel or os.cpu_count() or 1
        self.region = region
        self.account_id = account_id
        self._events = events
        self.endpoint_transition_seconds = endpoint_transition_seconds
        self.cpus_per_job = cpus_per_job
        self._lock = threading.RLock()
        self._jobs: dict[str, dict[str, JobRecord]] = {kind.kind: {} for kind in SYNC_JOBS.values()}
        self._models: dict[str, dict[str, Any]] = {}
        self._endpoint_configs: dict[str, dict[str, Any]] = {}
        self._endpoints: dict[str, _Endpoint] = {}
        self._tuning_progress: dict[str, _TuningProgress] = {}
        self._package_groups: dict[str, dict[str, Any]] = {}
        self._packages: dict[str, dict[str, Any]] = {}
        self._tags: dict[str, list[dict[str, str]]] = {}
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._stager: S3Stager | None = None
        self._restore: list[Callable[[], None]] = []

    # ---- API dispatch -------------------------------------------------------------------------------------------

    @property
    def operations(self) -> list[str]:
        """The SageMaker actions this backend serves, by API name."""
        return sorted(name[len("_op_") :] for name in dir(self) if name.startswith("_op_"))

    def supports(self, action: str) -> bool:
        return hasattr(self, f"_op_{action}")

    def call(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        """Run the SageMaker API `action` (e.g. `CreateTrainingJob`) with its request `params`.

        Raises `SageMakerError` with AWS's error code when SageMaker would refuse the request.
        """
        operation = getattr(self, f"_op_{action}", None)
        if operation is None:
            raise SageMakerError("UnknownOperationException", f"The local SageMaker does not implement {action}")
        with self._lock:
            if self._closed:
                raise SageMakerError("ServiceUnavailable", "The local SageMaker is closed")
        result: dict[str, Any] = operation(copy.deepcopy(params))
        return copy.deepcopy(result)

    def _arn(self, resource: str, name: str) -> str:
        # SageMaker ARNs carry resource names in lower case.
        return f"arn:aws:sagemaker:{self.region}:{self.account_id}:{resource}/{name.lower()}"

    @property
    def stager(self) -> S3Stager:
        if self._stager is None:
            self._stager = S3Stager(self.region)
        return self._stager

    def _record_tags(self, arn: str, tags: list[dict[str, str]] | None) -> None:
        if tags:
            self._op_AddTags({"ResourceArn": arn, "Tags": tags})

    def _emit(self, detail_type: str, resources: list[str], detail: dict[str, Any]) -> None:
        if self._events is None:
            return
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": detail_type,
            "source": "aws.sagemaker",
            "account": self.account_id,
            "time": self.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self.region,
            "resources": resources,
            "detail": json.loads(
                json.dumps(detail, default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v))
            ),
        }
        self._events(event)

    @staticmethod
    def _check_name(name: Any, what: str, pattern: re.Pattern[str] = _NAME_PATTERN) -> str:
        if not isinstance(name, str) or not pattern.match(name):
            raise validation_error(f"{what} {name!r} must match {pattern.pattern}")
        return name

    # ---- jobs ---------------------------------------------------------------------------------------------------

    def _job(self, kind: str, name: str, label: str) -> JobRecord:
        with self._lock:
            record = self._jobs[kind].get(name)
        if record is None:
            raise not_found(label, name)
        return record

    def _new_job(self, kind: str, name: str, label: str, description: dict[str, Any]) -> JobRecord:
        with self._lock:
            if name in self._jobs[kind]:
                raise already_exists(label, name)
            record = JobRecord(kind, description)
            self._jobs[kind][name] = record
        return record

    def _updater(
        self, record: JobRecord, status_field: str, on_terminal: Callable[[], None] | None = None
    ) -> Callable[..., None]:
        def update(**fields: Any) -> None:
            with self._lock:
                record.description.update(fields)
                record.description["LastModifiedTime"] = self.clock.now()
                terminal = record.description.get(status_field) in _TERMINAL_JOB_STATUSES
            if terminal:
                if on_terminal is not None:
                    on_terminal()
                record.done.set()

        return update

    def _start_thread(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def wait_for_job_change(self, kind: str, name: str, timeout: float) -> None:
        """Block until the job reaches a terminal status, or `timeout` real seconds pass."""
        with self._lock:
            record = self._jobs[kind].get(name)
        if record is not None:
            record.done.wait(timeout)

    def _cpus_per_training(self, parallel: int) -> int:
        if self.cpus_per_job is not None:
            return self.cpus_per_job
        return max(1, (os.cpu_count() or 1) // max(1, parallel))

    def _training_description(self, params: dict[str, Any], tuning_arn: str | None = None) -> dict[str, Any]:
        name = self._check_name(params.get("TrainingJobName"), "TrainingJobName")
        for required in ("AlgorithmSpecification", "OutputDataConfig", "ResourceConfig", "RoleArn"):
            if required not in params:
                raise validation_error(f"CreateTrainingJob {name}: {required} is required")
        now = self.clock.now()
        description = {
            **{key: value for key, value in params.items() if key != "Tags"},
            "TrainingJobArn": self._arn("training-job", name),
            "HyperParameters": {key: str(value) for key, value in params.get("HyperParameters", {}).items()},
            "TrainingJobStatus": "InProgress",
            "SecondaryStatus": "Starting",
            "CreationTime": now,
            "LastModifiedTime": now,
            "EnableNetworkIsolation": bool(params.get("EnableNetworkIsolation", False)),
            "EnableInterContainerTrafficEncryption": bool(params.get("EnableInterContainerTrafficEncryption", False)),
            "EnableManagedSpotTraining": bool(params.get("EnableManagedSpotTraining", False)),
        }
        if tuning_arn:
            description["TuningJobArn"] = tuning_arn
        return description

    def _run_training(self, record: JobRecord, cpus: int) -> None:
        def announce() -> None:
            self._emit(
                "SageMaker Training Job State Change", [record.description["TrainingJobArn"]], record.description
            )

        update = self._updater(record, "TrainingJobStatus", announce)
        self._guarded(
            record,
            "TrainingJobStatus",
            update,
            lambda: TrainingRunner(self.clock, self.stager, self.work_dir).run(record, update, cpus),
        )

    def _guarded(
        self, record: JobRecord, status_field: str, update: Callable[..., None], run: Callable[[], None]
    ) -> None:
        """Run a job; whatever goes wrong in the twin itself still ends the job, else a `.sync` task waits forever."""
        try:
            run()
        except Exception as error:
            update(
                **{
                    status_field: "Failed",
                    "FailureReason": f"InternalServerError: {type(error).__name__}: {error}"[:1024],
                }
            )

    def _op_CreateTrainingJob(self, params: dict[str, Any]) -> dict[str, Any]:
        description = self._training_description(params)
        record = self._new_job("training", description["TrainingJobName"], "training job", description)
        self._record_tags(description["TrainingJobArn"], params.get("Tags"))
        self._start_thread(
            lambda: self._run_training(record, self._cpus_per_training(1)), description["TrainingJobName"]
        )
        return {"TrainingJobArn": description["TrainingJobArn"]}

    def _op_DescribeTrainingJob(self, params: dict[str, Any]) -> dict[str, Any]:
        record = self._job("training", params["TrainingJobName"], "training job")
        with self._lock:
            return copy.deepcopy(record.description)

    def _op_StopTrainingJob(self, params: dict[str, Any]) -> dict[str, Any]:
        self._stop(self._job("training", params["TrainingJobName"], "training job"), "TrainingJobStatus")
        return {}

    def _stop(self, record: JobRecord, status_field: str) -> None:
        with self._lock:
            if record.description[status_field] in _TERMINAL_JOB_STATUSES:
                return
            record.stop_requested = True
            record.description[status_field] = "Stopping"
        if record.container is not None:
            record.container.kill()

    def _job_summaries(
        self, kind: str, params: dict[str, Any], fields: list[str], status_field: str, name_key: str, key: str
    ) -> dict[str, Any]:
        with self._lock:
            descriptions = [copy.deepcopy(r.description) for r in self._jobs[kind].values()]
        if params.get("StatusEquals"):
            descriptions = [d for d in descriptions if d[status_field] == params["StatusEquals"]]
        if params.get("NameContains"):
            descriptions = [d for d in descriptions if params["NameContains"] in d[name_key]]
        summaries = [{field: d[field] for field in fields if field in d} for d in descriptions]
        return _paginate(_sorted(summaries, params, name_key), params, key)

    def _op_ListTrainingJobs(self, params: dict[str, Any]) -> dict[str, Any]:
        fields = [
            "TrainingJobName",
            "TrainingJobArn",
            "CreationTime",
            "TrainingEndTime",
            "LastModifiedTime",
            "TrainingJobStatus",
        ]
        return self._job_summaries(
            "training", params, fields, "TrainingJobStatus", "TrainingJobName", "TrainingJobSummaries"
        )

    def _op_CreateProcessingJob(self, params: dict[str, Any]) -> dict[str, Any]:
        name = self._check_name(params.get("ProcessingJobName"), "ProcessingJobName")
        for required in ("AppSpecification", "ProcessingResources", "RoleArn"):
            if required not in params:
                raise validation_error(f"CreateProcessingJob {name}: {required} is required")
        now = self.clock.now()
        description = {
            **{key: value for key, value in params.items() if key != "Tags"},
            "ProcessingJobArn": self._arn("processing-job", name),
            "ProcessingJobStatus": "InProgress",
            "CreationTime": now,
            "LastModifiedTime": now,
        }
        record = self._new_job("processing", name, "processing job", description)
        self._record_tags(description["ProcessingJobArn"], params.get("Tags"))
        runner = ProcessingRunner(self.clock, self.stager, self.work_dir)
        update = self._updater(record, "ProcessingJobStatus")
        self._start_thread(
            lambda: self._guarded(record, "ProcessingJobStatus", update, lambda: runner.run(record, update)), name
        )
        return {"ProcessingJobArn": description["ProcessingJobArn"]}

    def _op_DescribeProcessingJob(self, params: dict[str, Any]) -> dict[str, Any]:
        record = self._job("processing", params["ProcessingJobName"], "processing job")
        with self._lock:
            return copy.deepcopy(record.description)

    def _op_StopProcessingJob(self, params: dict[str, Any]) -> dict[str, Any]:
        self._stop(self._job("processing", params["ProcessingJobName"], "processing job"), "ProcessingJobStatus")
        return {}

    def _op_ListProcessingJobs(self, params: dict[str, Any]) -> dict[str, Any]:
        fields = [
            "ProcessingJobName",
            "ProcessingJobArn",
            "CreationTime",
            "ProcessingEndTime",
            "LastModifiedTime",
            "ProcessingJobStatus",
            "FailureReason",
        ]
        return self._job_summaries(
            "processing", params, fields, "ProcessingJobStatus", "ProcessingJobName", "ProcessingJobSummaries"
        )

    def _op_CreateTransformJob(self, params: dict[str, Any]) -> dict[str, Any]:
        name = self._check_name(params.get("TransformJobName"), "TransformJobName")
        model = self._model(params.get("ModelName", ""))
        now = self.clock.now()
        description = {
            **{key: value for key, value in params.items() if key != "Tags"},
            "TransformJobArn": self._arn("transform-job", name),
            "TransformJobStatus": "InProgress",
            "CreationTime": now,
            "LastModifiedTime": now,
        }
        record = self._new_job("transform", name, "transform job", description)
        self._record_tags(description["TransformJobArn"], params.get("Tags"))

        update = self._updater(record, "TransformJobStatus")

        def run() -> None:
            try:
                model_dir, environment = self._extract_model(model, self.work_dir / "transform" / f"{name}-model")
            except (OSError, ValueError, SageMakerError) as error:
                update(
                    TransformJobStatus="Failed",
                    FailureReason=f"ClientError: {error}",
                    TransformEndTime=self.clock.now(),
                )
                return
            TransformRunner(self.clock, self.stager, self.work_dir).run(record, update, model_dir, environment)

        self._start_thread(lambda: self._guarded(record, "TransformJobStatus", update, run), name)
        return {"TransformJobArn": description["TransformJobArn"]}

    def _op_DescribeTransformJob(self, params: dict[str, Any]) -> dict[str, Any]:
        record = self._job("transform", params["TransformJobName"], "transform job")
        with self._lock:
            return copy.deepcopy(record.description)

    def _op_StopTransformJob(self, params: dict[str, Any]) -> dict[str, Any]:
        self._stop(self._job("transform", params["TransformJobName"], "transform job"), "TransformJobStatus")
        return {}

    # ---- tuning -------------------------------------------------------------------------------------------------

    def _op_CreateHyperParameterTuningJob(self, params: dict[str, Any]) -> dict[str, Any]:
        name = self._check_name(
            params.get("HyperParameterTuningJobName"), "HyperParameterTuningJobName", _TUNING_NAME_PATTERN
        )
        config = params.get("HyperParameterTuningJobConfig") or {}
        definition = params.get("TrainingJobDefinition")
        if not definition:
            raise validation_error(
                f"Tuning job {name}: only TrainingJobDefinition (not TrainingJobDefinitions) runs locally"
            )
        objective = config.get("HyperParameterTuningJobObjective") or {}
        metric_names = [m["Name"] for m in definition.get("AlgorithmSpecification", {}).get("MetricDefinitions", [])]
        if objective.get("MetricName") not in metric_names:
            raise validation_error(
                f"Tuning job {name}: objective metric {objective.get('MetricName')!r} is not among the "
                f"MetricDefinitions {metric_names}"
            )
        space = ParameterSpace(config.get("ParameterRanges") or {})
        strategy = strategy_for(config, space, seed=sum(name.encode()))
        seed_observations = self._warm_start_observations(params.get("WarmStartConfig"))
        now = self.clock.now()
        description = {
            **{key: value for key, value in params.items() if key != "Tags"},
            "HyperParameterTuningJobArn": self._arn("hyper-parameter-tuning-job", name),
            "HyperParameterTuningJobStatus": "InProgress",
            "CreationTime": now,
            "LastModifiedTime": now,
            "TrainingJobStatusCounters": {
                "Completed": 0,
                "InProgress": 0,
                "RetryableError": 0,
                "NonRetryableError": 0,
                "Stopped": 0,
            },
            "ObjectiveStatusCounters": {"Succeeded": 0, "Pending": 0, "Failed": 0},
        }
        record = self._new_job("tuning", name, "hyper-parameter tuning job", description)
        with self._lock:
            self._tuning_progress[name] = _TuningProgress()
        self._record_tags(description["HyperParameterTuningJobArn"], params.get("Tags"))
        update = self._updater(record, "HyperParameterTuningJobStatus")
        self._start_thread(
            lambda: self._guarded(
                record,
                "HyperParameterTuningJobStatus",
                update,
                lambda: self._run_tuning(record, strategy, seed_observations),
            ),
            name,
        )
        return {"HyperParameterTuningJobArn": description["HyperParameterTuningJobArn"]}

    def _warm_start_observations(self, warm_start: dict[str, Any] | None) -> list[Observation]:
        if not warm_start:
            return []
        observations = []
        for parent in warm_start.get("ParentHyperParameterTuningJobs", []):
            parent_name = parent["HyperParameterTuningJobName"]
            # Raises SageMaker's ValidationException for a parent this twin never ran.
            self._job("tuning", parent_name, "parent hyper-parameter tuning job")
            with self._lock:
                observations.extend(self._tuning_progress[parent_name].observations)
        return observations

    def _run_tuning(self, record: JobRecord, strategy: Any, seed_observations: list[Observation]) -> None:
        description = record.description
        name = description["HyperParameterTuningJobName"]
        config = description["HyperParameterTuningJobConfig"]
        objective = config["HyperParameterTuningJobObjective"]
        maximize = objective["Type"] == "Maximize"
        limits = config.get("ResourceLimits") or {}
        max_jobs = int(limits.get("MaxNumberOfTrainingJobs") or 10**6)
        parallel = max(1, min(int(limits.get("MaxParallelTrainingJobs") or 1), self.max_parallel))
        cpus = self._cpus_per_training(parallel)
        definition = description["TrainingJobDefinition"]
        observations = list(seed_observations)
        with self._lock:
            progress = self._tuning_progress[name]
        pending: dict[Future[JobRecord], dict[str, str]] = {}
        best: tuple[float, JobRecord] | None = None
        update = self._updater(record, "HyperParameterTuningJobStatus")

        def counters_changed() -> None:
            with self._lock:
                training = [self._jobs["training"][n] for n in progress.trainings]
                statuses = [t.description["TrainingJobStatus"] for t in training]
                succeeded = sum(1 for t in training if self._objective_value(t, objective["MetricName"]) is not None)
                description["TrainingJobStatusCounters"] = {
                    "Completed": statuses.count("Completed"),
                    "InProgress": statuses.count("InProgress") + statuses.count("Stopping"),
                    "RetryableError": 0,
                    "NonRetryableError": statuses.count("Failed"),
                    "Stopped": statuses.count("Stopped"),
                }
                finished = sum(1 for s in statuses if s in _TERMINAL_JOB_STATUSES)
                description["ObjectiveStatusCounters"] = {
                    "Succeeded": succeeded,
                    "Pending": len(statuses) - finished,
                    "Failed": finished - succeeded,
                }
                description["LastModifiedTime"] = self.clock.now()

        def train(index: int, hyperparameters: dict[str, str]) -> JobRecord:
            training_name = f"{name}-{index:03d}-{uuid.uuid4().hex[:8]}"
            params = {
                key: copy.deepcopy(value)
                for key, value in definition.items()
                if key not in ("StaticHyperParameters", "HyperParameterRanges", "DefinitionName", "TuningObjective")
            }
            params["TrainingJobName"] = training_name
            params["HyperParameters"] = {**definition.get("StaticHyperParameters", {}), **hyperparameters}
            training = self._new_job(
                "training",
                training_name,
                "training job",
                self._training_description(params, description["HyperParameterTuningJobArn"]),
            )
            with self._lock:
                progress.trainings.append(training_name)
            counters_changed()
            if record.stop_requested:
                self._updater(training, "TrainingJobStatus")(
                    TrainingJobStatus="Stopped", TrainingEndTime=self.clock.now()
                )
            else:
                self._run_training(training, cpus)
            counters_changed()
            return training

        launched = 0
        with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix=name) as pool:
            exhausted = False
            while pending or (launched < max_jobs and not exhausted and not record.stop_requested):
                while len(pending) < parallel and launched < max_jobs and not exhausted and not record.stop_requested:
                    suggestion = strategy.suggest(observations, list(pending.values()))
                    if suggestion is None:
                        exhausted = True
                        break
                    launched += 1
                    pending[pool.submit(train, launched, suggestion)] = suggestion
                if not pending:
                    break
                finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for future in finished:
                    hyperparameters = pending.pop(future)
                    training = future.result()
                    value = self._objective_value(training, objective["MetricName"])
                    if value is None:
                        continue
                    observation = Observation(hyperparameters, value)
                    observations.append(observation)
                    with self._lock:
                        progress.observations.append(observation)
                    if best is None or (value > best[0] if maximize else value < best[0]):
                        best = (value, training)
        fields: dict[str, Any] = {"HyperParameterTuningEndTime": self.clock.now()}
        if best is not None:
            fields["BestTrainingJob"] = self._training_summary(best[1], objective, best[0])
        if record.stop_requested:
            fields["HyperParameterTuningJobStatus"] = "Stopped"
        elif best is None:
            fields["HyperParameterTuningJobStatus"] = "Failed"
            fields["FailureReason"] = f"All {launched} training jobs failed or reported no {objective['MetricName']!r}"
        else:
            fields["HyperParameterTuningJobStatus"] = "Completed"
        update(**fields)

    @staticmethod
    def _objective_value(training: JobRecord, metric_name: str) -> float | None:
        if training.description.get("TrainingJobStatus") != "Completed":
            return None
        for metric in training.description.get("FinalMetricDataList", []):
            if metric["MetricName"] == metric_name:
                return float(metric["Value"])
        return None

    def _training_summary(self, training: JobRecord, objective: dict[str, Any], value: float | None) -> dict[str, Any]:
        d = training.description
        ranges = d.get("HyperParameters", {})
        tuned_names = self._tuned_parameter_names(d)
        summary: dict[str, Any] = {
            "TrainingJobName": d["TrainingJobName"],
            "TrainingJobArn": d["TrainingJobArn"],
            "TuningJobName": d["TuningJobArn"].rsplit("/", 1)[-1],
            "CreationTime": d["CreationTime"],
            "TrainingStartTime": d.get("TrainingStartTime"),
            "TrainingEndTime": d.get("TrainingEndTime"),
            "TrainingJobStatus": d["TrainingJobStatus"],
            "TunedHyperParameters": {name: ranges[name] for name in tuned_names if name in ranges},
            "ObjectiveStatus": "Succeeded" if value is not None else "Failed",
        }
        if value is not None:
            summary["FinalHyperParameterTuningJobObjectiveMetric"] = {
                "Type": objective["Type"],
                "MetricName": objective["MetricName"],
                "Value": value,
            }
        if d.get("FailureReason"):
            summary["FailureReason"] = d["FailureReason"]
        return {key: value for key, value in summary.items() if value is not None}

    def _tuned_parameter_names(self, training_description: dict[str, Any]) -> list[str]:
        tuning_name = training_description["TuningJobArn"].rsplit("/", 1)[-1]
        tuning = self._jobs["tuning"].get(tuning_name)
        if tuning is None:
            return []
        ranges = tuning.description["HyperParameterTuningJobConfig"].get("ParameterRanges", {})
        return [spec["Name"] for specs in ranges.values() for spec in specs]

    def _op_DescribeHyperParameterTuningJob(self, params: dict[str, Any]) -> dict[str, Any]:
        record = self._job("tuning", params["HyperParameterTuningJobName"], "hyper-parameter tuning job")
        with self._lock:
            return copy.deepcopy(record.description)

    def _op_ListTrainingJobsForHyperParameterTuningJob(self, params: dict[str, Any]) -> dict[str, Any]:
        record = self._job("tuning", params["HyperParameterTuningJobName"], "hyper-parameter tuning job")
        objective = record.description["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]
        with self._lock:
            trainings = [
                self._jobs["training"][n]
                for n in self._tuning_progress[record.description["HyperParameterTuningJobName"]].trainings
            ]
            summaries = [
                self._training_summary(t, objective, self._objective_value(t, objective["MetricName"]))
                for t in trainings
            ]
        if params.get("StatusEquals"):
            summaries = [s for s in summaries if s["TrainingJobStatus"] == params["StatusEquals"]]
        if params.get("SortBy") == "FinalObjectiveMetricValue":
            summaries.sort(
                key=lambda s: s.get("FinalHyperParameterTuningJobObjectiveMetric", {}).get("Value", float("-inf")),
                reverse=params.get("SortOrder", "Descending") == "Descending",
            )
        return _paginate(summaries, params, "TrainingJobSummaries")

    def _op_StopHyperParameterTuningJob(self, params: dict[str, Any]) -> dict[str, Any]:
        record = self._job("tuning", params["HyperParameterTuningJobName"], "hyper-parameter tuning job")
        self._stop(record, "HyperParameterTuningJobStatus")
        with self._lock:
            trainings = [
                self._jobs["training"][n]
                for n in self._tuning_progress[record.description["HyperParameterTuningJobName"]].trainings
            ]
        for training in trainings:
            self._stop(training, "TrainingJobStatus")
        return {}

    def _op_ListHyperParameterTuningJobs(self, params: dict[str, Any]) -> dict[str, Any]:
        fields = [
            "HyperParameterTuningJobName",
            "HyperParameterTuningJobArn",
            "HyperParameterTuningJobStatus",
            "CreationTime",
            "HyperParameterTuningEndTime",
            "LastModifiedTime",
            "TrainingJobStatusCounters",
            "ObjectiveStatusCounters",
        ]
        result = self._job_summaries(
            "tuning",
            params,
            fields,
            "HyperParameterTuningJobStatus",
            "HyperParameterTuningJobName",
            "HyperParameterTuningJobSummaries",
        )
        for summary, source in zip(
            result["HyperParameterTuningJobSummaries"], result["HyperParameterTuningJobSummaries"], strict=True
        ):
            strategy = self._jobs["tuning"][source["HyperParameterTuningJobName"]].description[
                "HyperParameterTuningJobConfig"
            ]
            summary["Strategy"] = strategy.get("Strategy", "Bayesian")
            summary["ResourceLimits"] = strategy.get("ResourceLimits", {})
        return result

    # ---- models, endpoint configs, endpoints ---------------------------------------------------------------------

    def _model(self, name: str) -> dict[str, Any]:
        with self._lock:
            model = self._models.get(name)
        if model is None:
            raise not_found("model", name)
        return model

    def _op_CreateModel(self, params: dict[str, Any]) -> dict[str, Any]:
        name = self._check_name(params.get("ModelName"), "ModelName")
        container = params.get("PrimaryContainer") or (params.get("Containers") or [None])[0]
        if container is None:
            raise validation_error(f"Model {name}: PrimaryContainer is required")
        if container.get("ModelPackageName"):
            package = self._package(container["ModelPackageName"])
            package_container = package["InferenceSpecification"]["Containers"][0]
            container = {
                **package_container,
                **{k: v for k, v in container.items() if k != "ModelPackageName"},
                "ModelPackageName": container["ModelPackageName"],
            }
        if not container.get("ModelDataUrl"):
            raise validation_error(
                f"Model {name}: the container needs a ModelDataUrl (or a ModelPackageName) to run locally"
            )
        with self._lock:
            if name in self._models:
                raise SageMakerError(
                    "ValidationException", f'Cannot create already existing model "{self._arn("model", name)}".'
                )
            description = {
                **{key: value for key, value in params.items() if key not in ("Tags", "Containers")},
                "PrimaryContainer": container,
                "ModelArn": self._arn("model", name),
                "CreationTime": self.clock.now(),
            }
            self._models[name] = description
        self._record_tags(description["ModelArn"], params.get("Tags"))
        return {"ModelArn": description["ModelArn"]}

    def _op_DescribeModel(self, params: dict[str, Any]) -> dict[str, Any]:
        return copy.deepcopy(self._model(params["ModelName"]))

    def _op_DeleteModel(self, params: dict[str, Any]) -> dict[str, Any]:
        model = self._model(params["ModelName"])
        with self._lock:
            self._models.pop(params["ModelName"], None)
            self._tags.pop(model["ModelArn"], None)
        return {}

    def _op_ListModels(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            summaries = [
                {"ModelName": m["ModelName"], "ModelArn": m["ModelArn"], "CreationTime": m["CreationTime"]}
                for m in self._models.values()
            ]
        if params.get("NameContains"):
            summaries = [s for s in summaries if params["NameContains"] in s["ModelName"]]
        return _paginate(_sorted(summaries, params, "ModelName"), params, "Models")

    def _op_CreateEndpointConfig(self, params: dict[str, Any]) -> dict[str, Any]:
        name = self._check_name(params.get("EndpointConfigName"), "EndpointConfigName")
        variants = params.get("ProductionVariants") or []
        if not variants:
            raise validation_error(f"Endpoint config {name}: ProductionVariants must hold at least one variant")
        for variant in variants:
            self._model(variant.get("ModelName", ""))
        with self._lock:
            if name in self._endpoint_configs:
                raise SageMakerError(
                    "ValidationException",
                    f'Cannot create already existing endpoint configuration "{self._arn("endpoint-config", name)}".',
                )
            description = {
                **{key: value for key, value in params.items() if key != "Tags"},
                "EndpointConfigArn": self._arn("endpoint-config", name),
                "CreationTime": self.clock.now(),
            }
            self._endpoint_configs[name] = description
        self._record_tags(description["EndpointConfigArn"], params.get("Tags"))
        return {"EndpointConfigArn": description["EndpointConfigArn"]}

    def _endpoint_config(self, name: str) -> dict[str, Any]:
        with self._lock:
            config = self._endpoint_configs.get(name)
        if config is None:
            raise not_found("endpoint configuration", name)
        return config

    def _op_DescribeEndpointConfig(self, params: dict[str, Any]) -> dict[str, Any]:
        return copy.deepcopy(self._endpoint_config(params["EndpointConfigName"]))

    def _op_DeleteEndpointConfig(self, params: dict[str, Any]) -> dict[str, Any]:
        config = self._endpoint_config(params["EndpointConfigName"])
        with self._lock:
            self._endpoint_configs.pop(params["EndpointConfigName"], None)
            self._tags.pop(config["EndpointConfigArn"], None)
        return {}

    def _op_ListEndpointConfigs(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            summaries = [
                {
                    "EndpointConfigName": c["EndpointConfigName"],
                    "EndpointConfigArn": c["EndpointConfigArn"],
                    "CreationTime": c["CreationTime"],
                }
                for c in self._endpoint_configs.values()
            ]
        return _paginate(_sorted(summaries, params, "EndpointConfigName"), params, "EndpointConfigs")

    def _extract_model(self, model: dict[str, Any], destination: Path) -> tuple[Path, dict[str, str]]:
        container = model["PrimaryContainer"]
        if destination.exists():
            shutil.rmtree(destination)
        downloads = destination.with_name(destination.name + "-download")
        if downloads.exists():
            shutil.rmtree(downloads)
        archives = self.stager.download(container["ModelDataUrl"], downloads)
        extract_tarball(archives[0], destination)
        return destination, {key: str(value) for key, value in container.get("Environment", {}).items()}

    def _start_servers(self, endpoint_name: str, config: dict[str, Any], generation: int) -> dict[str, ModelServer]:
        servers: dict[str, ModelServer] = {}
        try:
            for variant in config["ProductionVariants"]:
                model = self._model(variant["ModelName"])
                variant_dir = self.work_dir / "endpoints" / endpoint_name / f"{generation}-{variant['VariantName']}"
                model_dir, environment = self._extract_model(model, variant_dir / "model")
                servers[variant["VariantName"]] = ModelServer(model_dir, environment, variant_dir / "server.log")
        except Exception:
            for server in servers.values():
                server.stop()
            raise
        return servers

    def _variant_descriptions(self, config: dict[str, Any]) -> list[dict[str, Any]]:
        variants = []
        for variant in config["ProductionVariants"]:
            model = self._models.get(variant["ModelName"], {})
            image = model.get("PrimaryContainer", {}).get("Image", "")
            variants.append(
                {
                    "VariantName": variant["VariantName"],
                    "DeployedImages": [
                        {"SpecifiedImage": image, "ResolvedImage": image, "ResolutionTime": self.clock.now()}
                    ],
                    "CurrentWeight": float(variant.get("InitialVariantWeight", 1.0)),
                    "DesiredWeight": float(variant.get("InitialVariantWeight", 1.0)),
                    "CurrentInstanceCount": int(variant.get("InitialInstanceCount", 1)),
                    "DesiredInstanceCount": int(variant.get("InitialInstanceCount", 1)),
                }
            )
        return variants

    def _data_capture_description(self, config: dict[str, Any]) -> dict[str, Any] | None:
        capture = config.get("DataCaptureConfig")
        if not capture:
            return None
        return {
            "EnableCapture": bool(capture.get("EnableCapture", True)),
            "CaptureStatus": "Started" if capture.get("EnableCapture", True) else "Stopped",
            "CurrentSamplingPercentage": int(capture.get("InitialSamplingPercentage", 100)),
            "DestinationS3Uri": capture.get("DestinationS3Uri", ""),
            **({"KmsKeyId": capture["KmsKeyId"]} if capture.get("KmsKeyId") else {}),
        }

    def _endpoint(self, name: str) -> _Endpoint:
        with self._lock:
            endpoint = self._endpoints.get(name)
        if endpoint is None:
            raise not_found("endpoint", name)
        return endpoint

    def _op_CreateEndpoint(self, params: dict[str, Any]) -> dict[str, Any]:
        name = self._check_name(params.get("EndpointName"), "EndpointName")
        config = copy.deepcopy(self._endpoint_config(params.get("EndpointConfigName", "")))
        now = self.clock.now()
        with self._lock:
            if name in self._endpoints:
                raise SageMakerError(
                    "ValidationException", f'Cannot create already existing endpoint "{self._arn("endpoint", name)}".'
                )
            description: dict[str, Any] = {
                "EndpointName": name,
                "EndpointArn": self._arn("endpoint", name),
                "EndpointConfigName": config["EndpointConfigName"],
                "EndpointStatus": "Creating",
                "CreationTime": now,
                "LastModifiedTime": now,
            }
            endpoint = _Endpoint(description, {})
            self._endpoints[name] = endpoint
        self._record_tags(description["EndpointArn"], params.get("Tags"))
        self._emit_endpoint(endpoint)
        self._start_thread(lambda: self._deploy(endpoint, config, creating=True), f"endpoint-{name}")
        return {"EndpointArn": description["EndpointArn"]}

    def _op_UpdateEndpoint(self, params: dict[str, Any]) -> dict[str, Any]:
        endpoint = self._endpoint(params["EndpointName"])
        config = copy.deepcopy(self._endpoint_config(params.get("EndpointConfigName", "")))
        check_deployment_config(params.get("DeploymentConfig"), config)
        with self._lock:
            if endpoint.description["EndpointStatus"] != "InService":
                raise validation_error(
                    f"Cannot update endpoint {params['EndpointName']!r} while it is "
                    f"{endpoint.description['EndpointStatus']}: wait until it is InService"
                )
            endpoint.description.update(EndpointStatus="Updating", LastModifiedTime=self.clock.now())
            if params.get("DeploymentConfig"):
                endpoint.description["LastDeploymentConfig"] = params["DeploymentConfig"]
        self._emit_endpoint(endpoint)
        rollback_alarms = [
            alarm["AlarmName"]
            for alarm in (params.get("DeploymentConfig") or {}).get("AutoRollbackConfiguration", {}).get("Alarms", [])
        ]
        self._start_thread(
            lambda: self._deploy(endpoint, config, creating=False, rollback_alarms=rollback_alarms),
            f"endpoint-{params['EndpointName']}",
        )
        return {"EndpointArn": endpoint.description["EndpointArn"]}

    def _alarm_firing(self, alarm_names: list[str]) -> str | None:
        if not alarm_names:
            return None
        alarms = boto3.client("cloudwatch", region_name=self.region).describe_alarms(AlarmNames=alarm_names)
        firing = [alarm["AlarmName"] for alarm in alarms["MetricAlarms"] if alarm["StateValue"] == "ALARM"]
        return firing[0] if firing else None

    def _deploy(
        self, endpoint: _Endpoint, config: dict[str, Any], creating: bool, rollback_alarms: list[str] | None = None
    ) -> None:
        """Start the new variants' servers, keep the transition visible for a while, then swap and go InService.

        An update whose AutoRollbackConfiguration alarm is in ALARM at the end of the transition rolls back,
        as a blue/green deployment does: the old variants keep serving and the endpoint keeps its old config.
        """
        with self._lock:
            endpoint.generation += 1
            generation = endpoint.generation
        servers: dict[str, ModelServer] = {}
        try:
            servers = self._start_servers(endpoint.description["EndpointName"], config, generation)
            self.clock.sleep(self.endpoint_transition_seconds)
            firing_alarm = self._alarm_firing(rollback_alarms or [])
        except Exception as error:  # whatever kept the model from serving is the endpoint's FailureReason
            for server in servers.values():
                server.stop()
            with self._lock:
                # A failed update rolls back: the old variants keep serving, as with SageMaker's blue/green.
                endpoint.description.update(
                    EndpointStatus="Failed" if creating else "InService",
                    FailureReason=f"{type(error).__name__}: {error}"[:1024],
                    LastModifiedTime=self.clock.now(),
                )
            self._emit_endpoint(endpoint)
            return
        with self._lock:
            if firing_alarm is not None:
                retired = servers
                endpoint.description.update(EndpointStatus="InService", LastModifiedTime=self.clock.now())
            elif self._closed or self._endpoints.get(endpoint.description["EndpointName"]) is not endpoint:
                retired = servers
            else:
                retired = endpoint.servers
                endpoint.servers = servers
                endpoint.description.update(
                    EndpointStatus="InService",
                    EndpointConfigName=config["EndpointConfigName"],
                    ProductionVariants=self._variant_descriptions(config),
                    LastModifiedTime=self.clock.now(),
                )
                endpoint.description.pop("FailureReason", None)
                endpoint.capture = config.get("DataCaptureConfig")
                capture = self._data_capture_description(config)
                if capture:
                    endpoint.description["DataCaptureConfig"] = capture
        for server in retired.values():
            server.stop()
        self._emit_endpoint(endpoint)

    def _emit_endpoint(self, endpoint: _Endpoint) -> None:
        with self._lock:
            detail = copy.deepcopy(endpoint.description)
        self._emit("SageMaker Endpoint State Change", [detail["EndpointArn"]], detail)

    def _op_DescribeEndpoint(self, params: dict[str, Any]) -> dict[str, Any]:
        endpoint = self._endpoint(params["EndpointName"])
        with self._lock:
            return copy.deepcopy(endpoint.description)

    def _op_DeleteEndpoint(self, params: dict[str, Any]) -> dict[str, Any]:
        endpoint = self._endpoint(params["EndpointName"])
        with self._lock:
            self._endpoints.pop(params["EndpointName"], None)
            self._tags.pop(endpoint.description["EndpointArn"], None)
            servers, endpoint.servers = endpoint.servers, {}
        for server in servers.values():
            server.stop()
        return {}

    def _op_ListEndpoints(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            summaries = [
                {
                    key: e.description[key]
                    for key in ("EndpointName", "EndpointArn", "CreationTime", "LastModifiedTime", "EndpointStatus")
                }
                for e in self._endpoints.values()
            ]
        if params.get("StatusEquals"):
            summaries = [s for s in summaries if s["EndpointStatus"] == params["StatusEquals"]]
        if params.get("NameContains"):
            summaries = [s for s in summaries if params["NameContains"] in s["EndpointName"]]
        return _paginate(_sorted(summaries, params, "EndpointName"), params, "Endpoints")

    def endpoint_url(self, endpoint_name: str, variant_name: str | None = None) -> str:
        """The 127.0.0.1 URL serving `/ping` and `/invocations` for an InService endpoint's variant."""
        endpoint = self._endpoint(endpoint_name)
        with self._lock:
            servers = dict(endpoint.servers)
        if not servers:
            raise validation_error(
                f"Endpoint {endpoint_name!r} is {endpoint.description['EndpointStatus']}, not serving"
            )
        return servers[variant_name or next(iter(servers))].url

    def invoke_endpoint(
        self,
        endpoint_name: str,
        body: bytes,
        content_type: str,
        accept: str | None = None,
        target_variant: str | None = None,
    ) -> tuple[bytes, str, str]:
        """`sagemaker-runtime` InvokeEndpoint: returns (body, content type, invoked variant)."""
        endpoint = self._endpoint(endpoint_name)
        with self._lock:
            servers = dict(endpoint.servers)
            capture = copy.deepcopy(endpoint.capture)
            weights = {
                v["VariantName"]: v.get("CurrentWeight", 1.0)
                for v in endpoint.description.get("ProductionVariants", [])
            }
        if not servers:
            raise validation_error(
                f"Endpoint {endpoint_name} is {endpoint.description['EndpointStatus']}: it cannot be invoked yet"
            )
        variant = target_variant or max(servers, key=lambda v: weights.get(v, 0.0))
        if variant not in servers:
            raise validation_error(f"Endpoint {endpoint_name} has no variant {variant!r}; it has {sorted(servers)}")
        try:
            result, result_type = servers[variant].invoke(body, content_type, accept)
        except ModelServerError as error:
            raise SageMakerError(
                "ModelError", f'Received server error (500) from primary with message "{error}"'
            ) from error
        self._record_invocation(endpoint_name, variant)
        if capture and capture.get("EnableCapture", True):
            self._capture(endpoint_name, variant, capture, (body, content_type), (result, result_type))
        return result, result_type, variant

    def _capture(
        self,
        endpoint_name: str,
        variant: str,
        capture: dict[str, Any],
        request: tuple[bytes, str],
        response: tuple[bytes, str],
    ) -> None:
        """Write one SageMaker data capture record (JSON Lines) to the capture destination, KMS-encrypted if asked."""
        if random.uniform(0, 100) >= float(capture.get("InitialSamplingPercentage", 100)):
            return
        content_types = capture.get("CaptureContentTypeHeader") or {}
        csv_types = set(content_types.get("CsvContentTypes") or ["text/csv"])
        json_types = set(content_types.get("JsonContentTypes") or ["application/json"])

        def captured(payload: tuple[bytes, str], mode: str) -> dict[str, str]:
            data, observed_type = payload
            if observed_type in csv_types or observed_type in json_types:
                encoding, text = ("CSV" if observed_type in csv_types else "JSON"), data.decode(errors="replace")
            else:
                encoding, text = "BASE64", base64.b64encode(data).decode()
            return {"observedContentType": observed_type, "mode": mode, "data": text, "encoding": encoding}

        modes = {option["CaptureMode"] for option in capture.get("CaptureOptions") or []} or {"Input", "Output"}
        capture_data = {}
        if "Input" in modes:
            capture_data["endpointInput"] = captured(request, "INPUT")
        if "Output" in modes:
            capture_data["endpointOutput"] = captured(response, "OUTPUT")
        now = self.clock.now()
        event_id = str(uuid.uuid4())
        record = {
            "captureData": capture_data,
            "eventMetadata": {"eventId": event_id, "inferenceTime": now.strftime("%Y-%m-%dT%H:%M:%SZ")},
            "eventVersion": "0",
        }
        # SageMaker's layout: <destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/<file>.jsonl
        uri = (
            f"{capture['DestinationS3Uri'].rstrip('/')}/{endpoint_name}/{variant}/"
            f"{now:%Y/%m/%d/%H}/{now:%M-%S-%f}-{event_id}.jsonl"
        )
        self.stager.put_bytes((json.dumps(record) + "\n").encode(), uri, capture.get("KmsKeyId") or None)

    def _record_invocation(self, endpoint_name: str, variant: str) -> None:
        """Publish the `Invocations` metric SageMaker publishes, which the idle endpoint reaper reads."""
        boto3.client("cloudwatch", region_name=self.region).put_metric_data(
            Namespace="AWS/SageMaker",
            MetricData=[
                {
                    "MetricName": "Invocations",
                    "Dimensions": [
                        {"Name": "EndpointName", "Value": endpoint_name},
                        {"Name": "VariantName", "Value": variant},
                    ],
                    "Timestamp": self.clock.now(),
                    "Value": 1.0,
                    "Unit": "None",
                }
            ],
        )

    # ---- model registry -----------------------------------------------------------------------------------------

    def _op_CreateModelPackageGroup(self, params: dict[str, Any]) -> dict[str, Any]:
        name = self._check_name(params.get("ModelPackageGroupName"), "ModelPackageGroupName")
        with self._lock:
            if name in self._package_groups:
                raise validation_error(f"Model Package Group already exists: {self._arn('model-package-group', name)}")
            description = {
                "ModelPackageGroupName": name,
                "ModelPackageGroupArn": self._arn("model-package-group", name),
                "ModelPackageGroupDescription": params.get("ModelPackageGroupDescription", ""),
                "CreationTime": self.clock.now(),
                "ModelPackageGroupStatus": "Completed",
            }
            self._package_groups[name] = description
        self._record_tags(description["ModelPackageGroupArn"], params.get("Tags"))
        return {"ModelPackageGroupArn": description["ModelPackageGroupArn"]}

    def _package_group(self, name: str) -> dict[str, Any]:
        with self._lock:
            group = self._package_groups.get(name.rsplit("/", 1)[-1])
        if group is None:
            raise not_found("model package group", name)
        return group

    def _op_DescribeModelPackageGroup(self, params: dict[str, Any]) -> dict[str, Any]:
        return copy.deepcopy(self._package_group(params["ModelPackageGroupName"]))

    def _op_ListModelPackageGroups(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            groups = [copy.deepcopy(g) for g in self._package_groups.values()]
        if params.get("NameContains"):
            groups = [g for g in groups if params["NameContains"] in g["ModelPackageGroupName"]]
        return _paginate(_sorted(groups, params, "ModelPackageGroupName"), params, "ModelPackageGroupSummaryList")

    def _op_DeleteModelPackageGroup(self, params: dict[str, Any]) -> dict[str, Any]:
        group = self._package_group(params["ModelPackageGroupName"])
        with self._lock:
            if any(p["ModelPackageGroupName"] == group["ModelPackageGroupName"] for p in self._packages.values()):
                raise SageMakerError(
                    "ConflictException",
                    f"Model package group {group['ModelPackageGroupName']} still holds model packages",
                )
            self._package_groups.pop(group["ModelPackageGroupName"], None)
        return {}

    def _op_CreateModelPackage(self, params: dict[str, Any]) -> dict[str, Any]:
        group_name = params.get("ModelPackageGroupName")
        if not group_name:
            raise validation_error("Only versioned model packages (with ModelPackageGroupName) are supported locally")
        group = self._package_group(group_name)
        status = params.get("ModelApprovalStatus", "PendingManualApproval")
        if status not in _APPROVAL_STATUSES:
            raise validation_error(f"ModelApprovalStatus {status!r} is not one of {sorted(_APPROVAL_STATUSES)}")
        if not (params.get("InferenceSpecification") or {}).get("Containers"):
            raise validation_error("InferenceSpecification.Containers is required for a model package")
        with self._lock:
            version = 1 + sum(
                1 for p in self._packages.values() if p["ModelPackageGroupName"] == group["ModelPackageGroupName"]
            )
            arn = self._arn("model-package", f"{group['ModelPackageGroupName'].lower()}/{version}")
            now = self.clock.now()
            description = {
                **{key: value for key, value in params.items() if key not in ("Tags", "ClientToken")},
                "ModelPackageName": group["ModelPackageGroupName"],
                "ModelPackageGroupName": group["ModelPackageGroupName"],
                "ModelPackageVersion": version,
                "ModelPackageArn": arn,
                "CreationTime": now,
                "LastModifiedTime": now,
                "ModelPackageStatus": "Completed",
                "ModelPackageStatusDetails": {"ValidationStatuses": [], "ImageScanStatuses": []},
                "CertifyForMarketplace": bool(params.get("CertifyForMarketplace", False)),
                "ModelApprovalStatus": status,
            }
            self._packages[arn] = description
        self._record_tags(arn, params.get("Tags"))
        self._emit_package(description)
        return {"ModelPackageArn": arn}

    def _package(self, name_or_arn: str) -> dict[str, Any]:
        with self._lock:
            package = self._packages.get(name_or_arn)
            if package is None and not name_or_arn.startswith("arn:"):
                # Also accept "<group>/<version>", the short form SageMaker takes.
                package = self._packages.get(self._arn("model-package", name_or_arn.lower()))
        if package is None:
            raise not_found("model package", name_or_arn)
        return package

    def _emit_package(self, description: dict[str, Any]) -> None:
        with self._lock:
            detail = copy.deepcopy(description)
        self._emit("SageMaker Model Package State Change", [detail["ModelPackageArn"]], detail)

    def _op_DescribeModelPackage(self, params: dict[str, Any]) -> dict[str, Any]:
        return copy.deepcopy(self._package(params["ModelPackageName"]))

    def _op_UpdateModelPackage(self, params: dict[str, Any]) -> dict[str, Any]:
        package = self._package(params["ModelPackageArn"])
        status = params.get("ModelApprovalStatus")
        if status is not None and status not in _APPROVAL_STATUSES:
            raise validation_error(f"ModelApprovalStatus {status!r} is not one of {sorted(_APPROVAL_STATUSES)}")
        with self._lock:
            approval_changed = status is not None and status != package["ModelApprovalStatus"]
            if status is not None:
                package["ModelApprovalStatus"] = status
            if "ApprovalDescription" in params:
                package["ApprovalDescription"] = params["ApprovalDescription"]
            metadata = package.setdefault("CustomerMetadataProperties", {})
            metadata.update(params.get("CustomerMetadataProperties") or {})
            for key in params.get("CustomerMetadataPropertiesToRemove") or []:
                metadata.pop(key, None)
            package["LastModifiedTime"] = self.clock.now()
        if approval_changed:
            self._emit_package(package)
        return {"ModelPackageArn": package["ModelPackageArn"]}

    def _op_ListModelPackages(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            packages = [copy.deepcopy(p) for p in self._packages.values()]
        if params.get("ModelPackageGroupName"):
            group = params["ModelPackageGroupName"].rsplit("/", 1)[-1]
            packages = [p for p in packages if p["ModelPackageGroupName"] == group]
        if params.get("ModelApprovalStatus"):
            packages = [p for p in packages if p["ModelApprovalStatus"] == params["ModelApprovalStatus"]]
        fields = [
            "ModelPackageName",
            "ModelPackageGroupName",
            "ModelPackageVersion",
            "ModelPackageArn",
            "ModelPackageDescription",
            "CreationTime",
            "ModelPackageStatus",
            "ModelApprovalStatus",
        ]
        summaries = [{field: p[field] for field in fields if field in p} for p in packages]
        return _paginate(_sorted(summaries, params, "ModelPackageName"), params, "ModelPackageSummaryList")

    def _op_DeleteModelPackage(self, params: dict[str, Any]) -> dict[str, Any]:
        package = self._package(params["ModelPackageName"])
        with self._lock:
            self._packages.pop(package["ModelPackageArn"], None)
        return {}

    # ---- tags ---------------------------------------------------------------------------------------------------

    def _op_AddTags(self, params: dict[str, Any]) -> dict[str, Any]:
        arn = params["ResourceArn"]
        with self._lock:
            tags = {tag["Key"]: tag["Value"] for tag in self._tags.get(arn, [])}
            tags.update({tag["Key"]: tag.get("Value", "") for tag in params.get("Tags", [])})
            self._tags[arn] = [{"Key": key, "Value": value} for key, value in tags.items()]
            return {"Tags": copy.deepcopy(self._tags[arn])}

    def _op_ListTags(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            tags = copy.deepcopy(self._tags.get(params["ResourceArn"], []))
        return _paginate(tags, params, "Tags")

    def _op_DeleteTags(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._tags[params["ResourceArn"]] = [
                tag
                for tag in self._tags.get(params["ResourceArn"], [])
                if tag["Key"] not in set(params.get("TagKeys", []))
            ]
        return {}

    # ---- moto wiring and lifecycle --------------------------------------------------------------------------------

    def install(self) -> None:
        """Answer moto's SageMaker and SageMaker Runtime requests from this backend (boto3 and aws-sdk tasks)."""
        if self._restore:
            return
        backend = self

        def make_handler(action: str) -> Callable[[SageMakerResponse], str]:
            def handle(response: SageMakerResponse) -> str:
                params = json.loads(response.body or "{}")
                try:
                    result = backend.call(action, params)
                except SageMakerError as error:
                    raise _ServiceError(error.code, error.message) from error
                return json.dumps(result, default=_json_default)

            return handle

        for action in self.operations:
            attribute = _snake(action)
            self._restore.append(_restorer(SageMakerResponse, attribute))
            setattr(SageMakerResponse, attribute, make_handler(action))

        original_invoke = SageMakerRuntimeResponse.__dict__["invoke_endpoint"]

        def invoke_endpoint(response: SageMakerRuntimeResponse) -> tuple[int, dict[str, str], bytes]:
            endpoint_name = response.path.split("/")[2]
            body = response.body if isinstance(response.body, bytes) else (response.body or "").encode()
            try:
                result, content_type, variant = backend.invoke_endpoint(
                    endpoint_name,
                    body,
                    response.headers.get("Content-Type") or "application/json",
                    response.headers.get("Accept"),
                    response.headers.get("X-Amzn-SageMaker-Target-Variant"),
                )
            except SageMakerError as error:
                raise _ServiceError(error.code, error.message) from error
            return 200, {"Content-Type": content_type, "x-Amzn-Invoked-Production-Variant": variant}, result

        SageMakerRuntimeResponse.invoke_endpoint = invoke_endpoint  # type: ignore[method-assign,assignment]
        self._restore.append(lambda: setattr(SageMakerRuntimeResponse, "invoke_endpoint", original_invoke))

    def uninstall(self) -> None:
        """Give moto its own SageMaker responses back."""
        for undo in reversed(self._restore):
            undo()
        self._restore.clear()

    def close(self) -> None:
        """Stop endpoint servers, kill running jobs, restore moto's responses."""
        with self._lock:
            self._closed = True
            endpoints = list(self._endpoints.values())
            records = [record for jobs in self._jobs.values() for record in jobs.values()]
        for endpoint in endpoints:
            for server in endpoint.servers.values():
                server.stop()
            endpoint.servers = {}
        for record in records:
            record.stop_requested = True
            if record.container is not None:
                record.container.kill()
        for thread in self._threads:
            thread.join(timeout=10)
        self.uninstall()
