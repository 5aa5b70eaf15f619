"""`mlops run --drift` without a twin: --shift, shifting rows, triggers, the summary JSON, the report section."""

from __future__ import annotations

import io
import json
import math
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from emulator.commands.datasets import Dataset, DatasetError
from emulator.commands.drift import (
    ChainLink,
    DriftLoop,
    drift_alarm_datapoints,
    monitoring_window_result,
    print_chain_timings,
    report_uri,
    served_baseline,
)
from emulator.commands.drift_summary import (
    DEFAULT_SHIFT,
    ExecutionRecord,
    FeatureShift,
    ShiftSpecError,
    SummaryError,
    alarm_change_entry,
    apply_shift,
    build_summary,
    derive_trigger,
    parse_shift,
    resolve_shift,
)
from emulator.commands.lifecycle import EXIT_BAD_INPUT, LifecycleError
from emulator.commands.report import LifecycleReport, render_report
from emulator.commands.report_monitoring import (
    AlarmChangeView,
    FeatureDistribution,
    MonitoringRunView,
    MonitoringView,
    drift_strength,
    most_drifted,
)
from emulator.eventbridge import Delivery
from emulator.history import StateRun
from mlops.cli import main

FEATURES = ["mean radius", "mean texture", "worst area"]
START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


# ---- --shift ---------------------------------------------------------------------------------------------------


def test_the_default_shift_moves_the_critical_features_up_three_standard_deviations() -> None:
    assert parse_shift(DEFAULT_SHIFT) == [FeatureShift("critical", "sd", 3.0)]


def test_a_spec_lists_targets_with_deviations_or_factors() -> None:
    shifts = parse_shift("mean radius=-1.5sd, worst area=x2")

    assert shifts == [FeatureShift("mean radius", "sd", -1.5), FeatureShift("worst area", "scale", 2.0)]


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ("", "empty part"),
        ("critical=+3sd,", "empty part"),
        ("critical", "'critical' is not TARGET=CHANGE"),
        ("=+3sd", "'=+3sd' is not TARGET=CHANGE"),
        ("critical=3", "change '3' is neither"),
        ("critical=+3", "change '+3' is neither"),
        ("critical=*2", "change '*2' is neither"),
    ],
)
def test_a_bad_spec_is_refused_naming_the_part(spec: str, named: str) -> None:
    with pytest.raises(ShiftSpecError, match=re.escape(named)):
        parse_shift(spec)


def test_critical_resolves_to_the_baselines_critical_features() -> None:
    resolved = resolve_shift(parse_shift("critical=+3sd"), FEATURES, critical=["worst area", "mean radius"])

    assert sorted(resolved) == [0, 2]


def test_all_and_a_named_feature_resolve_to_their_columns() -> None:
    assert sorted(resolve_shift(parse_shift("all=x2"), FEATURES, critical=[])) == [0, 1, 2]
    assert list(resolve_shift(parse_shift("mean texture=+1sd"), FEATURES, critical=[])) == [1]


def test_an_unknown_feature_is_named_with_the_features_there_are() -> None:
    with pytest.raises(ShiftSpecError, match=r"'mean radios'.*its features are: mean radius, mean texture"):
        resolve_shift(parse_shift("mean radios=+3sd"), FEATURES, critical=[])


def test_a_feature_shifted_twice_is_refused() -> None:
    with pytest.raises(ShiftSpecError, match="moves feature 'mean radius' twice"):
        resolve_shift(parse_shift("critical=+3sd,mean radius=x2"), FEATURES, critical=["mean radius"])


def test_critical_without_critical_features_is_refused() -> None:
    with pytest.raises(ShiftSpecError, match="names no critical features"):
        resolve_shift(parse_shift("critical=+3sd"), FEATURES, critical=[])


