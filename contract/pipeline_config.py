"""Loads and validates pipeline.toml, the one source of the pipeline's numbers."""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any

from contract.project import PROJECT_ROOT

DEFAULT_CONFIG_PATH = PROJECT_ROOT / "pipeline.toml"

TUNING_STRATEGIES = ("Bayesian", "Hyperband", "Random", "Grid")
RANGE_TYPES = ("Continuous", "Integer", "Categorical")
SCALING_TYPES = ("Auto", "Linear", "Logarithmic", "ReverseLogarithmic")
APPROVAL_MODES = {"manual": "PendingManualApproval", "auto": "Approved"}


class PipelineConfigError(ValueError):
    """pipeline.toml holds a value the pipeline cannot use; the message names the key."""


@dataclass(frozen=True)
class ModelConfig:
    name: str
    label_column: str
    problem_type: str


@dataclass(frozen=True)
class DataConfig:
    prefix: str
    allowed_suffixes: tuple[str, ...]
    test_fraction: float
    validation_fraction: float
    split_seed: int


@dataclass(frozen=True)
class TrainingConfig:
    instance_type: str
    instance_count: int
    volume_size_gb: int
    max_runtime_seconds: int
    use_spot: bool
    max_wait_seconds: int
    framework_version: str
    hyperparameters: dict[str, Any]


@dataclass(frozen=True)
class ProcessingConfig:
    instance_type: str
    instance_count: int
    volume_size_gb: int
    max_runtime_seconds: int


@dataclass(frozen=True)
class ParameterRange:
    name: str
    type: str
    min: float | None = None
    max: float | None = None
    scaling: str = "Auto"
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class TuningConfig:
    strategy: str
    objective_metric: str
    objective_type: str
    max_jobs: int
    max_parallel_jobs: int
    early_stopping: str
    warm_start: bool
    ranges: tuple[ParameterRange, ...]


@dataclass(frozen=True)
class QualityGateConfig:
    metric: str
    threshold: float
    must_beat_champion: bool
    champion_tolerance: float


@dataclass(frozen=True)
class BiasConfig:
    # The facet (a feature column) whose values in sensitive_values make facet d; empty: no protected attribute.
    facet_column: str
    sensitive_values: tuple[float, ...]
    # The bias gate: disparate impact of the test split's predictions within [min, max] (the four-fifths band).
    disparate_impact_min: float
    disparate_impact_max: float

    def facet(self) -> dict[str, Any]:
        """The facet as the jobs read it (ml/bias.py), also the training input's `bias` default."""
        return {"facet_column": self.facet_column, "sensitive_values": list(self.sensitive_values)}


@dataclass(frozen=True)
class RegistryConfig:
    approval_mode: str


@dataclass(frozen=True)
class DeployConfig:
    instance_type: str
    initial_instance_count: int
    data_capture_percentage: int
    wait_seconds: int
    max_wait_polls: int
    traffic_shift_canary_percent: int
    canary_wait_seconds: int
    termination_wait_seconds: int
    max_capacity: int
    target_invocations_per_instance: int


@dataclass(frozen=True)
class ScheduleConfig:
    retraining_enabled: bool
    retraining_expression: str


@dataclass(frozen=True)
class DriftConfig:
    cooldown_minutes: int
    recheck_expression: str


# Receives of a new-data record that fail for a reason other than waiting for a training before it goes to the
# dead-letter queue.
NEW_DATA_FAILED_RECEIVES = 5


@dataclass(frozen=True)
class NewDataConfig:
    coalesce_window_seconds: int
    defer_seconds: int
    max_receive_count: int


@dataclass(frozen=True)
class ReaperConfig:
    schedule_expression: str
    idle_window_hours: int
    min_age_hours: int
    max_deletions_per_run: int
    opt_out_tag: str
    mark_tag: str


