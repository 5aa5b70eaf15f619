"""SageMaker integrations of the engine on small hand-written ASL, with tiny scripts standing in for ml/."""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

TRAIN_SCRIPT = """
import argparse, json, os, shutil, time
parser = argparse.ArgumentParser()
parser.add_argument("--x", type=float, required=True)
parser.add_argument("--mode", default="ok")
parser.add_argument("--seconds", type=float, default=0)
args = parser.parse_args()
if args.mode == "raise":
    raise ValueError("the training script failed on purpose")
time.sleep(args.seconds)
rows = open(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "train.csv")).read().splitlines()
print(f"rows={len(rows)} cpus={os.environ['SM_NUM_CPUS']} hosts={os.environ['SM_HOSTS']}")
for round_number in range(3):
    print(f"[{round_number}] validation:auc={1 - (args.x - 0.3) ** 2 - 0.1 * (2 - round_number):.6f};")
model_dir = os.environ["SM_MODEL_DIR"]
json.dump({"weight": args.x}, open(os.path.join(model_dir, "model.json"), "w"))
os.makedirs(os.path.join(model_dir, "code"))
shutil.copy("inference.py", os.path.join(model_dir, "code", "inference.py"))
# SageMaker's path; OPT_ML_ROOT only where the twin cannot sandbox the job (as ml/train.py reads it).
checkpoints = os.path.join(os.environ.get("OPT_ML_ROOT", "/opt/ml"), "checkpoints")
if os.path.isdir(checkpoints):
    open(os.path.join(checkpoints, "round-2.ckpt"), "w").write("checkpoint")
"""

INFERENCE_SCRIPT = """
import json, os
def model_fn(model_dir):
    return json.load(open(os.path.join(model_dir, "model.json")))
def input_fn(body, content_type):
    assert content_type == "text/csv", content_type
    return [[float(v) for v in line.split(",")] for line in body.decode().splitlines() if line]
def predict_fn(rows, model):
    return [model["weight"] * sum(row) for row in rows]
def output_fn(predictions, accept):
    return json.dumps({"predictions": [{"score": p} for p in predictions]}), "application/json"
"""

PREPROCESS_SCRIPT = """
import argparse, os
parser = argparse.ArgumentParser()
parser.add_argument("--input-dir")
parser.add_argument("--output-dir")
args = parser.parse_args()
rows = open(os.path.join(args.input_dir, "data.csv")).read().splitlines()
os.makedirs(os.path.join(args.output_dir, "train"), exist_ok=True)
open(os.path.join(args.output_dir, "train", "train.csv"), "w").write("\\n".join(rows[1:]))
"""

REGION = "us-east-1"
ROLE_ARN = "arn:aws:iam::123456789012:role/local-twin-tests"
METRICS = [{"Name": "validation:auc", "Regex": "validation:auc=([-+0-9.eE]+);"}]


@pytest.fixture
def staged(runtime: Any, bucket: str) -> dict[str, str]:
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=bucket, Key="data/train/train.csv", Body=b"1,2\n3,4\n")
    s3.put_object(Bucket=bucket, Key="raw/data.csv", Body=b"a,b\n1,2\n3,4\n5,6\n")
    kms_key = boto3.client("kms", region_name=REGION).create_key()["KeyMetadata"]["Arn"]
    code = runtime.put_sourcedir(
        bucket,
        "code/sourcedir.tar.gz",
        {"train.py": TRAIN_SCRIPT, "inference.py": INFERENCE_SCRIPT, "preprocess.py": PREPROCESS_SCRIPT},
    )
    return {"bucket": bucket, "code": code, "kms": kms_key}


