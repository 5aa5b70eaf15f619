"""State runs, progress lines and the HTML report, from histories that moto's Step Functions engine really produced."""

from __future__ import annotations

import io
import json
import re
import time
from typing import Any
from xml.etree import ElementTree

import boto3
import pytest
from moto import mock_aws

from emulator.commands.console import ProgressPrinter
from emulator.commands.report import (
    ExecutionView,
    LifecycleReport,
    Prediction,
    layout_layers,
    render_report,
    state_statuses,
)
from emulator.history import (
    CAUGHT,
    FAILED,
    NOT_RUN,
    SUCCEEDED,
    job_metrics,
    state_runs,
    state_totals,
)

ROLE_ARN = "arn:aws:iam::123456789012:role/state-machine"

# A task that fails for real on the engine: the bucket does not exist in moto.
FAILING_TASK = {
    "Type": "Task",
    "Resource": "arn:aws:states:::aws-sdk:s3:headObject",
    "Parameters": {"Bucket": "no-such-bucket", "Key": "k"},
}

CAUGHT_THEN_FAIL = {
    "StartAt": "Prepare",
    "States": {
        "Prepare": {"Type": "Pass", "Result": 1, "ResultPath": "$.prepared", "Next": "Fanout"},
        "Fanout": {
            "Type": "Parallel",
            "ResultPath": "$.fanout",
            "Branches": [
                {"StartAt": "LeftBranch", "States": {"LeftBranch": {"Type": "Pass", "End": True}}},
                {"StartAt": "RightBranch", "States": {"RightBranch": {"Type": "Pass", "End": True}}},
            ],
            "Next": "EachItem",
        },
        "EachItem": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "ResultPath": "$.mapped",
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "INLINE"},
                "StartAt": "Item",
                "States": {"Item": {"Type": "Pass", "End": True}},
            },
            "Next": "Train",
        },
        "Train": {**FAILING_TASK, "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Notify"}], "Next": "Register"},
        "Register": {"Type": "Pass", "Next": "Done"},
        "Notify": {"Type": "Pass", "Next": "TrainingFailed"},
        "TrainingFailed": {"Type": "Fail", "Error": "TrainingFailed", "Cause": "training raised"},
        "Done": {"Type": "Succeed"},
    },
}

UNCAUGHT_FAILURE = {
    "StartAt": "Train",
    "States": {"Train": {**FAILING_TASK, "Next": "Done"}, "Done": {"Type": "Succeed"}},
}

POLL_LOOP = {
    "StartAt": "Create",
    "States": {
        "Create": {"Type": "Pass", "Result": 0, "ResultPath": "$.polls", "Next": "Wait"},
        "Wait": {"Type": "Wait", "Seconds": 0, "Next": "Describe"},
        "Describe": {"Type": "Pass", "Parameters": {"polls.$": "States.MathAdd($.polls, 1)"}, "Next": "Ready"},
        "Ready": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.polls", "NumericLessThan": 3, "Next": "Wait"}],
            "Default": "Done",
        },
        "Done": {"Type": "Succeed"},
    },
}


def run_on_engine(definition: dict[str, Any], execution_input: dict[str, Any]) -> dict[str, Any]:
    """Runs `definition` on moto's executing engine and returns its description and history events."""
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        client = boto3.client("stepfunctions", region_name="us-east-1")
        machine = client.create_state_machine(name="m", definition=json.dumps(definition), roleArn=ROLE_ARN)
        arn = client.start_execution(
            stateMachineArn=machine["stateMachineArn"], name="e", input=json.dumps(execution_input)
        )["executionArn"]
        deadline = time.monotonic() + 30
        while client.describe_execution(executionArn=arn)["status"] == "RUNNING":
            assert time.monotonic() < deadline, "execution did not finish in 30 s"
            time.sleep(0.02)
        return {
            "description": client.describe_execution(executionArn=arn),
            "events": client.get_execution_history(executionArn=arn)["events"],
        }