def test_the_shift_moves_only_its_columns_and_keeps_missing_values_missing() -> None:
    rows = [[1.0, 10.0, 100.0], [2.0, math.nan, 200.0]]
    resolved = resolve_shift(parse_shift("mean texture=+2sd,worst area=x1.5"), FEATURES, critical=[])

    shifted = apply_shift(rows, resolved, deviations=[0.5, 3.0, 40.0])

    assert shifted[0] == [1.0, 16.0, 150.0]
    assert shifted[1][0] == 2.0
    assert math.isnan(shifted[1][1])
    assert shifted[1][2] == 300.0
    assert rows[0] == [1.0, 10.0, 100.0], "the unshifted rows are left as they were"


def test_a_feature_the_data_set_lacks_is_refused_before_the_twin(tmp_path: Path) -> None:
    loop = DriftLoop(parse_shift("critical=+3sd,radius=x2"), window_minutes=60, cooldown_minutes=360, summary_json=None)
    dataset = Dataset(path=tmp_path / "d.csv", n_rows=3, label_column="target", feature_columns=tuple(FEATURES))

    with pytest.raises(DatasetError, match=r"'radius', which are not features of d.csv"):
        loop.check_input(dataset)


def test_the_cli_refuses_a_bad_shift_before_starting_anything(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--drift", "--shift", "critical=3"]) == EXIT_BAD_INPUT
    assert "--shift part 'critical=3'" in capsys.readouterr().err


def test_the_cli_refuses_drift_flags_without_drift(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["run", "--summary-json", "out.json"])

    assert exited.value.code == 2
    assert "--summary-json belongs to the drift loop: add --drift" in capsys.readouterr().err


# ---- triggers ----------------------------------------------------------------------------------------------------


def _record(machine: str, name: str, execution_input: Any = None, minutes: int = 0) -> ExecutionRecord:
    start = START + timedelta(minutes=minutes)
    return ExecutionRecord(machine, name, execution_input, "SUCCEEDED", start, start + timedelta(minutes=3))


def _training_input(kind: str, detail: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"data_uri": "s3://d/incoming/", "trigger": {"type": kind, "detail": detail or {}}, "objects": []}


@pytest.mark.parametrize(
    ("execution_input", "trigger"),
    [
        (_training_input("manual"), "manual"),
        (_training_input("new_data"), "new-data"),
        (_training_input("schedule"), "schedule"),
        (_training_input("drift", {"alarm_name": "mlops-dev-drift-feature-share"}), "drift"),
        (_training_input("drift", {"alarm_name": "mlops-dev-drift-model-quality"}), "model-quality"),
        ({}, "manual"),
    ],
)
def test_a_trainings_trigger_comes_from_its_input(execution_input: dict[str, Any], trigger: str) -> None:
    assert derive_trigger(_record("training", "breast-cancer-drift-0123", execution_input)) == trigger


def test_a_training_with_an_unknown_trigger_type_is_named() -> None:
    with pytest.raises(SummaryError, match=r'training execution odd has trigger .*"surprise".*its type is none of'):
        derive_trigger(_record("training", "odd", _training_input("surprise")))


def test_deploy_and_monitoring_started_by_a_rule_are_approval_and_schedule() -> None:
    by_rule = str(uuid.uuid4())

    assert derive_trigger(_record("deploy", by_rule, {"ModelPackageArn": "arn:p/1"})) == "approval"
    assert derive_trigger(_record("monitoring", by_rule, {"EndpointName": "e"})) == "schedule"
    assert derive_trigger(_record("deploy", "by-hand-1", {"ModelPackageArn": "arn:p/1"})) == "manual"
    assert derive_trigger(_record("monitoring", "mlops-run-monitoring-20261201T130000", {})) == "manual"


# ---- the summary -------------------------------------------------------------------------------------------------


def sample_report(drift: bool, records: int = 114) -> dict[str, Any]:
    """A monitoring_report.json of docs/interfaces.md over three features."""

    def feature(name: str, score: float, drifted: bool) -> dict[str, Any]:
        return {
            "name": name,
            "type": "numerical",
            "test": "ks",
            "score": score,
            "threshold": 0.05,
            "drifted": drifted,
            "status": "tested",
            "reference_size": 300,
            "current_size": records,
        }

    features = [
        feature("mean radius", 1e-9 if drift else 0.61, drift),
        feature("mean texture", 0.43, False),
        feature("worst area", 1e-6 if drift else 0.2, drift),
    ]
    drifted = [f["name"] for f in features if f["drifted"]]
    return {
        "report_version": 1,
        "status": "ok",
        "dataset_drift": drift,
        "drifted_share": len(drifted) / 3,
        "drift_share_threshold": 0.5,
        "features_tested": 3,
        "drifted_features": drifted,
        "critical_features": ["mean radius", "worst area"],
        "critical_features_drifted": drifted,
        "features": features,
        "data_quality": {
            "findings": {
                "missing_columns": 0,
                "extra_columns": 0,
                "missing_values": 0,
                "non_numeric_values": 0,
                "out_of_range_values": 7 if drift else 0,
            },
            "per_feature": {},
        },
        "records": {"files": records, "read": records, "rejected": 0, "rejections": {}, "rejection_examples": []},
        "rows": {"read": records, "analyzed": records},
        "window": {"first_inference_time": None, "last_inference_time": None},
        "settings": {"min_records": 30, "drift_share": 0.5, "thresholds": {"ks": 0.05}},
    }


def _window(hour: int) -> dict[str, Any]:
    return {
        "Status": "Ready",
        "WindowStart": f"2026-12-01T{hour - 1:02d}:00:00Z",
        "WindowEnd": f"2026-12-01T{hour:02d}:00:00Z",
        "ReportS3Uri": f"s3://artifacts/monitoring/{hour}/",
    }


def test_the_summary_has_exactly_the_documented_shape_in_order() -> None:
    approval = str(uuid.uuid4())
    executions = [
        _record("deploy", approval, {"ModelPackageArn": "arn:p/2"}, minutes=30),
        _record("training", "manual-run-1", _training_input("manual"), minutes=0),
        _record("training", "breast-cancer-drift-1", _training_input("drift", {"alarm_name": "s-drift-x"}), 20),
    ]
    changes = [
        {"alarm": "s-drift-critical-feature", "from": "OK", "to": "ALARM", "time": START + timedelta(hours=2)},
        {"alarm": "s-drift-critical-feature", "from": "INSUFFICIENT_DATA", "to": "OK", "time": START},
    ]

    summary = build_summary(
        executions, [(_window(14), sample_report(True)), (_window(13), sample_report(False))], changes
    )

    assert set(summary) == {"executions", "monitoring_runs", "alarm_changes"}
    assert summary["executions"] == [
        {
            "state_machine": "training",
            "trigger": "manual",
            "status": "SUCCEEDED",
            "start": "2026-12-01T12:00:00.000Z",
            "end": "2026-12-01T12:03:00.000Z",
        },
        {
            "state_machine": "training",
            "trigger": "drift",
            "status": "SUCCEEDED",
            "start": "2026-12-01T12:20:00.000Z",
            "end": "2026-12-01T12:23:00.000Z",
        },
        {
            "state_machine": "deploy",
            "trigger": "approval",
            "status": "SUCCEEDED",
            "start": "2026-12-01T12:30:00.000Z",
            "end": "2026-12-01T12:33:00.000Z",
        },
    ]
    first, second = summary["monitoring_runs"]
    assert first == {
        "window_start": "2026-12-01T12:00:00.000Z",
        "window_end": "2026-12-01T13:00:00.000Z",
        "records": 114,
        "drifted_share": 0.0,
        "dataset_drift": False,
        "findings": {
            "missing_columns": 0,
            "extra_columns": 0,
            "missing_values": 0,
            "non_numeric_values": 0,
            "out_of_range_values": 0,
        },
    }
    assert second["dataset_drift"] is True
    assert second["findings"]["out_of_range_values"] == 7
    assert summary["alarm_changes"] == [
        {
            "alarm": "s-drift-critical-feature",
            "from": "INSUFFICIENT_DATA",
            "to": "OK",
            "time": "2026-12-01T12:00:00.000Z",
        },
        {"alarm": "s-drift-critical-feature", "from": "OK", "to": "ALARM", "time": "2026-12-01T14:00:00.000Z"},
    ]


def test_an_alarm_change_object_names_its_previous_state_from_() -> None:
    @dataclass(frozen=True)
    class Change:
        alarm: str
        from_: str
        to: str
        time: datetime

    assert alarm_change_entry(Change("a", "OK", "ALARM", START)) == {
        "alarm": "a",
        "from": "OK",
        "to": "ALARM",
        "time": "2026-12-01T12:00:00.000Z",
    }
    with pytest.raises(SummaryError, match="lacks one of alarm, from, to, time"):
        alarm_change_entry({"alarm": "a", "to": "ALARM", "time": START})


def test_a_report_without_the_documented_fields_is_named() -> None:
    with pytest.raises(SummaryError, match="lacks 'records'"):
        build_summary([], [(_window(13), {"dataset_drift": False, "drifted_share": 0.0})], [])


def test_the_monitoring_window_is_found_wherever_the_asl_put_it() -> None:
    lambda_run = StateRun("FindWindow", "Task", START, task_output={"Payload": _window(13), "StatusCode": 200})
    other = StateRun("Start", "Pass", START, task_output={"EndpointName": "e"})

    assert monitoring_window_result([other, lambda_run], output=None) == _window(13)
    assert monitoring_window_result([], output={"window": {"Status": "NoData"}}) == {"Status": "NoData"}
    assert monitoring_window_result([other], output={"EndpointName": "e"}) is None


def test_the_report_object_is_the_uri_or_monitoring_report_json_under_the_prefix() -> None:
    assert report_uri("s3://b/reports/run/") == "s3://b/reports/run/monitoring_report.json"
    assert report_uri("s3://b/reports/run/monitoring_report.json") == "s3://b/reports/run/monitoring_report.json"


def _package_with_baseline(bucket: str) -> dict[str, Any]:
    s3 = boto3.client("s3")
    statistics = {
        "format_version": 1,
        "features": [{"name": name, "type": "numerical", "min": 0.0, "max": 9.0} for name in FEATURES],
        "critical_features": ["worst area"],
    }
    s3.put_object(Bucket=bucket, Key="runs/x/evaluation/baseline/baseline.json", Body=json.dumps(statistics))
    sample = '"mean radius","mean texture","worst area"\n1,2,3\n3,2,\n'
    s3.put_object(Bucket=bucket, Key="runs/x/evaluation/baseline/baseline.csv", Body=sample)
    uri = f"s3://{bucket}/runs/x/evaluation/baseline/baseline.json"
    return {
        "ModelPackageArn": "arn:p/1",
        "DriftCheckBaselines": {"ModelDataQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": uri}}},
    }


