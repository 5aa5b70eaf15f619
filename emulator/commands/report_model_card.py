"""The run's model card: read back from the Model Cards API, one summary line, and the HTML report's section.

The training state machine's CreateModelCard state (`$.model_card.Payload`, functions/model_card.py) names the card,
so the card is found as the package is, from the execution's output.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from typing import Any

import boto3


class ModelCardMissing(LookupError):
    """The training output names no model card; the message says where it looked."""


def registered_model_card(training_output: Mapping[str, Any] | None) -> dict[str, Any]:
    """DescribeModelCard of the card the training execution made, with its content parsed under `content`."""
    payload = ((training_output or {}).get("model_card") or {}).get("Payload") or {}
    name = payload.get("model_card_name")
    if not name:
        raise ModelCardMissing("the training output has no model_card.Payload.model_card_name (CreateModelCard's)")
    card = dict(boto3.client("sagemaker").describe_model_card(ModelCardName=name))
    card.pop("ResponseMetadata", None)
    card["content"] = json.loads(card.get("Content") or "{}")
    return card


def model_card_summary_line(card: Mapping[str, Any]) -> str:
    """One line for the run's summary: the card, its version, status and key, what its evaluation holds."""
    content = card.get("content") or {}
    evaluations = ", ".join(str(e.get("name")) for e in content.get("evaluation_details") or [])
    custom = (content.get("additional_information") or {}).get("custom_details") or {}
    lineage = custom.get("lineage_manifest_uri") or "no lineage manifest"
    key = (card.get("SecurityConfig") or {}).get("KmsKeyId", "no KMS key")
    return (
        f"model card: {card.get('ModelCardName')} v{card.get('ModelCardVersion')} ({card.get('ModelCardStatus')}, "
        f"encrypted with {key}); evaluations: {evaluations or 'none'}; lineage: {lineage}"
    )


def render_model_card_section(card: Mapping[str, Any]) -> str:
    content = card.get("content") or {}
    overview = content.get("model_overview") or {}
    uses = content.get("intended_uses") or {}
    training = content.get("training_details") or {}
    job = training.get("training_job_details") or {}
    package = content.get("model_package_details") or {}
    facts = [
        ("status", card.get("ModelCardStatus")),
        ("version", card.get("ModelCardVersion")),
        ("KMS key", (card.get("SecurityConfig") or {}).get("KmsKeyId", "none")),
        ("model package", package.get("model_package_arn")),
        ("approval", package.get("model_approval_status")),
        ("approval reason", package.get("approval_description", "")),
        ("model", f"{overview.get('model_name')} v{overview.get('model_version')}: {overview.get('algorithm_type')}"),
        ("purpose", uses.get("purpose_of_model")),
        ("intended uses", uses.get("intended_uses")),
        ("risk rating", f"{uses.get('risk_rating')}: {uses.get('explanations_for_risk_rating', '')}"),
        ("training job", job.get("training_arn", "")),
        ("training data", ", ".join(job.get("training_datasets") or [])),
        ("training image", ", ".join((job.get("training_environment") or {}).get("container_image") or [])),
        ("observations", training.get("training_observations", "")),
    ]
    evaluations = "".join(_evaluation(evaluation) for evaluation in content.get("evaluation_details") or [])
    information = content.get("additional_information") or {}
    extra = [
        ("ethical considerations", information.get("ethical_considerations", "")),
        ("caveats and recommendations", information.get("caveats_and_recommendations", "")),
        *sorted((information.get("custom_details") or {}).items()),
    ]
    return (
        f"<section><h2>Model card <span class='muted'>{_e(card.get('ModelCardName'))}</span></h2>"
        f"{_table(facts)}{evaluations}<h3>Additional information</h3>{_table(extra)}</section>"
    )


def _evaluation(evaluation: Mapping[str, Any]) -> str:
    groups = []
    for group in evaluation.get("metric_groups") or []:
        rows = []
        for metric in group.get("metric_data") or []:
            if metric.get("type") == "bar_chart":
                value = ", ".join(
                    f"{n}={v:.4f}" for n, v in zip(metric.get("x_axis_name") or [], metric["value"], strict=False)
                )
            else:
                value = f"{metric['value']:.4f}" if isinstance(metric.get("value"), float) else str(metric.get("value"))
            rows.append((metric.get("name"), f"{value} {metric.get('notes', '')}".strip()))
        groups.append(f"<h4>{_e(group.get('name'))}</h4>{_table(rows)}")
    return (
        f"<h3>Evaluation: {_e(evaluation.get('name'))}</h3><p>{_e(evaluation.get('evaluation_observation', ''))}</p>"
        + "".join(groups)
    )


def _table(rows: list[tuple[Any, Any]]) -> str:
    cells = "".join(
        f"<tr><th>{_e(name)}</th><td>{_e(value)}</td></tr>" for name, value in rows if value not in (None, "")
    )
    return f"<table>{cells}</table>"


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)
