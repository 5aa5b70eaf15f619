"""What a SageMaker real-time endpoint does around the model, on the twin: an S3 `sagemaker_submit_directory`, the
payload and latency limits, and model errors wrapped as SageMaker Runtime's `ModelError` (docs/local-twin.md's
support table, one test per row)."""

from __future__ import annotations

import io
import json
import re
import tarfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
import xgboost as xgb
from botocore.exceptions import ClientError

from emulator.sagemaker_local.backend import LocalSageMaker

REGION = "us-east-1"
ACCOUNT = "123456789012"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/local-twin-tests"
ML_DIR = Path(__file__).resolve().parents[2] / "ml"
SIX_MB = 6 * 1024 * 1024
# A model for the limits: it answers with the request's size, sleeps on "sleep" and answers 6 MB and a byte on "big".
LIMITS_INFERENCE = """
import time
from datetime import timedelta
def model_fn(model_dir):
    return None
def input_fn(body, content_type):
    return body
def predict_fn(data, model):
    if data == b"sleep":
        time.sleep(5)
    if data == b"big":
        return b"x" * (6 * 1024 * 1024 + 1)
    return str(len(data)).encode()
def output_fn(prediction, accept):
    return prediction, "text/plain"
"""


def _put_tarball(bucket: str, key: str, files: dict[str, bytes]) -> str:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    boto3.client("s3", region_name=REGION).put_object(Bucket=bucket, Key=key, Body=archive.getvalue())
    return f"s3://{bucket}/{key}"


def _deploy(name: str, container: dict[str, Any], **model_options: Any) -> dict[str, Any]:
    """Model, endpoint config and endpoint `name`; the endpoint's description once it is InService or Failed."""
    client = boto3.client("sagemaker", region_name=REGION)
    client.create_model(ModelName=name, PrimaryContainer=container, ExecutionRoleArn=ROLE_ARN, **model_options)
    client.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}
        ],
    )
    client.create_endpoint(EndpointName=name, EndpointConfigName=name)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        described: dict[str, Any] = client.describe_endpoint(EndpointName=name)
        if described["EndpointStatus"] in ("InService", "Failed"):
            return described
        time.sleep(0.05)
    raise AssertionError(f"endpoint {name} neither InService nor Failed after 120 s")


def _invoke(name: str, body: bytes, content_type: str = "text/csv", **options: Any) -> dict[str, Any]:
    response: dict[str, Any] = boto3.client("sagemaker-runtime", region_name=REGION).invoke_endpoint(
        EndpointName=name, ContentType=content_type, Body=body, **options
    )
    return response


def _sdk_container(bucket: str, source_dir: Path, **options: Any) -> dict[str, Any]:
    """The container the SageMaker Python SDK builds for `XGBoostModel(entry_point=..., source_dir=...)`: it uploads
    `sourcedir.tar.gz` and sets SAGEMAKER_SUBMIT_DIRECTORY to its S3 URI."""
    import sagemaker
    from sagemaker.xgboost import XGBoostModel

    session = sagemaker.Session(boto_session=boto3.Session(region_name=REGION), default_bucket=bucket)
    model = XGBoostModel(
        model_data=_put_tarball(bucket, "models/echo/model.tar.gz", {"answer.txt": b"42"}),
        role=ROLE_ARN,
        entry_point="serve.py",
        source_dir=str(source_dir),
        framework_version="3.0-5",
        sagemaker_session=session,
        code_location=f"s3://{bucket}/code",
        **options,
    )
    container: dict[str, Any] = model.prepare_container_def(instance_type="ml.m5.large")
    return container


@pytest.fixture
def source_dir(tmp_path: Path) -> Path:
    """An inference script with a helper module beside it, as `source_dir` holds them."""
    directory = tmp_path / "source"
    directory.mkdir()
    (directory / "answers.py").write_text("def prefix():\n    return 'answer='\n")
    (directory / "serve.py").write_text(
        "import os\n"
        "from answers import prefix\n"
        "def model_fn(model_dir):\n"
        "    return open(os.path.join(model_dir, 'answer.txt')).read()\n"
        "def predict_fn(data, model):\n"
        "    return prefix() + model\n"
        "def output_fn(prediction, accept):\n"
        "    return prediction, 'text/plain'\n"
    )
    return directory


