"""`mlops run --drift`: the lifecycle, then the drift loop on the same twin, link by link, with its timings.

After `run_lifecycle` (training -> approval -> deploy), on the twin's clock:

1. unshifted held-out rows (the test split) go through `sagemaker-runtime` InvokeEndpoint, `ROWS_PER_REQUEST`
   rows per request, so the endpoint captures them; the clock moves on to the end of one monitoring window
   (`pipeline.toml [monitoring] window_minutes`) and the `monitoring` state machine runs over that window: it must
   read the records and find no dataset drift, the twin's alarms stay out of ALARM, and no training starts;
2. the clock moves past the retraining cooldown (`[drift] cooldown_minutes` from the lifecycle's end), within
   which `retrain_on_drift` would defer the drift alarm to its re-check, as on AWS;
3. the same rows, shifted (`--shift`, default `critical=+3sd`: see `drift_summary.parse_shift`), go through the
   endpoint; the next window's run must find dataset drift; the twin evaluates its alarms, a drift alarm goes to
   ALARM, its "CloudWatch Alarm State Change" event reaches `retrain_on_drift` through the stack's rule, which
   starts `training` (trigger `drift`), whose package the approval rule deploys.

The command starts each monitoring run itself, with the input the schedule gives it plus `WindowEnd` on the twin's
clock, instead of firing the schedule: the window then holds exactly the traffic of its phase. Every link is
printed as it happens, and the chain's timings (twin clock and wall) at the end. `--summary-json` writes the
summary of docs/interfaces.md, built by the pure functions of `emulator.commands.drift_summary`.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import boto3
import numpy as np
from botocore.exceptions import ClientError

from contract.pipeline_config import load_pipeline_config
from emulator.commands.console import format_duration
from emulator.commands.datasets import Dataset, DatasetError
from emulator.commands.drift_summary import (
    MODEL_QUALITY_ALARM_SUFFIX,
    ExecutionRecord,
    FeatureShift,
    ShiftSpecError,
    alarm_change_entry,
    apply_shift,
    build_summary,
    iso_utc,
    parse_shift,
    resolve_shift,
    unknown_features,
)
from emulator.commands.lifecycle import (
    DEPLOY,
    EXIT_BAD_INPUT,
    TRAINING,
    FollowedExecution,
    LifecycleError,
    LifecycleOutcome,
    deploy_executions,
    deploy_registered_model,
    follow_execution,
    held_out_split_uri,
    invoke_csv,
    read_held_out_rows,
    read_s3,
    run_command,
)
from emulator.commands.report import LifecycleReport
from emulator.commands.report_monitoring import (
    AlarmChangeView,
    FeatureDistribution,
    MonitoringRunView,
    MonitoringView,
    most_drifted,
)

if TYPE_CHECKING:
    from emulator.twin import LocalTwin

MONITORING = "monitoring"
# Rows per InvokeEndpoint request: a client sending small batches. Each request costs the twin about 0.1 s (model
# server, capture record, metric), so one row per request would make the traffic most of the loop's wall time.
ROWS_PER_REQUEST = 10
REPORT_FILE_NAME = "monitoring_report.json"  # ml/monitor.py's REPORT_FILE_NAME
ALARM = "ALARM"


def drift_command(
    data: Path | None,
    label_column: str | None,
    shift: str,
    summary_json: Path | None,
    report: Path,
    work_dir: Path | None,
) -> int:
    """`mlops run --drift`: exit 0 when every link of the chain happened; a bad `--shift` exits 2 before any twin."""
    try:
        loop = drift_loop(shift, summary_json)
    except (ShiftSpecError, LifecycleError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return run_command(data, label_column, tune=False, report=report, work_dir=work_dir, follow_up=loop)


def drift_loop(shift: str, summary_json: Path | None) -> DriftLoop:
    """The loop for a `--shift` spec, with the monitoring window and retraining cooldown of pipeline.toml."""
    config = load_pipeline_config()
    return DriftLoop(parse_shift(shift), config.monitoring.window_minutes, config.drift.cooldown_minutes, summary_json)


@dataclass(frozen=True)
class ChainLink:
    """One link of the drift chain as it happened: when on the twin's clock and on the wall clock."""

    text: str
    clock: datetime
    wall: float