def training_parameters(staged: dict[str, str], hyperparameters: dict[str, Any]) -> dict[str, Any]:
    """CreateTrainingJob parameters shaped like the exported ASL: network isolation, code channel, KMS, checkpoints."""
    bucket = staged["bucket"]
    return {
        "TrainingJobName.$": "$$.Execution.Name",
        "AlgorithmSpecification": {
            "TrainingImage": "xgboost:local",
            "TrainingInputMode": "File",
            "MetricDefinitions": METRICS,
        },
        "HyperParameters": {
            **hyperparameters,
            "sagemaker_program": '"train.py"',
            "sagemaker_submit_directory": '"/opt/ml/input/data/code/sourcedir.tar.gz"',
        },
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/data/train/"}},
            },
            {
                "ChannelName": "code",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": staged["code"]}},
            },
        ],
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/models/", "KmsKeyId": staged["kms"]},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "RoleArn": ROLE_ARN,
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        "EnableNetworkIsolation": True,
        "EnableManagedSpotTraining": True,
        "CheckpointConfig": {
            "S3Uri.$": f"States.Format('s3://{bucket}/checkpoints/{{}}/', $$.Execution.Name)",
            "LocalPath": "/opt/ml/checkpoints",
        },
    }


def test_training_job_sync_returns_final_metrics_and_uploads_the_encrypted_model(
    runtime: Any, staged: dict[str, str]
) -> None:
    definition = {
        "StartAt": "Train",
        "States": {
            "Train": runtime.task(
                "arn:aws:states:::sagemaker:createTrainingJob.sync", training_parameters(staged, {"x": "0.25"})
            )
        },
    }

    outcome = runtime.run(definition, name="train-ok")

    assert outcome.status == "SUCCEEDED", outcome.cause
    assert outcome.output["TrainingJobStatus"] == "Completed"
    assert outcome.output["FinalMetricDataList"][0]["MetricName"] == "validation:auc"
    assert outcome.output["FinalMetricDataList"][0]["Value"] == pytest.approx(1 - 0.05**2)
    assert isinstance(outcome.output["TrainingEndTime"], int), "optimised integrations return epoch milliseconds"
    assert "TaskSubmitted" in outcome.event_types()
    artifact = outcome.output["ModelArtifacts"]["S3ModelArtifacts"]
    assert artifact == f"s3://{staged['bucket']}/models/train-ok/output/model.tar.gz"
    head = boto3.client("s3", region_name=REGION).head_object(
        Bucket=staged["bucket"], Key="models/train-ok/output/model.tar.gz"
    )
    assert head["ServerSideEncryption"] == "aws:kms"
    checkpoints = boto3.client("s3", region_name=REGION).list_objects_v2(
        Bucket=staged["bucket"], Prefix="checkpoints/train-ok/"
    )
    assert [o["Key"] for o in checkpoints["Contents"]] == ["checkpoints/train-ok/round-2.ckpt"]
    transitions = [t["Status"] for t in outcome.output["SecondaryStatusTransitions"]]
    assert transitions == ["Starting", "Downloading", "Training", "Uploading", "Completed"]


def test_cpus_per_job_sets_the_threads_a_training_script_is_given(runtime: Any, staged: dict[str, str]) -> None:
    runtime.sagemaker.cpus_per_job = 3
    definition = {
        "StartAt": "Train",
        "States": {
            "Train": runtime.task(
                "arn:aws:states:::sagemaker:createTrainingJob.sync", training_parameters(staged, {"x": "0.25"})
            )
        },
    }

    outcome = runtime.run(definition, name="train-three-cpus")

    assert outcome.status == "SUCCEEDED", outcome.cause
    log = runtime.sagemaker.work_dir / "training" / "train-three-cpus" / "logs" / "training.log"
    assert "cpus=3 " in log.read_text()


def test_cpus_per_job_below_one_is_refused(runtime: Any) -> None:
    with pytest.raises(ValueError, match="cpus_per_job must be at least 1"):
        type(runtime.sagemaker)(runtime.sagemaker.work_dir, runtime.clock, cpus_per_job=0)


