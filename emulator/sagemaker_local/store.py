"""The local SageMaker's store: its state under one lock, ARNs, tags, job records and the events it emits.

`LocalSageMaker` (backend.py) is the facade; the APIs of each resource (jobs_api.py, hosting.py, registry.py)
are mixins over this store, so they share one lock and one set of records.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

from contract.local_account import LOCAL_ACCOUNT_ID, LOCAL_REGION
from emulator.clock import Clock
from emulator.moto_patches import MotoPatches
from emulator.sagemaker_local.errors import (
    InferenceCodeUnavailable,
    SageMakerError,
    already_exists,
    not_found,
    validation_error,
)
from emulator.sagemaker_local.jobs import JobRecord
from emulator.sagemaker_local.model_server import ModelServer
from emulator.sagemaker_local.s3io import S3Stager, extract_tarball
from emulator.sagemaker_local.tuning import Observation
from emulator.sagemaker_local.warm_containers import WarmContainerPool

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
TERMINAL_JOB_STATUSES = {"Completed", "Failed", "Stopped"}
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
TUNING_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}$")


def paginate(items: list[dict[str, Any]], params: dict[str, Any], key: str) -> dict[str, Any]:
    """One page of a List* answer: `MaxResults` items from `NextToken`, the list under `key`."""
    start = int(params.get("NextToken") or 0)
    size = int(params.get("MaxResults") or 100)
    page = items[start : start + size]
    result: dict[str, Any] = {key: page}
    if start + size < len(items):
        result["NextToken"] = str(start + size)
    return result


def sort_summaries(items: list[dict[str, Any]], params: dict[str, Any], name_key: str) -> list[dict[str, Any]]:
    """A List* answer's summaries in the request's `SortBy` (Name or CreationTime) and `SortOrder`."""
    sort_key = {"Name": name_key}.get(params.get("SortBy") or "CreationTime", "CreationTime")
    return sorted(
        items, key=lambda item: item.get(sort_key) or "", reverse=params.get("SortOrder", "Descending") == "Descending"
    )


@dataclass
class TuningProgress:
    """What a tuning job launched and learned, kept beside its Describe* record."""

    trainings: list[str] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)


@dataclass
class EndpointState:
    """An endpoint's Describe* record, the model servers of its variants and what it captures."""

    description: dict[str, Any]
    servers: dict[str, ModelServer]
    generation: int = 0
    # The DataCaptureConfig of the endpoint config now serving, as given to CreateEndpointConfig.
    capture: dict[str, Any] | None = None