def test_an_s3_submit_directory_is_downloaded_and_extracted_as_the_container_does(
    runtime: Any, bucket: str, source_dir: Path
) -> None:
    # GIVEN the container the SDK builds for a model with an entry point: its code is only in S3
    container = _sdk_container(bucket, source_dir)
    assert container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"].startswith(f"s3://{bucket}/code/")

    described = _deploy("sourcedir-model", container)

    assert described["EndpointStatus"] == "InService", described.get("FailureReason")
    assert _invoke("sourcedir-model", b"1,2")["Body"].read() == b"answer=42"


def test_a_network_isolated_model_cannot_download_its_submit_directory_and_its_endpoint_fails(
    runtime: Any, bucket: str, source_dir: Path
) -> None:
    container = _sdk_container(bucket, source_dir)

    described = _deploy("isolated-model", container, EnableNetworkIsolation=True)

    assert described["EndpointStatus"] == "Failed"
    reason = described["FailureReason"]
    assert reason.startswith(
        "The primary container for production variant AllTraffic did not pass the ping health check."
    )
    assert "EnableNetworkIsolation" in reason
    assert container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"] in reason


def test_a_transform_job_of_a_network_isolated_model_with_an_s3_submit_directory_fails_naming_why(
    runtime: Any, bucket: str, source_dir: Path
) -> None:
    client = boto3.client("sagemaker", region_name=REGION)
    container = _sdk_container(bucket, source_dir)
    client.create_model(
        ModelName="isolated-batch", PrimaryContainer=container, ExecutionRoleArn=ROLE_ARN, EnableNetworkIsolation=True
    )
    boto3.client("s3", region_name=REGION).put_object(Bucket=bucket, Key="batch/in.csv", Body=b"1,2\n")
    client.create_transform_job(
        TransformJobName="isolated-batch",
        ModelName="isolated-batch",
        TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/batch/"}}},
        TransformOutput={"S3OutputPath": f"s3://{bucket}/batch-out/"},
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
    )

    deadline = time.monotonic() + 60
    described = client.describe_transform_job(TransformJobName="isolated-batch")
    while described["TransformJobStatus"] == "InProgress" and time.monotonic() < deadline:
        time.sleep(0.05)
        described = client.describe_transform_job(TransformJobName="isolated-batch")

    assert described["TransformJobStatus"] == "Failed"
    assert described["FailureReason"].startswith("ClientError: the model isolated-batch has EnableNetworkIsolation")


# A script-mode script that trains when run and serves when imported, in the style of the SageMaker examples.
SCRIPT_MODE_SCRIPT = """
import os
def model_fn(model_dir):
    return open(os.path.join(model_dir, "rows.txt")).read()
def predict_fn(data, model):
    return "rows=" + model
def output_fn(prediction, accept):
    return prediction, "text/plain"
if __name__ == "__main__":
    rows = open(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "train.csv")).read().splitlines()
    open(os.path.join(os.environ["SM_MODEL_DIR"], "rows.txt"), "w").write(str(len(rows)))
"""