@pytest.fixture(scope="module")
def caught_run() -> dict[str, Any]:
    return run_on_engine(CAUGHT_THEN_FAIL, {"items": [1, 2, 3]})


@pytest.fixture(scope="module")
def uncaught_run() -> dict[str, Any]:
    return run_on_engine(UNCAUGHT_FAILURE, {})


@pytest.fixture(scope="module")
def loop_run() -> dict[str, Any]:
    return run_on_engine(POLL_LOOP, {})


def view_of(label: str, definition: dict[str, Any], run: dict[str, Any]) -> ExecutionView:
    description = run["description"]
    return ExecutionView(
        label=label,
        execution_arn=description["executionArn"],
        status=description["status"],
        definition=definition,
        runs=state_runs(run["events"]),
        started=description["startDate"],
        stopped=description.get("stopDate"),
        error=description.get("error"),
        cause=description.get("cause"),
    )


def test_caught_task_is_caught_and_named_fail_state_is_failed(caught_run):
    runs = {r.name: r for r in state_runs(caught_run["events"]) if r.depth == 0}

    assert runs["Prepare"].status == SUCCEEDED
    assert runs["Train"].status == CAUGHT
    assert runs["Train"].error == "s3.NoSuchBucketException"
    assert runs["Notify"].status == SUCCEEDED
    assert runs["TrainingFailed"].status == FAILED
    assert runs["TrainingFailed"].error == "TrainingFailed"
    assert "Register" not in runs


def test_branch_and_iteration_states_are_nested_under_their_container(caught_run):
    runs = state_runs(caught_run["events"])
    branches = [r for r in runs if r.name in ("LeftBranch", "RightBranch")]
    items = [r for r in runs if r.name == "Item"]

    assert {r.parent.name for r in branches if r.parent} == {"Fanout"}
    assert len(items) == 3
    assert all(r.parent is not None and r.parent.name == "EachItem" and r.depth == 1 for r in items)
    assert all(r.status == SUCCEEDED for r in branches + items)


def test_uncaught_task_failure_marks_the_task_failed_with_its_cause(uncaught_run):
    [train] = state_runs(uncaught_run["events"])

    assert train.status == FAILED
    assert train.error == "s3.NoSuchBucketException"
    assert "bucket does not exist" in (train.cause or "")


def test_statuses_per_state_include_states_never_reached(caught_run):
    statuses = state_statuses(CAUGHT_THEN_FAIL, state_runs(caught_run["events"]))

    assert statuses["Train"] == CAUGHT
    assert statuses["Register"] == NOT_RUN
    assert statuses["Done"] == NOT_RUN
    assert statuses["TrainingFailed"] == FAILED


def test_loop_visits_are_separate_runs_and_layout_cuts_the_loop(loop_run):
    runs = state_runs(loop_run["events"])
    rows = layout_layers(POLL_LOOP)

    assert [r.name for r in runs].count("Wait") == 3
    assert rows[0] == ["Create"]
    assert rows.index(["Wait"]) < rows.index(["Describe"]) < rows.index(["Ready"])
    assert sorted(name for row in rows for name in row) == sorted(POLL_LOOP["States"])


def test_progress_prints_each_top_level_state_once_and_summarises_map_iterations(caught_run):
    stream = io.StringIO()
    printer = ProgressPrinter("training", stream)
    events = caught_run["events"]

    # The printer is fed growing prefixes of the history, as a poll loop would.
    for end in range(1, len(events) + 1):
        printer.update(state_runs(events[:end]))
    lines = stream.getvalue().splitlines()

    assert sum("Train (Task) caught" in line for line in lines) == 1
    assert sum("TrainingFailed (Fail) failed" in line for line in lines) == 1
    assert not any("Item (Pass)" in line for line in lines)
    assert all(line.startswith("[training] ") for line in lines)
    assert sum("Prepare (Pass)" in line for line in lines) == 2  # started, then succeeded


