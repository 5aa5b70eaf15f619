"""Benchmark: a tuning job of 8 trainings run 2 at a time on the local SageMaker, against the same 8 in sequence.

How it is measured, in one process and one moto mock:
1. `ml/preprocess.py` splits the bundled breast-cancer data once; the splits and the sourcedir tarball of `ml/`
   go to moto's S3, as the training workflow stages them.
2. Parallel: one CreateHyperParameterTuningJob with the training workflow's own tuning settings (read from
   statemachines/training.asl.json: ranges, strategy, static hyperparameters, metric definitions), 8 trainings,
   MaxParallelTrainingJobs 2. Timed from the create call until the job is Completed.
3. Sequential: the same 8 hyperparameter sets the tuning job chose, as 8 CreateTrainingJob calls, each started
   when the previous one ended. Timed the same way.
Every training gets exactly one thread (SM_NUM_CPUS and OMP_NUM_THREADS = 1) in both runs, so the sequential
run cannot use the second core and the ratio measures running jobs side by side, nothing else. Prints both
wall-clock times and the speedup (target: >= 1.7x on 2 cores).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws

from contract.pipeline_config import load_pipeline_config
from contract.project import PROJECT_ROOT
from emulator.clock import Clock
from emulator.commands.datasets import write_default_dataset
from emulator.sagemaker_local import LocalSageMaker

REGION = os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
BUCKET = "bench-tuning-artifacts"
ROLE_ARN = "arn:aws:iam::123456789012:role/bench-sagemaker"
TRAININGS = 8
PARALLEL = 2
TARGET_SPEEDUP = 1.7
POLL_SECONDS = 0.05
JOB_TIMEOUT_SECONDS = 900


def main() -> int:
    for name, value in (("AWS_ACCESS_KEY_ID", "bench"), ("AWS_SECRET_ACCESS_KEY", "bench")):
        os.environ.setdefault(name, value)
    config = load_pipeline_config()
    tune_state = json.loads((PROJECT_ROOT / "statemachines" / "training.asl.json").read_text())["States"]["Tune"]
    with tempfile.TemporaryDirectory(prefix="bench-tuning-") as tmp, mock_aws():
        work = Path(tmp)
        channels = _stage_inputs(work, config.model.label_column)
        # The backend gives a lone training all the cores (as its own instance would have); for this comparison
        # the sequential trainings must not use the core the parallel run gets from its second job.
        backend = LocalSageMaker(work / "sagemaker", Clock(speed=1000.0), max_parallel=PARALLEL, cpus_per_job=1)
        try:
            tuning_request = _tuning_request(tune_state["Parameters"], channels)
            parallel_seconds, hyperparameter_sets = _run_tuning(backend, tuning_request)
            training_request = _training_request(tuning_request["TrainingJobDefinition"])
            sequential_seconds = _run_in_sequence(backend, training_request, hyperparameter_sets)
        finally:
            backend.close()
    speedup = sequential_seconds / parallel_seconds
    print(f"tuning job, {TRAININGS} trainings, {PARALLEL} in parallel: {parallel_seconds:.1f} s")
    print(f"the same {TRAININGS} trainings in sequence:            {sequential_seconds:.1f} s")
    print(f"speedup: {speedup:.2f}x (target >= {TARGET_SPEEDUP}x; 1 thread per training; {os.cpu_count()} cores)")
    # Other processes on the machine skew both sides of a ratio: say how busy it was.
    print(f"load average over the last minute when done: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return 0 if speedup >= TARGET_SPEEDUP else 1


def _stage_inputs(work: Path, label_column: str) -> dict[str, str]:
    """Splits the default data set with ml/preprocess.py and uploads the splits and the sourcedir to moto's S3."""
    dataset = write_default_dataset(work / "raw")
    splits = work / "splits"
    subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "ml" / "preprocess.py"),
            "--input-dir",
            str(dataset.path.parent),
            "--output-dir",
            str(splits),
            "--label-column",
            label_column,
        ],
        check=True,
        capture_output=True,
    )
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    for channel in ("train", "validation"):
        s3.upload_file(str(splits / channel / f"{channel}.csv"), BUCKET, f"splits/{channel}/{channel}.csv")
    s3.put_object(Bucket=BUCKET, Key="code/sourcedir.tar.gz", Body=_sourcedir_tarball(PROJECT_ROOT / "ml"))
    return {
        "train": f"s3://{BUCKET}/splits/train/",
        "validation": f"s3://{BUCKET}/splits/validation/",
        "code": f"s3://{BUCKET}/code/sourcedir.tar.gz",
    }


