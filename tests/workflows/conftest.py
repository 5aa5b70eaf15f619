"""Fixtures for the workflow tests: pipeline configs (the real one and variations) and built definitions."""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Callable
from typing import Any

import pytest

from contract.pipeline_config import DEFAULT_CONFIG_PATH, PipelineConfig, load_pipeline_config, parse_pipeline_config
from workflows.deploy import build_deploy_definition
from workflows.training import build_training_definition

ConfigFactory = Callable[..., PipelineConfig]


@pytest.fixture(scope="session")
def config() -> PipelineConfig:
    return load_pipeline_config()


@pytest.fixture(scope="session")
def config_with() -> ConfigFactory:
    """pipeline.toml with some values changed: `config_with(quality_gate={"threshold": 0.77})`."""
    raw = tomllib.loads(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8"))

    def make(**sections: dict[str, Any]) -> PipelineConfig:
        changed = copy.deepcopy(raw)
        for section, values in sections.items():
            changed[section].update(values)
        return parse_pipeline_config(changed)

    return make


@pytest.fixture(scope="session")
def training_definition(config: PipelineConfig) -> dict[str, Any]:
    return build_training_definition(config)


@pytest.fixture(scope="session")
def deploy_definition(config: PipelineConfig) -> dict[str, Any]:
    return build_deploy_definition(config)


@pytest.fixture
def fresh_training_definition(config: PipelineConfig) -> dict[str, Any]:
    """A definition the test may mutate."""
    return build_training_definition(config)


@pytest.fixture
def fresh_deploy_definition(config: PipelineConfig) -> dict[str, Any]:
    """A definition the test may mutate."""
    return build_deploy_definition(config)
