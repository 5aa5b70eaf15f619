"""Run SageMaker training, processing and transform jobs as local child processes, staged from and to moto's S3.

Each runner takes a job's Describe* record, gives it a directory standing for `/opt/ml`, stages the
inputs, runs the script mode command with SageMaker's environment (`SM_*`) in a container whose `/opt/ml` is that
directory (containers.py, sandbox.py), uploads the outputs and moves the record through SageMaker's statuses via
`update`. Commands and environments are written with container paths, as SageMaker's would be.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emulator.clock import Clock
from emulator.sagemaker_local.containers import (
    CONTAINER_ROOT,
    ContainerProcess,
    failure_reason,
    rewrite_container_paths,
)
from emulator.sagemaker_local.model_server import ModelServer
from emulator.sagemaker_local.s3io import S3Stager, extract_tarball, inside_destination, tar_directory
from emulator.sagemaker_local.warm_containers import WarmContainerPool

CURRENT_HOST = "algo-1"
UpdateRecord = Callable[..., None]


class JobSetupError(Exception):
    """The job cannot start as specified (missing input, unsupported option): becomes its FailureReason."""


@dataclass
class JobRecord:
    """A job's Describe* output plus what the twin needs to run and stop it."""

    kind: str
    description: dict[str, Any]
    done: threading.Event = field(default_factory=threading.Event)
    container: ContainerProcess | None = None
    stop_requested: bool = False


def decode_hyperparameter(value: Any) -> Any:
    """SageMaker's framework estimators JSON-encode hyperparameter values; plain strings pass through."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _cli_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value) if isinstance(value, list | dict) else str(value)


def user_hyperparameters(hyperparameters: dict[str, Any]) -> dict[str, Any]:
    """The hyperparameters the script sees: decoded, without the toolkit's own `sagemaker_*` keys."""
    return {
        name: decode_hyperparameter(value)
        for name, value in hyperparameters.items()
        if not name.startswith("sagemaker_")
    }


def parse_final_metrics(
    metric_definitions: list[dict[str, str]], log_lines: list[str], now: Any
) -> list[dict[str, Any]]:
    """FinalMetricDataList: for each MetricDefinition, the last value its regex captured in the job's output."""
    final = []
    for definition in metric_definitions:
        pattern = re.compile(definition["Regex"])
        last_value: float | None = None
        for line in log_lines:
            for match in pattern.finditer(line):
                try:
                    last_value = float(match.group(1))
                except (IndexError, ValueError):
                    continue
        if last_value is not None:
            final.append({"MetricName": definition["Name"], "Value": last_value, "Timestamp": now})
    return final


