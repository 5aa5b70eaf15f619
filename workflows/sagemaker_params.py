"""Security settings, names and S3 locations every SageMaker task of the state machines shares."""

from __future__ import annotations

import functools
from typing import Any

import boto3
import sagemaker

from contract.placeholders import (
    ARTIFACT_BUCKET,
    ENVIRONMENT_TAG,
    KMS_KEY_ARN,
    PROJECT_TAG,
    SECURITY_GROUP_IDS,
    SUBNET_IDS,
)

# docs/interfaces.md: execution names are at most 56 characters, so `<execution>-<suffix>` stays within
# SageMaker's 63-character limit when the suffix, dash included, is at most 6 characters.
MAX_NAME_SUFFIX_LENGTH = 6

# The stack's tags on every job, model, endpoint and model package: as the SDK steps take them, and as requests.
TAG_VALUES: dict[str, str] = {"Project": PROJECT_TAG, "Environment": ENVIRONMENT_TAG}
TAGS: list[dict[str, str]] = [{"Key": key, "Value": value} for key, value in TAG_VALUES.items()]

# The SageMaker SDK wants a region to build a session; the export never calls AWS, and the region never reaches
# the ASL (every regional value there is a placeholder), so any commercial region does.
_OFFLINE_REGION = "us-east-1"


@functools.cache
def offline_session() -> sagemaker.Session:
    """A SageMaker session that builds request shapes without credentials or network calls.

    Every estimator and processor built with it must set output paths explicitly: the SDK's default
    bucket lookup would call S3. Shared because each new session costs about a second of client set-up.
    """
    return sagemaker.Session(boto_session=boto3.Session(region_name=_OFFLINE_REGION))


def execution_scoped_name(suffix: str) -> str:
    """Intrinsic that names a job or model `<execution name>-<suffix>`, so a retried execution reuses names."""
    if len(suffix) + 1 > MAX_NAME_SUFFIX_LENGTH or not suffix.replace("-", "").isalnum():
        raise ValueError(
            f"name suffix {suffix!r} must be [a-zA-Z0-9-] and at most {MAX_NAME_SUFFIX_LENGTH - 1} characters "
            "(docs/interfaces.md, Execution names)"
        )
    return f"States.Format('{{}}-{suffix}', $$.Execution.Name)"


def tuning_job_name() -> str:
    """Intrinsic for the tuning job name: tuning names are limited to 32 characters, an MD5 hex digest fits."""
    return "States.Hash($$.Execution.Name, 'MD5')"


def run_uri(relative_path: str) -> str:
    """Intrinsic for `s3://<ArtifactBucket>/runs/<execution name>/<relative_path>`: one folder per execution."""
    return f"States.Format('s3://{ARTIFACT_BUCKET}/runs/{{}}/{relative_path}', $$.Execution.Name)"


def vpc_config() -> dict[str, str]:
    """VpcConfig with the stack's subnets and security groups, split from the comma-separated placeholders."""
    return {
        "Subnets.$": f"States.StringSplit('{SUBNET_IDS}', ',')",
        "SecurityGroupIds.$": f"States.StringSplit('{SECURITY_GROUP_IDS}', ',')",
    }


def set_dynamic(parameters: dict[str, Any], key: str, expression: str) -> None:
    """Replaces `key` with `key.$` = a path or intrinsic, the SDK's static value for it being a stand-in."""
    parameters.pop(key, None)
    parameters[f"{key}.$"] = expression


def secure_training_job_definition(definition: dict[str, Any]) -> None:
    """Adds what the SDK drops or cannot express to a training job (or tuning TrainingJobDefinition) request.

    sagemaker 2.257.7 emits neither EnableNetworkIsolation nor EnableInterContainerTrafficEncryption for a
    TrainingStep or TuningStep, and the VPC lists come from placeholders that only intrinsics can split.
    """
    definition["EnableNetworkIsolation"] = True
    definition["EnableInterContainerTrafficEncryption"] = True
    definition["VpcConfig"] = vpc_config()
    _require(definition, ("ResourceConfig", "VolumeKmsKeyId"), "the estimator's volume_kms_key")
    _require(definition, ("OutputDataConfig", "KmsKeyId"), "the estimator's output_kms_key")


def secure_processing_job(parameters: dict[str, Any]) -> None:
    """Puts the processing job in the stack's VPC; isolation, encryption and KMS come from the Processor."""
    network = parameters.setdefault("NetworkConfig", {})
    network["EnableNetworkIsolation"] = True
    network["EnableInterContainerTrafficEncryption"] = True
    network["VpcConfig"] = vpc_config()
    _require(parameters, ("ProcessingResources", "ClusterConfig", "VolumeKmsKeyId"), "the Processor's volume_kms_key")
    _require(parameters, ("ProcessingOutputConfig", "KmsKeyId"), "the step's kms_key_id")


def _require(parameters: dict[str, Any], path: tuple[str, ...], source: str) -> None:
    value: Any = parameters
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    if value != KMS_KEY_ARN:
        raise ValueError(f"{'.'.join(path)} is {value!r}, expected {KMS_KEY_ARN}: set {source}")