@dataclass
class MonitoringRun:
    """One monitoring run the loop started: its execution, window, report and the rows sent in the window."""

    phase: str
    execution: FollowedExecution
    window: dict[str, Any]
    report: dict[str, Any]
    sent_rows: list[list[float]]


@dataclass
class Baseline:
    """The served package's baseline (DriftCheckBaselines): features in payload order, critical ones, the sample."""

    features: list[str]
    critical: list[str]
    sample: np.ndarray  # rows x features

    def deviations(self) -> list[float]:
        return [float(np.nanstd(self.sample[:, column])) for column in range(len(self.features))]


@dataclass
class DriftLoop:
    """The `FollowUp` of `mlops run --drift`; see the module docstring."""

    shifts: list[FeatureShift]
    window_minutes: int
    cooldown_minutes: int
    summary_json: Path | None
    title: str = "drift loop"
    chain: list[ChainLink] = field(default_factory=list)
    monitoring_runs: list[MonitoringRun] = field(default_factory=list)
    executions: list[ExecutionRecord] = field(default_factory=list)
    alarm_changes: list[Any] = field(default_factory=list)
    baseline: Baseline | None = None
    _out: TextIO = field(default_factory=io.StringIO)
    _clock: Any = None
    _wall_start: float = field(default_factory=time.monotonic)
    _loop_began: datetime = field(default_factory=lambda: datetime.now(UTC))

    # ---- FollowUp ---------------------------------------------------------------------------------------------

    def check_input(self, dataset: Dataset) -> None:
        unknown = unknown_features(self.shifts, dataset.feature_columns)
        if unknown:
            raise DatasetError(
                f"--shift names {', '.join(map(repr, unknown))}, which are not features of {dataset.path.name}; "
                f"its features are: {', '.join(dataset.feature_columns)}"
            )

    def check_twin(self, twin: LocalTwin) -> None:
        try:
            twin.stack.state_machine(MONITORING)
        except KeyError:
            raise LifecycleError(
                "the drift loop needs the stack's monitoring state machine (statemachines/monitoring.asl.json), "
                "which this twin did not deploy: run `mlops export`"
            ) from None

    def run(self, twin: LocalTwin, outcome: LifecycleOutcome, out: TextIO) -> None:
        self._out, self._clock, self._wall_start = out, twin.clock, time.monotonic()
        self._loop_began = twin.clock.now()
        print("\n== drift loop ==", file=out)
        self._loop(twin, outcome)

    def record(self, twin: LocalTwin) -> None:
        # Whatever happened, the summary describes every execution and alarm change there was (a twin without the
        # alarm evaluator, refused by check_twin, has none).
        self.executions = execution_records(twin)
        self.alarm_changes = list(getattr(twin, "alarm_changes", []))

    def finish(self, report: LifecycleReport, out: TextIO) -> None:
        report.monitoring = self.monitoring_view()
        print_chain_timings(self.chain, out)
        if self.summary_json is not None:
            summary = build_summary(
                self.executions, [(run.window, run.report) for run in self.monitoring_runs], self.alarm_changes
            )
            self.summary_json.parent.mkdir(parents=True, exist_ok=True)
            self.summary_json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
            print(f"summary: {self.summary_json}", file=out)

    # ---- the loop ---------------------------------------------------------------------------------------------

    def _loop(self, twin: LocalTwin, outcome: LifecycleOutcome) -> None:
        training = next(e for e in outcome.executions if e.label == TRAINING)
        self.baseline = served_baseline(outcome.model_package or {})
        header, rows = read_held_out_rows(held_out_split_uri(training))
        if header[1:] != self.baseline.features:
            raise LifecycleError(
                f"the held-out split's features {header[1:]} are not the baseline's {self.baseline.features}: the "
                "rows would not be the payload the baseline describes"
            )
        unshifted = [[_number(cell) for cell in row[1:]] for row in rows]
        try:
            resolved = resolve_shift(self.shifts, self.baseline.features, self.baseline.critical)
        except ShiftSpecError as error:
            raise LifecycleError(str(error)) from None
        shifted = apply_shift(unshifted, resolved, self.baseline.deviations())
        endpoint = twin.stack.outputs["EndpointName"]
        moved = ", ".join(f"{self.baseline.features[c]} {s.change()}" for c, s in resolved.items())
        self._link(
            f"baseline of the served package: {len(self.baseline.features)} features, critical "
            f"{self.baseline.critical}; shift: {moved}"
        )

        trainings_before = set(_arns(twin, TRAINING))
        alarm_mark = len(twin.alarm_changes)
        first = self._monitored_window(twin, outcome, endpoint, unshifted, "unshifted")
        if first.report.get("dataset_drift"):
            raise LifecycleError(
                f"the monitoring run over UNSHIFTED held-out traffic found dataset drift: {_verdict(first.report)}"
            )
        alarmed = self._alarms_since(twin, alarm_mark)
        if alarmed:
            raise LifecycleError(f"unshifted traffic set drift alarms to ALARM: {', '.join(alarmed)}")
        started = set(_arns(twin, TRAINING)) - trainings_before
        if started:
            raise LifecycleError(f"unshifted traffic started training: {sorted(started)}")
        self._link("unshifted traffic: no drift, no alarm, no retraining")
        self._let_cooldown_pass(twin)

        deploys_before = deploy_executions(twin)
        deliveries_before = len(twin.router.deliveries)
        alarm_mark = len(twin.alarm_changes)
        windows = max(1, drift_alarm_datapoints(twin.stack.stack_name))
        for attempt in range(1, windows + 1):
            run = self._monitored_window(
                twin, outcome, endpoint, shifted, f"shifted {attempt}/{windows}" if windows > 1 else "shifted"
            )
            if not run.report.get("dataset_drift"):
                raise LifecycleError(
                    f"the monitoring run over SHIFTED traffic found no dataset drift ({_verdict(run.report)}): "
                    "shift further with --shift"
                )
            if self._alarms_since(twin, alarm_mark):
                break
            alarm_mark = len(twin.alarm_changes)
        else:
            raise LifecycleError(
                f"no drift alarm went to ALARM after {windows} drifted window(s); the stack's drift alarms: "
                f"{drift_alarm_states(twin.stack.stack_name)}"
            )
        arn = self._retraining_started(twin, deliveries_before)
        retraining = follow_execution(twin, arn, TRAINING, self._out)
        outcome.executions.append(retraining)
        if not retraining.succeeded:
            raise LifecycleError(retraining.failure())
        self._link(f"training {retraining.result.name} (trigger drift) SUCCEEDED")
        deploy = deploy_registered_model(twin, retraining, deploys_before, outcome, self._out)
        package = (outcome.model_package or {}).get("ModelPackageArn")
        self._link(f"deploy {deploy.result.name} of the new package {package} SUCCEEDED")
        extra = set(_arns(twin, TRAINING)) - trainings_before - {arn}
        if extra:
            raise LifecycleError(f"the drift alarm started more than one training: {sorted({arn, *extra})}")

    def _let_cooldown_pass(self, twin: LocalTwin) -> None:
        """Moves the clock past the retraining cooldown counted from the lifecycle's end, before the drift.

        retrain_on_drift defers a drift alarm that comes within `[drift] cooldown_minutes` of the last training (the
        re-check answers it later): on AWS, a drift episode right after a training waits that long. The loop lets the
        cooldown pass on the twin's clock so that the alarm's own event starts the retraining.
        """
        cooldown_end = self._loop_began + timedelta(minutes=self.cooldown_minutes)
        ahead = (cooldown_end - twin.clock.now()).total_seconds()
        if ahead > 0:
            twin.clock.advance(ahead)
            self._link(
                f"clock moved {clock_offset(ahead)} on: the retraining cooldown ([drift] cooldown_minutes="
                f"{self.cooldown_minutes}) since the lifecycle's training has passed"
            )

    def _monitored_window(
        self, twin: LocalTwin, outcome: LifecycleOutcome, endpoint: str, rows: list[list[float]], phase: str
    ) -> MonitoringRun:
        """Sends `rows` to the endpoint, lets one window pass on the clock, runs `monitoring`, reads its report."""
        # Capture files are named after the second they were written in: the window starts on a whole second after
        # everything captured so far, so it holds exactly this phase's traffic.
        before = twin.clock.now()
        twin.clock.advance(1.0)
        window_start = (before + timedelta(seconds=1)).replace(microsecond=0)
        requests = range(0, len(rows), ROWS_PER_REQUEST)
        for first in requests:
            invoke_csv(endpoint, [[_cell(value) for value in row] for row in rows[first : first + ROWS_PER_REQUEST]])
        self._link(
            f"{phase} traffic: {len(rows)} held-out rows sent to {endpoint} in {len(requests)} InvokeEndpoint requests"
        )
        window_end = window_start + timedelta(minutes=self.window_minutes)
        ahead = (window_end - twin.clock.now()).total_seconds()
        if ahead > 0:
            twin.clock.advance(ahead)
        execution_input = {"EndpointName": endpoint, "WindowEnd": iso_utc(window_end)}
        name = f"mlops-run-monitoring-{window_end:%Y%m%dT%H%M%S}"
        self._link(f"clock moved to the window's end {iso_utc(window_end)}; starting monitoring {name}")
        execution = follow_execution(
            twin, twin.start_execution(MONITORING, execution_input, name=name), MONITORING, self._out
        )
        outcome.executions.append(execution)
        if not execution.succeeded:
            raise LifecycleError(execution.failure())
        window = monitoring_window_result(execution.result.runs, execution.result.output)
        if window is None or window.get("Status") != "Ready":
            raise LifecycleError(
                f"monitoring {name} found nothing to analyse after {len(rows)} rows were sent in its window: "
                f"{json.dumps(execution.result.output)[:400]}"
            )
        try:
            report = json.loads(read_s3(report_uri(str(window["ReportS3Uri"]))))
        except (ClientError, ValueError) as error:
            raise LifecycleError(
                f"monitoring {name}'s report at {window['ReportS3Uri']} cannot be read: {error}"
            ) from None
        run = MonitoringRun(phase, execution, window, report, rows)
        self.monitoring_runs.append(run)
        self._link(f"monitoring {name}: {report.get('records', {}).get('read')} records, {_verdict(report)}")
        if report.get("status") != "ok":
            settings = report.get("settings", {})
            raise LifecycleError(
                f"monitoring {name} reported {report.get('status')}: {report.get('rows', {}).get('analyzed')} rows "
                f"analyzed, a feature's test needs {settings.get('min_records')}"
            )
        return run

    def _alarms_since(self, twin: LocalTwin, mark: int) -> list[str]:
        """The alarm changes since the `mark`-th, printed; the drift alarms among them that went to ALARM.

        The twin evaluates its alarms at every minute its clock passes, so a change may have happened (and its event
        been routed) while the monitoring run published its metrics; one more evaluation at the clock's now comes
        first, as CloudWatch's next one would.
        """
        twin.evaluate_alarms()
        changes = [alarm_change_entry(change) for change in list(twin.alarm_changes)[mark:]]
        for entry in changes:
            self._link(f"alarm {entry['alarm']}: {entry['from']} -> {entry['to']} at {entry['time']}")
        if not changes:
            self._link("alarms evaluated: no alarm changed state")
        prefix = f"{twin.stack.stack_name}-drift-"
        return [e["alarm"] for e in changes if e["to"] == ALARM and e["alarm"].startswith(prefix)]

    def _retraining_started(self, twin: LocalTwin, deliveries_before: int) -> str:
        """The training `retrain_on_drift` started for the alarm event; LifecycleError with its decision if none."""
        function = twin.stack.function("RetrainOnDriftFunction").function_name
        deliveries = [
            d
            for d in twin.router.deliveries[deliveries_before:]
            if d.service == "lambda" and d.target_arn.endswith(f":function:{function}")
        ]
        if not deliveries:
            raise LifecycleError(
                "the drift alarm's state change event reached no rule targeting retrain_on_drift: check the "
                f"{twin.stack.stack_name}-drift-alarm rule and the twin's alarm events"
            )
        decisions = []
        for delivery in deliveries:
            decision = delivery.result if isinstance(delivery.result, Mapping) else {}
            said = f"{decision.get('action') or delivery.error or delivery.result} ({decision.get('reason', '')})"
            decisions.append(said)
            self._link(f"alarm event -> rule {delivery.rule} -> retrain_on_drift: {said}")
            if decision.get("action") == "started" and decision.get("execution_arn"):
                return str(decision["execution_arn"])
        raise LifecycleError(f"retrain_on_drift did not start training for the drift alarm: {'; '.join(decisions)}")

    def _link(self, text: str) -> None:
        clock = self._clock.now() if self._clock is not None else datetime.now(UTC)
        link = ChainLink(text, clock, time.monotonic() - self._wall_start)
        self.chain.append(link)
        print(f"[twin {clock:%H:%M:%S} | wall +{format_duration(link.wall)}] {text}", file=self._out)

    # ---- the report -------------------------------------------------------------------------------------------

    def monitoring_view(self) -> MonitoringView:
        runs = []
        for index, run in enumerate(self.monitoring_runs, start=1):
            distributions = []
            if self.baseline is not None:
                current = np.array(run.sent_rows, dtype=float)
                for name in most_drifted(run.report):
                    if name in self.baseline.features:
                        column = self.baseline.features.index(name)
                        distributions.append(
                            FeatureDistribution(
                                name, self.baseline.sample[:, column].tolist(), current[:, column].tolist()
                            )
                        )
            runs.append(
                MonitoringRunView(
                    title=f"Run {index}: {run.phase} traffic",
                    window_start=str(iso_utc(run.window.get("WindowStart"))),
                    window_end=str(iso_utc(run.window.get("WindowEnd"))),
                    report=run.report,
                    distributions=distributions,
                )
            )
        changes = []
        for change in self.alarm_changes:
            entry = alarm_change_entry(change)
            changes.append(
                AlarmChangeView(entry["alarm"], entry["from"], entry["to"], datetime.fromisoformat(entry["time"]))
            )
        return MonitoringView(runs, changes)