def test_the_sdks_training_model_endpoint_workflow_unmodified_reaches_in_service_and_answers(
    runtime: Any, bucket: str
) -> None:
    # GIVEN the Data Science SDK's TrainingStep -> ModelStep -> EndpointConfigStep -> EndpointStep, the model being
    # the training's expected model (its SAGEMAKER_SUBMIT_DIRECTORY is the training's sourcedir.tar.gz in S3)
    import sagemaker
    from sagemaker.xgboost import XGBoost
    from stepfunctions import steps
    from stepfunctions.inputs import ExecutionInput

    # The Data Science SDK uploads no code (it drops the SDK's S3Operations): source_dir is a tarball already in S3.
    source_dir = runtime.put_sourcedir(bucket, "code/script-mode/sourcedir.tar.gz", {"script.py": SCRIPT_MODE_SCRIPT})
    boto3.client("s3", region_name=REGION).put_object(Bucket=bucket, Key="data/train/train.csv", Body=b"1,2\n3,4\n")
    estimator = XGBoost(
        entry_point="script.py",
        source_dir=source_dir,
        framework_version="3.0-5",
        role=ROLE_ARN,
        instance_count=1,
        instance_type="ml.m5.large",
        output_path=f"s3://{bucket}/models",
        code_location=f"s3://{bucket}/code",
        sagemaker_session=sagemaker.Session(boto_session=boto3.Session(region_name=REGION), default_bucket=bucket),
    )
    names = ExecutionInput(schema={"JobName": str, "ModelName": str, "EndpointName": str})
    train = steps.TrainingStep(
        "Train", estimator=estimator, data={"train": f"s3://{bucket}/data/train/"}, job_name=names["JobName"]
    )
    chain = steps.Chain(
        [
            train,
            steps.ModelStep("Model", model=train.get_expected_model(), model_name=names["ModelName"]),
            steps.EndpointConfigStep(
                "Config",
                endpoint_config_name=names["ModelName"],
                model_name=names["ModelName"],
                initial_instance_count=1,
                instance_type="ml.m5.large",
            ),
            steps.EndpointStep(
                "Endpoint", endpoint_name=names["EndpointName"], endpoint_config_name=names["ModelName"]
            ),
        ]
    )
    definition = json.loads(steps.Graph(chain).to_json())

    outcome = runtime.run(
        definition, {"JobName": "sdk-train", "ModelName": "sdk-model", "EndpointName": "sdk-endpoint"}, timeout=180
    )

    assert outcome.status == "SUCCEEDED", outcome.cause
    client = boto3.client("sagemaker", region_name=REGION)
    environment = client.describe_model(ModelName="sdk-model")["PrimaryContainer"]["Environment"]
    assert environment["SAGEMAKER_SUBMIT_DIRECTORY"] == source_dir
    deadline = time.monotonic() + 120
    while (described := client.describe_endpoint(EndpointName="sdk-endpoint"))["EndpointStatus"] == "Creating":
        assert time.monotonic() < deadline, "sdk-endpoint still Creating after 120 s"
        time.sleep(0.05)
    assert described["EndpointStatus"] == "InService", described.get("FailureReason")
    assert _invoke("sdk-endpoint", b"1,2")["Body"].read() == b"rows=2"


@pytest.fixture
def limits_endpoint(runtime: Any, bucket: str) -> str:
    model_data = _put_tarball(bucket, "models/limits/model.tar.gz", {"code/inference.py": LIMITS_INFERENCE.encode()})
    described = _deploy("limits", {"Image": "xgboost:local", "ModelDataUrl": model_data})
    assert described["EndpointStatus"] == "InService", described.get("FailureReason")
    return "limits"


def test_a_request_of_6_mb_is_served_and_a_larger_one_is_refused_as_sagemaker_refuses_it(limits_endpoint: str) -> None:
    assert _invoke(limits_endpoint, b"0" * SIX_MB)["Body"].read() == str(SIX_MB).encode()

    with pytest.raises(ClientError) as refused:
        _invoke(limits_endpoint, b"0" * (SIX_MB + 1))

    error = refused.value.response["Error"]
    assert error["Code"] == "ValidationError"
    assert re.fullmatch(r"Request [0-9a-f-]{36} has oversize body\.", error["Message"])


def test_a_response_over_6_mb_is_a_model_error(limits_endpoint: str) -> None:
    with pytest.raises(ClientError) as refused:
        _invoke(limits_endpoint, b"big")

    response: dict[str, Any] = dict(refused.value.response)
    assert response["Error"]["Code"] == "ModelError"
    assert response["OriginalStatusCode"] == 0
    assert f"at most {SIX_MB} bytes" in response["OriginalMessage"]


def test_a_model_slower_than_the_latency_limit_is_a_model_error_in_sagemakers_words(
    runtime: Any, limits_endpoint: str
) -> None:
    # SageMaker's limit is 60 s; the test lowers it so that a 5 s model is too slow.
    assert LocalSageMaker.model_latency_limit_seconds == 60.0
    runtime.sagemaker.model_latency_limit_seconds = 1.0

    with pytest.raises(ClientError) as refused:
        _invoke(limits_endpoint, b"sleep")

    response: dict[str, Any] = dict(refused.value.response)
    assert response["Error"]["Code"] == "ModelError"
    assert response["OriginalStatusCode"] == 0
    assert response["Error"]["Message"].startswith(
        'Received server error (0) from primary with message "Your invocation timed out while waiting for a '
        "response from container primary."
    )