class SageMakerStore:
    """State shared by every SageMaker API of the twin; see the module docstring.

    A training job gets `cpus_per_job` threads (`SM_NUM_CPUS`, `OMP_NUM_THREADS`) when it is set; by default a
    lone training gets every core and a tuning job's parallel trainings share them, as separate instances would.
    """

    def __init__(
        self,
        work_dir: Path,
        clock: Clock,
        max_parallel: int | None = None,
        events: Callable[[dict[str, Any]], None] | None = None,
        region: str = LOCAL_REGION,
        account_id: str = LOCAL_ACCOUNT_ID,
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
        self._endpoints: dict[str, EndpointState] = {}
        # Endpoint deployments starting their model servers now (hosting.py): work the clock must not skip over.
        self._servers_starting = 0
        self._cloudwatch: Any = None
        self._tuning_progress: dict[str, TuningProgress] = {}
        self._package_groups: dict[str, dict[str, Any]] = {}
        self._packages: dict[str, dict[str, Any]] = {}
        self._tags: dict[str, list[dict[str, str]]] = {}
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._stager: S3Stager | None = None
        # Job and model-server processes started ahead, their libraries imported (warm_containers.py).
        self.warm_containers = WarmContainerPool(self.work_dir)
        self._patches = MotoPatches()

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
            # SageMaker's events give times as epoch milliseconds (`"CreationTime": 1583831889050`), not as text.
            "detail": json.loads(json.dumps(detail, default=_event_value)),
        }
        self._events(event)

    @staticmethod
    def _check_name(name: Any, what: str, pattern: re.Pattern[str] = NAME_PATTERN) -> str:
        if not isinstance(name, str) or not pattern.match(name):
            raise validation_error(f"{what} {name!r} must match {pattern.pattern}")
        return name

    def _job(self, kind: str, name: str, label: str) -> JobRecord:
        with self._lock:
            record = self._jobs[kind].get(name)
        if record is None:
            raise not_found(label, name)
        return record

    def _refuse_when_closed(self) -> None:
        """Raise SageMaker's ServiceUnavailable once `close()` has begun; call with `_lock` held.

        `close()` stops what it finds under the lock; anything started after that would outlive it.
        """
        if self._closed:
            raise SageMakerError("ServiceUnavailable", "The local SageMaker is closed")

    def _new_job(self, kind: str, name: str, label: str, description: dict[str, Any]) -> JobRecord:
        with self._lock:
            # A tuning job's trainings come here from its own threads, not through call(): refused here too.
            self._refuse_when_closed()
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
                terminal = record.description.get(status_field) in TERMINAL_JOB_STATUSES
            if terminal:
                if on_terminal is not None:
                    on_terminal()
                record.done.set()

        return update

    def _start_thread(self, target: Callable[[], None], name: str) -> None:
        """Run `target` on a thread `close()` joins; refused once `close()` has begun.

        The thread is started and registered under the lock `close()` takes to list them, so `close()` sees
        every thread that will ever run, and each one already started (joining an unstarted one raises).
        """
        thread = threading.Thread(target=target, name=name, daemon=True)
        with self._lock:
            self._refuse_when_closed()
            thread.start()
            self._threads.append(thread)

    @property
    def cloudwatch(self) -> Any:
        """One CloudWatch client for the metrics and alarm reads of every request (a client costs tens of
        milliseconds of CPU to make, and an InvokeEndpoint publishes metrics)."""
        with self._lock:
            if self._cloudwatch is None:
                self._cloudwatch = boto3.client("cloudwatch", region_name=self.region)
            return self._cloudwatch

    def busy(self) -> bool:
        """True while a job runs or a model server starts: work whose real time the clock must not skip
        (Clock.skipping_idle_time)."""
        with self._lock:
            return self._servers_starting > 0 or any(
                not record.done.is_set() for jobs in self._jobs.values() for record in jobs.values()
            )

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

    def _stop(self, record: JobRecord, status_field: str) -> None:
        with self._lock:
            if record.description[status_field] in TERMINAL_JOB_STATUSES:
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
        return paginate(sort_summaries(summaries, params, name_key), params, key)

    def _model(self, name: str) -> dict[str, Any]:
        with self._lock:
            model = self._models.get(name)
        if model is None:
            raise not_found("model", name)
        return model

    def _package(self, name_or_arn: str) -> dict[str, Any]:
        with self._lock:
            package = self._packages.get(name_or_arn)
            if package is None and not name_or_arn.startswith("arn:"):
                # Also accept "<group>/<version>", the short form SageMaker takes.
                package = self._packages.get(self._arn("model-package", name_or_arn.lower()))
        if package is None:
            raise not_found("model package", name_or_arn)
        return package

    def _extract_model(self, model: dict[str, Any], destination: Path, code_dir: Path) -> tuple[Path, dict[str, str]]:
        """Extract the model's `model.tar.gz` into `destination` (its `/opt/ml/model`), and the container's environment.

        An S3 `SAGEMAKER_SUBMIT_DIRECTORY` (the SDK's `sourcedir.tar.gz` for `Model(entry_point=...)`) is fetched and
        extracted into `code_dir` (its `/opt/ml/code`) as the framework container does at start-up, and the
        environment then names `code_dir`. A network-isolated model cannot fetch it: `InferenceCodeUnavailable`.
        """
        container = model["PrimaryContainer"]
        for directory in (destination, code_dir):
            if directory.exists():
                shutil.rmtree(directory)
        downloads = destination.with_name(destination.name + "-download")
        if downloads.exists():
            shutil.rmtree(downloads)
        archives = self.stager.download(container["ModelDataUrl"], downloads)
        extract_tarball(archives[0], destination)
        environment = {key: str(value) for key, value in container.get("Environment", {}).items()}
        submit_directory = environment.get("SAGEMAKER_SUBMIT_DIRECTORY", "")
        if submit_directory.startswith("s3://"):
            if model.get("EnableNetworkIsolation"):
                raise InferenceCodeUnavailable(
                    f"the model {model['ModelName']} has EnableNetworkIsolation, so its container cannot download "
                    f"SAGEMAKER_SUBMIT_DIRECTORY {submit_directory}; put the code in model.tar.gz under code/ and "
                    "set SAGEMAKER_SUBMIT_DIRECTORY to /opt/ml/model/code"
                )
            sources = self.stager.download(submit_directory, code_dir.with_name(code_dir.name + "-download"))
            if len(sources) != 1 or not sources[0].name.endswith(".tar.gz"):
                raise InferenceCodeUnavailable(
                    f"SAGEMAKER_SUBMIT_DIRECTORY {submit_directory} must name one .tar.gz object (the SDK's "
                    f"sourcedir.tar.gz); it holds {len(sources)} object(s)"
                )
            extract_tarball(sources[0], code_dir)
            environment["SAGEMAKER_SUBMIT_DIRECTORY"] = str(code_dir)
        return destination, environment

    def _op_AddTags(self, params: dict[str, Any]) -> dict[str, Any]:
        arn = params["ResourceArn"]
        with self._lock:
            tags = {tag["Key"]: tag["Value"] for tag in self._tags.get(arn, [])}
            tags.update({tag["Key"]: tag.get("Value", "") for tag in params.get("Tags", [])})
            self._tags[arn] = [{"Key": key, "Value": value} for key, value in tags.items()]
            return {"Tags": copy.deepcopy(self._tags[arn])}

    def tagged_resources(self) -> list[tuple[str, str, dict[str, str]]]:
        """(ARN, resource type as the tagging API names it, e.g. `sagemaker:endpoint`, tags) of every tagged resource.

        Deleting a resource removes its tags here, so every entry is a resource that exists.
        """
        with self._lock:
            entries = [(arn, {t["Key"]: t["Value"] for t in tags}) for arn, tags in self._tags.items() if tags]
        return [(arn, "sagemaker:" + arn.split(":", 5)[5].split("/", 1)[0], tags) for arn, tags in entries]

    def _op_ListTags(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            tags = copy.deepcopy(self._tags.get(params["ResourceArn"], []))
        return paginate(tags, params, "Tags")

    def _op_DeleteTags(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._tags[params["ResourceArn"]] = [
                tag
                for tag in self._tags.get(params["ResourceArn"], [])
                if tag["Key"] not in set(params.get("TagKeys", []))
            ]
        return {}


def _event_value(value: Any) -> Any:
    """A detail value JSON cannot hold, as SageMaker's events spell it: a time in epoch milliseconds, else text."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return round(moment.timestamp() * 1000)
    return str(value)