# ---- reading the twin ----------------------------------------------------------------------------------------


def served_baseline(model_package: Mapping[str, Any]) -> Baseline:
    """The package's baseline: `baseline.json` at DriftCheckBaselines' Statistics, `baseline.csv` beside it."""
    statistics = (
        ((model_package.get("DriftCheckBaselines") or {}).get("ModelDataQuality") or {}).get("Statistics") or {}
    ).get("S3Uri")
    if not statistics:
        raise LifecycleError(
            f"model package {model_package.get('ModelPackageArn')} has no DriftCheckBaselines.ModelDataQuality."
            "Statistics.S3Uri: training registered no baseline to monitor against"
        )
    folder = str(statistics).rsplit("/", 1)[0]
    document = json.loads(read_s3(str(statistics)))
    features = [str(feature["name"]) for feature in document.get("features", [])]
    header, *lines = list(csv.reader(io.StringIO(read_s3(f"{folder}/baseline.csv").decode("utf-8"))))
    if header != features:
        raise LifecycleError(f"{folder}/baseline.csv's header is not {statistics}'s features {features}")
    sample = np.array([[_number(cell) for cell in line] for line in lines if line], dtype=float)
    return Baseline(features, [str(name) for name in document.get("critical_features", [])], sample)


def monitoring_window_result(runs: Sequence[Any], output: Any) -> dict[str, Any] | None:
    """The `monitoring_window` Lambda's result (Status, WindowStart, WindowEnd, ReportS3Uri...) of an execution.

    Looked for in the states' outputs and then the execution's output, wherever the ASL's ResultPath put it: the
    first object with a `Status` and, when Ready, a `ReportS3Uri`.
    """
    for document in [*(run.task_output for run in runs), output]:
        found = _find_window(document)
        if found is not None:
            return found
    return None


