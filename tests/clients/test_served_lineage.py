"""`mlops lineage` against the served twin (`mlops up`), from another process, as an auditor would run it.

A real upload trains a model through the event chain; `mlops lineage PACKAGE` then prints its lineage and `--json`
parses, naming the uploaded object's exact version; `--training-input` rebuilds an input that, started by hand,
trains on the same data versions with the same code and parameters and evaluates to the same metrics. The served
twin is the session's (conftest.py), started once.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from client_suite import MLOPS, Target, wait_for
from sklearn.datasets import load_breast_cancer

from contract.pipeline_config import load_pipeline_config

pytestmark = pytest.mark.e2e


def _mlops(target: Target, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MLOPS, *args, "--stack-name", target.stack_name],
        env=target.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _succeeded(target: Target, arn: str) -> dict[str, Any]:
    def stopped() -> dict[str, Any] | None:
        described = target.aws("stepfunctions", "describe-execution", "--execution-arn", arn)
        return described if described["status"] != "RUNNING" else None

    described = wait_for(f"training {arn} to stop", stopped, target.execution_timeout)
    assert described["status"] == "SUCCEEDED", f"{described['status']}: {described.get('cause')}"
    return dict(described)


def _metrics(target: Target, package_arn: str) -> dict[str, float]:
    package = target.aws("sagemaker", "describe-model-package", "--model-package-name", package_arn)
    uri = package["CustomerMetadataProperties"]["evaluation_uri"]
    return dict(json.loads(target.run_cli("s3", "cp", uri, "-"))["metrics"])


@pytest.fixture(scope="module")
def uploaded(target: Target, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Real data copied under the data prefix with `aws s3 cp`, and the version S3 gave it."""
    config = load_pipeline_config()
    frame = load_breast_cancer(as_frame=True).frame.rename(columns={"target": config.model.label_column})
    data: Path = tmp_path_factory.mktemp("lineage-data") / f"lineage-{uuid.uuid4().hex[:12]}.csv"
    frame.to_csv(data, index=False)
    bucket, key = target.outputs["DataBucketName"], f"{config.data.prefix}{data.name}"
    target.run_cli("s3", "cp", str(data), f"s3://{bucket}/{key}")
    head = target.aws("s3api", "head-object", "--bucket", bucket, "--key", key)
    return {"bucket": bucket, "key": key, "version_id": head["VersionId"]}


@pytest.fixture(scope="module")
def registered(target: Target, uploaded: dict[str, str]) -> str:
    """The model package of the training the upload started."""

    def started_by_upload() -> str | None:
        listed = target.aws(
            "stepfunctions", "list-executions", "--state-machine-arn", target.outputs["TrainingStateMachineArn"]
        )
        for execution in listed["executions"]:
            described = target.aws("stepfunctions", "describe-execution", "--execution-arn", execution["executionArn"])
            if uploaded["key"] in (described.get("input") or ""):
                return str(execution["executionArn"])
        return None

    arn = wait_for(f"a training for {uploaded['key']}", started_by_upload, 180)
    return str(json.loads(_succeeded(target, arn)["output"])["model_package"]["ModelPackageArn"])


def test_mlops_lineage_prints_the_exact_object_version_trained_on_and_json_parses(
    target: Target, uploaded: dict[str, str], registered: str
) -> None:
    printed = _mlops(target, "lineage", registered)
    as_json = _mlops(target, "lineage", registered, "--json")

    assert printed.returncode == 0, printed.stderr
    assert f"{uploaded['key']}  version {uploaded['version_id']}" in printed.stdout
    assert "(verified)" in printed.stdout
    assert as_json.returncode == 0, as_json.stderr
    view = json.loads(as_json.stdout)
    objects = {o["key"]: o for o in view["lineage"]["data"]["objects"]}
    assert objects[uploaded["key"]]["version_id"] == uploaded["version_id"]
    package = target.aws("sagemaker", "describe-model-package", "--model-package-name", registered)
    assert view["manifest"]["sha256"] == package["CustomerMetadataProperties"]["lineage_manifest_sha256"]
    assert view["manifest"]["uri"].startswith(f"s3://{target.outputs['GovernanceBucketName']}/lineage/")


def test_mlops_lineage_rebuilds_an_input_that_trains_the_same_model(
    target: Target, uploaded: dict[str, str], registered: str
) -> None:
    rebuilt = _mlops(target, "lineage", registered, "--training-input")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "not a faithful reproduction" not in rebuilt.stderr
    execution_input = json.loads(rebuilt.stdout)

    started = target.aws(
        "stepfunctions",
        "start-execution",
        "--state-machine-arn",
        target.outputs["TrainingStateMachineArn"],
        "--name",
        f"reproduce-{uuid.uuid4().hex[:12]}",
        "--input",
        json.dumps(execution_input),
    )
    reproduced = str(
        json.loads(_succeeded(target, started["executionArn"])["output"])["model_package"]["ModelPackageArn"]
    )

    assert _metrics(target, reproduced) == _metrics(target, registered)
    original = json.loads(_mlops(target, "lineage", registered, "--json").stdout)["lineage"]
    again = json.loads(_mlops(target, "lineage", reproduced, "--json").stdout)["lineage"]
    assert again["data"]["pinned"] is True
    versions = [(o["key"], o["version_id"], o["sha256"]) for o in again["data"]["objects"]]
    assert versions == [(o["key"], o["version_id"], o["sha256"]) for o in original["data"]["objects"]]
    assert again["code"] == original["code"]
    assert again["training"]["hyperparameters"] == original["training"]["hyperparameters"]
