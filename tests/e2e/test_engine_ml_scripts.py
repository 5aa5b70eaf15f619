"""The exported training states run the real ml/ scripts on the twin: preprocess, train (or tune), evaluate, serve."""

from __future__ import annotations

import csv
import io
import json
import re
import tarfile
from typing import Any

import boto3
import pytest
from sklearn.datasets import load_breast_cancer

from contract.project import PROJECT_ROOT

REGION = "us-east-1"
ML_DIR = PROJECT_ROOT / "ml"
TRAINING_ASL = PROJECT_ROOT / "statemachines" / "training.asl.json"
# The states of the training workflow that run SageMaker jobs, in order, with the defaults merged before them.
JOB_STATES = [
    "ApplyInputDefaults",
    "MergeInputDefaults",
    "Preprocess",
    "TuneOrTrain",
    "WarmStartOrNot",
    "Tune",
    "TuneWithWarmStart",
    "DescribeBestTrainingJob",
    "Train",
    "Evaluate",
]

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not TRAINING_ASL.exists() or not (ML_DIR / "train.py").exists(),
        reason="statemachines/ and ml/ not exported yet",
    ),
]


def _sourcedir_tarball() -> bytes:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for path in sorted(ML_DIR.glob("*.py")):
            tar.add(path, arcname=path.name)
    return archive.getvalue()


def _breast_cancer_csv() -> bytes:
    data = load_breast_cancer(as_frame=True).frame
    return data.to_csv(index=False).encode()


def _job_states(substitutions: dict[str, str], max_tuning_jobs: int) -> dict[str, Any]:
    text = TRAINING_ASL.read_text()
    for name, value in substitutions.items():
        text = text.replace("${" + name + "}", value)
    missing = set(re.findall(r"\$\{(\w+)\}", text))
    assert not missing, f"placeholders left unfilled: {missing}"
    states = json.loads(text)["States"]
    kept = {name: states[name] for name in JOB_STATES}
    # SnapshotTrainingData is a Lambda this test does not run: the stack fixture stages its copy of the data
    # (runs/<execution>/data/) and the defaults go straight to Preprocess.
    assert kept["MergeInputDefaults"]["Next"] == "SnapshotTrainingData"
    kept["MergeInputDefaults"]["Next"] = "Preprocess"
    for state in kept.values():
        for catcher in state.get("Catch", []):
            catcher["Next"] = "JobFailed"
        if state.get("Next") not in kept and state.get("Type") != "Choice":
            state.pop("Next", None)
            state["End"] = True
    for tuning_state in ("Tune", "TuneWithWarmStart"):
        limits = kept[tuning_state]["Parameters"]["HyperParameterTuningJobConfig"]["ResourceLimits"]
        limits["MaxNumberOfTrainingJobs"] = max_tuning_jobs
    kept["JobFailed"] = {"Type": "Fail", "Error": "JobFailed"}
    return {"StartAt": "ApplyInputDefaults", "States": kept}


@pytest.fixture
def stack(runtime: Any, bucket: str) -> dict[str, str]:
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=bucket, Key="code/sourcedir.tar.gz", Body=_sourcedir_tarball())
    s3.put_object(Bucket=bucket, Key="incoming/breast_cancer.csv", Body=_breast_cancer_csv())
    for execution in ("ml-train-1", "ml-tune-1"):
        s3.put_object(Bucket=bucket, Key=f"runs/{execution}/data/breast_cancer.csv", Body=_breast_cancer_csv())
    kms = boto3.client("kms", region_name=REGION).create_key()["KeyMetadata"]["Arn"]
    return {
        "Partition": "aws",
        "ArtifactBucket": bucket,
        "DataBucket": bucket,
        "KmsKeyArn": kms,
        "SageMakerJobRoleArn": "arn:aws:iam::123456789012:role/sagemaker-jobs",
        "SageMakerModelRoleArn": "arn:aws:iam::123456789012:role/sagemaker-models",
        "SubnetIds": "subnet-a,subnet-b",
        "SecurityGroupIds": "sg-1",
        "ImageUri": "xgboost:1.7-1",
        "SourceDirUri": f"s3://{bucket}/code/sourcedir.tar.gz",
        "TrainingInstanceType": "ml.m5.large",
        "ProcessingInstanceType": "ml.m5.large",
        "EndpointInstanceType": "ml.m5.large",
        "ProjectTag": "twin",
        "EnvironmentTag": "test",
        "ModelPackageGroupName": "twin",
        "ModelApprovalStatus": "Approved",
        "NotificationTopicArn": "arn:aws:sns:us-east-1:123456789012:t",
        "EvaluationReportFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:evaluation-report",
        "SnapshotTrainingDataFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:snapshot",
        "LineageManifestFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:lineage-manifest",
        "ModelCardFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:model-card",
        "GovernanceBucket": bucket,
        "SourceCommit": "0123456789abcdef0123456789abcdef01234567",
    }


