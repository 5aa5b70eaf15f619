"""An execution's history as state runs: each visit of a state, its outcome, output and failure (the twin's model)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

SUCCEEDED = "succeeded"
FAILED = "failed"
CAUGHT = "caught"  # the state failed and a Catch sent the execution on
RUNNING = "running"
NOT_RUN = "not run"

# Events that say a state's work failed; the state's fate then depends on whether it exits (caught) or not.
_FAILURE_SUFFIXES = ("Failed", "TimedOut", "Aborted")
_EXECUTION_END_EVENTS = ("ExecutionSucceeded", "ExecutionFailed", "ExecutionTimedOut", "ExecutionAborted")


@dataclass
class StateRun:
    """One visit of one state: a state inside a loop or a Map iteration has several."""

    name: str
    state_type: str
    entered: datetime
    parent: StateRun | None = None
    exited: datetime | None = None
    status: str = RUNNING
    error: str | None = None
    cause: str | None = None
    failed_attempts: int = 0
    task_output: Any = None
    # How many times faster than the wall clock the history's timestamps run: the twin stamps them on its fast
    # clock, and a duration is shown in the seconds a person waited.
    clock_speed: float = 1.0

    @property
    def depth(self) -> int:
        return 0 if self.parent is None else self.parent.depth + 1

    @property
    def duration_seconds(self) -> float | None:
        return None if self.exited is None else (self.exited - self.entered).total_seconds() / self.clock_speed


@dataclass
class _HistoryReader:
    """Keeps which state run each event belongs to, following `previousEventId` as the service links them."""

    runs: list[StateRun] = field(default_factory=list)
    owner: dict[int, StateRun | None] = field(default_factory=dict)
    exited_events: set[int] = field(default_factory=set)
    execution_failed: bool = False

    def read(self, event: Mapping[str, Any]) -> None:
        event_id, previous, kind = event["id"], event.get("previousEventId", 0), event["type"]
        if kind.endswith("StateEntered"):
            run = StateRun(
                name=event["stateEnteredEventDetails"]["name"],
                state_type=kind.removesuffix("StateEntered"),
                entered=event["timestamp"],
                parent=self._parent_of_entry(previous),
            )
            self.runs.append(run)
            self.owner[event_id] = run
        elif kind.endswith("StateExited"):
            exiting = self._run_exiting(event["stateExitedEventDetails"]["name"], previous)
            self.owner[event_id] = exiting
            self.exited_events.add(event_id)
            if exiting is not None:
                exiting.exited = event["timestamp"]
                exiting.status = CAUGHT if exiting.error is not None else SUCCEEDED
        elif kind in _EXECUTION_END_EVENTS:
            self.execution_failed = kind != "ExecutionSucceeded"
            last = self.owner.get(previous)
            # A Fail state, or a task whose failure nothing caught: the execution's error is that state's error.
            if self.execution_failed and last is not None and last.error is None:
                details = _details(event)
                last.error, last.cause = details.get("error") or kind, details.get("cause")
        elif kind.startswith("MapIteration"):
            # Iterations link to whatever event came before them, often another iteration's exit: their
            # details name the Map state, which is the reliable owner.
            self.owner[event_id] = self._open_run(_details(event).get("name"))
        else:
            owner = self.owner.get(previous)
            self.owner[event_id] = owner
            if owner is not None:
                self._record_outcome(owner, kind, event)

    def _parent_of_entry(self, previous: int) -> StateRun | None:
        # Entered right after a sibling exited: same parent as that sibling. Entered after a Parallel/Map
        # (or iteration) started: that container is the parent.
        before = self.owner.get(previous)
        if previous in self.exited_events:
            return before.parent if before is not None else None
        return before

    def _run_exiting(self, name: str, previous: int) -> StateRun | None:
        linked = self.owner.get(previous)
        if linked is not None and linked.name == name and linked.exited is None:
            return linked
        # Containers exit after their last branch state, so the link points into a branch: take the open run.
        return self._open_run(name)

    def _open_run(self, name: str | None) -> StateRun | None:
        return next((r for r in reversed(self.runs) if r.name == name and r.exited is None), None)

    def _record_outcome(self, run: StateRun, kind: str, event: Mapping[str, Any]) -> None:
        if kind.endswith(_FAILURE_SUFFIXES) and not kind.startswith("MapIteration"):
            details = _details(event)
            run.failed_attempts += 1
            run.error = details.get("error") or run.error or kind
            run.cause = details.get("cause") or run.cause
        elif kind == "TaskSucceeded":
            # A retry that succeeds clears the earlier failure: the state did not fail.
            run.error = run.cause = None
            run.task_output = _parse_json(_details(event).get("output"))

    def finish(self) -> list[StateRun]:
        if self.execution_failed:
            for run in self.runs:
                if run.exited is None:
                    run.status = FAILED
        return self.runs


def _details(event: Mapping[str, Any]) -> dict[str, Any]:
    return next((v for k, v in event.items() if k.endswith("EventDetails") and isinstance(v, dict)), {})


def _parse_json(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def state_runs(events: Iterable[Mapping[str, Any]], clock_speed: float = 1.0) -> list[StateRun]:
    """The state runs of a history (GetExecutionHistory events, oldest first), with each run's outcome.

    `clock_speed`: how many times faster than the wall clock the events' timestamps ran (StateRun.clock_speed).
    """
    reader = _HistoryReader()
    for event in events:
        reader.read(event)
    runs = reader.finish()
    for run in runs:
        run.clock_speed = clock_speed
    return runs


@dataclass
class StateTotal:
    """All visits of one state (a loop visits some many times), as one summary line shows them."""

    name: str
    state_type: str
    depth: int
    status: str
    visits: int
    seconds: float | None
    last: StateRun


# When visits of a state differ, the line shows the most telling: a failure outweighs a catch, then a success.
_OUTCOME_PRECEDENCE = (FAILED, CAUGHT, RUNNING, SUCCEEDED)


def state_totals(runs: Sequence[StateRun]) -> list[StateTotal]:
    """One total per state in the order states were first entered; iterations inside a Map are left out."""
    totals: dict[tuple[str, int], StateTotal] = {}
    for run in runs:
        if inside_map(run):
            continue
        total = totals.get((run.name, run.depth))
        if total is None:
            totals[(run.name, run.depth)] = StateTotal(
                run.name, run.state_type, run.depth, run.status, 1, run.duration_seconds, run
            )
            continue
        total.visits += 1
        total.last = run
        total.status = min(total.status, run.status, key=_OUTCOME_PRECEDENCE.index)
        if run.duration_seconds is not None:
            total.seconds = (total.seconds or 0.0) + run.duration_seconds
    return list(totals.values())


def job_metrics(task_output: Any) -> dict[str, float]:
    """Metrics a SageMaker `.sync` task returned: a training job's final metrics or a tuning job's best objective."""
    if not isinstance(task_output, dict):
        return {}
    metrics = {
        m["MetricName"]: float(m["Value"])
        for m in task_output.get("FinalMetricDataList") or []
        if "MetricName" in m and "Value" in m
    }
    best = (task_output.get("BestTrainingJob") or {}).get("FinalHyperParameterTuningJobObjectiveMetric")
    if best and "MetricName" in best and "Value" in best:
        metrics[f"best {best['MetricName']}"] = float(best["Value"])
    return metrics


def inside_map(run: StateRun) -> bool:
    """Whether the run is a state of a Map iteration (or nested in one), which summaries leave to the Map."""
    parent = run.parent
    while parent is not None:
        if parent.state_type == "Map":
            return True
        parent = parent.parent
    return False


def short_cause(cause: str | None, limit: int = 300) -> str:
    """A failure's cause on one line: a failed SageMaker job's `FailureReason` rather than its whole description."""
    if not cause:
        return ""
    parsed = _parse_json(cause)
    if isinstance(parsed, dict):
        for key in ("FailureReason", "errorMessage", "Cause", "cause"):
            if parsed.get(key):
                cause = str(parsed[key])
                break
    flat = " ".join(cause.split())
    if len(flat) <= limit:
        return flat
    # A script's traceback ends with the exception that matters: keep the start (which job) and the end.
    head = limit // 3
    return f"{flat[:head]} ... {flat[-(limit - head - 5) :]}"
