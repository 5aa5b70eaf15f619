"""The one reader of template.yaml: its resources, its parameters and each function's handler with Globals applied."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from samtranslator.yaml_helper import intrinsics_multi_constructor

from contract.project import TEMPLATE_PATH

SERVERLESS_FUNCTION = "AWS::Serverless::Function"


class _TemplateLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """PyYAML's safe loader, through libyaml when PyYAML has it, reading CloudFormation's `!Ref`/`!Sub`/... tags.

    The tags become `Ref`/`Fn::*` mappings as samtranslator's own `yaml_parse` makes them (its constructor is
    used); that function always takes PyYAML's pure-Python loader, ten times slower on this template.
    """


_TemplateLoader.add_multi_constructor("!", intrinsics_multi_constructor)


class TemplateError(ValueError):
    """The template lacks something the project needs from it; the message names the resource and the property."""


def read_template(template_path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The template as written (SAM resources, local paths, intrinsic functions as `Ref`/`Fn::*` mappings)."""
    template = yaml.load(Path(template_path).read_text(encoding="utf-8"), Loader=_TemplateLoader)  # noqa: S506
    if not isinstance(template, dict):
        raise TemplateError(f"{template_path} is not a mapping of template sections")
    return template


def template_resources(template_path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """Logical id -> resource of the template's `Resources`."""
    return dict(read_template(template_path).get("Resources") or {})


def template_parameters(template_path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """Parameter name -> declaration of the template's `Parameters`."""
    return dict(read_template(template_path).get("Parameters") or {})


def function_handlers(template_path: Path = TEMPLATE_PATH) -> dict[str, str]:
    """Logical id -> handler (`module.function`) of every AWS::Serverless::Function, Globals applied."""
    template = read_template(template_path)
    default = ((template.get("Globals") or {}).get("Function") or {}).get("Handler")
    handlers = {}
    for logical_id, resource in (template.get("Resources") or {}).items():
        if resource.get("Type") != SERVERLESS_FUNCTION:
            continue
        handler = (resource.get("Properties") or {}).get("Handler", default)
        if not isinstance(handler, str):
            raise TemplateError(f"{logical_id} has no Handler in {Path(template_path).name} (nor in Globals.Function)")
        handlers[logical_id] = handler
    return handlers
