"""One way to build a processing job of the framework image for a state machine: secured, tagged, per execution.

`training` (preprocess, evaluate) and `monitoring` (the drift analyzer) build their jobs here: KMS on volumes and
outputs, network isolation, encrypted inter-container traffic, the job role, the stack's tags and an
execution-scoped job name, the code staged from the published sourcedir.
"""

from __future__ import annotations

from typing import Any

from sagemaker.network import NetworkConfig
from sagemaker.processing import ProcessingInput, ProcessingOutput, Processor

from contract.pipeline_config import PipelineConfig
from contract.placeholders import (
    ARTIFACT_BUCKET,
    IMAGE_URI,
    KMS_KEY_ARN,
    PROCESSING_INSTANCE_TYPE,
    SAGEMAKER_JOB_ROLE_ARN,
    SOURCE_DIR_URI,
)
from workflows.policies import with_partition_placeholder
from workflows.sagemaker_params import (
    TAG_VALUES,
    execution_scoped_name,
    offline_session,
    secure_processing_job,
    set_dynamic,
)
from workflows.sdk import steps

PROCESSING_CODE_DIR = "/opt/ml/processing/input/code"
# A job's output folder, uploaded when it ends.
PROCESSING_OUTPUT_DIR = "/opt/ml/processing/output"
# The SDK needs an S3 URI where the request then takes a per-execution one (set_processing_uri).
STAND_IN_URI = f"s3://{ARTIFACT_BUCKET}/runs/"


def processing_entrypoint(script: str) -> list[str]:
    """ContainerEntrypoint that unpacks the staged sourcedir and runs `script` with the container arguments."""
    command = f'cd {PROCESSING_CODE_DIR} && tar -xzf sourcedir.tar.gz && exec python3 {script} "$@"'
    return ["/bin/sh", "-c", command, "sh"]


def container_arguments(options: dict[str, object]) -> list[str]:
    """`--name value` pairs for ContainerArguments (docs/interfaces.md passes every path explicitly)."""
    return [part for name, value in options.items() for part in (name, str(value))]


def processor(config: PipelineConfig) -> Processor:
    processing = config.processing
    return Processor(
        role=SAGEMAKER_JOB_ROLE_ARN,
        image_uri=IMAGE_URI,
        instance_count=processing.instance_count,
        # The SDK validates instance types, so it gets pipeline.toml's; the request then takes the placeholder.
        instance_type=processing.instance_type,
        volume_size_in_gb=processing.volume_size_gb,
        volume_kms_key=KMS_KEY_ARN,
        output_kms_key=KMS_KEY_ARN,
        max_runtime_in_seconds=processing.max_runtime_seconds,
        network_config=NetworkConfig(enable_network_isolation=True, encrypt_inter_container_traffic=True),
        sagemaker_session=offline_session(),
    )


def code_input() -> ProcessingInput:
    return ProcessingInput(source=SOURCE_DIR_URI, destination=PROCESSING_CODE_DIR, input_name="code")


def processing_step(
    state_id: str,
    config: PipelineConfig,
    script: str,
    inputs: list[ProcessingInput],
    outputs: list[ProcessingOutput],
    arguments: list[str],
    job_suffix: str,
    result_path: str,
) -> steps.ProcessingStep:
    step = steps.ProcessingStep(
        state_id,
        processor=processor(config),
        job_name=f"stand-in-{job_suffix}",
        inputs=inputs,
        outputs=outputs,
        container_arguments=arguments,
        container_entrypoint=processing_entrypoint(script),
        kms_key_id=KMS_KEY_ARN,
        tags=TAG_VALUES,
        result_path=result_path,
    )
    parameters = step.fields["parameters"]
    set_dynamic(parameters, "ProcessingJobName", execution_scoped_name(job_suffix))
    parameters["ProcessingResources"]["ClusterConfig"]["InstanceType"] = PROCESSING_INSTANCE_TYPE
    secure_processing_job(parameters)
    return with_partition_placeholder(step)


def set_processing_uri(parameters: dict[str, Any], section: str, name: str, expression: str) -> None:
    """Points the named ProcessingInput (section "input") or ProcessingOutput ("output") at a per-execution URI."""
    if section == "input":
        entries, name_key, s3_key = parameters["ProcessingInputs"], "InputName", "S3Input"
    else:
        entries, name_key, s3_key = parameters["ProcessingOutputConfig"]["Outputs"], "OutputName", "S3Output"
    [entry] = [e for e in entries if e[name_key] == name]
    set_dynamic(entry[s3_key], "S3Uri", expression)