@dataclass(frozen=True)
class MonitoringConfig:
    """The `monitoring` state machine, its schedule and the drift alarms (docs/interfaces.md, Monitoring)."""

    # The drift baseline `training` registers with each model package (docs/interfaces.md, Baseline).
    # How many of the model's top features by mean |SHAP| are critical: one of them drifting is dataset drift.
    critical_feature_count: int = 3
    # Rows of the training split in baseline.csv, the reference the drift tests compare a window with.
    baseline_sample_rows: int = 10_000
    schedule_expression: str = "rate(1 hour)"
    # Each run looks at the capture of this many minutes before its WindowEnd; also the alarms' Period.
    window_minutes: int = 60
    # Dataset drift (and the drift-feature-share alarm) when at least this share of tested features drifted.
    drift_share_threshold: float = 0.5
    # Fewest non-missing current values a feature's drift test needs (ml/monitor.py --min-records).
    min_records: int = 30
    # The drift alarms: ALARM after `datapoints_to_alarm` breaching runs out of the last `evaluation_periods`.
    evaluation_periods: int = 1
    datapoints_to_alarm: int = 1
    # Model quality with ground truth (docs/interfaces.md, Ground truth): labelled CSV files under this prefix of the
    # data bucket, named after the time they were written, are scored with the served model once, by the run whose
    # window holds that time.
    ground_truth_prefix: str = "ground-truth/"
    # Fewer labelled records in a window skip the model-quality part with a logged reason.
    ground_truth_min_records: int = 50
    # The model-quality alarm: ALARM when the quality gate's metric on ground truth is below this threshold in each
    # of the last `model_quality_evaluation_periods` windows (a window without enough ground truth has no data
    # point, which does not breach).
    model_quality_threshold: float = 0.9
    model_quality_evaluation_periods: int = 1


@dataclass(frozen=True)
class RetryConfig:
    interval_seconds: int
    max_attempts: int
    backoff_rate: float


@dataclass(frozen=True)
class PipelineConfig:
    model: ModelConfig
    data: DataConfig
    training: TrainingConfig
    processing: ProcessingConfig
    tuning: TuningConfig
    quality_gate: QualityGateConfig
    bias: BiasConfig
    registry: RegistryConfig
    deploy: DeployConfig
    schedule: ScheduleConfig
    drift: DriftConfig
    new_data: NewDataConfig
    reaper: ReaperConfig
    retry: RetryConfig
    monitoring: MonitoringConfig
    source: Path = field(default=DEFAULT_CONFIG_PATH, compare=False)

    @property
    def longest_training_seconds(self) -> int:
        """How long one `training` execution can run: preprocessing, training or tuning, evaluation at their limits."""
        job = self.training.max_wait_seconds if self.training.use_spot else self.training.max_runtime_seconds
        tuning_rounds = -(-self.tuning.max_jobs // self.tuning.max_parallel_jobs)
        return 2 * self.processing.max_runtime_seconds + max(job, tuning_rounds * job)


def _section(raw: dict[str, Any], name: str) -> dict[str, Any]:
    value = raw.get(name)
    if not isinstance(value, dict):
        raise PipelineConfigError(f"pipeline config: missing section [{name}]")
    return value


def _type_matches(value: Any, hint: Any) -> bool:
    """True when a TOML value fits a field's annotation (TOML has no other types than these)."""
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint in (str, bool):
        return isinstance(value, hint)
    if hint == float | None:
        return value is None or _type_matches(value, float)
    if hint == tuple[str, ...]:
        return isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)
    if hint == tuple[float, ...]:
        return isinstance(value, list | tuple) and all(_type_matches(v, float) for v in value)
    return True