def test_a_raising_training_script_fails_the_task_and_the_execution_takes_its_catch(
    runtime: Any, staged: dict[str, str]
) -> None:
    parameters = training_parameters(staged, {"x": "0.25", "mode": '"raise"'})
    definition = {
        "StartAt": "Train",
        "States": {
            "Train": runtime.task(
                "arn:aws:states:::sagemaker:createTrainingJob.sync",
                parameters,
                Catch=[{"ErrorEquals": ["States.TaskFailed"], "ResultPath": "$.error", "Next": "Notify"}],
                Next="Done",
            ),
            "Notify": {"Type": "Pass", "End": True},
            "Done": {"Type": "Succeed"},
        },
    }

    outcome = runtime.run(definition, {"run": 1}, name="train-raises")

    assert outcome.status == "SUCCEEDED"
    assert outcome.entered_states() == ["Train", "Notify"]
    assert outcome.output["error"]["Error"] == "States.TaskFailed"
    cause = json.loads(outcome.output["error"]["Cause"])
    assert cause["TrainingJobStatus"] == "Failed"
    assert "the training script failed on purpose" in cause["FailureReason"]
    assert runtime.events[-1]["detail-type"] == "SageMaker Training Job State Change"
    assert runtime.events[-1]["detail"]["TrainingJobStatus"] == "Failed"


def test_processing_job_rewrites_opt_ml_paths_and_uploads_its_outputs(runtime: Any, staged: dict[str, str]) -> None:
    bucket = staged["bucket"]
    parameters = {
        "ProcessingJobName.$": "$$.Execution.Name",
        "ProcessingInputs": [
            {
                "InputName": "code",
                "S3Input": {
                    "S3Uri": staged["code"],
                    "LocalPath": "/opt/ml/processing/input/code",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                },
            },
            {
                "InputName": "data",
                "S3Input": {
                    "S3Uri": f"s3://{bucket}/raw/",
                    "LocalPath": "/opt/ml/processing/input/data",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                },
            },
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "train",
                    "S3Output": {
                        "S3Uri": f"s3://{bucket}/prep/train/",
                        "LocalPath": "/opt/ml/processing/output/train",
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ],
            "KmsKeyId": staged["kms"],
        },
        "AppSpecification": {
            "ImageUri": "xgboost:local",
            "ContainerEntrypoint": [
                "/bin/sh",
                "-c",
                'cd /opt/ml/processing/input/code && tar -xzf sourcedir.tar.gz && exec python3 preprocess.py "$@"',
                "sh",
            ],
            "ContainerArguments": [
                "--input-dir",
                "/opt/ml/processing/input/data",
                "--output-dir",
                "/opt/ml/processing/output",
            ],
        },
        "ProcessingResources": {
            "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 5}
        },
        "RoleArn": ROLE_ARN,
    }
    definition = {
        "StartAt": "Prep",
        "States": {"Prep": runtime.task("arn:aws:states:::sagemaker:createProcessingJob.sync", parameters)},
    }

    outcome = runtime.run(definition, name="prep-1")

    assert outcome.status == "SUCCEEDED", outcome.cause
    assert outcome.output["ProcessingJobStatus"] == "Completed"
    body = boto3.client("s3", region_name=REGION).get_object(Bucket=bucket, Key="prep/train/train.csv")["Body"].read()
    assert body == b"1,2\n3,4\n5,6"


def test_tuning_with_two_parallel_trainings_picks_the_best_by_the_objective(
    runtime: Any, staged: dict[str, str]
) -> None:
    training = training_parameters(staged, {})
    definition_fields = {
        k: v for k, v in training.items() if k not in ("TrainingJobName.$", "HyperParameters", "CheckpointConfig")
    }
    parameters = {
        "HyperParameterTuningJobName.$": "States.Hash($$.Execution.Name, 'MD5')",
        "HyperParameterTuningJobConfig": {
            "Strategy": "Grid",
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 4, "MaxParallelTrainingJobs": 2},
            "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "validation:auc"},
            "ParameterRanges": {"CategoricalParameterRanges": [{"Name": "x", "Values": ["0.1", "0.3", "0.6", "0.9"]}]},
        },
        "TrainingJobDefinition": {
            **definition_fields,
            "StaticHyperParameters": {**training["HyperParameters"], "seconds": "0.5"},
        },
    }
    definition = {
        "StartAt": "Tune",
        "States": {
            "Tune": runtime.task(
                "arn:aws:states:::sagemaker:createHyperParameterTuningJob.sync", parameters, Next="Best"
            ),
            "Best": runtime.task(
                "arn:aws:states:::aws-sdk:sagemaker:describeTrainingJob",
                {"TrainingJobName.$": "$.BestTrainingJob.TrainingJobName"},
                ResultSelector={"x.$": "$.HyperParameters.x", "status.$": "$.TrainingJobStatus"},
                ResultPath="$.best",
            ),
        },
    }

    outcome = runtime.run(definition, name="tune-grid")

    assert outcome.status == "SUCCEEDED", outcome.cause
    assert outcome.output["HyperParameterTuningJobStatus"] == "Completed"
    assert outcome.output["TrainingJobStatusCounters"]["Completed"] == 4
    assert outcome.output["ObjectiveStatusCounters"]["Succeeded"] == 4
    assert outcome.output["BestTrainingJob"]["TunedHyperParameters"] == {"x": "0.3"}
    assert outcome.output["best"] == {"x": "0.3", "status": "Completed"}
    trainings = [
        runtime.sagemaker.call("DescribeTrainingJob", {"TrainingJobName": s["TrainingJobName"]})
        for s in runtime.sagemaker.call(
            "ListTrainingJobsForHyperParameterTuningJob",
            {"HyperParameterTuningJobName": outcome.output["HyperParameterTuningJobName"]},
        )["TrainingJobSummaries"]
    ]
    intervals = sorted((t["TrainingStartTime"], t["TrainingEndTime"]) for t in trainings)
    assert intervals[1][0] < intervals[0][1], "the first two trainings ran at the same time"


