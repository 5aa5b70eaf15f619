"""The local SageMaker's hosting: models, endpoint configs, endpoints (deploy, rollback), invoke and capture.

An invocation also publishes the metrics SageMaker publishes per invocation (`Invocations`, and
`Invocation4XXErrors`/`Invocation5XXErrors`, 1 for an error response and 0 otherwise), and writes a data capture
record when the endpoint config asks for one. InvokeEndpoint keeps a real-time endpoint's limits (a request and a
response of at most 6 MB, 60 s for the container to answer) and wraps a container's error answer, a timeout or an
oversize response as SageMaker Runtime's `ModelError` (`OriginalStatusCode`, `OriginalMessage`, `LogStreamArn`).

UpdateEndpoint is a blue/green deployment as SageMaker's deployment guardrails describe it: the new (green) fleet
starts beside the old (blue) one, traffic moves to it in the steps of the TrafficRoutingConfiguration (all at once,
canary then the rest, or linear), and after each step a baking period of WaitIntervalInSeconds watches the
AutoRollbackConfiguration alarms. An alarm in ALARM at any check of a baking period (every `BAKE_CHECK_SECONDS`)
rolls the update back: all traffic returns to the blue fleet, the green one stops, and the endpoint is InService on
its old endpoint config with a FailureReason naming the alarm (SageMaker's wording is not published; this one names
the alarm). The blue fleet stops as soon as the update completes (TerminationWaitInSeconds only delays that on AWS).
"""

from __future__ import annotations

import base64
import copy
import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from emulator.sagemaker_local.deployment_config import (
    baking_seconds,
    check_deployment_config,
    rollback_alarms,
    traffic_steps,
)
from emulator.sagemaker_local.errors import InferenceCodeUnavailable, SageMakerError, not_found, validation_error
from emulator.sagemaker_local.model_server import (
    ModelServer,
    ModelServerError,
    ModelServerTimeout,
    ModelServerUnreachable,
)
from emulator.sagemaker_local.store import EndpointState, SageMakerStore, paginate, sort_summaries

# Virtual seconds between two looks at the rollback alarms during a baking period: alarms change at most once a
# minute by evaluation, so no ALARM is missed.
BAKE_CHECK_SECONDS = 10.0
# A real-time endpoint's limits (InvokeEndpoint's reference): a request and a response body of at most 6 MB, and at
# most 60 s for the container to answer.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
MODEL_LATENCY_LIMIT_SECONDS = 60.0


class ContainerStartFailed(RuntimeError):
    """A variant's container would not start on SageMaker; the message is the FailureReason in SageMaker's words."""


@dataclass
class HostedEndpoint(EndpointState):
    """An endpoint, and while a blue/green update shifts traffic the green fleet and the share of traffic it gets."""

    green: dict[str, ModelServer] = field(default_factory=dict)
    green_share: float = 0.0
    # The new endpoint config's DataCaptureConfig: the traffic the green fleet serves is captured by its rules.
    green_capture: dict[str, Any] | None = None