@pytest.fixture
def project_model_endpoint(runtime: Any, bucket: str) -> str:
    """The project's own ml/inference.py serving a small booster over 30 features."""
    rows = np.random.default_rng(0).normal(size=(40, 30))
    booster = xgb.train(
        {"objective": "binary:logistic"}, xgb.DMatrix(rows, label=(rows[:, 0] > 0).astype(int)), num_boost_round=2
    )
    files = {
        "xgboost-model": bytes(booster.save_raw(raw_format="ubj")),
        "code/inference.py": (ML_DIR / "inference.py").read_bytes(),
        "code/mlcore.py": (ML_DIR / "mlcore.py").read_bytes(),
    }
    model_data = _put_tarball(bucket, "models/project/model.tar.gz", files)
    described = _deploy("project-model", {"Image": "xgboost:local", "ModelDataUrl": model_data})
    assert described["EndpointStatus"] == "InService", described.get("FailureReason")
    return "project-model"


@pytest.mark.parametrize(
    ("body", "content_type", "accept", "status", "message"),
    [
        (b"1,2", "application/x-npy", "application/json", 415, "unsupported content type 'application/x-npy'"),
        (b"mean radius,mean texture\n1,2", "text/csv", "application/json", 400, "'mean radius' is not a number"),
        (b",".join([b"1"] * 29), "text/csv", "application/json", 400, "expected 30 feature values per row, got 29"),
        (b",".join([b"1"] * 30), "text/csv", "application/x-protobuf", 406, "unsupported accept type"),
    ],
    ids=["unsupported-content-type", "csv-header", "too-few-features", "unsupported-accept"],
)
def test_a_bad_request_is_a_client_error_from_the_container_wrapped_as_model_error(
    project_model_endpoint: str, body: bytes, content_type: str, accept: str, status: int, message: str
) -> None:
    with pytest.raises(ClientError) as refused:
        _invoke(project_model_endpoint, body, content_type, Accept=accept)

    response: dict[str, Any] = dict(refused.value.response)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert response["Error"]["Code"] == "ModelError"
    assert response["OriginalStatusCode"] == status
    # The toolkit's body: the message, then the traceback.
    assert message in response["OriginalMessage"].splitlines()[0]
    assert response["Error"]["Message"].startswith(f'Received client error ({status}) from primary with message "')
    assert response["Error"]["Message"].endswith(
        f"#logEventViewer:group=/aws/sagemaker/Endpoints/{project_model_endpoint} in account {ACCOUNT} "
        "for more information."
    )
    assert response["LogStreamArn"] == (
        f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/sagemaker/Endpoints/{project_model_endpoint}"
    )


def test_a_good_request_to_the_project_model_still_answers(project_model_endpoint: str) -> None:
    body = b",".join([b"0.5"] * 30)
    answer = json.loads(_invoke(project_model_endpoint, body, Accept="application/json")["Body"].read())

    assert set(answer["predictions"][0]) == {"score", "label"}


def test_a_client_error_counts_as_a_4xx_invocation_error_not_a_5xx_one(
    runtime: Any, project_model_endpoint: str
) -> None:
    with pytest.raises(ClientError):
        _invoke(project_model_endpoint, b"1,2", "application/x-npy")

    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    now = runtime.clock.now()
    sums = {
        metric: sum(
            point["Sum"]
            for point in cloudwatch.get_metric_statistics(
                Namespace="AWS/SageMaker",
                MetricName=metric,
                Dimensions=[
                    {"Name": "EndpointName", "Value": project_model_endpoint},
                    {"Name": "VariantName", "Value": "AllTraffic"},
                ],
                StartTime=now - timedelta(days=1),
                EndTime=now + timedelta(days=1),
                Period=86400,
                Statistics=["Sum"],
            )["Datapoints"]
        )
        for metric in ("Invocations", "Invocation4XXErrors", "Invocation5XXErrors")
    }
    assert sums == {"Invocations": 1.0, "Invocation4XXErrors": 1.0, "Invocation5XXErrors": 0.0}


def test_invoking_an_endpoint_that_does_not_exist_is_the_runtimes_validation_error(runtime: Any) -> None:
    with pytest.raises(ClientError) as refused:
        _invoke("no-such-endpoint", b"1,2")

    assert refused.value.response["Error"] == {
        "Code": "ValidationError",
        "Message": f"Endpoint no-such-endpoint of account {ACCOUNT} not found.",
    }
