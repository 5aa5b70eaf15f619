"""pipeline.toml loads into a validated config, and each bad value is named in the error."""

from __future__ import annotations

import copy
import tomllib
from typing import Any

import pytest

from contract.pipeline_config import (
    APPROVAL_MODES,
    DEFAULT_CONFIG_PATH,
    PipelineConfigError,
    load_pipeline_config,
    parse_pipeline_config,
)


@pytest.fixture
def raw_config() -> dict[str, Any]:
    return tomllib.loads(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8"))


def test_committed_pipeline_config_loads() -> None:
    cfg = load_pipeline_config()

    assert cfg.model.label_column == "target"
    assert cfg.tuning.max_parallel_jobs <= cfg.tuning.max_jobs
    assert cfg.registry.approval_mode in APPROVAL_MODES
    assert all(r.name for r in cfg.tuning.ranges)


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("quality_gate", "threshold", 1.5, "[quality_gate] threshold"),
        ("tuning", "strategy", "Genetic", "[tuning] strategy"),
        ("tuning", "max_parallel_jobs", 9, "max_parallel_jobs"),
        ("data", "prefix", "incoming", "[data] prefix"),
        ("data", "test_fraction", 0.7, "[data] test_fraction"),
        ("registry", "approval_mode", "sometimes", "[registry] approval_mode"),
        ("training", "max_wait_seconds", 10, "max_wait_seconds"),
        ("deploy", "initial_instance_count", 0, "initial_instance_count"),
        ("bias", "disparate_impact_min", 1.2, "[bias] needs 0 < disparate_impact_min <= 1"),
        ("bias", "disparate_impact_max", 0.9, "[bias] needs 0 < disparate_impact_min <= 1 <= disparate_impact_max"),
        ("bias", "facet_column", "age", "[bias] facet_column 'age' needs sensitive_values"),
        ("bias", "sensitive_values", ["female"], "[bias] sensitive_values must be"),
    ],
)
def test_invalid_value_is_named_in_error(
    raw_config: dict[str, Any], section: str, key: str, value: Any, message: str
) -> None:
    bad = copy.deepcopy(raw_config)
    bad[section][key] = value

    with pytest.raises(PipelineConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_pipeline_config(bad)


def test_missing_section_is_named(raw_config: dict[str, Any]) -> None:
    del raw_config["reaper"]

    with pytest.raises(PipelineConfigError, match=r"missing section \[reaper\]"):
        parse_pipeline_config(raw_config)


def test_missing_key_is_named(raw_config: dict[str, Any]) -> None:
    del raw_config["deploy"]["instance_type"]

    with pytest.raises(PipelineConfigError, match=r"missing key\(s\) in \[deploy\]: instance_type"):
        parse_pipeline_config(raw_config)


def test_unknown_key_is_named(raw_config: dict[str, Any]) -> None:
    raw_config["training"]["instance_typ"] = "ml.m5.large"

    with pytest.raises(PipelineConfigError, match=r"unknown key\(s\) in \[training\]: instance_typ"):
        parse_pipeline_config(raw_config)


def test_logarithmic_range_needs_positive_min(raw_config: dict[str, Any]) -> None:
    raw_config["tuning"]["ranges"][0]["min"] = 0.0

    with pytest.raises(PipelineConfigError, match="logarithmic scaling needs min > 0"):
        parse_pipeline_config(raw_config)


def test_unreadable_toml_names_the_file(tmp_path) -> None:
    path = tmp_path / "pipeline.toml"
    path.write_text("[model\nname = 1", encoding="utf-8")

    with pytest.raises(PipelineConfigError, match="is not valid TOML"):
        load_pipeline_config(path)


def test_mistyped_value_is_named(raw_config: dict[str, Any]) -> None:
    raw_config["quality_gate"]["threshold"] = "high"

    with pytest.raises(PipelineConfigError, match=r"\[quality_gate\] threshold must be <class 'float'>, got 'high'"):
        parse_pipeline_config(raw_config)


def test_boolean_is_not_accepted_as_a_count(raw_config: dict[str, Any]) -> None:
    raw_config["tuning"]["max_jobs"] = True

    with pytest.raises(PipelineConfigError, match=r"\[tuning\] max_jobs must be <class 'int'>"):
        parse_pipeline_config(raw_config)


def test_baseline_settings_default_when_the_monitoring_table_leaves_them_out(raw_config: dict[str, Any]) -> None:
    raw_config["monitoring"] = {
        key: value
        for key, value in raw_config["monitoring"].items()
        if key not in ("critical_feature_count", "baseline_sample_rows")
    }

    monitoring = parse_pipeline_config(raw_config).monitoring

    assert monitoring.critical_feature_count == 3
    assert monitoring.baseline_sample_rows == 10_000


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("critical_feature_count", -1, r"\[monitoring\] critical_feature_count must be >= 0 .*got -1"),
        ("baseline_sample_rows", 0, r"\[monitoring\] baseline_sample_rows must be >= 1, got 0"),
        ("critical_feature_count", 2.5, r"\[monitoring\] critical_feature_count must be <class 'int'>, got 2.5"),
    ],
)
def test_bad_baseline_setting_is_named(raw_config: dict[str, Any], key: str, value: Any, message: str) -> None:
    raw_config["monitoring"][key] = value

    with pytest.raises(PipelineConfigError, match=message):
        parse_pipeline_config(raw_config)


def test_the_label_column_cannot_be_the_bias_facet(raw_config: dict[str, Any]) -> None:
    bad = copy.deepcopy(raw_config)
    bad["bias"].update(facet_column=bad["model"]["label_column"], sensitive_values=[1])

    with pytest.raises(PipelineConfigError, match=r"\[bias\] facet_column 'target' is the label column"):
        parse_pipeline_config(bad)
