"""The lifecycle driven by real clients in other processes: upload → training → approval → deploy → invoke → reaper.

Each test is one client interaction a user or an operator has with the deployed system, through public AWS APIs
only (the AWS CLI; the SageMaker SDK in its own Python process). The module's fixtures carry the chain: the upload
starts a training, its package is approved, the approval deploys, and the endpoint answers; against the twin the
reaper then deletes the idle endpoint on the twin's clock. See conftest.py for the two targets.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from client_suite import Target, wait_for
from sklearn.datasets import load_breast_cancer

from contract.pipeline_config import load_pipeline_config

pytestmark = pytest.mark.e2e

# Rows sent per invocation: at least the monitoring's fewest current values per feature (pipeline.toml
# [monitoring] min_records), so the next monitoring run tests drift instead of reporting insufficient data.
ROWS_PER_INVOCATION = 40


@dataclass(frozen=True)
class Upload:
    bucket: str
    key: str
    data: Path


def _executions(target: Target, output: str, status: str | None = None) -> list[dict[str, Any]]:
    args = ["stepfunctions", "list-executions", "--state-machine-arn", target.outputs[output]]
    if status:
        args += ["--status-filter", status]
    return list(target.aws(*args)["executions"])


def _describe(target: Target, arn: str) -> dict[str, Any]:
    return dict(target.aws("stepfunctions", "describe-execution", "--execution-arn", arn))


def _wait_until_stopped(target: Target, arn: str, label: str) -> dict[str, Any]:
    def stopped() -> dict[str, Any] | None:
        description = _describe(target, arn)
        return description if description["status"] != "RUNNING" else None

    description = wait_for(f"{label} execution {arn} to stop", stopped, target.execution_timeout)
    assert description["status"] == "SUCCEEDED", f"{label} {description['status']}: {description.get('cause')}"
    return description


def _feature_rows(data: Path, count: int) -> str:
    label = load_pipeline_config().model.label_column
    lines = data.read_text().splitlines()
    header = lines[0].split(",")
    keep = [index for index, name in enumerate(header) if name != label]
    rows = [",".join(line.split(",")[index] for index in keep) for line in lines[1 : 1 + count]]
    return "\n".join(rows)


@pytest.fixture(scope="module")
def upload(target: Target, tmp_path_factory: pytest.TempPathFactory) -> Upload:
    """Real data (scikit-learn's breast cancer set, label named as in pipeline.toml) copied with `aws s3 cp`."""
    config = load_pipeline_config()
    frame = load_breast_cancer(as_frame=True).frame.rename(columns={"target": config.model.label_column})
    data = tmp_path_factory.mktemp("client-data") / f"client-suite-{uuid.uuid4().hex[:12]}.csv"
    frame.to_csv(data, index=False)
    bucket = target.outputs["DataBucketName"]
    key = f"{config.data.prefix}{data.name}"
    target.run_cli("s3", "cp", str(data), f"s3://{bucket}/{key}")
    return Upload(bucket, key, data)


@pytest.fixture(scope="module")
def training(target: Target, upload: Upload) -> dict[str, Any]:
    """The training execution the upload started (its input names the uploaded object), once it succeeded."""

    def started_by_upload() -> str | None:
        for execution in _executions(target, "TrainingStateMachineArn"):
            objects = json.loads(_describe(target, execution["executionArn"]).get("input") or "{}").get("objects", [])
            if {"bucket": upload.bucket, "key": upload.key} in [
                {"bucket": o.get("bucket"), "key": o.get("key")} for o in objects
            ]:
                return str(execution["executionArn"])
        return None

    arn = wait_for(f"a training execution for s3://{upload.bucket}/{upload.key}", started_by_upload, 180)
    return _wait_until_stopped(target, arn, "training")


@pytest.fixture(scope="module")
def deployed(target: Target, training: dict[str, Any]) -> dict[str, Any]:
    """The `deploy` execution the package's approval started, once it succeeded; the package approved by hand."""
    package_arn = json.loads(training["output"])["model_package"]["ModelPackageArn"]
    package = target.aws("sagemaker", "describe-model-package", "--model-package-name", package_arn)
    # Manual approval (the twin's default here): a person approves as the stack's ApproverRole with a reason, which
    # is what deploy checks; auto: the registry approved it already.
    if package["ModelApprovalStatus"] == "PendingManualApproval":
        approve = [
            str(Path(sys.executable).parent / "mlops"),
            "approve",
            package_arn,
            "--stack-name",
            target.stack_name,
        ]
        completed = subprocess.run(
            [*approve, "--reason", "approved by the client suite"],
            env=target.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert completed.returncode == 0, completed.stderr

    def deploy_of_package() -> str | None:
        # The approval rule's input names the package (template.yaml ModelApprovedRule's InputTransformer).
        for execution in _executions(target, "DeployStateMachineArn"):
            execution_input = json.loads(_describe(target, execution["executionArn"]).get("input") or "{}")
            if execution_input.get("ModelPackageArn") == package_arn:
                return str(execution["executionArn"])
        return None

    arn = wait_for(f"a deploy execution started by approving {package_arn}", deploy_of_package, 120)
    deploy = _wait_until_stopped(target, arn, "deploy")
    if target.is_twin:
        # The twin's reaper deletes after an idle hour of its fast clock, which may pass before the tests that
        # invoke the endpoint: the opt-out tag keeps it until the reaper's test removes the tag, as an operator would.
        target.aws(
            "sagemaker",
            "add-tags",
            "--resource-arn",
            _endpoint_arn(target),
            "--tags",
            f"Key={load_pipeline_config().reaper.opt_out_tag},Value=client-suite",
        )
    return {"package_arn": package_arn, "deploy": deploy}


def _endpoint_arn(target: Target) -> str:
    endpoint = target.aws("sagemaker", "describe-endpoint", "--endpoint-name", target.outputs["EndpointName"])
    return str(endpoint["EndpointArn"])


def test_upload_to_the_data_bucket_starts_training_through_the_event_chain(
    target: Target, upload: Upload, training: dict[str, Any]
) -> None:
    # GIVEN an object copied under the data prefix with `aws s3 cp` (the upload fixture)
    # THEN retrain_on_new_data started `training` for exactly that object, and it succeeded
    execution_input = json.loads(training["input"])
    assert execution_input["trigger"]["type"] == "new_data"
    assert {"bucket": upload.bucket, "key": upload.key} in [
        {"bucket": o["bucket"], "key": o["key"]} for o in execution_input["objects"]
    ]
    assert training["status"] == "SUCCEEDED"


def test_step_functions_clients_list_describe_and_read_the_history(target: Target, training: dict[str, Any]) -> None:
    arn = training["executionArn"]
    listed = {e["executionArn"]: e for e in _executions(target, "TrainingStateMachineArn", "SUCCEEDED")}
    assert listed[arn]["status"] == "SUCCEEDED"
    history = target.aws("stepfunctions", "get-execution-history", "--execution-arn", arn)["events"]
    types = [event["type"] for event in history]
    assert types[0] == "ExecutionStarted"
    assert types[-1] == "ExecutionSucceeded"
    entered = {e["stateEnteredEventDetails"]["name"] for e in history if e["type"].endswith("StateEntered")}
    assert {"Preprocess", "RegisterModelPackage"} <= entered


def test_model_package_approval_through_the_registry_starts_deploy(target: Target, deployed: dict[str, Any]) -> None:
    packages = target.aws(
        "sagemaker", "list-model-packages", "--model-package-group-name", target.outputs["ModelPackageGroupName"]
    )["ModelPackageSummaryList"]
    approved = {p["ModelPackageArn"]: p["ModelApprovalStatus"] for p in packages}
    assert approved[deployed["package_arn"]] == "Approved"
    endpoint = target.aws("sagemaker", "describe-endpoint", "--endpoint-name", target.outputs["EndpointName"])
    assert endpoint["EndpointStatus"] == "InService"
    listed = target.aws("sagemaker", "list-endpoints")["Endpoints"]
    assert target.outputs["EndpointName"] in [e["EndpointName"] for e in listed]


def test_invoke_endpoint_answers_and_is_captured_and_counted(
    target: Target, upload: Upload, deployed: dict[str, Any], tmp_path: Path
) -> None:
    endpoint = target.outputs["EndpointName"]
    body = tmp_path / "rows.csv"
    body.write_text(_feature_rows(upload.data, ROWS_PER_INVOCATION))
    answer = tmp_path / "answer.json"
    invoked_at = datetime.now(UTC)
    response = target.aws(
        "sagemaker-runtime",
        "invoke-endpoint",
        "--endpoint-name",
        endpoint,
        "--content-type",
        "text/csv",
        "--accept",
        "application/json",
        "--body",
        f"fileb://{body}",
        str(answer),
    )
    assert response["InvokedProductionVariant"]
    predictions = json.loads(answer.read_text())["predictions"]
    assert len(predictions) == ROWS_PER_INVOCATION
    assert all(p["label"] in (0, 1) for p in predictions)

    # Data capture: the request lands under the endpoint's capture prefix in the artifact bucket, as on AWS.
    def captured() -> bool:
        listing = target.aws(
            "s3api", "list-objects-v2", "--bucket", target.outputs["ArtifactBucketName"], "--prefix", "data-capture/"
        )
        return any(f"/{endpoint}/" in item["Key"] for item in (listing or {}).get("Contents", []))

    wait_for(f"a data capture object of {endpoint}", captured, 60)

    # The Invocations metric, which the reaper reads, counts it.
    def counted() -> bool:
        metrics = target.aws(
            "cloudwatch", "list-metrics", "--namespace", "AWS/SageMaker", "--metric-name", "Invocations"
        )["Metrics"]
        return any({"Name": "EndpointName", "Value": endpoint} in m["Dimensions"] for m in metrics)

    wait_for(
        f"the Invocations metric of {endpoint} (invoked at {invoked_at:%H:%M:%S})",
        counted,
        600 if not target.is_twin else 30,
    )


def test_sagemaker_sdk_predictor_answers_from_another_process(
    target: Target, upload: Upload, deployed: dict[str, Any]
) -> None:
    script = textwrap.dedent(
        """
        import json, sys
        import boto3, sagemaker
        from sagemaker.deserializers import JSONDeserializer
        from sagemaker.predictor import Predictor
        from sagemaker.serializers import CSVSerializer

        session = sagemaker.Session(boto_session=boto3.Session())
        predictor = Predictor(sys.argv[1], sagemaker_session=session, serializer=CSVSerializer(),
                              deserializer=JSONDeserializer())
        print(json.dumps(predictor.predict(sys.stdin.read())))
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", script, target.outputs["EndpointName"]],
        input=_feature_rows(upload.data, 3),
        env={**target.env, "SAGEMAKER_SUPPRESS_V2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert completed.returncode == 0, completed.stderr
    assert len(json.loads(completed.stdout.splitlines()[-1])["predictions"]) == 3


def test_monitoring_schedule_runs_on_the_clock_and_its_alarms_are_evaluated(
    target: Target, deployed: dict[str, Any]
) -> None:
    if not target.is_twin:
        pytest.skip("the monitoring schedule runs hourly on AWS: the suite does not wait for it")
    deployed_at = deployed["deploy"]["stopDate"]

    def monitoring_after_deploy() -> bool:
        runs = _executions(target, "MonitoringStateMachineArn", "SUCCEEDED")
        return any(run["startDate"] > deployed_at for run in runs)

    wait_for("a monitoring execution, started by its schedule, after the deploy", monitoring_after_deploy, 240)
    alarms = target.aws("cloudwatch", "describe-alarms", "--alarm-name-prefix", f"{target.stack_name}-drift")
    drift_alarms = alarms["MetricAlarms"]
    assert drift_alarms, "the stack has drift alarms"
    # CloudWatch evaluates every minute on the twin's clock: each alarm has left INSUFFICIENT_DATA.
    assert {alarm["StateValue"] for alarm in drift_alarms} <= {"OK", "ALARM"}


def test_reaper_schedule_deletes_the_idle_endpoint(target: Target, deployed: dict[str, Any]) -> None:
    if not target.is_twin:
        pytest.skip("the reaper's idle window is hours on a real stack: the suite does not wait for it")
    endpoint = target.outputs["EndpointName"]
    # GIVEN the endpoint without its opt-out tag (set by the deployed fixture), idle from now on
    opt_out = load_pipeline_config().reaper.opt_out_tag
    target.aws("sagemaker", "delete-tags", "--resource-arn", _endpoint_arn(target), "--tag-keys", opt_out)

    def gone() -> bool:
        listed = target.aws("sagemaker", "list-endpoints")["Endpoints"]
        return endpoint not in [e["EndpointName"] for e in listed]

    # THEN it is marked on the first hourly run after the idle window (two hours) and deleted on the first run two hours
    # later: four to six hours of the twin's clock after the last invocation
    wait_for(f"the reaper to delete the idle endpoint {endpoint}", gone, 240)
    # It kept the model and the endpoint config, so the endpoint can be recreated.
    configs = target.aws("sagemaker", "list-endpoint-configs")["EndpointConfigs"]
    assert configs


def test_mlops_audit_lists_every_decision_of_the_chain_from_another_process(
    target: Target, deployed: dict[str, Any]
) -> None:
    # `mlops audit` in its own process, with only the client environment (`mlops up`'s exports, or the account's).
    completed = subprocess.run(
        [sys.executable, "-m", "mlops.cli", "audit", "--json", "--stack-name", target.stack_name],
        env=target.env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert completed.returncode == 0, completed.stderr
    listing = json.loads(completed.stdout)
    assert listing["tampered"] == 0
    decisions = {entry["event"]["decision"] for entry in listing["events"]}
    # The upload's new-data training, the approval and the deploy it started are each on record.
    assert {"training_started", "model_approved", "deploy_succeeded"} <= decisions
