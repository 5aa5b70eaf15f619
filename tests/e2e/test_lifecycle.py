"""End to end on the local twin: the default run trains, registers, deploys through the approval rule, serves."""

from __future__ import annotations

import csv
import io
import json
import re
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.exceptions import ClientError

from contract.pipeline_config import load_pipeline_config
from emulator.commands.datasets import write_default_dataset
from emulator.commands.lifecycle import (
    SAMPLE_ROWS,
    LifecycleError,
    LifecycleOutcome,
    lifecycle_report,
    print_summary,
    read_s3,
    run_lifecycle,
    started_twin,
)
from emulator.commands.report import write_report
from emulator.history import NOT_RUN, SUCCEEDED
from emulator.sagemaker_local.model_cards import content_problems
from emulator.sagemaker_local.s3io import split_s3_uri
from emulator.twin import LocalTwin

pytestmark = pytest.mark.e2e

MIN_TEST_ACCURACY = 0.93
LINEAGE_KEYS = {
    "metric_name",
    "metric_value",
    "training_job",
    "execution_arn",
    "data_uri",
    "sample_uri",
    "evaluation_uri",
    "trigger_type",
}


@dataclass
class LifecycleRun:
    """One default lifecycle run, with its twin still up so tests can look inside it."""

    twin: LocalTwin
    outcome: LifecycleOutcome
    printed: str
    report: Path

    def execution(self, label: str):
        return next(e for e in self.outcome.executions if e.label == label)


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LifecycleRun]:
    # One twin and one run for the whole module: a run trains and deploys a real model.
    work = tmp_path_factory.mktemp("lifecycle")
    dataset = write_default_dataset(work / "data")
    out = io.StringIO()
    outcome = LifecycleOutcome()
    with started_twin(work / "twin", out) as twin:
        try:
            run_lifecycle(twin, dataset.path, load_pipeline_config(), tune=False, outcome=outcome, out=out)
        except LifecycleError as exc:
            outcome.failure = str(exc)
        print_summary(outcome, out)
        report = write_report(lifecycle_report("e2e", outcome), work / "report.html")
        yield LifecycleRun(twin, outcome, out.getvalue(), report)


def test_default_run_succeeds_through_training_and_deploy(default_run: LifecycleRun) -> None:
    assert default_run.outcome.failure is None, default_run.printed
    assert [(e.label, e.result.status) for e in default_run.outcome.executions] == [
        ("training", "SUCCEEDED"),
        ("deploy", "SUCCEEDED"),
    ]


def test_deploy_was_started_by_the_approval_rule_with_the_registered_package(default_run: LifecycleRun) -> None:
    package_arn = default_run.outcome.model_package["ModelPackageArn"]
    deploy = default_run.execution("deploy").result

    assert default_run.outcome.model_package["ModelApprovalStatus"] == "Approved"
    assert deploy.input == {"ModelPackageArn": package_arn}
    # The twin names rule-started executions as EventBridge does (a UUID), unlike the run's own start.
    assert re.fullmatch(r"[0-9a-f-]{36}", deploy.name)


def test_deployed_endpoint_answers_on_localhost(default_run: LifecycleRun) -> None:
    url = default_run.outcome.endpoint_url
    sample = read_s3(default_run.outcome.model_package["CustomerMetadataProperties"]["sample_uri"])

    headers = {"Content-Type": "text/csv", "Accept": "application/json"}
    request = urllib.request.Request(url, data=sample, headers=headers, method="POST")  # noqa: S310 - 127.0.0.1
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - the twin's endpoint
        answer = json.loads(response.read())

    assert urlsplit(url).hostname == "127.0.0.1"
    assert len(answer["predictions"]) == len(sample.decode().strip().splitlines())
    assert all(p["label"] in (0, 1) and 0.0 <= p["score"] <= 1.0 for p in answer["predictions"])
    assert len(default_run.outcome.predictions) == SAMPLE_ROWS


def test_accuracy_on_the_test_split_is_at_least_093(default_run: LifecycleRun) -> None:
    evaluation_uri = default_run.outcome.model_package["CustomerMetadataProperties"]["evaluation_uri"]
    bucket, key = split_s3_uri(evaluation_uri)

    evaluation = json.loads(boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())

    assert bucket == default_run.twin.stack.outputs["ArtifactBucketName"]
    assert evaluation["metrics"]["accuracy"] >= MIN_TEST_ACCURACY, evaluation["metrics"]


def test_model_package_carries_its_lineage(default_run: LifecycleRun) -> None:
    metadata = default_run.outcome.model_package["CustomerMetadataProperties"]

    assert set(metadata) >= LINEAGE_KEYS
    assert metadata["execution_arn"] == default_run.execution("training").result.execution_arn
    assert metadata["trigger_type"] == "manual"


