"""pipeline.toml [monitoring]: its defaults, and each bad value named in the error."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from contract.pipeline_config import DEFAULT_CONFIG_PATH, MonitoringConfig, PipelineConfigError, parse_pipeline_config


@pytest.fixture
def raw_config() -> dict[str, Any]:
    return tomllib.loads(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8"))


def test_the_committed_monitoring_section_is_the_documented_default(raw_config: dict[str, Any]) -> None:
    assert parse_pipeline_config(raw_config).monitoring == MonitoringConfig()
    assert MonitoringConfig().schedule_expression == "rate(1 hour)"
    assert MonitoringConfig().window_minutes == 60


def test_a_missing_monitoring_section_is_named_like_any_other(raw_config: dict[str, Any]) -> None:
    # Every section of pipeline.toml is required; within [monitoring] a missing key takes its default.
    del raw_config["monitoring"]

    with pytest.raises(PipelineConfigError, match=r"missing section \[monitoring\]"):
        parse_pipeline_config(raw_config)


def test_an_empty_monitoring_section_takes_the_defaults(raw_config: dict[str, Any]) -> None:
    raw_config["monitoring"] = {}

    assert parse_pipeline_config(raw_config).monitoring == MonitoringConfig()


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("window_minutes", 0, r"\[monitoring\] window_minutes must be 1\.\.1440, got 0"),
        ("window_minutes", 1441, r"window_minutes must be 1\.\.1440, got 1441"),
        ("drift_share_threshold", 0, r"\[monitoring\] drift_share_threshold must be in \(0, 1\], got 0"),
        ("drift_share_threshold", 1.2, r"drift_share_threshold must be in \(0, 1\], got 1\.2"),
        ("min_records", 0, r"\[monitoring\] min_records must be >= 1, got 0"),
        ("datapoints_to_alarm", 2, r"need 1 <= datapoints_to_alarm <= evaluation_periods, got 2 and 1"),
        ("evaluation_periods", 0, r"need 1 <= datapoints_to_alarm <= evaluation_periods, got 1 and 0"),
        ("schedule_expression", "hourly", r"schedule_expression must be rate\(\.\.\.\) or cron\(\.\.\.\)"),
        ("critical_feature_count", -1, r"critical_feature_count must be >= 0"),
        ("window", 60, r"unknown key\(s\) in \[monitoring\]: window"),
        ("min_records", "30", r"\[monitoring\] min_records must be <class 'int'>"),
        ("ground_truth_prefix", "ground-truth", r"ground_truth_prefix must be a key prefix .* ending in /"),
        ("ground_truth_prefix", "/gt/", r"ground_truth_prefix must be a key prefix"),
        ("ground_truth_prefix", "incoming/labels/", r"ground_truth_prefix 'incoming/labels/' overlaps \[data\] prefix"),
        ("ground_truth_min_records", 1, r"ground_truth_min_records must be >= 2"),
        ("model_quality_threshold", 0, r"model_quality_threshold must be in \(0, 1\], got 0"),
        ("model_quality_evaluation_periods", 0, r"model_quality_evaluation_periods must be >= 1, got 0"),
    ],
)
def test_a_bad_monitoring_value_is_named(raw_config: dict[str, Any], key: str, value: Any, message: str) -> None:
    raw_config["monitoring"][key] = value

    with pytest.raises(PipelineConfigError, match=message):
        parse_pipeline_config(raw_config)