def _sourcedir_tarball(ml_dir: Path) -> bytes:
    """`ml/`'s scripts at the root of a gzipped tar, as the stack publishes them for SageMaker."""
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for script in sorted(ml_dir.glob("*.py")):
            tar.add(script, arcname=script.name)
    return archive.getvalue()


def _tuning_request(asl_parameters: dict[str, Any], channels: dict[str, str]) -> dict[str, Any]:
    """The workflow's tuning request with the stack's values filled in for this bench's bucket and role."""
    config = dict(asl_parameters["HyperParameterTuningJobConfig"])
    config["ResourceLimits"] = {"MaxNumberOfTrainingJobs": TRAININGS, "MaxParallelTrainingJobs": PARALLEL}
    workflow_definition = asl_parameters["TrainingJobDefinition"]
    definition = {
        "AlgorithmSpecification": {
            **workflow_definition["AlgorithmSpecification"],
            "TrainingImage": "sagemaker-xgboost:local",
        },
        "StaticHyperParameters": workflow_definition["StaticHyperParameters"],
        "InputDataConfig": [
            {"ChannelName": name, "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri}}}
            for name, uri in channels.items()
        ],
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/models/"},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": JOB_TIMEOUT_SECONDS},
        "RoleArn": ROLE_ARN,
        "EnableNetworkIsolation": True,
    }
    return {
        "HyperParameterTuningJobName": "bench-tuning-parallel",
        "HyperParameterTuningJobConfig": config,
        "TrainingJobDefinition": definition,
    }


def _training_request(tuning_definition: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in tuning_definition.items() if key != "StaticHyperParameters"}


def _run_tuning(backend: LocalSageMaker, request: dict[str, Any]) -> tuple[float, list[dict[str, str]]]:
    name = request["HyperParameterTuningJobName"]
    started = time.monotonic()
    backend.call("CreateHyperParameterTuningJob", request)
    description = _wait(
        lambda: backend.call("DescribeHyperParameterTuningJob", {"HyperParameterTuningJobName": name}),
        "HyperParameterTuningJobStatus",
    )
    elapsed = time.monotonic() - started
    if description["HyperParameterTuningJobStatus"] != "Completed":
        status, reason = description["HyperParameterTuningJobStatus"], description.get("FailureReason")
        raise SystemExit(f"tuning job {name} ended {status}: {reason}")
    summaries = backend.call("ListTrainingJobsForHyperParameterTuningJob", {"HyperParameterTuningJobName": name})
    trainings = [
        backend.call("DescribeTrainingJob", {"TrainingJobName": s["TrainingJobName"]})
        for s in summaries["TrainingJobSummaries"]
    ]
    if len(trainings) != TRAININGS or any(t["TrainingJobStatus"] != "Completed" for t in trainings):
        statuses = [(t["TrainingJobName"], t["TrainingJobStatus"], t.get("FailureReason")) for t in trainings]
        raise SystemExit(f"tuning job {name} did not complete {TRAININGS} trainings: {statuses}")
    return elapsed, [t["HyperParameters"] for t in trainings]


def _run_in_sequence(
    backend: LocalSageMaker, request: dict[str, Any], hyperparameter_sets: list[dict[str, str]]
) -> float:
    started = time.monotonic()
    for index, hyperparameters in enumerate(hyperparameter_sets, start=1):
        name = f"bench-sequential-{index:03d}"
        backend.call("CreateTrainingJob", {**request, "TrainingJobName": name, "HyperParameters": hyperparameters})
        description = _wait(
            lambda name=name: backend.call("DescribeTrainingJob", {"TrainingJobName": name}), "TrainingJobStatus"
        )
        if description["TrainingJobStatus"] != "Completed":
            raise SystemExit(
                f"training {name} ended {description['TrainingJobStatus']}: {description.get('FailureReason')}"
            )
    return time.monotonic() - started


def _wait(describe: Any, status_key: str) -> dict[str, Any]:
    deadline = time.monotonic() + JOB_TIMEOUT_SECONDS
    while True:
        description: dict[str, Any] = describe()
        if description[status_key] not in ("InProgress", "Stopping"):
            return description
        if time.monotonic() > deadline:
            raise SystemExit(f"job still {description[status_key]} after {JOB_TIMEOUT_SECONDS} s")
        time.sleep(POLL_SECONDS)


if __name__ == "__main__":
    sys.exit(main())
