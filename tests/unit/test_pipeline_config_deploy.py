"""[deploy] traffic-shifting settings SageMaker would refuse are refused when pipeline.toml loads."""

from __future__ import annotations

import copy
import re
import tomllib
from typing import Any

import pytest

from contract.pipeline_config import DEFAULT_CONFIG_PATH, PipelineConfigError, parse_pipeline_config


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("traffic_shift_canary_percent", 0),
        ("traffic_shift_canary_percent", 51),
        ("canary_wait_seconds", 3601),
        ("canary_wait_seconds", -1),
        ("termination_wait_seconds", 3601),
    ],
)
def test_a_deploy_setting_sagemaker_refuses_is_named_with_its_range(key: str, value: int) -> None:
    raw: dict[str, Any] = tomllib.loads(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8"))
    bad = copy.deepcopy(raw)
    bad["deploy"][key] = value

    with pytest.raises(PipelineConfigError, match=re.escape(f"[deploy] {key} must be") + f".*got {value}"):
        parse_pipeline_config(bad)