def test_the_served_packages_baseline_is_read_from_its_drift_check_statistics_folder(bucket: str) -> None:
    baseline = served_baseline(_package_with_baseline(bucket))

    assert baseline.features == FEATURES
    assert baseline.critical == ["worst area"]
    assert baseline.sample.shape == (2, 3)
    assert math.isnan(baseline.sample[1, 2]), "an empty cell is a missing value"
    assert baseline.deviations()[0] == pytest.approx(1.0)


def test_a_package_without_a_baseline_is_named() -> None:
    with pytest.raises(LifecycleError, match=r"arn:p/1 has no DriftCheckBaselines\.ModelDataQuality"):
        served_baseline({"ModelPackageArn": "arn:p/1", "DriftCheckBaselines": {}})


# ---- the alarm -> retraining link on a fake twin -----------------------------------------------------------------


@dataclass
class _FakeFunction:
    function_name: str


@dataclass
class _FakeStack:
    stack_name: str = "mlops-dev"

    def function(self, name: str) -> _FakeFunction:
        assert name == "RetrainOnDriftFunction"
        return _FakeFunction("mlops-dev-RetrainOnDrift")


@dataclass
class _FakeRouter:
    deliveries: list[Delivery] = field(default_factory=list)


@dataclass
class _FakeClock:
    def now(self) -> datetime:
        return START


