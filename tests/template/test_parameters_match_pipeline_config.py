"""template.yaml's Parameter defaults and Pipeline mapping equal pipeline.toml, so one file holds the numbers."""

from __future__ import annotations

from typing import Any

import pytest

from contract.pipeline_config import PipelineConfig, load_pipeline_config
from contract.project import PROJECT_ROOT
from contract.template import read_template
from workflows.monitoring import model_quality_metric_name

TEMPLATE_PATH = PROJECT_ROOT / "template.yaml"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return read_template(TEMPLATE_PATH)


@pytest.fixture(scope="module")
def config() -> PipelineConfig:
    return load_pipeline_config()


# Parameter -> its value in pipeline.toml, as CloudFormation would hold the default (a string).
def _expected_parameter_defaults(cfg: PipelineConfig) -> dict[str, str]:
    return {
        "TrainingInstanceType": cfg.training.instance_type,
        "ProcessingInstanceType": cfg.processing.instance_type,
        "EndpointInstanceType": cfg.deploy.instance_type,
        "EndpointInstanceCount": str(cfg.deploy.initial_instance_count),
        "ApprovalMode": cfg.registry.approval_mode,
        "ReaperIdleWindowHours": str(cfg.reaper.idle_window_hours),
        "ReaperMinAgeHours": str(cfg.reaper.min_age_hours),
        "ReaperMaxDeletionsPerRun": str(cfg.reaper.max_deletions_per_run),
        "RetrainingScheduleEnabled": str(cfg.schedule.retraining_enabled).lower(),
        "DriftShareThreshold": str(cfg.monitoring.drift_share_threshold),
        "DriftAlarmEvaluationPeriods": str(cfg.monitoring.evaluation_periods),
        "DriftAlarmDatapointsToAlarm": str(cfg.monitoring.datapoints_to_alarm),
        "ModelQualityThreshold": str(cfg.monitoring.model_quality_threshold),
        "ModelQualityAlarmEvaluationPeriods": str(cfg.monitoring.model_quality_evaluation_periods),
    }


def _expected_mapping(cfg: PipelineConfig) -> dict[str, dict[str, str]]:
    return {
        "Model": {"Name": cfg.model.name},
        "Data": {"Prefix": cfg.data.prefix, "AllowedSuffixes": ",".join(cfg.data.allowed_suffixes)},
        "Drift": {
            "CooldownMinutes": str(cfg.drift.cooldown_minutes),
            "RecheckExpression": cfg.drift.recheck_expression,
        },
        "NewData": {
            "CoalesceWindowSeconds": str(cfg.new_data.coalesce_window_seconds),
            "DeferSeconds": str(cfg.new_data.defer_seconds),
            "MaxReceiveCount": str(cfg.new_data.max_receive_count),
        },
        "Schedule": {"RetrainingExpression": cfg.schedule.retraining_expression},
        "Monitoring": {
            "ScheduleExpression": cfg.monitoring.schedule_expression,
            "WindowSeconds": str(cfg.monitoring.window_minutes * 60),
            "GroundTruthPrefix": cfg.monitoring.ground_truth_prefix,
            # The name the monitoring state machine publishes the quality gate's metric on ground truth under.
            "ModelQualityMetric": model_quality_metric_name(cfg.quality_gate.metric),
        },
        "Reaper": {
            "ScheduleExpression": cfg.reaper.schedule_expression,
            "OptOutTag": cfg.reaper.opt_out_tag,
            "MarkTag": cfg.reaper.mark_tag,
        },
    }


@pytest.mark.parametrize("parameter", sorted(_expected_parameter_defaults(load_pipeline_config())))
def test_parameter_default_equals_pipeline_config(
    template: dict[str, Any], config: PipelineConfig, parameter: str
) -> None:
    default = template["Parameters"][parameter].get("Default")

    assert str(default) == _expected_parameter_defaults(config)[parameter]


def test_pipeline_mapping_equals_pipeline_config(template: dict[str, Any], config: PipelineConfig) -> None:
    mapping = {
        section: {key: str(value) for key, value in values.items()}
        for section, values in template["Mappings"]["Pipeline"].items()
    }

    assert mapping == _expected_mapping(config)


def test_reaper_dry_run_default_follows_the_environment(template: dict[str, Any]) -> None:
    # ARCHITECTURE.md: dry run by default in dev; the by-environment default resolves per Environment.
    assert template["Parameters"]["ReaperDryRun"]["Default"] == "by-environment"
    dry_run = template["Resources"]["EndpointReaperFunction"]["Properties"]["Environment"]["Variables"]["DRY_RUN"]
    assert dry_run == {
        "Fn::If": ["IsReaperDryRunByEnvironment", {"Fn::If": ["IsProd", "false", "true"]}, {"Ref": "ReaperDryRun"}]
    }


def test_prod_rule_rejects_a_single_endpoint_instance(template: dict[str, Any]) -> None:
    rule = template["Rules"]["ProdEndpointIsHighlyAvailable"]

    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "Environment"}, "prod"]}
    assert rule["Assertions"][0]["Assert"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "EndpointInstanceCount"}, "1"]}]}