def _refused_at_creation(definition: dict[str, Any]) -> str:
    with pytest.raises(ClientError) as refused:
        boto3.client("stepfunctions", region_name="us-east-1").create_state_machine(
            name="refused", definition=json.dumps(definition), roleArn=ROLE_ARN
        )
    assert refused.value.response["Error"]["Code"] == "InvalidDefinition"
    return str(refused.value.response["Error"]["Message"])


def test_unsupported_sagemaker_integration_is_refused_at_creation_naming_the_state(runtime: Any) -> None:
    # Refused when the state machine is created, so no Catch can swallow it and no execution half-runs.
    definition = {
        "StartAt": "AutoML",
        "States": {
            "AutoML": runtime.task(
                "arn:aws:states:::sagemaker:createAutoMLJob.sync",
                {"AutoMLJobName": "x"},
                Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Swallowed"}],
            ),
            "Swallowed": {"Type": "Succeed"},
        },
    }

    message = _refused_at_creation(definition)

    assert "State 'AutoML'" in message
    assert "CreateAutoMLJob" in message


def test_unsupported_service_integration_is_refused_naming_the_state_and_resource(runtime: Any) -> None:
    definition = {
        "StartAt": "RunTask",
        "States": {"RunTask": runtime.task("arn:aws:states:::ecs:runTask.sync", {"Cluster": "c"})},
    }

    message = _refused_at_creation(definition)

    assert "State 'RunTask'" in message
    assert "arn:aws:states:::ecs:runTask.sync" in message