@dataclass
class _FakeTwin:
    """A drift alarm went to ALARM at a minute boundary and its event reached retrain_on_drift; the explicit
    evaluation afterwards changes nothing more."""

    decision: dict[str, Any]
    stack: _FakeStack = field(default_factory=_FakeStack)
    router: _FakeRouter = field(default_factory=_FakeRouter)
    clock: _FakeClock = field(default_factory=_FakeClock)
    alarm_changes: list[dict[str, Any]] = field(default_factory=list)
    evaluations: int = 0

    def minute_boundary_passes(self) -> None:
        self.alarm_changes.append(
            {"alarm": "mlops-dev-drift-critical-feature", "from": "OK", "to": "ALARM", "time": "2026-12-01T12:00:00Z"}
        )
        self.router.deliveries.append(
            Delivery(
                rule="mlops-dev-drift-alarm",
                target_arn="arn:aws:lambda:us-east-1:123456789012:function:mlops-dev-RetrainOnDrift",
                service="lambda",
                input="{}",
                result=self.decision,
            )
        )

    def evaluate_alarms(self) -> list[dict[str, Any]]:
        self.evaluations += 1
        return []


def _loop() -> DriftLoop:
    loop = DriftLoop(parse_shift(DEFAULT_SHIFT), window_minutes=60, cooldown_minutes=360, summary_json=None)
    loop._clock = _FakeClock()
    return loop


