"""Input modes on the twin: Pipe is refused at Create* naming the channel and the mode (the twin stages files and
does not emulate SageMaker's FIFOs), FastFile is staged as File (docs/local-twin.md's support table)."""

from __future__ import annotations

import copy
import time
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

REGION = "us-east-1"
ROLE_ARN = "arn:aws:iam::123456789012:role/local-twin-tests"
# A script-mode training that fails unless its train channel is a directory of files, as it is in File mode.
TRAIN_SCRIPT = """
import os
rows = open(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "train.csv")).read().splitlines()
open(os.path.join(os.environ["SM_MODEL_DIR"], "rows.txt"), "w").write(str(len(rows)))
"""


def _training_request(bucket: str, code: str, name: str, mode: str, channel_mode: str | None = None) -> dict[str, Any]:
    channel: dict[str, Any] = {
        "ChannelName": "train",
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/data/train/"}},
    }
    if channel_mode is not None:
        channel["InputMode"] = channel_mode
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": "xgboost:local", "TrainingInputMode": mode},
        "HyperParameters": {"sagemaker_program": '"train.py"', "sagemaker_submit_directory": f'"{code}"'},
        "InputDataConfig": [channel],
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/models/"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "RoleArn": ROLE_ARN,
        "StoppingCondition": {"MaxRuntimeInSeconds": 300},
    }


@pytest.fixture
def code(runtime: Any, bucket: str) -> str:
    boto3.client("s3", region_name=REGION).put_object(Bucket=bucket, Key="data/train/train.csv", Body=b"1,2\n3,4\n")
    uri: str = runtime.put_sourcedir(bucket, "code/sourcedir.tar.gz", {"train.py": TRAIN_SCRIPT})
    return uri


@pytest.mark.parametrize(
    ("mode", "channel_mode", "setting"),
    [
        ("Pipe", None, "AlgorithmSpecification.TrainingInputMode"),
        ("File", "Pipe", "InputMode"),
    ],
    ids=["job-default", "channel-override"],
)
def test_a_pipe_mode_training_channel_is_refused_at_create_naming_the_channel_and_mode(
    runtime: Any, bucket: str, code: str, mode: str, channel_mode: str | None, setting: str
) -> None:
    client = boto3.client("sagemaker", region_name=REGION)

    with pytest.raises(ClientError) as refused:
        client.create_training_job(**_training_request(bucket, code, "piped", mode, channel_mode))

    error = refused.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert error["Message"].startswith(
        f"CreateTrainingJob: channel 'train' has {setting} 'Pipe', which is not supported by the local twin: "
        "SageMaker streams such an input through a FIFO (/opt/ml/input/data/train_<epoch>)"
    )
    assert client.list_training_jobs()["TrainingJobSummaries"] == []


def test_a_tuning_job_whose_trainings_would_read_a_pipe_is_refused_at_create(
    runtime: Any, bucket: str, code: str
) -> None:
    training = _training_request(bucket, code, "unused", "Pipe")
    definition = {
        "AlgorithmSpecification": {
            **training["AlgorithmSpecification"],
            "MetricDefinitions": [{"Name": "rows", "Regex": "rows=([0-9]+)"}],
        },
        "StaticHyperParameters": training["HyperParameters"],
        **{key: training[key] for key in ("InputDataConfig", "OutputDataConfig", "ResourceConfig", "RoleArn")},
        "StoppingCondition": training["StoppingCondition"],
    }

    with pytest.raises(ClientError) as refused:
        boto3.client("sagemaker", region_name=REGION).create_hyper_parameter_tuning_job(
            HyperParameterTuningJobName="piped-tuning",
            HyperParameterTuningJobConfig={
                "Strategy": "Random",
                "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "rows"},
                "ResourceLimits": {"MaxNumberOfTrainingJobs": 1, "MaxParallelTrainingJobs": 1},
            },
            TrainingJobDefinition=definition,
        )

    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert (
        "channel 'train' has AlgorithmSpecification.TrainingInputMode 'Pipe'"
        in (refused.value.response["Error"]["Message"])
    )


def test_a_pipe_mode_processing_input_is_refused_at_create_naming_the_input(runtime: Any, bucket: str) -> None:
    client = boto3.client("sagemaker", region_name=REGION)
    data_input = {
        "S3Uri": f"s3://{bucket}/data/",
        "LocalPath": "/opt/ml/processing/input/data",
        "S3DataType": "S3Prefix",
        "S3InputMode": "Pipe",
    }

    with pytest.raises(ClientError) as refused:
        client.create_processing_job(
            ProcessingJobName="piped-processing",
            RoleArn=ROLE_ARN,
            AppSpecification={"ImageUri": "local", "ContainerEntrypoint": ["/bin/sh", "-c", "true"]},
            ProcessingResources={
                "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1}
            },
            ProcessingInputs=[{"InputName": "data", "S3Input": data_input}],
        )

    error = refused.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert error["Message"].startswith("ProcessingInput 'data': S3InputMode 'Pipe' is not supported by the local twin")
    assert client.list_processing_jobs()["ProcessingJobSummaries"] == []


@pytest.mark.parametrize(("mode", "channel_mode"), [("FastFile", None), ("File", "FastFile")])
def test_a_fastfile_channel_is_staged_as_files_and_the_training_completes(
    runtime: Any, bucket: str, code: str, mode: str, channel_mode: str | None
) -> None:
    client = boto3.client("sagemaker", region_name=REGION)
    request = _training_request(bucket, code, f"fastfile-{str(channel_mode).lower()}", mode, channel_mode)
    client.create_training_job(**copy.deepcopy(request))

    deadline = time.monotonic() + 120
    described = client.describe_training_job(TrainingJobName=request["TrainingJobName"])
    while described["TrainingJobStatus"] == "InProgress" and time.monotonic() < deadline:
        time.sleep(0.1)
        described = client.describe_training_job(TrainingJobName=request["TrainingJobName"])

    assert described["TrainingJobStatus"] == "Completed", described.get("FailureReason")