def _deploy_definition(runtime: Any, model_data_url: str, endpoint: str = "twin-endpoint") -> dict[str, Any]:
    return {
        "StartAt": "CreateModel",
        "States": {
            "CreateModel": runtime.task(
                "arn:aws:states:::sagemaker:createModel",
                {
                    "ModelName.$": "States.Format('{}-model', $$.Execution.Name)",
                    "PrimaryContainer": {
                        "Image": "xgboost:local",
                        "ModelDataUrl": model_data_url,
                        "Environment": {"SAGEMAKER_PROGRAM": "inference.py"},
                    },
                    "ExecutionRoleArn": ROLE_ARN,
                },
                ResultPath=None,
                Next="CreateConfig",
            ),
            "CreateConfig": runtime.task(
                "arn:aws:states:::sagemaker:createEndpointConfig",
                {
                    "EndpointConfigName.$": "States.Format('{}-cfg', $$.Execution.Name)",
                    "ProductionVariants": [
                        {
                            "VariantName": "AllTraffic",
                            "ModelName.$": "States.Format('{}-model', $$.Execution.Name)",
                            "InitialInstanceCount": 1,
                            "InstanceType": "ml.m5.large",
                            "InitialVariantWeight": 1,
                        }
                    ],
                },
                ResultPath=None,
                Next="Find",
            ),
            "Find": runtime.task(
                "arn:aws:states:::aws-sdk:sagemaker:listEndpoints",
                {"NameContains": endpoint},
                ResultSelector={"exists.$": f"States.ArrayContains($.Endpoints[*].EndpointName, '{endpoint}')"},
                ResultPath="$.found",
                Next="CreateOrUpdate",
            ),
            "CreateOrUpdate": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.found.exists", "BooleanEquals": True, "Next": "Update"}],
                "Default": "Create",
            },
            "Create": runtime.task(
                "arn:aws:states:::sagemaker:createEndpoint",
                {"EndpointName": endpoint, "EndpointConfigName.$": "States.Format('{}-cfg', $$.Execution.Name)"},
                ResultPath=None,
                Next="Wait",
            ),
            "Update": runtime.task(
                "arn:aws:states:::sagemaker:updateEndpoint",
                {"EndpointName": endpoint, "EndpointConfigName.$": "States.Format('{}-cfg', $$.Execution.Name)"},
                ResultPath=None,
                Next="Wait",
            ),
            "Wait": {"Type": "Wait", "Seconds": 30, "Next": "Describe"},
            "Describe": runtime.task(
                "arn:aws:states:::aws-sdk:sagemaker:describeEndpoint",
                {"EndpointName": endpoint},
                ResultPath="$.endpoint",
                Next="Status",
            ),
            "Status": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.endpoint.EndpointStatus", "StringEquals": "InService", "Next": "Done"}],
                "Default": "Wait",
            },
            "Done": {"Type": "Succeed"},
        },
    }


def _train_model(runtime: Any, staged: dict[str, str], name: str, x: str) -> str:
    definition = {
        "StartAt": "Train",
        "States": {
            "Train": runtime.task(
                "arn:aws:states:::sagemaker:createTrainingJob.sync", training_parameters(staged, {"x": x})
            )
        },
    }
    outcome = runtime.run(definition, name=name)
    assert outcome.status == "SUCCEEDED", outcome.cause
    return outcome.output["ModelArtifacts"]["S3ModelArtifacts"]


def test_endpoint_goes_in_service_answers_invocations_and_an_update_swaps_the_model(
    runtime: Any, staged: dict[str, str]
) -> None:
    first_model = _train_model(runtime, staged, "model-a", "2")

    created = runtime.run(_deploy_definition(runtime, first_model), name="deploy-a")

    assert created.status == "SUCCEEDED", created.cause
    assert created.entered_states().count("Describe") >= 2, "the endpoint was Creating before it was InService"
    runtime_client = boto3.client("sagemaker-runtime", region_name=REGION)
    answer = runtime_client.invoke_endpoint(EndpointName="twin-endpoint", ContentType="text/csv", Body=b"1,2\n3,4\n")
    assert json.loads(answer["Body"].read()) == {"predictions": [{"score": 6.0}, {"score": 14.0}]}
    assert answer["InvokedProductionVariant"] == "AllTraffic"

    second_model = _train_model(runtime, staged, "model-b", "10")
    updated = runtime.run(_deploy_definition(runtime, second_model), name="deploy-b")

    assert updated.status == "SUCCEEDED", updated.cause
    assert "Update" in updated.entered_states()
    described = boto3.client("sagemaker", region_name=REGION).describe_endpoint(EndpointName="twin-endpoint")
    assert described["EndpointConfigName"] == "deploy-b-cfg"
    answer = runtime_client.invoke_endpoint(EndpointName="twin-endpoint", ContentType="text/csv", Body=b"1,2\n")
    assert json.loads(answer["Body"].read()) == {"predictions": [{"score": 30.0}]}
    statuses = [
        e["detail"]["EndpointStatus"] for e in runtime.events if e["detail-type"] == "SageMaker Endpoint State Change"
    ]
    assert statuses == ["Creating", "InService", "Updating", "InService"]