def test_the_training_retrain_on_drift_started_is_followed() -> None:
    arn = "arn:aws:states:us-east-1:123456789012:execution:mlops-dev-training:breast-cancer-drift-1"
    twin = _FakeTwin({"action": "started", "reason": "drift alarm in ALARM", "execution_arn": arn})
    twin.alarm_changes.append({"alarm": "mlops-dev-endpoint-5xx", "from": "INSUFFICIENT_DATA", "to": "OK", "time": "t"})
    loop = _loop()
    twin.minute_boundary_passes()

    # The change before the mark (the lifecycle's) is not this phase's; the one at the minute boundary is.
    assert loop._alarms_since(twin, mark=1) == ["mlops-dev-drift-critical-feature"]  # type: ignore[arg-type]
    assert twin.evaluations == 1
    assert loop._retraining_started(twin, deliveries_before=0) == arn  # type: ignore[arg-type]
    assert "retrain_on_drift: started (drift alarm in ALARM)" in loop.chain[-1].text


def test_a_retraining_the_function_skipped_fails_the_run_with_its_reason() -> None:
    twin = _FakeTwin({"action": "skipped_cooldown", "reason": "within the 6:00:00 cooldown"})
    loop = _loop()
    twin.minute_boundary_passes()
    loop._alarms_since(twin, mark=0)  # type: ignore[arg-type]

    with pytest.raises(LifecycleError, match=r"did not start training .*skipped_cooldown .*6:00:00 cooldown"):
        loop._retraining_started(twin, deliveries_before=0)  # type: ignore[arg-type]


def test_no_drift_alarm_change_is_said_and_returns_none() -> None:
    twin = _FakeTwin({})
    loop = _loop()

    assert loop._alarms_since(twin, mark=0) == []  # type: ignore[arg-type]
    assert loop.chain[-1].text == "alarms evaluated: no alarm changed state"