def _max_runtime(description: dict[str, Any]) -> float | None:
    """StoppingCondition.MaxRuntimeInSeconds, in real seconds: the clock never speeds up work."""
    seconds = (description.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds")
    return float(seconds) if seconds else None


class SecondaryStatusTracker:
    """Keeps SecondaryStatus and SecondaryStatusTransitions of a training job as SageMaker reports them."""

    def __init__(self, clock: Clock, update: UpdateRecord) -> None:
        self._clock = clock
        self._update = update
        self._transitions: list[dict[str, Any]] = []

    def enter(self, status: str, message: str) -> None:
        now = self._clock.now()
        if self._transitions:
            self._transitions[-1]["EndTime"] = now
        self._transitions.append({"Status": status, "StartTime": now, "StatusMessage": message})
        self._update(SecondaryStatus=status, SecondaryStatusTransitions=[dict(t) for t in self._transitions])


class JobRunner:
    """What every job kind shares: the clock, S3 staging, and where job directories live."""

    def __init__(
        self, clock: Clock, stager: S3Stager, work_dir: Path, warm_pool: WarmContainerPool | None = None
    ) -> None:
        self.clock = clock
        self.stager = stager
        self.work_dir = work_dir
        self.warm_pool = warm_pool

    def job_root(self, kind: str, name: str) -> Path:
        root = self.work_dir / kind / name
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        return root

    def _stage_code(self, submit_directory: str, root: Path, code_dir: Path) -> None:
        if submit_directory.startswith("s3://"):
            download_dir = root / "sourcedir-download"
            self.stager.download(submit_directory, download_dir)
            downloaded = next(download_dir.rglob("*.tar.gz"), None)
            if downloaded is None:
                raise JobSetupError(f"sagemaker_submit_directory {submit_directory} holds no .tar.gz")
            extract_tarball(downloaded, code_dir)
            return
        local = inside_destination(
            root, Path(rewrite_container_paths(submit_directory, root)), "sagemaker_submit_directory"
        )
        if local.is_file():
            extract_tarball(local, code_dir)
        elif local.is_dir():
            shutil.copytree(local, code_dir, dirs_exist_ok=True)
        else:
            raise JobSetupError(
                f"sagemaker_submit_directory {submit_directory!r} is neither an S3 URI nor a staged path "
                "(with network isolation pass the tarball as the 'code' channel)"
            )


class TrainingRunner(JobRunner):
    """Script mode training: `python3 <sagemaker_program> --name value ...` in the extracted sourcedir."""

    def run(self, record: JobRecord, update: UpdateRecord, cpus: int) -> None:
        description = record.description
        name = description["TrainingJobName"]
        status = SecondaryStatusTracker(self.clock, update)
        started = time.monotonic()
        update(TrainingStartTime=self.clock.now())
        status.enter("Starting", "Preparing the instances for training")
        try:
            root = self.job_root("training", name)
            status.enter("Downloading", "Downloading input data")
            command, environment, checkpoint_dir = self._prepare(description, root, cpus)
            status.enter("Training", "Training image download completed. Training in progress.")
            container = ContainerProcess(
                command,
                f"{CONTAINER_ROOT}/code",
                environment,
                root / "logs" / "training.log",
                {CONTAINER_ROOT: root},
                network_isolation=bool(description.get("EnableNetworkIsolation")),
                warm_pool=self.warm_pool,
            )
            record.container = container
            if record.stop_requested:
                container.kill()
            exit_code = container.run(_max_runtime(description))
            log_lines = container.log_lines()
            metrics = parse_final_metrics(
                description["AlgorithmSpecification"].get("MetricDefinitions", []), log_lines, self.clock.now()
            )
            update(FinalMetricDataList=metrics)
            if container.runtime_exceeded:
                reason = f"MaxRuntimeExceeded: the job ran longer than {_max_runtime(description)} seconds"
                self._finish(record, update, status, started, "Stopped", reason, secondary="MaxRuntimeExceeded")
                return
            if record.stop_requested:
                self._finish(record, update, status, started, "Stopped", None)
                return
            if exit_code != 0:
                reason = failure_reason(exit_code, [root / "output" / "failure"], log_lines)
                self._finish(record, update, status, started, "Failed", reason)
                return
            status.enter("Uploading", "Uploading generated training model")
            self._upload_outputs(description, root, checkpoint_dir)
        except (JobSetupError, OSError, ValueError) as error:
            self._finish(record, update, status, started, "Failed", f"ClientError: {error}")
            return
        self._finish(record, update, status, started, "Completed", None)

    def _prepare(
        self, description: dict[str, Any], root: Path, cpus: int
    ) -> tuple[list[str], dict[str, str], Path | None]:
        channels: list[str] = []
        for channel in description.get("InputDataConfig", []):
            channel_name = channel["ChannelName"]
            s3_source = channel.get("DataSource", {}).get("S3DataSource")
            if s3_source is None:
                raise JobSetupError(f"Channel {channel_name!r}: only S3DataSource inputs run locally")
            try:
                self.stager.download(s3_source["S3Uri"], root / "input" / "data" / channel_name)
            except FileNotFoundError as error:
                raise JobSetupError(f"Channel {channel_name!r}: {error}") from error
            channels.append(channel_name)
        checkpoint_dir = None
        checkpoint_path = None
        checkpoint = description.get("CheckpointConfig")
        if checkpoint:
            local_path = checkpoint_path = checkpoint.get("LocalPath") or f"{CONTAINER_ROOT}/checkpoints"
            checkpoint_dir = inside_destination(
                root, Path(rewrite_container_paths(local_path, root)), "CheckpointConfig"
            )
            checkpoint_dir.mkdir(parents=True, exist_ok=True)
            # A first run has no checkpoints yet; a resumed spot run finds the last ones here.
            with contextlib.suppress(FileNotFoundError):
                self.stager.download(checkpoint["S3Uri"], checkpoint_dir)
        hyperparameters = description.get("HyperParameters", {})
        program = decode_hyperparameter(hyperparameters.get("sagemaker_program", ""))
        submit_directory = decode_hyperparameter(hyperparameters.get("sagemaker_submit_directory", ""))
        if not program or not submit_directory:
            raise JobSetupError(
                "Only script mode runs locally: set the sagemaker_program and "
                "sagemaker_submit_directory hyperparameters"
            )
        code_dir = root / "code"
        self._stage_code(str(submit_directory), root, code_dir)
        if not (code_dir / str(program)).is_file():
            raise JobSetupError(f"sagemaker_program {program!r} is not in the source directory {submit_directory}")
        model_dir = root / "model"
        output_data_dir = root / "output" / "data"
        config_dir = root / "input" / "config"
        for directory in (model_dir, output_data_dir, config_dir):
            directory.mkdir(parents=True, exist_ok=True)
        user_hps = user_hyperparameters(hyperparameters)
        resource_config = {"current_host": CURRENT_HOST, "hosts": [CURRENT_HOST], "network_interface_name": "lo"}
        (config_dir / "hyperparameters.json").write_text(json.dumps(hyperparameters))
        (config_dir / "resourceconfig.json").write_text(json.dumps(resource_config))
        (config_dir / "inputdataconfig.json").write_text(
            json.dumps({channel["ChannelName"]: channel for channel in description.get("InputDataConfig", [])})
        )
        user_args = [part for hp, value in user_hps.items() for part in (f"--{hp}", _cli_value(value))]
        environment = {
            **{key: str(value) for key, value in description.get("Environment", {}).items()},
            "SM_MODEL_DIR": f"{CONTAINER_ROOT}/model",
            "SM_OUTPUT_DIR": f"{CONTAINER_ROOT}/output",
            "SM_OUTPUT_DATA_DIR": f"{CONTAINER_ROOT}/output/data",
            "SM_INPUT_DIR": f"{CONTAINER_ROOT}/input",
            "SM_INPUT_CONFIG_DIR": f"{CONTAINER_ROOT}/input/config",
            "SM_CHANNELS": json.dumps(channels),
            "SM_HPS": json.dumps(user_hps),
            "SM_USER_ARGS": json.dumps(user_args),
            "SM_USER_ENTRY_POINT": str(program),
            "SM_MODULE_DIR": str(submit_directory),
            "SM_NUM_CPUS": str(cpus),
            "SM_NUM_GPUS": "0",
            "SM_CURRENT_HOST": CURRENT_HOST,
            "SM_HOSTS": json.dumps([CURRENT_HOST]),
            "SM_LOG_LEVEL": "20",
            "SM_RESOURCE_CONFIG": json.dumps(resource_config),
            "TRAINING_JOB_NAME": description["TrainingJobName"],
            # Each concurrent job gets its share of the cores, as each would get its own instance on AWS.
            "OMP_NUM_THREADS": str(cpus),
        }
        for channel_name in channels:
            environment[f"SM_CHANNEL_{channel_name.upper()}"] = f"{CONTAINER_ROOT}/input/data/{channel_name}"
        for hp, value in user_hps.items():
            environment[f"SM_HP_{hp.upper()}"] = _cli_value(value)
        if checkpoint_path is not None:
            environment["SM_CHECKPOINT_DIR"] = checkpoint_path
        return ["python3", str(program), *user_args], environment, checkpoint_dir

    def _upload_outputs(self, description: dict[str, Any], root: Path, checkpoint_dir: Path | None) -> None:
        output_config = description["OutputDataConfig"]
        kms_key = output_config.get("KmsKeyId") or None
        prefix = f"{output_config['S3OutputPath'].rstrip('/')}/{description['TrainingJobName']}/output"
        model_archive = tar_directory(root / "model", root / "output" / "model.tar.gz")
        self.stager.upload_file(model_archive, f"{prefix}/model.tar.gz", kms_key)
        output_data = root / "output" / "data"
        if any(output_data.iterdir()):
            self.stager.upload_file(
                tar_directory(output_data, root / "output" / "output.tar.gz"), f"{prefix}/output.tar.gz", kms_key
            )
        if checkpoint_dir is not None and any(checkpoint_dir.iterdir()):
            self.stager.upload_directory(checkpoint_dir, description["CheckpointConfig"]["S3Uri"], kms_key)

    def _finish(
        self,
        record: JobRecord,
        update: UpdateRecord,
        status: SecondaryStatusTracker,
        started: float,
        job_status: str,
        reason: str | None,
        secondary: str | None = None,
    ) -> None:
        description = record.description
        # The final secondary status has the job status's name unless SageMaker names the cause.
        if secondary is None:
            secondary = job_status
            message = {"Completed": "Training job completed", "Stopped": "Training job stopped"}.get(job_status)
        else:
            message = None
        status.enter(secondary, message or reason or secondary)
        seconds = max(1, int(time.monotonic() - started))
        fields: dict[str, Any] = {
            "TrainingEndTime": self.clock.now(),
            "TrainingTimeInSeconds": seconds,
            "BillableTimeInSeconds": seconds,
        }
        if job_status == "Completed":
            output_path = description["OutputDataConfig"]["S3OutputPath"].rstrip("/")
            fields["ModelArtifacts"] = {
                "S3ModelArtifacts": f"{output_path}/{description['TrainingJobName']}/output/model.tar.gz"
            }
        if reason:
            fields["FailureReason"] = reason
        update(TrainingJobStatus=job_status, **fields)


# What the twin stages of a ProcessingInput's S3Input; SageMaker's other values are refused by name, never staged
# as something else. File mode only: Pipe streams through a FIFO the twin does not provide.
_STAGED_S3_DATA_TYPES = ("S3Prefix", "ManifestFile")
_STAGED_S3_INPUT_MODES = ("File",)
_STAGED_COMPRESSION_TYPES = ("None",)


def _refuse_unsupported_staging(name: Any, s3_input: dict[str, Any]) -> None:
    for setting, value, supported in (
        ("S3DataType", s3_input.get("S3DataType", "S3Prefix"), _STAGED_S3_DATA_TYPES),
        ("S3InputMode", s3_input.get("S3InputMode", "File"), _STAGED_S3_INPUT_MODES),
        ("S3CompressionType", s3_input.get("S3CompressionType", "None"), _STAGED_COMPRESSION_TYPES),
    ):
        if value not in supported:
            raise JobSetupError(
                f"ProcessingInput {name!r}: {setting} {value!r} is not supported by the local twin "
                f"(it stages {', '.join(supported)}); change the input or run the job on AWS"
            )


class ProcessingRunner(JobRunner):
    """Processing: stage ProcessingInputs, run ContainerEntrypoint + ContainerArguments, upload ProcessingOutputs."""

    def run(self, record: JobRecord, update: UpdateRecord) -> None:
        description = record.description
        update(ProcessingStartTime=self.clock.now())
        try:
            root = self.job_root("processing", description["ProcessingJobName"])
            command, environment = self._prepare(description, root)
            container = ContainerProcess(
                command,
                CONTAINER_ROOT,
                environment,
                root / "logs" / "processing.log",
                {CONTAINER_ROOT: root},
                network_isolation=bool((description.get("NetworkConfig") or {}).get("EnableNetworkIsolation")),
                warm_pool=self.warm_pool,
            )
            record.container = container
            if record.stop_requested:
                container.kill()
            exit_code = container.run(_max_runtime(description))
            if container.runtime_exceeded:
                reason = f"MaxRuntimeExceeded: the job ran longer than {_max_runtime(description)} seconds"
                update(ProcessingJobStatus="Stopped", ExitMessage=reason, ProcessingEndTime=self.clock.now())
                return
            if record.stop_requested:
                update(ProcessingJobStatus="Stopped", ProcessingEndTime=self.clock.now())
                return
            if exit_code != 0:
                reason = failure_reason(
                    exit_code, [root / "output" / "failure", root / "output" / "message"], container.log_lines()
                )
                update(
                    ProcessingJobStatus="Failed",
                    FailureReason=reason,
                    ExitMessage=reason,
                    ProcessingEndTime=self.clock.now(),
                )
                return
            self._upload_outputs(description, root)
        except (JobSetupError, OSError, ValueError) as error:
            update(
                ProcessingJobStatus="Failed", FailureReason=f"ClientError: {error}", ProcessingEndTime=self.clock.now()
            )
            return
        update(ProcessingJobStatus="Completed", ProcessingEndTime=self.clock.now())

    def _prepare(self, description: dict[str, Any], root: Path) -> tuple[list[str], dict[str, str]]:
        for processing_input in description.get("ProcessingInputs", []):
            s3_input = processing_input.get("S3Input")
            if s3_input is None:
                raise JobSetupError(f"ProcessingInput {processing_input.get('InputName')!r}: only S3Input runs locally")
            name = processing_input.get("InputName")
            _refuse_unsupported_staging(name, s3_input)
            local_path = inside_destination(
                root, Path(rewrite_container_paths(s3_input["LocalPath"], root)), f"LocalPath {s3_input['LocalPath']!r}"
            )
            try:
                if s3_input.get("S3DataType", "S3Prefix") == "ManifestFile":
                    self.stager.download_manifest(s3_input["S3Uri"], local_path)
                else:
                    self.stager.download(s3_input["S3Uri"], local_path)
            except FileNotFoundError as error:
                raise JobSetupError(f"ProcessingInput {name!r}: {error}") from error
        for output in description.get("ProcessingOutputConfig", {}).get("Outputs", []):
            local = output["S3Output"]["LocalPath"]
            inside_destination(root, Path(rewrite_container_paths(local, root)), f"LocalPath {local!r}").mkdir(
                parents=True, exist_ok=True
            )
        app = description["AppSpecification"]
        entrypoint = app.get("ContainerEntrypoint")
        if not entrypoint:
            raise JobSetupError(
                f"AppSpecification of image {app.get('ImageUri')!r} has no ContainerEntrypoint: the local twin "
                "cannot know the image's default entrypoint, so name the command explicitly"
            )
        config_dir = root / "config"
        config_dir.mkdir(parents=True, exist_ok=True)
        (config_dir / "processingjobconfig.json").write_text(json.dumps(description, default=str))
        (config_dir / "resourceconfig.json").write_text(
            json.dumps({"current_host": CURRENT_HOST, "hosts": [CURRENT_HOST]})
        )
        command = [*entrypoint, *app.get("ContainerArguments", [])]
        environment = {key: str(value) for key, value in description.get("Environment", {}).items()}
        return command, environment

    def _upload_outputs(self, description: dict[str, Any], root: Path) -> None:
        output_config = description.get("ProcessingOutputConfig", {})
        kms_key = output_config.get("KmsKeyId") or None
        for output in output_config.get("Outputs", []):
            s3_output = output["S3Output"]
            local = s3_output["LocalPath"]
            local_path = inside_destination(root, Path(rewrite_container_paths(local, root)), f"LocalPath {local!r}")
            self.stager.upload_directory(local_path, s3_output["S3Uri"], kms_key)


class TransformRunner(JobRunner):
    """Batch transform: serve the model locally and send it each input object (or each line of it)."""

    def run(
        self,
        record: JobRecord,
        update: UpdateRecord,
        model_dir: Path,
        model_environment: dict[str, str],
        *,
        network_isolation: bool = False,
    ) -> None:
        description = record.description
        update(TransformStartTime=self.clock.now())
        server: ModelServer | None = None
        try:
            root = self.job_root("transform", description["TransformJobName"])
            server = ModelServer(
                model_dir,
                model_environment,
                root / "logs" / "model-server.log",
                network_isolation=network_isolation,
                warm_pool=self.warm_pool,
            )
            self._transform(description, root, server)
        except Exception as error:
            update(
                TransformJobStatus="Failed",
                FailureReason=f"AlgorithmError: {error}"[:1024],
                TransformEndTime=self.clock.now(),
            )
            return
        finally:
            if server is not None:
                server.stop()
        update(
            TransformJobStatus="Stopped" if record.stop_requested else "Completed", TransformEndTime=self.clock.now()
        )

    def _transform(self, description: dict[str, Any], root: Path, server: ModelServer) -> None:
        transform_input = description["TransformInput"]
        transform_output = description["TransformOutput"]
        source_uri = transform_input["DataSource"]["S3DataSource"]["S3Uri"]
        inputs = self.stager.download(source_uri, root / "input")
        content_type = transform_input.get("ContentType", "text/csv")
        accept = transform_output.get("Accept") or content_type
        split_lines = transform_input.get("SplitType") == "Line"
        single_record = description.get("BatchStrategy") == "SingleRecord"
        joiner = b"\n" if transform_output.get("AssembleWith") == "Line" or split_lines else b""
        output_prefix = transform_output["S3OutputPath"].rstrip("/")
        for input_path in inputs:
            body = input_path.read_bytes()
            if split_lines and single_record:
                records = [line for line in body.splitlines() if line.strip()]
                results = [server.invoke(line, content_type, accept)[0].rstrip(b"\n") for line in records]
            else:
                results = [server.invoke(body, content_type, accept)[0]]
            relative = input_path.relative_to(root / "input").as_posix()
            self.stager.put_bytes(
                joiner.join(results), f"{output_prefix}/{relative}.out", transform_output.get("KmsKeyId") or None
            )