def test_aws_sdk_sagemaker_errors_carry_aws_error_names(runtime: Any) -> None:
    definition = {
        "StartAt": "Describe",
        "States": {
            "Describe": runtime.task(
                "arn:aws:states:::aws-sdk:sagemaker:describeModelPackage",
                {"ModelPackageName": "arn:aws:sagemaker:us-east-1:123456789012:model-package/missing/1"},
                Catch=[{"ErrorEquals": ["SageMaker.ValidationException"], "ResultPath": "$.error", "Next": "Missing"}],
            ),
            "Missing": {"Type": "Pass", "End": True},
        },
    }

    outcome = runtime.run(definition)

    assert outcome.status == "SUCCEEDED", (outcome.error, outcome.cause)
    assert outcome.output["error"]["Error"] == "SageMaker.ValidationException"
    assert "Could not find model package" in outcome.output["error"]["Cause"]


def test_model_package_registered_by_asl_is_visible_to_boto3_and_approval_emits_events(runtime: Any) -> None:
    boto3.client("sagemaker", region_name=REGION).create_model_package_group(ModelPackageGroupName="twin-models")
    definition = {
        "StartAt": "Register",
        "States": {
            "Register": runtime.task(
                "arn:aws:states:::aws-sdk:sagemaker:createModelPackage",
                {
                    "ModelPackageGroupName": "twin-models",
                    "ModelApprovalStatus": "PendingManualApproval",
                    "InferenceSpecification": {
                        "Containers": [{"Image": "xgboost:local", "ModelDataUrl": "s3://bucket/model.tar.gz"}],
                        "SupportedContentTypes": ["text/csv"],
                        "SupportedResponseMIMETypes": ["application/json"],
                    },
                    "CustomerMetadataProperties": {"metric_name": "auc", "metric_value": "0.97"},
                },
                Next="Tag",
            ),
            "Tag": runtime.task(
                "arn:aws:states:::aws-sdk:sagemaker:addTags",
                {"ResourceArn.$": "$.ModelPackageArn", "Tags": [{"Key": "Project", "Value": "twin"}]},
                ResultPath=None,
            ),
        },
    }

    outcome = runtime.run(definition)

    assert outcome.status == "SUCCEEDED", outcome.cause
    client = boto3.client("sagemaker", region_name=REGION)
    package_arn = outcome.output["ModelPackageArn"]
    assert package_arn == "arn:aws:sagemaker:us-east-1:123456789012:model-package/twin-models/1"
    summaries = client.list_model_packages(ModelPackageGroupName="twin-models")["ModelPackageSummaryList"]
    assert [s["ModelPackageArn"] for s in summaries] == [package_arn]
    assert client.list_tags(ResourceArn=package_arn)["Tags"] == [{"Key": "Project", "Value": "twin"}]
    client.update_model_package(ModelPackageArn=package_arn, ModelApprovalStatus="Approved")
    described = client.describe_model_package(ModelPackageName=package_arn)
    assert described["ModelApprovalStatus"] == "Approved"
    assert described["CustomerMetadataProperties"]["metric_value"] == "0.97"
    assert isinstance(described["CreationTime"], datetime)
    package_events = [e for e in runtime.events if e["detail-type"] == "SageMaker Model Package State Change"]
    assert [e["detail"]["ModelApprovalStatus"] for e in package_events] == ["PendingManualApproval", "Approved"]
    assert package_events[-1]["source"] == "aws.sagemaker"
    assert package_events[-1]["resources"] == [package_arn]


def test_application_auto_scaling_calls_reach_moto(runtime: Any) -> None:
    target = {
        "ServiceNamespace": "sagemaker",
        "ResourceId": "endpoint/twin-endpoint/variant/AllTraffic",
        "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
    }
    definition = {
        "StartAt": "Register",
        "States": {
            "Register": runtime.task(
                "arn:aws:states:::aws-sdk:applicationautoscaling:registerScalableTarget",
                {**target, "MinCapacity": 1, "MaxCapacity": 4},
                ResultPath=None,
                Next="Policy",
            ),
            "Policy": runtime.task(
                "arn:aws:states:::aws-sdk:applicationautoscaling:putScalingPolicy",
                {
                    **target,
                    "PolicyName": "invocations-per-instance",
                    "PolicyType": "TargetTrackingScaling",
                    "TargetTrackingScalingPolicyConfiguration": {
                        "TargetValue": 1000,
                        "PredefinedMetricSpecification": {
                            "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
                        },
                    },
                },
            ),
        },
    }

    outcome = runtime.run(definition)

    assert outcome.status == "SUCCEEDED", outcome.cause
    assert outcome.output["PolicyARN"].startswith("arn:aws:autoscaling:")
    targets = boto3.client("application-autoscaling", region_name=REGION).describe_scalable_targets(
        ServiceNamespace="sagemaker"
    )
    assert targets["ScalableTargets"][0]["MaxCapacity"] == 4


