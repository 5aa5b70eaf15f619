"""`LocalSageMaker`: the facade of the twin's one SageMaker backend, for ASL tasks and plain boto3 calls alike.

Jobs run the `ml/` scripts as child processes (see `jobs.py`), tuning searches with `tuning.py`,
endpoints serve models from `serving.py` child processes on 127.0.0.1, and the model registry keeps
packages with their approval status. `call(action, params)` is the API by action name
(`CreateTrainingJob`, ...), with SageMaker's request and Describe* shapes; `install()` makes moto's
SageMaker and SageMaker Runtime responses answer from here, so a Lambda handler's
`boto3.client("sagemaker").describe_endpoint(...)` and an ASL `aws-sdk:sagemaker:describeEndpoint` see
the same state.
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from moto.core.exceptions import ServiceException
from moto.core.resource_tagging import TaggedResource
from moto.sagemaker.models import SageMakerModelBackend
from moto.sagemaker.responses import SageMakerResponse
from moto.sagemakerruntime.responses import SageMakerRuntimeResponse

from emulator.sagemaker_local.callers import caller_identity
from emulator.sagemaker_local.containers import CONTAINER_ROOT, container_environment
from emulator.sagemaker_local.errors import SageMakerError
from emulator.sagemaker_local.hosting import HostingAPIs
from emulator.sagemaker_local.jobs_api import JobAPIs
from emulator.sagemaker_local.model_cards import REFUSED_OPERATIONS, ModelCardAPIs
from emulator.sagemaker_local.model_server import CONTAINER_MODEL_DIR, server_environment
from emulator.sagemaker_local.registry import CALLER_RECORDING_OPERATIONS, ModelRegistryAPIs

# Real seconds close() waits, in all, for the job and endpoint threads once their processes are killed.
JOIN_SECONDS = 30.0


def _snake(action: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", action).lower()


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()
    raise TypeError(f"Cannot serialise {type(value).__name__} in a SageMaker response")


class _ServiceError(ServiceException):
    """A SageMaker error for moto to serialise.

    Defined outside moto's package on purpose: moto then takes the error model of the service that answers.
    """


def _model_package_resource(response: SageMakerResponse) -> str:
    """The model package ARN a request names (for IAM evaluation), else "*"."""
    try:
        params = json.loads(response.body or "{}")
    except (TypeError, ValueError):
        return "*"
    for member in ("ModelPackageArn", "ModelPackageName"):
        value = params.get(member) if isinstance(params, dict) else None
        if isinstance(value, str) and value.startswith("arn:") and ":model-package/" in value:
            return value
    return "*"


class LocalSageMaker(JobAPIs, HostingAPIs, ModelRegistryAPIs, ModelCardAPIs):
    """The local SageMaker: see the module docstring. `close()` stops endpoint servers and kills running jobs."""

    # ---- API dispatch -------------------------------------------------------------------------------------------

    @property
    def operations(self) -> list[str]:
        """The SageMaker actions this backend serves, by API name."""
        return sorted(name[len("_op_") :] for name in dir(self) if name.startswith("_op_"))

    def supports(self, action: str) -> bool:
        return hasattr(self, f"_op_{action}")

    def call(self, action: str, params: dict[str, Any], caller: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run the SageMaker API `action` (e.g. `CreateTrainingJob`) with its request `params`.

        `caller` is who signed the request (`callers.caller_identity`), None when the twin cannot tell; the
        registry records it as a package's `CreatedBy`/`LastModifiedBy`. Raises `SageMakerError` with AWS's
        error code when SageMaker would refuse the request.
        """
        operation = getattr(self, f"_op_{action}", None)
        if operation is None:
            raise SageMakerError("UnknownOperationException", f"The local SageMaker does not implement {action}")
        with self._lock:
            self._refuse_when_closed()
        request = copy.deepcopy(params)
        if action in CALLER_RECORDING_OPERATIONS:
            result: dict[str, Any] = operation(request, copy.deepcopy(caller))
        else:
            result = operation(request)
        return copy.deepcopy(result)

    def install(self) -> None:
        """Answer moto's SageMaker and SageMaker Runtime requests from this backend (boto3 and aws-sdk tasks)."""
        if self._patches.active:
            return
        backend = self

        def make_handler(action: str) -> Callable[[SageMakerResponse], str]:
            def handle(response: SageMakerResponse) -> str:
                params = json.loads(response.body or "{}")
                try:
                    result = backend.call(action, params, caller_identity(response.get_access_key()))
                except SageMakerError as error:
                    raise _ServiceError(error.code, error.message) from error
                return json.dumps(result, default=_json_default)

            return handle

        for action in self.operations:
            self._patches.replace(SageMakerResponse, _snake(action), make_handler(action))

        def make_refusal(action: str, reason: str) -> Callable[[SageMakerResponse], str]:
            def refuse(_response: SageMakerResponse) -> str:
                raise _ServiceError("UnknownOperationException", f"{action}: {reason}")

            return refuse

        # Actions moto would half-answer, or answer as not implemented, that the twin refuses in its own words.
        for action, reason in REFUSED_OPERATIONS.items():
            self._patches.replace(SageMakerResponse, _snake(action), make_refusal(action, reason))

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
                service_error = _ServiceError(error.code, error.message)
                for member, value in error.fields.items():
                    # moto serialises an error's attributes named after its shape's members (ModelError's).
                    setattr(service_error, member, value)
                raise service_error from error
            return 200, {"Content-Type": content_type, "x-Amzn-Invoked-Production-Variant": variant}, result

        self._patches.replace(SageMakerRuntimeResponse, "invoke_endpoint", invoke_endpoint)

        # moto's IAM access-control mode (INITIAL_NO_AUTH_ACTION_COUNT) evaluates a request's policies against the
        # resource its response class names, "*" for SageMaker; a policy scoped to model packages would then never
        # match. Requests that name a model package by ARN are evaluated against that ARN, as on AWS.
        self._patches.replace(SageMakerResponse, "_determine_resource", _model_package_resource)

        # The tagging API (GetResources, which the endpoint reaper's managed scope reads) asks each service backend
        # for its tagged resources; this backend keeps SageMaker's, so moto's own SageMaker store would answer none.
        def iter_tagged_resources(_moto_backend: SageMakerModelBackend) -> Iterator[TaggedResource]:
            for arn, resource_type, tags in backend.tagged_resources():
                yield TaggedResource(arn=arn, tags=tags, resource_type=resource_type)

        self._patches.replace(SageMakerModelBackend, "iter_tagged_resources", iter_tagged_resources)

    def prepare_warm_containers(self) -> None:
        """Starts, in the background, a warm container for each container a training and its deploy start first.

        Two network-isolated processing jobs, a training job on every core, a network-isolated model server: what
        the stack's state machines run (warm_containers.py says what a warm container is and when one is used).
        """
        job_mounts = [CONTAINER_ROOT]
        processing = container_environment({})
        training = container_environment({"OMP_NUM_THREADS": str(self._cpus_per_training(1))})
        # In the order a training execution needs them: preprocessing, training, evaluation, then the model server.
        self.warm_containers.prepare(job_mounts, True, processing)
        self.warm_containers.prepare(job_mounts, True, training)
        self.warm_containers.prepare(job_mounts, True, processing, count=2)
        self.warm_containers.prepare([CONTAINER_MODEL_DIR], True, server_environment({}))

    def uninstall(self) -> None:
        """Give moto its own SageMaker responses back."""
        self._patches.undo()

    def close(self) -> None:
        """Stop endpoint servers, kill running jobs, wait for their threads, restore moto's responses.

        Once the lock below is released no job record or thread can be added (`_refuse_when_closed`), so the
        lists taken under it are all there will be; a request still in flight gets ServiceUnavailable.
        Raises `RuntimeError` naming the threads still running after `JOIN_SECONDS`, after restoring moto.
        """
        with self._lock:
            self._closed = True
            servers = [server for endpoint in self._endpoints.values() for server in endpoint.servers.values()]
            for endpoint in self._endpoints.values():
                # Swapped under the lock, as a deploy thread swaps them; a deploy still running sees _closed and
                # stops the servers it started.
                endpoint.servers = {}
            records = [record for jobs in self._jobs.values() for record in jobs.values()]
            threads = list(self._threads)
            for record in records:
                # A job sets record.container before it reads this flag, and this loop sets the flag before it
                # reads record.container below: either the job sees the flag or the kill sees its process.
                record.stop_requested = True
        for server in servers:
            server.stop()
        for record in records:
            if record.container is not None:
                record.container.kill()
        self.warm_containers.close()
        deadline = time.monotonic() + JOIN_SECONDS
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self.uninstall()
        still_running = [thread.name for thread in threads if thread.is_alive()]
        if still_running:
            raise RuntimeError(
                f"The local SageMaker closed with threads still running after {JOIN_SECONDS:.0f} s: {still_running}"
            )