def _find_window(document: Any) -> dict[str, Any] | None:
    if isinstance(document, Mapping):
        if document.get("Status") in ("NoEndpoint", "NoData") or (
            document.get("Status") == "Ready" and "ReportS3Uri" in document
        ):
            return dict(document)
        values: list[Any] = list(document.values())
    elif isinstance(document, list):
        values = document
    else:
        return None
    for value in values:
        found = _find_window(value)
        if found is not None:
            return found
    return None


def report_uri(report_s3_uri: str) -> str:
    """The report object: ReportS3Uri names it, or the job's output prefix that holds `monitoring_report.json`."""
    return report_s3_uri if report_s3_uri.endswith(".json") else f"{report_s3_uri.rstrip('/')}/{REPORT_FILE_NAME}"


def execution_records(twin: LocalTwin) -> list[ExecutionRecord]:
    """Every execution of the loop's state machines, described (a machine the stack lacks has none)."""
    records = []
    for machine in (TRAINING, DEPLOY, MONITORING):
        for arn in _arns(twin, machine):
            result = twin.describe_execution(arn)
            records.append(
                ExecutionRecord(machine, result.name, result.input, result.status, result.started, result.stopped)
            )
    return records


def _arns(twin: LocalTwin, machine: str) -> list[str]:
    try:
        return [str(execution["executionArn"]) for execution in twin.list_executions(machine)]
    except KeyError:
        return []