def test_transform_job_sync_scores_each_line_and_writes_the_output(runtime: Any, staged: dict[str, str]) -> None:
    model_data = _train_model(runtime, staged, "model-t", "2")
    boto3.client("sagemaker", region_name=REGION).create_model(
        ModelName="batch-model",
        PrimaryContainer={"Image": "xgboost:local", "ModelDataUrl": model_data},
        ExecutionRoleArn=ROLE_ARN,
    )
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=staged["bucket"], Key="batch/in/rows.csv", Body=b"1,2\n3,4\n")
    parameters = {
        "TransformJobName.$": "$$.Execution.Name",
        "ModelName": "batch-model",
        "BatchStrategy": "SingleRecord",
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{staged['bucket']}/batch/in/"}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        "TransformOutput": {"S3OutputPath": f"s3://{staged['bucket']}/batch/out/", "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
    }
    definition = {
        "StartAt": "Batch",
        "States": {"Batch": runtime.task("arn:aws:states:::sagemaker:createTransformJob.sync", parameters)},
    }

    outcome = runtime.run(definition, name="batch-1")

    assert outcome.status == "SUCCEEDED", outcome.cause
    assert outcome.output["TransformJobStatus"] == "Completed"
    body = s3.get_object(Bucket=staged["bucket"], Key="batch/out/rows.csv.out")["Body"].read().decode()
    assert [json.loads(line) for line in body.splitlines()] == [
        {"predictions": [{"score": 6.0}]},
        {"predictions": [{"score": 14.0}]},
    ]


def test_stopping_the_execution_stops_the_running_training_job(runtime: Any, staged: dict[str, str]) -> None:
    definition = {
        "StartAt": "Train",
        "States": {
            "Train": runtime.task(
                "arn:aws:states:::sagemaker:createTrainingJob.sync",
                training_parameters(staged, {"x": "0.2", "seconds": "60"}),
            )
        },
    }
    sfn = boto3.client("stepfunctions", region_name=REGION)
    machine = sfn.create_state_machine(name="stoppable", definition=json.dumps(definition), roleArn=ROLE_ARN)[
        "stateMachineArn"
    ]
    execution = sfn.start_execution(stateMachineArn=machine, name="train-stopped", input="{}")["executionArn"]
    deadline = time.monotonic() + 30
    while runtime.sagemaker.call("ListTrainingJobs", {})["TrainingJobSummaries"] == [] or (
        runtime.sagemaker.call("DescribeTrainingJob", {"TrainingJobName": "train-stopped"})["SecondaryStatus"]
        != "Training"
    ):
        assert time.monotonic() < deadline, "the training job never started"
        time.sleep(0.05)

    sfn.stop_execution(executionArn=execution)

    while (job := runtime.sagemaker.call("DescribeTrainingJob", {"TrainingJobName": "train-stopped"}))[
        "TrainingJobStatus"
    ] not in (
        "Stopped",
        "Failed",
        "Completed",
    ):
        assert time.monotonic() < deadline, f"the training job is still {job['TrainingJobStatus']}"
        time.sleep(0.05)
    assert job["TrainingJobStatus"] == "Stopped"
    assert sfn.describe_execution(executionArn=execution)["status"] == "ABORTED"


