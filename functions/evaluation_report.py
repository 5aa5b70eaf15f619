"""Glue for `training`'s gates: reads evaluation.json, compares its metric with the champion's, judges its bias.

Called by a `LambdaStep` with `{"evaluation_uri": "s3://.../evaluation.json", "metric": "auc"}`
(optional `"champion_tolerance"`, default 0: the candidate beats the champion when its value is at
least the champion's minus the tolerance) and `"disparate_impact_band": [min, max]` (pipeline.toml [bias]).
Returns `metric_name`, `metric_value`, `champion_value` (null without a champion), `beats_champion`,
`metrics` and `evaluation_uri`, plus `champion_model_package_arn`, and `bias_gate`: `{"passed", "reason",
"bias"}`, the report's bias section and one sentence naming the facet, the disparate impact and the band
(a model without a configured facet passes, saying that no facet was assessed). The champion is the newest
`Approved` package of `MODEL_PACKAGE_GROUP_NAME`; its value is its `CustomerMetadataProperties["metric_value"]`.

Errors raise (the state machine's `Catch` routes them to a notification): `InvalidPayloadError`
for a bad payload, `EvaluationReportError` for a report or champion it cannot use. A champion that
cannot be compared fails the gate loudly instead of letting a model through unchecked.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError
from common.observability import count_decision, instrumented_handler, logger
from common.parsing import MISSING_OBJECT_CODES, split_s3_uri, validated_request
from common.settings import EvaluationReportSettings
from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext


class EvaluationReportError(RuntimeError):
    """The evaluation report or the champion's metadata cannot be used; the message says which and why."""


class EvaluationReportRequest(BaseModel):
    evaluation_uri: str = Field(pattern=r"^s3://[^/]+/.+")
    metric: str = Field(min_length=1)
    champion_tolerance: float = Field(default=0.0, ge=0.0)
    disparate_impact_band: tuple[float, float]


def read_evaluation(s3_client: Any, evaluation_uri: str) -> dict[str, Any]:
    """evaluation.json, whose `metrics` are finite numbers and which has a `bias` object."""
    bucket, key = split_s3_uri(evaluation_uri)
    try:
        body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in MISSING_OBJECT_CODES:
            raise
        raise EvaluationReportError(f"{evaluation_uri} does not exist; did the evaluate job write it?") from None
    try:
        report = json.loads(body)
    except json.JSONDecodeError as error:
        raise EvaluationReportError(f"{evaluation_uri} is not JSON: {error}") from None
    values = report.get("metrics") if isinstance(report, dict) else None
    if not isinstance(values, dict):
        raise EvaluationReportError(f"{evaluation_uri} has no 'metrics' object")
    for name, value in values.items():
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise EvaluationReportError(f"{evaluation_uri}: metric {name!r} is {value!r}, not a finite number")
    if not isinstance(report.get("bias"), dict):
        raise EvaluationReportError(f"{evaluation_uri} has no 'bias' object; was it written by ml/evaluate.py?")
    return {**report, "metrics": {name: float(value) for name, value in values.items()}}


def judge_bias(bias: dict[str, Any], band: tuple[float, float]) -> dict[str, Any]:
    """The bias gate: the test split's disparate impact within `band`; undefined fails, no facet passes."""
    low, high = band
    facet = bias.get("facet")
    if facet is None:
        return {"passed": True, "reason": f"no facet assessed: {bias.get('reason', 'none configured')}", "bias": bias}
    try:
        who = f"facet {facet['facet_column']} in {facet['sensitive_values']}"
        posttraining = bias["posttraining"]
        impact = posttraining["metrics"]["DI"]
    except (KeyError, TypeError):
        raise EvaluationReportError(f"the bias section {bias!r} lacks facet or posttraining.metrics.DI") from None
    if impact is None:
        why = posttraining.get("undefined", {}).get("DI", "undefined")
        return {"passed": False, "reason": f"disparate impact of {who} is undefined ({why})", "bias": bias}
    passed = low <= impact <= high
    verdict = "within" if passed else "outside"
    reason = f"disparate impact of {who} is {impact:.3f}, {verdict} the gate's band [{low}, {high}]"
    return {"passed": passed, "reason": reason, "bias": bias}


def champion_value(sagemaker_client: Any, group_name: str, metric: str) -> tuple[float | None, str | None]:
    """(value, package ARN) of the newest Approved package in the group, or (None, None) without one."""
    packages = sagemaker_client.list_model_packages(
        ModelPackageGroupName=group_name,
        ModelApprovalStatus="Approved",
        SortBy="CreationTime",
        SortOrder="Descending",
        MaxResults=1,
    )["ModelPackageSummaryList"]
    if not packages:
        return None, None
    arn = packages[0]["ModelPackageArn"]
    properties = sagemaker_client.describe_model_package(ModelPackageName=arn).get("CustomerMetadataProperties", {})
    champion_metric = properties.get("metric_name", metric)
    if champion_metric != metric:
        raise EvaluationReportError(
            f"champion {arn} was judged on {champion_metric!r}, not {metric!r}; approve a package judged on "
            f"{metric!r} or change the gate's metric"
        )
    raw = properties.get("metric_value")
    try:
        value = float(raw) if raw is not None else math.nan
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise EvaluationReportError(
            f"champion {arn} has CustomerMetadataProperties metric_value={raw!r}; set it to its {metric} value"
        )
    return value, arn


def evaluate_against_champion(
    request: EvaluationReportRequest, settings: EvaluationReportSettings, s3_client: Any, sagemaker_client: Any
) -> dict[str, Any]:
    """The quality gate's facts: the candidate's metric, the champion's, and whether the candidate wins."""
    report = read_evaluation(s3_client, request.evaluation_uri)
    values = report["metrics"]
    if request.metric not in values:
        raise EvaluationReportError(
            f"{request.evaluation_uri} has no metric {request.metric!r}; it has {sorted(values)}"
        )
    candidate = values[request.metric]
    champion, champion_arn = champion_value(sagemaker_client, settings.model_package_group_name, request.metric)
    beats = champion is None or candidate >= champion - request.champion_tolerance
    return {
        "metric_name": request.metric,
        "metric_value": candidate,
        "champion_value": champion,
        "beats_champion": beats,
        "metrics": values,
        "evaluation_uri": request.evaluation_uri,
        "champion_model_package_arn": champion_arn,
        "bias_gate": judge_bias(report["bias"], request.disparate_impact_band),
    }


@instrumented_handler(correlation_id_path="evaluation_uri")
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = EvaluationReportSettings.from_env()
    request = validated_request(EvaluationReportRequest, event, "evaluation_report")
    try:
        result = evaluate_against_champion(request, settings, boto3.client("s3"), boto3.client("sagemaker"))
    except EvaluationReportError:
        count_decision("EvaluationUnusable")
        raise
    count_decision("CandidateBeatsChampion" if result["beats_champion"] else "CandidateLosesToChampion")
    count_decision("BiasGatePassed" if result["bias_gate"]["passed"] else "BiasGateFailed")
    logger.info("evaluation compared", extra={"result": result})
    return result