def _drift_alarms(stack_name: str) -> list[dict[str, Any]]:
    pages = boto3.client("cloudwatch").get_paginator("describe_alarms").paginate(AlarmNamePrefix=f"{stack_name}-drift-")
    return [alarm for page in pages for alarm in page.get("MetricAlarms", [])]


def drift_alarm_datapoints(stack_name: str) -> int:
    """The most breaching periods any data-drift alarm needs before ALARM (DatapointsToAlarm, else
    EvaluationPeriods). The model-quality alarm is left out: shifted traffic brings no ground truth to breach it."""
    needed = [
        int(a.get("DatapointsToAlarm") or a.get("EvaluationPeriods") or 1)
        for a in _drift_alarms(stack_name)
        if not str(a["AlarmName"]).endswith(MODEL_QUALITY_ALARM_SUFFIX)
    ]
    return max(needed, default=1)


def drift_alarm_states(stack_name: str) -> str:
    alarms = _drift_alarms(stack_name)
    return (
        ", ".join(f"{a['AlarmName']}={a.get('StateValue')} ({a.get('StateReason', '')[:120]})" for a in alarms)
        or "none"
    )


def print_chain_timings(chain: Sequence[ChainLink], out: TextIO) -> None:
    """Each link's time since the loop began, on the twin's clock and on the wall clock."""
    if not chain:
        return
    print("\n== drift chain timings (since the loop began: twin clock, wall) ==", file=out)
    first = chain[0]
    for link in chain:
        virtual = clock_offset((link.clock - first.clock).total_seconds())
        print(f"  twin +{virtual:<9} wall +{format_duration(link.wall):<8} {link.text}", file=out)
    total_virtual = clock_offset((chain[-1].clock - first.clock).total_seconds())
    print(f"  chain: {total_virtual} on the twin's clock, {format_duration(chain[-1].wall)} wall", file=out)


def clock_offset(seconds: float) -> str:
    """Twin-clock time as `2h05m00s`: the clock runs fast, so its spans are hours where the wall's are seconds."""
    hours, rest = divmod(round(seconds), 3600)
    return f"{hours}h{rest // 60:02d}m{rest % 60:02d}s"


def _verdict(report: Mapping[str, Any]) -> str:
    share = report.get("drifted_share")
    shown = "-" if share is None else f"{share:.2f}"
    return (
        f"status {report.get('status')}, drifted share {shown} ({len(report.get('drifted_features', []))} of "
        f"{report.get('features_tested')}), critical drifted {report.get('critical_features_drifted', [])}, "
        f"dataset drift {'yes' if report.get('dataset_drift') else 'no'}"
    )


def _number(cell: str) -> float:
    return float(cell) if cell.strip() else float("nan")


def _cell(value: float) -> str:
    return "" if value != value else repr(float(value))