def _build(cls: Any, raw: dict[str, Any], section: str, **overrides: Any) -> Any:
    """Builds one section's dataclass, naming the section and key of any missing, unknown or mistyped field."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    names = [name for name in fields if name not in overrides]
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise PipelineConfigError(f"pipeline config: unknown key(s) in [{section}]: {', '.join(unknown)}")
    missing = [n for n in names if n not in raw and fields[n].default is MISSING]
    if missing:
        raise PipelineConfigError(f"pipeline config: missing key(s) in [{section}]: {', '.join(missing)}")
    values = {n: raw[n] for n in names if n in raw}
    for key, value in values.items():
        if not _type_matches(value, hints[key]):
            raise PipelineConfigError(f"pipeline config: [{section}] {key} must be {hints[key]}, got {value!r}")
        if isinstance(value, list):
            values[key] = tuple(value)
    return cls(**values, **overrides)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise PipelineConfigError(f"pipeline config: {message}")


def _validate(cfg: PipelineConfig) -> None:
    _check(
        0 < cfg.data.test_fraction < 0.5,
        f"[data] test_fraction must be in (0, 0.5), got {cfg.data.test_fraction}",
    )
    _check(
        0 < cfg.data.validation_fraction < 0.5,
        f"[data] validation_fraction must be in (0, 0.5), got {cfg.data.validation_fraction}",
    )
    _check(cfg.data.prefix.endswith("/"), f"[data] prefix must end with '/', got {cfg.data.prefix!r}")
    _check(
        not cfg.training.use_spot or cfg.training.max_wait_seconds >= cfg.training.max_runtime_seconds,
        "[training] max_wait_seconds must be >= max_runtime_seconds when use_spot is true, got "
        f"{cfg.training.max_wait_seconds} < {cfg.training.max_runtime_seconds}",
    )
    _check(
        cfg.tuning.strategy in TUNING_STRATEGIES,
        f"[tuning] strategy must be one of {', '.join(TUNING_STRATEGIES)}, got {cfg.tuning.strategy!r}",
    )
    _check(
        cfg.tuning.objective_type in ("Maximize", "Minimize"),
        "[tuning] objective_type must be Maximize or Minimize",
    )
    _check(
        1 <= cfg.tuning.max_parallel_jobs <= cfg.tuning.max_jobs,
        "[tuning] need 1 <= max_parallel_jobs <= max_jobs, got "
        f"{cfg.tuning.max_parallel_jobs} and {cfg.tuning.max_jobs}",
    )
    _check(cfg.tuning.early_stopping in ("Auto", "Off"), "[tuning] early_stopping must be Auto or Off")
    _check(len(cfg.tuning.ranges) > 0, "[tuning] needs at least one [[tuning.ranges]]")
    for r in cfg.tuning.ranges:
        _check(
            r.type in RANGE_TYPES,
            f"[tuning.ranges] {r.name}: type must be one of {RANGE_TYPES}, got {r.type!r}",
        )
        _check(r.scaling in SCALING_TYPES, f"[tuning.ranges] {r.name}: scaling must be one of {SCALING_TYPES}")
        if r.type == "Categorical":
            _check(len(r.values) > 0, f"[tuning.ranges] {r.name}: Categorical needs values")
        else:
            _check(
                r.min is not None and r.max is not None and r.min < r.max,
                f"[tuning.ranges] {r.name}: needs min < max, got {r.min} and {r.max}",
            )
            _check(
                r.scaling not in ("Logarithmic", "ReverseLogarithmic") or (r.min is not None and r.min > 0),
                f"[tuning.ranges] {r.name}: logarithmic scaling needs min > 0, got {r.min}",
            )
    _check(
        0 < cfg.quality_gate.threshold <= 1,
        f"[quality_gate] threshold must be in (0, 1], got {cfg.quality_gate.threshold}",
    )
    bias = cfg.bias
    _check(
        0 < bias.disparate_impact_min <= 1 <= bias.disparate_impact_max,
        f"[bias] needs 0 < disparate_impact_min <= 1 <= disparate_impact_max, got {bias.disparate_impact_min} and "
        f"{bias.disparate_impact_max}",
    )
    _check(
        not bias.facet_column or len(bias.sensitive_values) > 0,
        f"[bias] facet_column {bias.facet_column!r} needs sensitive_values (the values of facet d)",
    )
    _check(
        bias.facet_column != cfg.model.label_column,
        f"[bias] facet_column {bias.facet_column!r} is the label column; the facet is a feature",
    )
    _check(
        cfg.registry.approval_mode in APPROVAL_MODES,
        f"[registry] approval_mode must be manual or auto, got {cfg.registry.approval_mode!r}",
    )
    _check(cfg.deploy.initial_instance_count >= 1, "[deploy] initial_instance_count must be >= 1")
    _check(
        cfg.deploy.initial_instance_count <= cfg.deploy.max_capacity,
        "[deploy] need initial_instance_count <= max_capacity (the initial count is auto scaling's minimum)",
    )
    _check(0 <= cfg.deploy.data_capture_percentage <= 100, "[deploy] data_capture_percentage must be 0..100")
    _check(
        1 <= cfg.new_data.defer_seconds <= 43_200,
        f"[new_data] defer_seconds must be 1..43200 (SQS's longest visibility timeout), "
        f"got {cfg.new_data.defer_seconds}",
    )
    # A record deferred behind a running training is received again every defer_seconds: the queue must
    # let it wait out the longest training and still have its ordinary retries left.
    needed_receives = -(-cfg.longest_training_seconds // cfg.new_data.defer_seconds) + NEW_DATA_FAILED_RECEIVES
    _check(
        cfg.new_data.max_receive_count >= needed_receives,
        f"[new_data] max_receive_count must be at least {needed_receives} (the longest training, "
        f"{cfg.longest_training_seconds} s, in defer_seconds of {cfg.new_data.defer_seconds} s, plus "
        f"{NEW_DATA_FAILED_RECEIVES} failures), got {cfg.new_data.max_receive_count}",
    )
    # SageMaker's TrafficRoutingConfig and BlueGreenUpdatePolicy limits: a canary is at most half the fleet.
    _check(
        1 <= cfg.deploy.traffic_shift_canary_percent <= 50,
        "[deploy] traffic_shift_canary_percent must be 1..50 (SageMaker: a canary is at most half the new fleet), "
        f"got {cfg.deploy.traffic_shift_canary_percent}",
    )
    _check(
        0 <= cfg.deploy.canary_wait_seconds <= 3600,
        f"[deploy] canary_wait_seconds must be 0..3600 (SageMaker's WaitIntervalInSeconds), got "
        f"{cfg.deploy.canary_wait_seconds}",
    )
    _check(
        0 <= cfg.deploy.termination_wait_seconds <= 3600,
        f"[deploy] termination_wait_seconds must be 0..3600 (SageMaker's TerminationWaitInSeconds), got "
        f"{cfg.deploy.termination_wait_seconds}",
    )
    _check(cfg.reaper.max_deletions_per_run >= 0, "[reaper] max_deletions_per_run must be >= 0")
    _check(cfg.retry.max_attempts >= 1, "[retry] max_attempts must be >= 1")
    _validate_monitoring(cfg.monitoring)
    ground_truth, incoming = cfg.monitoring.ground_truth_prefix, cfg.data.prefix
    _check(
        not ground_truth.startswith(incoming) and not incoming.startswith(ground_truth),
        f"[monitoring] ground_truth_prefix {ground_truth!r} overlaps [data] prefix {incoming!r}: a labelled file "
        "there would also start a retraining on new data; use prefixes that do not contain each other",
    )


# CloudWatch alarm periods of a minute or more are multiples of 60 seconds; a day is the longest period this
# stack alarms on, and the analyzer needs a window at least as long as one capture hour folder is wide.
MAX_WINDOW_MINUTES = 24 * 60


def _validate_monitoring(monitoring: MonitoringConfig) -> None:
    _check(
        monitoring.critical_feature_count >= 0,
        "[monitoring] critical_feature_count must be >= 0 (0: no critical features, dataset drift only by the "
        f"drifted share), got {monitoring.critical_feature_count}",
    )
    _check(
        monitoring.baseline_sample_rows >= 1,
        f"[monitoring] baseline_sample_rows must be >= 1, got {monitoring.baseline_sample_rows}",
    )
    _check(
        1 <= monitoring.window_minutes <= MAX_WINDOW_MINUTES,
        f"[monitoring] window_minutes must be 1..{MAX_WINDOW_MINUTES}, got {monitoring.window_minutes}",
    )
    _check(
        0 < monitoring.drift_share_threshold <= 1,
        f"[monitoring] drift_share_threshold must be in (0, 1], got {monitoring.drift_share_threshold}",
    )
    _check(monitoring.min_records >= 1, f"[monitoring] min_records must be >= 1, got {monitoring.min_records}")
    _check(
        1 <= monitoring.datapoints_to_alarm <= monitoring.evaluation_periods,
        "[monitoring] need 1 <= datapoints_to_alarm <= evaluation_periods, got "
        f"{monitoring.datapoints_to_alarm} and {monitoring.evaluation_periods}",
    )
    prefix = monitoring.ground_truth_prefix
    _check(
        bool(prefix) and prefix.endswith("/") and not prefix.startswith("/") and "//" not in prefix,
        "[monitoring] ground_truth_prefix must be a key prefix of the data bucket ending in / (e.g. "
        f"'ground-truth/'), got {prefix!r}",
    )
    _check(
        monitoring.ground_truth_min_records >= 2,
        "[monitoring] ground_truth_min_records must be >= 2 (a metric over both classes needs two records), got "
        f"{monitoring.ground_truth_min_records}",
    )
    _check(
        0 < monitoring.model_quality_threshold <= 1,
        f"[monitoring] model_quality_threshold must be in (0, 1], got {monitoring.model_quality_threshold}",
    )
    _check(
        monitoring.model_quality_evaluation_periods >= 1,
        "[monitoring] model_quality_evaluation_periods must be >= 1, got "
        f"{monitoring.model_quality_evaluation_periods}",
    )
    _check(
        monitoring.schedule_expression.startswith(("rate(", "cron(")),
        f"[monitoring] schedule_expression must be rate(...) or cron(...), got {monitoring.schedule_expression!r}",
    )


def parse_pipeline_config(raw: dict[str, Any], source: Path = DEFAULT_CONFIG_PATH) -> PipelineConfig:
    """Turns the parsed TOML into a validated PipelineConfig."""
    training = _section(raw, "training")
    tuning = _section(raw, "tuning")
    ranges = tuple(_build(ParameterRange, r, "tuning.ranges") for r in tuning.get("ranges", []))
    training_fields = {k: v for k, v in training.items() if k != "hyperparameters"}
    hyperparameters = training.get("hyperparameters")
    if not isinstance(hyperparameters, dict):
        raise PipelineConfigError("pipeline config: missing section [training.hyperparameters]")
    cfg = PipelineConfig(
        model=_build(ModelConfig, _section(raw, "model"), "model"),
        data=_build(DataConfig, _section(raw, "data"), "data"),
        training=_build(TrainingConfig, training_fields, "training", hyperparameters=dict(hyperparameters)),
        processing=_build(ProcessingConfig, _section(raw, "processing"), "processing"),
        tuning=_build(TuningConfig, {k: v for k, v in tuning.items() if k != "ranges"}, "tuning", ranges=ranges),
        quality_gate=_build(QualityGateConfig, _section(raw, "quality_gate"), "quality_gate"),
        bias=_build(BiasConfig, _section(raw, "bias"), "bias"),
        registry=_build(RegistryConfig, _section(raw, "registry"), "registry"),
        deploy=_build(DeployConfig, _section(raw, "deploy"), "deploy"),
        schedule=_build(ScheduleConfig, _section(raw, "schedule"), "schedule"),
        drift=_build(DriftConfig, _section(raw, "drift"), "drift"),
        new_data=_build(NewDataConfig, _section(raw, "new_data"), "new_data"),
        reaper=_build(ReaperConfig, _section(raw, "reaper"), "reaper"),
        retry=_build(RetryConfig, _section(raw, "retry"), "retry"),
        monitoring=_build(MonitoringConfig, _section(raw, "monitoring"), "monitoring"),
        source=source,
    )
    _validate(cfg)
    return cfg


def load_pipeline_config(
    path: Path | str | None = None, overrides: dict[str, dict[str, Any]] | None = None
) -> PipelineConfig:
    """Reads pipeline.toml (or `path`), with `overrides` ({section: {key: value}}) over its values, and validates it."""
    source = Path(path) if path else DEFAULT_CONFIG_PATH
    try:
        raw = tomllib.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise PipelineConfigError(f"pipeline config not found: {source}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise PipelineConfigError(f"pipeline config {source} is not valid TOML: {exc}") from exc
    for section, values in (overrides or {}).items():
        if not isinstance(raw.get(section), dict):
            raise PipelineConfigError(f"pipeline config override: {source} has no section [{section}]")
        raw[section] = {**raw[section], **values}
    return parse_pipeline_config(raw, source)