def test_lineage_of_the_endpoint_lists_the_exact_object_versions_trained_on(default_run: LifecycleRun) -> None:
    from mlops.lineage import lineage_view
    from mlops.stack_target import stack_target

    outputs = default_run.twin.stack.outputs
    data_bucket = outputs["DataBucketName"]
    view = lineage_view(stack_target(default_run.twin.stack_name), outputs["EndpointName"])

    assert view["model_package"]["arn"] == default_run.outcome.model_package["ModelPackageArn"]
    assert view["manifest"]["verified"] is True
    assert view["manifest"]["uri"].startswith(f"s3://{outputs['GovernanceBucketName']}/lineage/")
    s3 = boto3.client("s3")
    for item in view["lineage"]["data"]["objects"]:
        current = s3.head_object(Bucket=data_bucket, Key=item["key"])
        assert item["version_id"] == current["VersionId"]
    assert view["lineage"]["data"]["objects"], view
    assert view["lineage"]["code"]["source_dir_uri"] == outputs["SourceDirUri"]
    assert view["lineage"]["code"]["source_commit"] == outputs["SourceCommit"]
    assert [e["kind"] for e in view["executions"]] == ["training", "deploy"]
    assert view["approval"]["status"] == "Approved"
    # The twin holds the manifest under the template's Object Lock, as S3 does: its version cannot be deleted.
    governance = outputs["GovernanceBucketName"]
    retention = s3.get_object_lock_configuration(Bucket=governance)["ObjectLockConfiguration"]["Rule"][
        "DefaultRetention"
    ]
    assert (retention["Mode"], retention["Days"]) == ("GOVERNANCE", 2557)
    key = view["manifest"]["uri"].removeprefix(f"s3://{governance}/")
    assert s3.head_object(Bucket=governance, Key=key)["ObjectLockMode"] == "GOVERNANCE"
    with pytest.raises(ClientError, match="AccessDenied"):
        s3.delete_object(Bucket=governance, Key=key, VersionId=view["manifest"]["version_id"])
    # The run's summary and report show the same verified manifest.
    assert f"lineage: {view['manifest']['uri']} (sha256 {view['manifest']['sha256']}, verified)" in default_run.printed
    assert "<h2>Lineage manifest</h2>" in default_run.report.read_text(encoding="utf-8")


def test_registered_drift_check_baseline_is_the_payload_features_of_the_training_split(
    default_run: LifecycleRun,
) -> None:
    package = default_run.outcome.model_package
    assert package is not None, default_run.printed
    statistics_source = package["DriftCheckBaselines"]["ModelDataQuality"]["Statistics"]
    # docs/interfaces.md, Baseline: baseline.csv is always the sibling of the registered baseline.json.
    baseline_prefix = statistics_source["S3Uri"].rsplit("/", 1)[0]
    statistics = json.loads(read_s3(statistics_source["S3Uri"]))
    header = next(csv.reader(io.StringIO(read_s3(f"{baseline_prefix}/baseline.csv").decode())))
    payload_row = next(csv.reader(io.StringIO(read_s3(package["CustomerMetadataProperties"]["sample_uri"]).decode())))
    execution = default_run.execution("training").result.name
    artifacts = default_run.twin.stack.outputs["ArtifactBucketName"]
    train_uri = f"s3://{artifacts}/runs/{execution}/preprocess/train/train.csv"
    training_header = next(csv.reader(io.StringIO(read_s3(train_uri).decode())))
    evaluation = json.loads(read_s3(package["CustomerMetadataProperties"]["evaluation_uri"]))

    assert statistics_source["ContentType"] == "application/json"
    assert baseline_prefix == f"s3://{artifacts}/runs/{execution}/evaluation/baseline"
    assert [feature["name"] for feature in statistics["features"]] == header
    # Features only, in payload order: the training columns after the label, as many as a request row holds.
    assert header == training_header[1:]
    assert training_header[0] == load_pipeline_config().model.label_column
    assert len(header) == len(payload_row)
    expected_critical = list(evaluation["feature_attributions"])[
        : load_pipeline_config().monitoring.critical_feature_count
    ]
    assert statistics["critical_features"] == expected_critical


def test_summary_lists_every_state_metrics_package_and_endpoint(default_run: LifecycleRun) -> None:
    printed = default_run.printed
    training_states = [run.name for run in default_run.execution("training").result.runs]

    assert "training: SUCCEEDED" in printed
    assert "deploy: SUCCEEDED" in printed
    assert all(re.search(rf"^\s+{name}\s", printed, re.MULTILINE) for name in training_states)
    assert re.search(r"validation:auc=0\.\d{4}", printed), "the training job's final metrics are shown"
    assert re.search(r"^metrics \(test split, n=\d+\): auc=", printed, re.MULTILINE)
    assert default_run.outcome.model_package["ModelPackageArn"] in printed
    assert f"endpoint: {default_run.outcome.endpoint_url}" in printed


def test_the_run_makes_an_approved_schema_valid_model_card_shown_in_summary_and_report(
    default_run: LifecycleRun,
) -> None:
    card = default_run.outcome.model_card
    assert card is not None, default_run.printed
    content = card["content"]

    assert card["ModelCardStatus"] == "Approved"
    assert card["SecurityConfig"] == {"KmsKeyId": default_run.twin.stack.outputs["KmsKeyArn"]}
    assert content_problems(content) == []
    assert content["model_package_details"]["model_package_arn"] == default_run.outcome.model_package["ModelPackageArn"]
    assert content["training_details"]["training_job_details"]["training_arn"].endswith("-train")
    assert [evaluation["name"] for evaluation in content["evaluation_details"]] == ["held-out test split", "bias"]
    assert re.search(rf"^model card: {card['ModelCardName']} v\d+ \(Approved, ", default_run.printed, re.MULTILINE)
    assert f"<h2>Model card <span class='muted'>{card['ModelCardName']}</span></h2>" in default_run.report.read_text()


def test_report_colours_the_path_taken_and_the_branch_not_taken(default_run: LifecycleRun) -> None:
    page = default_run.report.read_text()

    assert page.count('<svg class="graph"') == 2
    assert page.count('<svg class="timeline"') == 2
    assert f'<g class="node {SUCCEEDED}"><title>Train (Task)' in page
    assert f'<g class="node {NOT_RUN.replace(" ", "-")}"><title>Tune (Task)' in page
    assert f'<g class="node {SUCCEEDED}"><title>Deployed (Succeed)' in page