class HostingAPIs(SageMakerStore):
    """Models, endpoint configs and endpoints; endpoints serve from `ModelServer` processes on 127.0.0.1."""

    # Real seconds a container has to answer an invocation; SageMaker's limit, lowered only by tests.
    model_latency_limit_seconds = MODEL_LATENCY_LIMIT_SECONDS

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
        return paginate(sort_summaries(summaries, params, "ModelName"), params, "Models")

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
        return paginate(sort_summaries(summaries, params, "EndpointConfigName"), params, "EndpointConfigs")

    def _start_servers(self, endpoint_name: str, config: dict[str, Any], generation: int) -> dict[str, ModelServer]:
        servers: dict[str, ModelServer] = {}
        try:
            for variant in config["ProductionVariants"]:
                model = self._model(variant["ModelName"])
                variant_dir = self.work_dir / "endpoints" / endpoint_name / f"{generation}-{variant['VariantName']}"
                try:
                    model_dir, environment = self._extract_model(model, variant_dir / "model", variant_dir / "code")
                except InferenceCodeUnavailable as error:
                    raise ContainerStartFailed(
                        f"The primary container for production variant {variant['VariantName']} did not pass the "
                        f"ping health check. Please check CloudWatch logs for this endpoint. (Local twin: {error}.)"
                    ) from error
                servers[variant["VariantName"]] = ModelServer(
                    model_dir,
                    environment,
                    variant_dir / "server.log",
                    network_isolation=bool(model.get("EnableNetworkIsolation")),
                    warm_pool=self.warm_containers,
                )
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

    def _endpoint(self, name: str) -> EndpointState:
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
            endpoint = HostedEndpoint(description, {})
            self._endpoints[name] = endpoint
        self._record_tags(description["EndpointArn"], params.get("Tags"))
        self._emit_endpoint(endpoint)
        self._start_deploy(lambda: self._deploy(endpoint, config, creating=True), f"endpoint-{name}")
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
        deployment = copy.deepcopy(params.get("DeploymentConfig") or {})
        self._start_deploy(
            lambda: self._deploy(endpoint, config, creating=False, deployment=deployment),
            f"endpoint-{params['EndpointName']}",
        )
        return {"EndpointArn": endpoint.description["EndpointArn"]}

    def _start_deploy(self, deploy: Callable[[], None], name: str) -> None:
        """Starts `deploy` (`_deploy`) on its thread, counted among the servers starting from the API call on, so
        the clock never skips time between the call and the servers' start (`busy`)."""
        with self._lock:
            self._servers_starting += 1
        try:
            self._start_thread(deploy, name)
        except BaseException:
            with self._lock:
                self._servers_starting -= 1
            raise

    def _alarm_firing(self, alarm_names: list[str]) -> str | None:
        if not alarm_names:
            return None
        alarms = self.cloudwatch.describe_alarms(AlarmNames=alarm_names)
        firing = [alarm["AlarmName"] for alarm in alarms["MetricAlarms"] if alarm["StateValue"] == "ALARM"]
        return firing[0] if firing else None

    def _deploy(
        self, endpoint: EndpointState, config: dict[str, Any], creating: bool, deployment: dict[str, Any] | None = None
    ) -> None:
        """Start the new variants' servers, keep the transition visible for a while, then swap and go InService.

        An update shifts traffic and bakes as the module docstring says, and rolls back when a rollback alarm trips.
        """
        with self._lock:
            endpoint.generation += 1
            generation = endpoint.generation
        servers: dict[str, ModelServer] = {}
        try:
            try:
                servers = self._start_servers(endpoint.description["EndpointName"], config, generation)
            finally:
                with self._lock:
                    self._servers_starting -= 1
            self.clock.sleep(self.endpoint_transition_seconds)
            firing_alarm = None if creating else self._shift_and_bake(endpoint, servers, config, deployment or {})
        except Exception as error:  # whatever kept the model from serving is the endpoint's FailureReason
            with self._lock:
                if isinstance(endpoint, HostedEndpoint):
                    endpoint.green, endpoint.green_share, endpoint.green_capture = {}, 0.0, None
                # A failed update rolls back: the old variants keep serving, as with SageMaker's blue/green.
                reason = str(error) if isinstance(error, ContainerStartFailed) else f"{type(error).__name__}: {error}"
                endpoint.description.update(
                    EndpointStatus="Failed" if creating else "InService",
                    FailureReason=reason[:1024],
                    LastModifiedTime=self.clock.now(),
                )
            # Stopped once no request is routed to them any more (a request in flight is served again, see
            # invoke_endpoint).
            for server in servers.values():
                server.stop()
            self._emit_endpoint(endpoint)
            return
        with self._lock:
            if isinstance(endpoint, HostedEndpoint):
                endpoint.green, endpoint.green_share, endpoint.green_capture = {}, 0.0, None
            if firing_alarm is not None:
                retired = servers
                endpoint.description.update(
                    EndpointStatus="InService",
                    FailureReason=(
                        f"The update to endpoint config {config['EndpointConfigName']} was rolled back: "
                        f"alarm {firing_alarm} went to ALARM during the deployment."
                    ),
                    LastModifiedTime=self.clock.now(),
                )
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

    def _shift_and_bake(
        self, endpoint: EndpointState, green: dict[str, ModelServer], config: dict[str, Any], deployment: dict[str, Any]
    ) -> str | None:
        """Move traffic to `green` step by step, baking after each; returns the alarm that tripped, if one did."""
        alarms = rollback_alarms(deployment)
        bake = baking_seconds(deployment)
        for share in traffic_steps(deployment, config):
            with self._lock:
                if self._closed:
                    return None
                if isinstance(endpoint, HostedEndpoint):
                    endpoint.green, endpoint.green_share = green, share
                    endpoint.green_capture = copy.deepcopy(config.get("DataCaptureConfig"))
            tripped = self._bake(alarms, bake)
            if tripped is not None:
                return tripped
        return None

    def _bake(self, alarms: list[str], seconds: float) -> str | None:
        """Watch `alarms` for `seconds` of virtual time; the first found in ALARM, or None."""
        remaining = seconds
        while True:
            tripped = self._alarm_firing(alarms)
            if tripped is not None or remaining <= 0 or self._closed:
                return tripped
            step = min(BAKE_CHECK_SECONDS, remaining)
            self.clock.sleep(step)
            remaining -= step

    def _emit_endpoint(self, endpoint: EndpointState) -> None:
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
        return paginate(sort_summaries(summaries, params, "EndpointName"), params, "Endpoints")

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
        """`sagemaker-runtime` InvokeEndpoint: returns (body, content type, invoked variant).

        Its request errors are the runtime's `ValidationError` (the control plane's are `ValidationException`).
        """
        with self._lock:
            endpoint = self._endpoints.get(endpoint_name)
        if endpoint is None:
            raise SageMakerError("ValidationError", f"Endpoint {endpoint_name} of account {self.account_id} not found.")
        with self._lock:
            servers = dict(endpoint.servers)
            capture = copy.deepcopy(endpoint.capture)
            weights = {
                v["VariantName"]: v.get("CurrentWeight", 1.0)
                for v in endpoint.description.get("ProductionVariants", [])
            }
            if isinstance(endpoint, HostedEndpoint) and endpoint.green and random.random() < endpoint.green_share:
                # This request is part of the traffic a blue/green update has moved to the new fleet.
                servers, capture = dict(endpoint.green), copy.deepcopy(endpoint.green_capture)
        if not servers:
            raise SageMakerError(
                "ValidationError",
                f"Endpoint {endpoint_name} is {endpoint.description['EndpointStatus']}: it cannot be invoked yet",
            )
        variant = target_variant or max(servers, key=lambda v: weights.get(v, 0.0))
        if target_variant is None and variant not in servers:
            variant = next(iter(servers))
        if variant not in servers:
            raise SageMakerError(
                "ValidationError", f"Endpoint {endpoint_name} has no variant {variant!r}; it has {sorted(servers)}"
            )
        if len(body) > MAX_PAYLOAD_BYTES:
            # The runtime's front end refuses it before any container sees it (SageMaker's wording).
            raise SageMakerError("ValidationError", f"Request {uuid.uuid4()} has oversize body.")
        try:
            result, result_type = servers[variant].invoke(
                body, content_type, accept, timeout_seconds=self.model_latency_limit_seconds
            )
        except ModelServerError as error:
            status = error.status_code or 500
            self._record_invocation(endpoint_name, variant, error_status=status)
            raise self._model_error(endpoint_name, status, str(error)) from error
        except ModelServerTimeout as error:
            self._record_invocation(endpoint_name, variant, error_status=500)
            raise self._model_error(
                endpoint_name,
                0,
                "Your invocation timed out while waiting for a response from container primary. Review the latency "
                "metrics for each container in Amazon CloudWatch, resolve the issue, and try again.",
            ) from error
        except ModelServerUnreachable as error:
            server = servers[variant]
            with self._lock:
                serving = [*endpoint.servers.values(), *(getattr(endpoint, "green", None) or {}).values()]
            if all(current is not server for current in serving):
                # An update or rollback stopped that fleet meanwhile: SageMaker drains a replaced fleet, so the
                # request is served by the fleet that serves now.
                return self.invoke_endpoint(endpoint_name, body, content_type, accept, target_variant)
            self._record_invocation(endpoint_name, variant, error_status=500)
            raise SageMakerError(
                "ServiceUnavailable", f"Variant {variant} of endpoint {endpoint_name} could not serve: {error}"
            ) from error
        if len(result) > MAX_PAYLOAD_BYTES:
            self._record_invocation(endpoint_name, variant, error_status=500)
            raise self._model_error(
                endpoint_name,
                0,
                f"The response from container primary is {len(result)} bytes: a real-time endpoint returns at most "
                f"{MAX_PAYLOAD_BYTES} bytes (6 MB).",
            )
        self._record_invocation(endpoint_name, variant)
        if capture and capture.get("EnableCapture", True):
            self._capture(endpoint_name, variant, capture, (body, content_type), (result, result_type))
        return result, result_type, variant

    def _model_error(self, endpoint_name: str, status: int, original_message: str) -> SageMakerError:
        """SageMaker Runtime's ModelError for a container's non-2xx answer (`status` 0: no answer at all)."""
        kind = "client" if 400 <= status < 500 else "server"
        log_group = f"/aws/sagemaker/Endpoints/{endpoint_name}"
        return SageMakerError(
            "ModelError",
            f'Received {kind} error ({status}) from primary with message "{original_message}". See '
            f"https://{self.region}.console.aws.amazon.com/cloudwatch/home?region={self.region}"
            f"#logEventViewer:group={log_group} in account {self.account_id} for more information.",
            {
                "OriginalStatusCode": status,
                "OriginalMessage": original_message,
                "LogStreamArn": f"arn:aws:logs:{self.region}:{self.account_id}:log-group:{log_group}",
            },
        )

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

    def _record_invocation(self, endpoint_name: str, variant: str, error_status: int | None = None) -> None:
        """Publish SageMaker's per-invocation metrics: `Invocations` (the idle endpoint reaper reads it) and the
        error counts (1 for an error response of that class, else 0; the rollback alarm watches the 5XX one)."""
        dimensions = [{"Name": "EndpointName", "Value": endpoint_name}, {"Name": "VariantName", "Value": variant}]
        now = self.clock.now()
        client_error = error_status is not None and 400 <= error_status < 500
        values = {
            "Invocations": 1.0,
            "Invocation4XXErrors": 1.0 if client_error else 0.0,
            "Invocation5XXErrors": 1.0 if error_status is not None and not client_error else 0.0,
        }
        self.cloudwatch.put_metric_data(
            Namespace="AWS/SageMaker",
            MetricData=[
                {"MetricName": name, "Dimensions": dimensions, "Timestamp": now, "Value": value, "Unit": "None"}
                for name, value in values.items()
            ],
        )
