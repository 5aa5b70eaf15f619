"""End to end on the twin: every automated decision of `mlops run` and `mlops run --drift` leaves exactly one audit
event, in the one shape, in the stack's audit log group; `mlops audit` lists them and catches a tampered one.

One twin for the module: the lifecycle (training, auto approval, deploy), its audit trail read, then the drift loop
on the same twin (traffic, monitoring, drift alarm, retraining, redeploy) and the trail read again.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from contract.pipeline_config import load_pipeline_config
from emulator.commands.datasets import write_default_dataset
from emulator.commands.drift import drift_loop
from emulator.commands.drift_summary import DEFAULT_SHIFT
from emulator.commands.lifecycle import LifecycleOutcome, run_lifecycle, started_twin
from emulator.twin import LocalTwin
from mlops.audit import audit_command, check_message, read_trail
from mlops.stack_target import stack_target

pytestmark = pytest.mark.e2e

AUDIT_SOURCE, AUDIT_DETAIL_TYPE = "mlops.audit", "MLOps Audit Event"

# What retrain_on_drift returns for a decision it audits as training_skipped (functions/retrain_on_drift.py).
DRIFT_SKIPS = {"covered", "skipped_running", "skipped_cooldown", "rejected"}


@dataclass
class Trail:
    """The audit events of one phase, and what the twin says was decided in it."""

    events: list[dict[str, Any]]
    alarm_changes: list[dict[str, str]]
    deploys: list[str]
    packages: list[str]
    drift_decisions: list[dict[str, Any]]


def _audit_events(twin: LocalTwin) -> list[dict[str, Any]]:
    logs = boto3.client("logs")
    found = []
    for page in logs.get_paginator("filter_log_events").paginate(logGroupName=twin.stack.outputs["AuditLogGroupName"]):
        found += [json.loads(event["message"])["detail"] for event in page["events"]]
    return found


def _drift_function_decisions(twin: LocalTwin) -> list[dict[str, Any]]:
    arn = twin.stack.function("retrain_on_drift").function_arn
    return [d.result for d in twin.router.deliveries if d.target_arn == arn and isinstance(d.result, dict)]


def _settled(twin: LocalTwin, expected_at_least: int) -> list[dict[str, Any]]:
    """The audit events once the last status change's recorder has run (it follows the execution's end)."""
    deadline = time.monotonic() + 30
    events = _audit_events(twin)
    while len(events) < expected_at_least and time.monotonic() < deadline:
        time.sleep(0.2)
        events = _audit_events(twin)
    return events


def _phase(twin: LocalTwin) -> Trail:
    deploys = [str(e["executionArn"]) for e in twin.list_executions("deploy") if e["status"] in ("SUCCEEDED", "FAILED")]
    group = twin.stack.outputs["ModelPackageGroupName"]
    packages = [
        p["ModelPackageArn"]
        for p in boto3.client("sagemaker").list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"]
        if p["ModelApprovalStatus"] in ("Approved", "Rejected")
    ]
    alarm_changes = list(twin.alarm_changes)
    drift = _drift_function_decisions(twin)
    expected = len(deploys) + len(packages) + len(alarm_changes)
    return Trail(_settled(twin, expected), alarm_changes, deploys, packages, drift)


@dataclass
class Run:
    twin: LocalTwin
    lifecycle: Trail
    drift: Trail


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    work = tmp_path_factory.mktemp("audit")
    dataset = write_default_dataset(work / "data")
    out = io.StringIO()
    outcome = LifecycleOutcome()
    with contextlib.redirect_stdout(io.StringIO()), started_twin(work / "twin", out) as twin:
        run_lifecycle(twin, dataset.path, load_pipeline_config(), tune=False, outcome=outcome, out=out)
        lifecycle = _phase(twin)
        loop = drift_loop(DEFAULT_SHIFT, None)
        loop.check_twin(twin)
        loop.run(twin, outcome, out)
        yield Run(twin, lifecycle, _phase(twin))


def _decisions(events: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    return Counter((event["decision"], json.dumps(event["subject"], sort_keys=True)) for event in events)


def test_every_event_is_an_intact_audit_event_of_the_stack(run: Run) -> None:
    assert run.drift.events
    for event in run.drift.events:
        assert (
            check_message(json.dumps({"source": AUDIT_SOURCE, "detail-type": AUDIT_DETAIL_TYPE, "detail": event}))[1]
            is None
        ), event
        assert event["stack"] == run.twin.stack.stack_name


def test_every_automated_decision_of_mlops_run_leaves_exactly_one_audit_event(run: Run) -> None:
    trail = run.lifecycle
    expected = Counter(
        [("model_approved", arn) for arn in trail.packages]
        + [("deploy_succeeded", arn) for arn in trail.deploys]
        + [("alarm_state_changed", change["alarm"]) for change in trail.alarm_changes]
    )

    seen = Counter(
        (
            event["decision"],
            event["subject"].get("model_package_arn")
            or event["subject"].get("execution_arn")
            or event["subject"]["alarm_name"],
        )
        for event in trail.events
    )

    assert (len(trail.packages), len(trail.deploys)) == (1, 1)
    assert seen == expected
    assert max(_decisions(trail.events).values()) == 1


def test_every_automated_decision_of_the_drift_loop_leaves_exactly_one_audit_event(run: Run) -> None:
    trail = run.drift
    started = [d for d in trail.drift_decisions if d["action"] == "started"]
    skipped = [d for d in trail.drift_decisions if d["action"] in DRIFT_SKIPS]
    expected = Counter(
        ["model_approved"] * len(trail.packages)
        + ["deploy_succeeded"] * len(trail.deploys)
        + ["alarm_state_changed"] * len(trail.alarm_changes)
        + ["training_started"] * len(started)
        + ["training_skipped"] * len(skipped)
    )

    assert (len(trail.packages), len(trail.deploys), len(started)) == (2, 2, 1)
    assert Counter(event["decision"] for event in trail.events) == expected
    [training] = [event for event in trail.events if event["decision"] == "training_started"]
    assert training["subject"]["execution_arn"] == started[0]["execution_arn"]
    assert training["details"]["trigger"] == "drift"
    changes = Counter((c["alarm"], c["to"]) for c in trail.alarm_changes)
    audited = Counter(
        (e["subject"]["alarm_name"], e["details"]["state"])
        for e in trail.events
        if e["decision"] == "alarm_state_changed"
    )
    assert audited == changes


def test_mlops_audit_lists_the_trail_in_time_order_and_a_tampered_event_fails_it(run: Run, capsys) -> None:
    target = stack_target(run.twin.stack.stack_name)
    trail = read_trail(target, None)
    assert [entry.problem for entry in trail.entries] == [None] * len(trail.entries)
    assert [entry.time for entry in trail.entries] == sorted(entry.time for entry in trail.entries)

    assert audit_command(run.twin.stack.stack_name, None, as_json=False) == 0
    listed = capsys.readouterr().out
    assert "deploy_succeeded" in listed
    assert "model_approved" in listed

    # GIVEN one approval rewritten in the log group (its reason changed, the checksum left as it was)
    logs = boto3.client("logs")
    group = target.output("AuditLogGroupName")
    approval = next(e for e in trail.entries if e.detail["decision"] == "model_approved")
    forged = {**approval.detail, "reason": "approved by the risk committee"}
    event = {"source": "mlops.audit", "detail-type": "MLOps Audit Event", "detail": forged}
    logs.create_log_stream(logGroupName=group, logStreamName="forged")
    logs.put_log_events(
        logGroupName=group,
        logStreamName="forged",
        logEvents=[{"timestamp": approval.timestamp_ms, "message": json.dumps(event)}],
    )

    # WHEN mlops audit reads the trail THEN it names the tampered event and fails
    assert audit_command(run.twin.stack.stack_name, None, as_json=True) == 1
    printed = capsys.readouterr()
    listing = json.loads(printed.out)
    [tampered] = [e for e in listing["events"] if not e["intact"]]
    assert tampered["log_stream"] == "forged"
    assert "sha256 mismatch" in tampered["problem"]
    assert "FAILED verification" in printed.err