def test_the_chain_timings_show_twin_clock_and_wall_offsets() -> None:
    out = io.StringIO()
    chain = [
        ChainLink("unshifted traffic", START, 0.0),
        ChainLink("deploy SUCCEEDED", START + timedelta(hours=2, minutes=5), 95.0),
    ]

    print_chain_timings(chain, out)

    assert "twin +2h05m00s  wall +1m35.0s  deploy SUCCEEDED" in out.getvalue()
    assert "chain: 2h05m00s on the twin's clock, 1m35.0s wall" in out.getvalue()


# ---- the report's monitoring section -----------------------------------------------------------------------------


def test_drift_strength_is_a_multiple_of_the_threshold_for_p_values_and_distances() -> None:
    assert drift_strength({"test": "ks", "score": 0.01, "threshold": 0.05}) == pytest.approx(5.0)
    assert drift_strength({"test": "wasserstein", "score": 0.3, "threshold": 0.1}) == pytest.approx(3.0)
    assert drift_strength({"test": None, "score": None, "threshold": None}) is None
    assert most_drifted(sample_report(True), count=2) == ["mean radius", "worst area"]


def test_the_report_shows_scores_against_thresholds_distributions_and_the_alarm_timeline() -> None:
    view = MonitoringView(
        runs=[
            MonitoringRunView("Run 1: unshifted traffic", "12:00", "13:00", sample_report(False)),
            MonitoringRunView(
                "Run 2: shifted traffic",
                "13:00",
                "14:00",
                sample_report(True),
                [FeatureDistribution("mean radius", [1.0, 2.0, 2.5, 3.0], [7.0, 8.0, 8.5])],
            ),
        ],
        alarm_changes=[
            AlarmChangeView("mlops-dev-drift-critical-feature", "INSUFFICIENT_DATA", "OK", START),
            AlarmChangeView("mlops-dev-drift-critical-feature", "OK", "ALARM", START + timedelta(hours=1)),
        ],
    )

    page = render_report(LifecycleReport(title="drift <run>", executions=[], monitoring=view))

    assert "<h2>Monitoring</h2>" in page
    assert page.count('badge ok">no drift') == 1
    assert page.count('badge bad">dataset drift') == 1
    assert page.count("<details open>") == 1, "the drifted run's scores are shown unfolded"
    assert "<td>mean texture</td><td>ks</td><td>0.43</td><td>0.05</td>" in page
    assert "mean radius: <span style='color:#777'>baseline (n=4)</span>" in page
    assert 'aria-label="alarm states over time"' in page
    assert "<td>OK</td><td><b style='color:#b3261e'>ALARM</b></td>" in page
    assert "drift &lt;run&gt;" in page
    assert "<script" not in page


def test_a_run_without_alarm_changes_says_so() -> None:
    view = MonitoringView(runs=[MonitoringRunView("Run 1", "a", "b", sample_report(False))])

    assert "no alarm changed state" in render_report(LifecycleReport(title="t", executions=[], monitoring=view))


def test_the_shifted_windows_needed_follow_the_data_drift_alarms_not_the_model_quality_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Shifted traffic brings no ground truth: the model-quality alarm's evaluation periods cannot be reached by it.
    from moto import mock_aws

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        cloudwatch = boto3.client("cloudwatch")
        for name, periods, datapoints in (("feature-share", 3, 2), ("model-quality", 5, None)):
            optional = {"DatapointsToAlarm": datapoints} if datapoints else {}
            cloudwatch.put_metric_alarm(
                AlarmName=f"mlops-dev-drift-{name}",
                Namespace="mlops",
                MetricName="M",
                Statistic="Maximum",
                Period=3600,
                EvaluationPeriods=periods,
                Threshold=1,
                ComparisonOperator="GreaterThanOrEqualToThreshold",
                **optional,
            )

        assert drift_alarm_datapoints("mlops-dev") == 2