def _evaluation(bucket: str, execution_name: str) -> dict[str, Any]:
    s3 = boto3.client("s3", region_name=REGION)
    key = next(
        obj["Key"]
        for obj in s3.list_objects_v2(Bucket=bucket, Prefix=f"runs/{execution_name}/")["Contents"]
        if obj["Key"].endswith("evaluation.json")
    )
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def test_real_scripts_preprocess_train_evaluate_and_serve_through_the_exported_states(
    runtime: Any, stack: dict[str, str]
) -> None:
    outcome = runtime.run(
        _job_states(stack, max_tuning_jobs=2),
        {"data_uri": f"s3://{stack['DataBucket']}/incoming/"},
        name="ml-train-1",
        timeout=300,
    )

    assert outcome.status == "SUCCEEDED", (outcome.error, outcome.cause)
    assert outcome.entered_states() == [
        "ApplyInputDefaults",
        "MergeInputDefaults",
        "Preprocess",
        "TuneOrTrain",
        "Train",
        "Evaluate",
    ]
    assert outcome.output["training"]["FinalMetricDataList"], "train.py printed metrics the MetricDefinitions match"
    assert _evaluation(stack["ArtifactBucket"], "ml-train-1")["metrics"]["accuracy"] >= 0.93

    client = boto3.client("sagemaker", region_name=REGION)
    client.create_model(
        ModelName="ml-train-1-model",
        PrimaryContainer={
            "Image": stack["ImageUri"],
            "ModelDataUrl": outcome.output["training"]["ModelArtifacts"]["S3ModelArtifacts"],
            "Environment": {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"},
        },
        ExecutionRoleArn=stack["SageMakerModelRoleArn"],
    )
    client.create_endpoint_config(
        EndpointConfigName="ml-train-1-cfg",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "ml-train-1-model",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    client.create_endpoint(EndpointName="ml-endpoint", EndpointConfigName="ml-train-1-cfg")
    client.get_waiter("endpoint_in_service").wait(
        EndpointName="ml-endpoint", WaiterConfig={"Delay": 1, "MaxAttempts": 120}
    )
    sample = (
        boto3.client("s3", region_name=REGION)
        .get_object(Bucket=stack["ArtifactBucket"], Key="runs/ml-train-1/preprocess/sample/sample.csv")["Body"]
        .read()
    )
    answer = boto3.client("sagemaker-runtime", region_name=REGION).invoke_endpoint(
        EndpointName="ml-endpoint", ContentType="text/csv", Accept="application/json", Body=sample
    )
    predictions = json.loads(answer["Body"].read())["predictions"]
    assert len(predictions) == len(list(csv.reader(io.StringIO(sample.decode())))) > 0
    assert all(0.0 <= p["score"] <= 1.0 and p["label"] in (0, 1) for p in predictions)


def test_tuning_branch_runs_the_real_trainings_and_evaluates_the_best(runtime: Any, stack: dict[str, str]) -> None:
    outcome = runtime.run(
        _job_states(stack, max_tuning_jobs=2),
        {"data_uri": f"s3://{stack['DataBucket']}/incoming/", "tune": True},
        name="ml-tune-1",
        timeout=300,
    )

    assert outcome.status == "SUCCEEDED", (outcome.error, outcome.cause)
    assert {"Tune", "Evaluate"} <= set(outcome.entered_states())
    assert outcome.output["tuning"]["HyperParameterTuningJobStatus"] == "Completed"
    assert outcome.output["tuning"]["TrainingJobStatusCounters"]["Completed"] == 2
    assert _evaluation(stack["ArtifactBucket"], "ml-tune-1")["metrics"]["accuracy"] >= 0.9
