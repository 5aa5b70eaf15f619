"""End to end on the local twin: `mlops run --drift` closes the loop: capture, monitoring, alarm, retraining, deploy.

One run of the command for the module: the lifecycle, unshifted held-out traffic through InvokeEndpoint with a
monitoring run over its window (records, no drift, no alarm, no retraining), then shifted traffic whose monitoring
run finds dataset drift, a drift alarm to ALARM, exactly one training triggered by it that succeeds, and the deploy
of its package after it. The assertions read the command's own summary JSON, as a user or CI would.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from emulator.commands.drift import drift_command
from emulator.commands.drift_summary import DEFAULT_SHIFT
from emulator.commands.lifecycle import EXIT_OK
from emulator.stack import DEFAULT_STACK_NAME

pytestmark = pytest.mark.e2e

DRIFT_ALARM_PREFIX = f"{DEFAULT_STACK_NAME}-drift-"


@dataclass
class DriftRun:
    exit_code: int
    printed: str
    summary: dict[str, Any]
    report: Path

    def executions(self, state_machine: str, trigger: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for e in self.summary["executions"]
            if e["state_machine"] == state_machine and (trigger is None or e["trigger"] == trigger)
        ]


@pytest.fixture(scope="module")
def drift_run(tmp_path_factory: pytest.TempPathFactory) -> DriftRun:
    work = tmp_path_factory.mktemp("drift")
    summary_path, report = work / "summary.json", work / "report.html"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = drift_command(None, None, DEFAULT_SHIFT, summary_path, report, work / "run")
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.exists() else {}
    return DriftRun(code, printed.getvalue(), summary, report)


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_the_drift_command_exits_0_and_writes_its_summary(drift_run: DriftRun) -> None:
    assert drift_run.exit_code == EXIT_OK, drift_run.printed[-4000:]
    assert set(drift_run.summary) == {"executions", "monitoring_runs", "alarm_changes"}


def test_unshifted_traffic_is_monitored_with_records_and_no_drift_then_shifted_traffic_drifts(
    drift_run: DriftRun,
) -> None:
    runs = drift_run.summary["monitoring_runs"]
    assert len(runs) >= 2, runs
    first, drifted = runs[0], runs[1]
    assert first["records"] > 0
    assert first["dataset_drift"] is False
    assert drifted["records"] > 0
    assert drifted["dataset_drift"] is True
    assert _time(first["window_end"]) <= _time(drifted["window_start"]), "the windows follow each other"


def test_a_drift_alarm_goes_to_alarm_only_after_the_drifted_window(drift_run: DriftRun) -> None:
    runs = drift_run.summary["monitoring_runs"]
    to_alarm = [
        change
        for change in drift_run.summary["alarm_changes"]
        if change["alarm"].startswith(DRIFT_ALARM_PREFIX) and change["to"] == "ALARM"
    ]
    assert to_alarm, drift_run.summary["alarm_changes"]
    # Unshifted traffic sets no drift alarm: every transition to ALARM comes after the unshifted window ended.
    assert all(_time(change["time"]) > _time(runs[0]["window_end"]) for change in to_alarm)


def test_exactly_one_training_answers_the_alarm_and_succeeds_and_unshifted_traffic_started_none(
    drift_run: DriftRun,
) -> None:
    trainings = drift_run.executions("training")
    drift_trainings = drift_run.executions("training", trigger="drift")

    assert [t["trigger"] for t in trainings] == ["manual", "drift"], trainings
    assert len(drift_trainings) == 1
    assert drift_trainings[0]["status"] == "SUCCEEDED"
    assert "unshifted traffic: no drift, no alarm, no retraining" in drift_run.printed


def test_the_retrained_package_is_deployed_after_the_training_and_succeeds(drift_run: DriftRun) -> None:
    (retraining,) = drift_run.executions("training", trigger="drift")
    deploys = drift_run.executions("deploy", trigger="approval")

    # The approval rule starts deploy as the training registers its package, before the training's last state.
    after = [d for d in deploys if _time(d["start"]) >= _time(retraining["start"])]
    assert len(deploys) == 2, deploys
    assert len(after) == 1, deploys
    assert after[0]["status"] == "SUCCEEDED"


def test_the_monitoring_runs_are_executions_that_succeeded(drift_run: DriftRun) -> None:
    monitoring = drift_run.executions("monitoring")

    assert len(monitoring) == len(drift_run.summary["monitoring_runs"])
    assert {m["status"] for m in monitoring} == {"SUCCEEDED"}


def test_the_run_prints_the_chain_and_its_timings_and_reports_the_monitoring(drift_run: DriftRun) -> None:
    assert "== drift loop ==" in drift_run.printed
    assert "retrain_on_drift: started" in drift_run.printed
    assert "chain: " in drift_run.printed
    assert "on the twin's clock" in drift_run.printed
    page = drift_run.report.read_text(encoding="utf-8")
    assert "<h2>Monitoring</h2>" in page
    assert 'aria-label="alarm states over time"' in page