def test_job_metrics_read_training_and_tuning_descriptions():
    training = {"FinalMetricDataList": [{"MetricName": "validation:auc", "Value": 0.99, "Timestamp": 0}]}
    tuning = {
        "BestTrainingJob": {
            "FinalHyperParameterTuningJobObjectiveMetric": {"MetricName": "validation:auc", "Value": 0.98}
        }
    }

    assert job_metrics(training) == {"validation:auc": 0.99}
    assert job_metrics(tuning) == {"best validation:auc": 0.98}
    assert job_metrics("not a description") == {}


def test_report_colours_each_state_by_outcome_and_is_self_contained(caught_run, loop_run):
    report = LifecycleReport(
        title="lifecycle <run>",
        executions=[
            view_of("training", CAUGHT_THEN_FAIL, caught_run),
            view_of("deploy", POLL_LOOP, loop_run),
        ],
        evaluation={
            "metrics": {"auc": 0.99, "accuracy": 0.96},
            "per_class": {"0": {"precision": 0.9, "recall": 0.95, "f1": 0.92, "support": 40}},
            "feature_attributions": {"worst radius": 1.2, "mean texture": 0.3},
            "n_test": 114,
        },
        model_package={
            "ModelPackageArn": "arn:aws:sagemaker:us-east-1:123456789012:model-package/g/1",
            "ModelApprovalStatus": "Approved",
            "CustomerMetadataProperties": {"training_job": "e-train", "metric_value": "0.99"},
        },
        endpoint_url="http://127.0.0.1:9000/invocations",
        predictions=[Prediction(score=0.97, predicted=1, actual=1)],
    )

    page = render_report(report)

    assert re.search(r'<g class="node caught"><title>Train \(Task\)', page)
    assert re.search(r'<g class="node failed"><title>TrainingFailed \(Fail\)', page)
    assert re.search(r'<g class="node not-run"><title>Register \(Pass\)', page)
    assert re.search(r'<g class="node succeeded"><title>Notify \(Pass\)', page)
    assert re.search(r'<path class="edge catch taken" [^>]*><title>Train -&gt; Notify', page)
    assert re.search(r'<path class="edge next" [^>]*><title>Train -&gt; Register', page)
    assert page.count('<svg class="graph"') == 2
    assert page.count('<svg class="timeline"') == 2
    assert "lifecycle &lt;run&gt;" in page
    assert "model-package/g/1" in page
    assert "worst radius" in page
    # Every drawing is well-formed XML, so it renders the same inline in HTML and saved as an .svg file.
    for drawing in re.findall(r"<svg .*?</svg>", page, re.DOTALL):
        ElementTree.fromstring(drawing)  # noqa: S314 - parses the report this test just rendered
    # Self-contained: nothing fetched, nothing executed.
    assert "<script" not in page
    assert not re.search(r'(src|href)="(https?:)?//', page)


def test_progress_prints_a_loop_once_then_counts_the_repeated_visits(loop_run):
    stream = io.StringIO()
    printer = ProgressPrinter("deploy", stream)
    events = loop_run["events"]

    for end in range(1, len(events) + 1):
        printer.update(state_runs(events[:end]))
    printer.finish()
    lines = stream.getvalue().splitlines()

    assert sum(line.startswith("[deploy] Wait (Wait) succeeded") for line in lines) == 1
    assert "[deploy] repeated, all succeeded: Wait x2, Describe x2, Ready x2" in lines
    assert lines[-1].startswith("[deploy] Done (Succeed) succeeded")


def test_state_totals_add_up_the_visits_of_each_state(loop_run):
    totals = {total.name: total for total in state_totals(state_runs(loop_run["events"]))}

    assert list(totals) == ["Create", "Wait", "Describe", "Ready", "Done"]
    assert totals["Wait"].visits == 3
    assert totals["Wait"].status == SUCCEEDED
    assert totals["Create"].visits == 1
