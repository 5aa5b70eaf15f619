"""The pure parts of `mlops run --drift`: the `--shift` spec, shifting rows, triggers and the summary JSON.

No twin, no AWS: functions over rows, execution descriptions and monitoring reports, so each is unit-tested alone.
The summary's format is in docs/interfaces.md ("`mlops run --drift` summary").
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

# What `--shift` does unless told otherwise: every critical feature of the baseline (the model's most important
# features by SHAP) moved up by three of its standard deviations in the baseline sample.
DEFAULT_SHIFT = "critical=+3sd"
CRITICAL = "critical"
ALL = "all"
TRIGGERS = ("manual", "new-data", "drift", "model-quality", "schedule", "approval")
# The `training` input's trigger types (docs/interfaces.md) as the summary names them.
_TRIGGER_BY_TRAINING_TYPE = {"manual": "manual", "new_data": "new-data", "drift": "drift", "schedule": "schedule"}
# The model-quality alarm's name ends so (template.yaml, `${AWS::StackName}-drift-model-quality`); its retraining
# has trigger type `drift` like the data-drift alarms', and the summary tells them apart by the alarm.
MODEL_QUALITY_ALARM_SUFFIX = "-drift-model-quality"
_SD_CHANGE = re.compile(r"^([+-]\d+(?:\.\d+)?)sd$")
_SCALE_CHANGE = re.compile(r"^x(\d+(?:\.\d+)?)$")


class ShiftSpecError(ValueError):
    """A `--shift` spec that cannot be read or names no feature; the message says which part and what to write."""


@dataclass(frozen=True)
class FeatureShift:
    """One part of a `--shift` spec: `target` (`critical`, `all` or a feature name) moved by `amount`."""

    target: str
    kind: Literal["sd", "scale"]
    amount: float

    def change(self) -> str:
        """The change as the spec writes it: `+3sd`, `x1.5`."""
        return f"{self.amount:+g}sd" if self.kind == "sd" else f"x{self.amount:g}"

    def describe(self) -> str:
        return f"{self.target}={self.change()}"


def parse_shift(spec: str) -> list[FeatureShift]:
    """The parts of a `--shift` spec: comma-separated `TARGET=CHANGE`.

    TARGET is `critical` (the baseline's critical features), `all`, or a feature name; CHANGE is `+Nsd` / `-Nsd`
    (add N standard deviations of the feature in the baseline sample) or `xF` (multiply by F).
    """
    parts = [part.strip() for part in spec.split(",")]
    if not spec.strip() or not all(parts):
        raise ShiftSpecError(
            f"--shift {spec!r} has an empty part: write comma-separated TARGET=CHANGE, e.g. {DEFAULT_SHIFT!r}"
        )
    shifts = []
    for part in parts:
        target, equals, change = part.rpartition("=")
        target, change = target.strip(), change.strip()
        if not equals or not target:
            raise ShiftSpecError(
                f"--shift part {part!r} is not TARGET=CHANGE: TARGET is {CRITICAL!r}, {ALL!r} or a feature name, "
                "CHANGE is +Nsd, -Nsd or xF (e.g. 'critical=+3sd', 'mean radius=x1.5')"
            )
        if match := _SD_CHANGE.match(change):
            shifts.append(FeatureShift(target, "sd", float(match.group(1))))
        elif match := _SCALE_CHANGE.match(change):
            shifts.append(FeatureShift(target, "scale", float(match.group(1))))
        else:
            raise ShiftSpecError(
                f"--shift part {part!r}: change {change!r} is neither +Nsd/-Nsd (standard deviations of the "
                "baseline) nor xF (a factor), e.g. +3sd, -1.5sd, x2"
            )
    return shifts


def unknown_features(shifts: Sequence[FeatureShift], features: Sequence[str]) -> list[str]:
    """The targets that are neither `critical`, `all` nor one of `features`."""
    return [s.target for s in shifts if s.target not in (CRITICAL, ALL) and s.target not in features]


def resolve_shift(
    shifts: Sequence[FeatureShift], features: Sequence[str], critical: Sequence[str]
) -> dict[int, FeatureShift]:
    """Each shifted feature's column (payload order) and its shift; a feature named twice or unknown is an error."""
    unknown = unknown_features(shifts, features)
    if unknown:
        raise ShiftSpecError(
            f"--shift names {', '.join(map(repr, unknown))}, which the model's features do not include; "
            f"its features are: {', '.join(features)}"
        )
    resolved: dict[int, FeatureShift] = {}
    for shift in shifts:
        if shift.target == CRITICAL:
            if not critical:
                raise ShiftSpecError(
                    f"--shift {CRITICAL!r}: the baseline names no critical features; name features instead"
                )
            names = list(critical)
        else:
            names = list(features) if shift.target == ALL else [shift.target]
        for name in names:
            column = list(features).index(name)
            if column in resolved:
                raise ShiftSpecError(
                    f"--shift moves feature {name!r} twice ({resolved[column].describe()} and {shift.describe()}): "
                    "name each feature once"
                )
            resolved[column] = shift
    return resolved


def apply_shift(
    rows: Sequence[Sequence[float]], resolved: Mapping[int, FeatureShift], deviations: Sequence[float]
) -> list[list[float]]:
    """`rows` with each shifted column moved: `value + amount * deviation` or `value * amount`; the rest unchanged."""
    shifted = []
    for row in rows:
        values = list(row)
        for column, shift in resolved.items():
            value = values[column]
            if math.isfinite(value):
                values[column] = (
                    value + shift.amount * deviations[column] if shift.kind == "sd" else value * shift.amount
                )
        shifted.append(values)
    return shifted


# ---- the summary ---------------------------------------------------------------------------------------------


class SummaryError(ValueError):
    """An execution or report the summary cannot describe; the message names it."""


@dataclass(frozen=True)
class ExecutionRecord:
    """One execution as the summary needs it: from DescribeExecution."""

    state_machine: str  # the workflow: training, deploy, monitoring
    name: str
    input: Any
    status: str
    start: datetime
    end: datetime | None


def started_by_rule(name: str) -> bool:
    """EventBridge names the executions its rules start with a UUID; every project starter names its own."""
    try:
        return str(uuid.UUID(name)) == name.lower()
    except ValueError:
        return False


def derive_trigger(record: ExecutionRecord) -> str:
    """What started the execution, one of TRIGGERS, from its input (training) or its name (deploy, monitoring).

    `training` carries `trigger.type` in its input (functions/common/training.py); a drift retraining answering the
    model-quality alarm is `model-quality`. `deploy` started by the approval rule is `approval`, `monitoring`
    started by its schedule rule `schedule`; either started under a name of their own is `manual`.
    """
    if record.state_machine == "training":
        execution_input = record.input if isinstance(record.input, Mapping) else {}
        trigger = execution_input.get("trigger")
        if trigger is None:
            return "manual"  # the training input's default trigger (docs/interfaces.md)
        kind = trigger.get("type") if isinstance(trigger, Mapping) else None
        if kind not in _TRIGGER_BY_TRAINING_TYPE:
            raise SummaryError(
                f"training execution {record.name} has trigger {json.dumps(trigger)[:200]}: its type is none of "
                f"{', '.join(_TRIGGER_BY_TRAINING_TYPE)}"
            )
        detail = trigger.get("detail") if isinstance(trigger.get("detail"), Mapping) else {}
        if kind == "drift" and str(detail.get("alarm_name", "")).endswith(MODEL_QUALITY_ALARM_SUFFIX):
            return "model-quality"
        return _TRIGGER_BY_TRAINING_TYPE[kind]
    if record.state_machine == "deploy":
        return "approval" if started_by_rule(record.name) else "manual"
    if record.state_machine == "monitoring":
        return "schedule" if started_by_rule(record.name) else "manual"
    raise SummaryError(f"execution {record.name} is of state machine {record.state_machine!r}, not one the loop runs")


def iso_utc(moment: datetime | str | None) -> str | None:
    """ISO-8601 UTC with milliseconds and `Z`; a string is read as ISO-8601 first (a naive one is taken as UTC)."""
    if moment is None:
        return None
    if isinstance(moment, str):
        try:
            moment = datetime.fromisoformat(moment)
        except ValueError:
            raise SummaryError(f"{moment!r} is not an ISO-8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def execution_entry(record: ExecutionRecord) -> dict[str, Any]:
    return {
        "state_machine": record.state_machine,
        "trigger": derive_trigger(record),
        "status": record.status,
        "start": iso_utc(record.start),
        "end": iso_utc(record.end),
    }


def monitoring_run_entry(window: Mapping[str, Any], report: Mapping[str, Any]) -> dict[str, Any]:
    """A monitoring run: its window (the `monitoring_window` result) and what its `monitoring_report.json` found.

    `records` counts the capture records the job read; `findings` holds every data-quality check's count.
    """
    try:
        return {
            "window_start": iso_utc(window["WindowStart"]),
            "window_end": iso_utc(window["WindowEnd"]),
            "records": int(report["records"]["read"]),
            "drifted_share": report["drifted_share"],
            "dataset_drift": bool(report["dataset_drift"]),
            "findings": {str(check): int(count) for check, count in report["data_quality"]["findings"].items()},
        }
    except (KeyError, TypeError) as error:
        raise SummaryError(
            f"monitoring window {dict(window)} or its report lacks {error}: not the report of docs/interfaces.md"
        ) from None


def alarm_change_entry(change: Any) -> dict[str, Any]:
    """One alarm state change of the twin (`LocalTwin.alarm_changes`: alarm, from, to, time)."""
    fields = _alarm_change_fields(change)
    return {"alarm": fields[0], "from": fields[1], "to": fields[2], "time": iso_utc(fields[3])}


def _alarm_change_fields(change: Any) -> tuple[str, str, str, datetime | str]:
    # The contract names the fields alarm, from, to, time: a mapping has them so; an object cannot have an attribute
    # `from`, so it has `from_`.
    if isinstance(change, Mapping):
        values = [change.get(key) for key in ("alarm", "from", "to", "time")]
    else:
        values = [getattr(change, key, None) for key in ("alarm", "from_", "to", "time")]
    alarm, previous, state, moment = values
    if alarm is None or previous is None or state is None or not isinstance(moment, datetime | str):
        raise SummaryError(f"alarm change {change!r} lacks one of alarm, from, to, time")
    return str(alarm), str(previous), str(state), moment


def build_summary(
    executions: Sequence[ExecutionRecord],
    monitoring_runs: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
    alarm_changes: Sequence[Any],
) -> dict[str, Any]:
    """The `--summary-json` document: executions by start, monitoring runs by window, alarm changes by time."""
    runs = [monitoring_run_entry(window, report) for window, report in monitoring_runs]
    changes = [alarm_change_entry(change) for change in alarm_changes]
    return {
        "executions": [execution_entry(record) for record in sorted(executions, key=lambda r: r.start)],
        "monitoring_runs": sorted(runs, key=lambda run: run["window_end"] or ""),
        "alarm_changes": sorted(changes, key=lambda change: change["time"] or ""),
    }