def _bayesian_tuning(runtime: Any, staged: dict[str, str], warm_start_parent: str | None = None) -> dict[str, Any]:
    training = training_parameters(staged, {})
    parameters: dict[str, Any] = {
        "HyperParameterTuningJobName.$": "$.name",
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 4, "MaxParallelTrainingJobs": 2},
            "TrainingJobEarlyStoppingType": "Auto",
            "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "validation:auc"},
            "ParameterRanges": {
                "ContinuousParameterRanges": [
                    {"Name": "x", "MinValue": "0.01", "MaxValue": "1", "ScalingType": "Logarithmic"}
                ]
            },
        },
        "TrainingJobDefinition": {
            **{
                k: v
                for k, v in training.items()
                if k not in ("TrainingJobName.$", "HyperParameters", "CheckpointConfig")
            },
            "StaticHyperParameters": training["HyperParameters"],
        },
    }
    if warm_start_parent:
        parameters["WarmStartConfig"] = {
            "ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": warm_start_parent}],
            "WarmStartType": "IdenticalDataAndAlgorithm",
        }
    return {
        "StartAt": "Tune",
        "States": {
            "Tune": runtime.task(
                "arn:aws:states:::sagemaker:createHyperParameterTuningJob.sync",
                parameters,
                Catch=[{"ErrorEquals": ["SageMaker.ValidationException"], "ResultPath": "$.error", "Next": "Refused"}],
            ),
            "Refused": {"Type": "Pass", "End": True},
        },
    }


def test_bayesian_tuning_warm_starts_from_its_parent_and_records_it(runtime: Any, staged: dict[str, str]) -> None:
    parent = runtime.run(_bayesian_tuning(runtime, staged), {"name": "parent-tuning"})
    assert parent.status == "SUCCEEDED", parent.cause
    assert parent.output["HyperParameterTuningJobStatus"] == "Completed"

    child = runtime.run(_bayesian_tuning(runtime, staged, warm_start_parent="parent-tuning"), {"name": "child-tuning"})

    assert child.status == "SUCCEEDED", child.cause
    assert child.output["WarmStartConfig"]["ParentHyperParameterTuningJobs"] == [
        {"HyperParameterTuningJobName": "parent-tuning"}
    ]
    assert child.output["TrainingJobStatusCounters"]["Completed"] == 4
    best = child.output["BestTrainingJob"]
    summaries = runtime.sagemaker.call(
        "ListTrainingJobsForHyperParameterTuningJob", {"HyperParameterTuningJobName": "child-tuning"}
    )["TrainingJobSummaries"]
    objectives = [s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for s in summaries]
    assert best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == max(objectives)
    assert best["TuningJobName"] == "child-tuning"


def test_warm_start_from_a_missing_parent_is_a_validation_error(runtime: Any, staged: dict[str, str]) -> None:
    outcome = runtime.run(_bayesian_tuning(runtime, staged, warm_start_parent="never-ran"), {"name": "orphan-tuning"})

    assert outcome.status == "SUCCEEDED", outcome.cause
    assert outcome.output["error"]["Error"] == "SageMaker.ValidationException"
    assert "never-ran" in outcome.output["error"]["Cause"]


def test_an_output_bucket_that_does_not_exist_fails_the_training_job_instead_of_hanging(
    runtime: Any, staged: dict[str, str]
) -> None:
    parameters = training_parameters(staged, {"x": "0.25"})
    parameters["OutputDataConfig"] = {"S3OutputPath": "s3://no-such-bucket-for-models/models/"}
    definition = {
        "StartAt": "Train",
        "States": {"Train": runtime.task("arn:aws:states:::sagemaker:createTrainingJob.sync", parameters)},
    }

    outcome = runtime.run(definition, name="train-no-bucket", timeout=60)

    assert (outcome.status, outcome.error) == ("FAILED", "States.TaskFailed")
    assert "NoSuchBucket" in json.loads(outcome.cause)["FailureReason"]


def test_a_training_over_its_max_runtime_is_stopped_as_max_runtime_exceeded(
    runtime: Any, staged: dict[str, str]
) -> None:
    parameters = training_parameters(staged, {"x": "0.25", "seconds": "30"})
    parameters["StoppingCondition"] = {"MaxRuntimeInSeconds": 1}
    definition = {
        "StartAt": "Train",
        "States": {"Train": runtime.task("arn:aws:states:::sagemaker:createTrainingJob.sync", parameters)},
    }

    outcome = runtime.run(definition, name="train-too-long", timeout=30)

    assert (outcome.status, outcome.error) == ("FAILED", "States.TaskFailed")
    job = json.loads(outcome.cause)
    assert (job["TrainingJobStatus"], job["SecondaryStatus"]) == ("Stopped", "MaxRuntimeExceeded")
