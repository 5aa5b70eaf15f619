"""The model card of each model package: created at registration, kept in step with the package's approval.

One card per package, named `model_card_name(package_arn)`, encrypted with the stack key (`MODEL_CARD_KMS_KEY_ID`).
Its content follows SageMaker's model card JSON schema and is built from what the package points at: the
evaluation report (`CustomerMetadataProperties["evaluation_uri"]`: metrics, per-class metrics, mean |SHAP|
attributions, bias metrics), the training job (image, hyperparameters, final metrics) and, when the package has a
`lineage_manifest_uri` property, the lineage manifest (data objects, code, image); without one the card says so.

The card's status follows the package's approval: `PendingManualApproval` -> `PendingReview`, `Approved` ->
`Approved`, `Rejected` -> `Archived`. Both entry points converge on the package's *current* state
(`sync_model_card`), so a retry, a redelivery or events out of order never leave a second card or a stale status:
- a `LambdaStep` after `RegisterModelPackage`, with `{"model_package_arn": ...}`;
- the "SageMaker Model Package State Change" rule of the stack's group (an event: it has a `detail-type`),
  idempotent per (package ARN, approval status, event time).
`handler` serves both.
A card already `Archived` is not reopened by a later approval: SageMaker refuses content changes to an archived card,
and a re-approved rejected model needs a reviewer's look, so the function keeps it and says so.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools.utilities.idempotency import idempotent_function
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from botocore.exceptions import ClientError
from common.idempotency import idempotency_config, persistence_layer
from common.naming import model_card_name
from common.observability import count_decision, instrumented_handler, logger
from common.parsing import (
    MISSING_OBJECT_CODES,
    split_s3_uri,
    validated_request,
    validation_summary,
)
from common.settings import ModelCardSettings
from pydantic import BaseModel, Field, ValidationError

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import BasePersistenceLayer
    from aws_lambda_powertools.utilities.typing import LambdaContext

# The package's approval -> the card's status (the Model Cards API's vocabulary: Draft, PendingReview, Approved,
# Archived). A rejected model's card is kept, archived, as the record of what was rejected.
CARD_STATUS_BY_APPROVAL = {
    "PendingManualApproval": "PendingReview",
    "Approved": "Approved",
    "Rejected": "Archived",
}
# The schema's limits the content is cut to (its maxLength, maxItems); longer text ends with an ellipsis.
_TEXT_LIMIT = 1024
_LONG_TEXT_LIMIT = 2048
_NAME_LIMIT = 63
_BAR_CHART_ITEMS = 20
_TRAINING_METRICS_LIMIT = 50
_HYPER_PARAMETERS_LIMIT = 100
_TRAINING_DATASETS_LIMIT = 15
# The evaluation's metric names -> the schema's objective function facets, and which way is better.
_OBJECTIVE_BY_METRIC = {
    "auc": ("AUC", "Maximize"),
    "accuracy": ("Accuracy", "Maximize"),
    "logloss": ("Loss", "Minimize"),
}
# Clarify's names of the bias metrics ml/bias.py computes.
_BIAS_METRIC_NAMES = {
    "CI": "class imbalance",
    "DPL": "difference in proportions of labels",
    "DPPL": "difference in positive proportions in predicted labels",
    "DI": "disparate impact",
    "RD": "recall difference",
    "AD": "accuracy difference",
}
# An approval change comes back within EventBridge's and Lambda's retries (hours), or much later from a DLQ redrive.
APPROVAL_CHANGE_MEMORY_SECONDS = 7 * 24 * 60 * 60
NO_LINEAGE_MANIFEST = (
    "no lineage manifest: the model package has no lineage_manifest_uri property, so the data objects, code and "
    "image are not recorded beyond the data prefix, training job and image named here"
)


class ModelCardError(RuntimeError):
    """The package, its evaluation report or its lineage manifest cannot make a card; the message says which."""


class RegistrationRequest(BaseModel):
    model_package_arn: str = Field(pattern=r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:model-package/.+/\d+$")


class ModelPackageStateDetail(BaseModel):
    ModelPackageArn: str = Field(min_length=1)
    ModelPackageGroupName: str = Field(min_length=1)
    ModelApprovalStatus: str = Field(min_length=1)


class ModelPackageStateChangeEvent(EventBridgeModel):
    detail: ModelPackageStateDetail


# ---- reading what the card is made of -----------------------------------------------------------------------------


def _read_json_object(
    s3_client: Any, uri: str, what: str, version_id: str | None = None, sha256: str | None = None
) -> dict[str, Any]:
    """The JSON object at `uri` (that version, when given); with `sha256`, only when its bytes hash to it."""
    bucket, key = split_s3_uri(uri)
    versioned = {"VersionId": version_id} if version_id else {}
    try:
        body = s3_client.get_object(Bucket=bucket, Key=key, **versioned)["Body"].read()
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in MISSING_OBJECT_CODES:
            raise
        raise ModelCardError(f"the {what} {uri} does not exist") from None
    if sha256 and hashlib.sha256(body).hexdigest() != sha256:
        raise ModelCardError(
            f"the {what} {uri} (version {version_id or 'latest'}) does not hash to the SHA-256 the model package "
            f"records ({sha256}): it is not the document registered with the package"
        )
    try:
        document = json.loads(body)
    except json.JSONDecodeError as error:
        raise ModelCardError(f"the {what} {uri} is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise ModelCardError(f"the {what} {uri} is not a JSON object")
    return document


def read_evaluation(s3_client: Any, package: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(URI, report) of the package's evaluation.json, which must have `metrics` and `bias` (ml/evaluate.py)."""
    uri = (package.get("CustomerMetadataProperties") or {}).get("evaluation_uri")
    if not uri:
        raise ModelCardError(
            f"model package {package['ModelPackageArn']} has no evaluation_uri property: "
            "was it registered by the training state machine?"
        )
    report = _read_json_object(s3_client, uri, "evaluation report")
    for section in ("metrics", "bias"):
        if not isinstance(report.get(section), dict):
            raise ModelCardError(f"the evaluation report {uri} has no {section!r} object; ml/evaluate.py writes one")
    return uri, report


def read_lineage(s3_client: Any, package: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """(URI, manifest) of the package's lineage manifest, or None when the package names none."""
    properties = package.get("CustomerMetadataProperties") or {}
    uri = properties.get("lineage_manifest_uri")
    if not uri:
        return None
    # The version registered with the package, checked against its recorded SHA-256 (functions/lineage_manifest.py).
    manifest = _read_json_object(
        s3_client,
        uri,
        "lineage manifest",
        version_id=properties.get("lineage_manifest_version_id"),
        sha256=properties.get("lineage_manifest_sha256"),
    )
    return uri, manifest


def describe_training_job(sagemaker_client: Any, package: dict[str, Any]) -> dict[str, Any] | None:
    """The package's training job (`training_job` property), or None when the package names none."""
    name = (package.get("CustomerMetadataProperties") or {}).get("training_job")
    if not name:
        return None
    described: dict[str, Any] = sagemaker_client.describe_training_job(TrainingJobName=name)
    return described


# ---- building the content -----------------------------------------------------------------------------------------


def _cut(text: Any, limit: int = _TEXT_LIMIT) -> str:
    value = str(text)
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _model_overview(package: dict[str, Any]) -> dict[str, Any]:
    containers = (package.get("InferenceSpecification") or {}).get("Containers") or []
    properties = package.get("CustomerMetadataProperties") or {}
    framework = " ".join(str(containers[0].get(k, "")) for k in ("Framework", "FrameworkVersion")).strip()
    overview: dict[str, Any] = {
        "model_description": _cut(package.get("ModelPackageDescription") or package["ModelPackageArn"]),
        "model_creator": _cut(f"training state machine execution {properties.get('execution_arn', 'unknown')}"),
        "problem_type": "Binary Classification",
        "algorithm_type": _cut(framework or "unknown"),
        "model_id": package["ModelPackageArn"],
        "model_name": _cut(package["ModelPackageGroupName"]),
        "model_version": package["ModelPackageVersion"],
        "model_artifact": [_cut(c["ModelDataUrl"]) for c in containers if c.get("ModelDataUrl")][:15],
        "inference_environment": {"container_image": [_cut(c["Image"]) for c in containers if c.get("Image")][:15]},
    }
    return overview


def _intended_uses(package: dict[str, Any]) -> dict[str, Any]:
    return {
        "purpose_of_model": _cut(
            f"Binary classification by the {package['ModelPackageGroupName']} model group, retrained by this "
            "stack's training pipeline on its data prefix.",
            _LONG_TEXT_LIMIT,
        ),
        "intended_uses": _cut(
            "Scoring rows with the training data's feature columns, behind the stack's endpoint, after an "
            "independent reviewer has approved this package.",
            _LONG_TEXT_LIMIT,
        ),
        "factors_affecting_model_efficiency": _cut(
            "Drift of the feature distributions from the training data (the stack's drift alarms watch it) and "
            "labelled ground truth that departs from the held-out test split.",
            _LONG_TEXT_LIMIT,
        ),
        # The pipeline cannot judge the use's risk; the reviewer sets it before approving.
        "risk_rating": "Unknown",
        "explanations_for_risk_rating": "Not rated by the pipeline: the reviewer rates the risk of the intended use.",
    }


def _training_details(
    package: dict[str, Any], report: dict[str, Any], job: dict[str, Any] | None, lineage: dict[str, Any] | None
) -> dict[str, Any]:
    properties = package.get("CustomerMetadataProperties") or {}
    metric = str(properties.get("metric_name", ""))
    facet, direction = _OBJECTIVE_BY_METRIC.get(metric, (metric[:_NAME_LIMIT] or "unknown", "Maximize"))
    execution, data = properties.get("execution_arn", "unknown"), properties.get("data_uri", "unknown")
    observations = (
        f"Trained by execution {execution} on {data} (trigger: {properties.get('trigger_type', 'unknown')}); "
        f"{report.get('n_test', 'unknown')} held-out test rows."
    )
    details: dict[str, Any] = {
        "objective_function": {
            "function": {"function": direction, "facet": facet},
            "notes": _cut(f"the quality gate's metric {metric}, judged on the held-out test split"),
        },
        "training_observations": _cut(observations),
    }
    job_details: dict[str, Any] = {"training_datasets": _training_datasets(properties, lineage)}
    if job is not None:
        job_details["training_arn"] = _cut(job.get("TrainingJobArn", ""))
        image = (job.get("AlgorithmSpecification") or {}).get("TrainingImage")
        if image:
            job_details["training_environment"] = {"container_image": [_cut(image)]}
        job_details["training_metrics"] = [
            {"name": _cut(m["MetricName"], 255), "value": float(m["Value"])}
            for m in job.get("FinalMetricDataList") or []
            if _number(m.get("Value")) is not None
        ][:_TRAINING_METRICS_LIMIT]
        job_details["hyper_parameters"] = [
            {"name": _cut(name, 255), "value": _cut(value, 255)}
            for name, value in sorted((job.get("HyperParameters") or {}).items())
            # SageMaker's own script-mode settings (program, submit directory) are not the model's parameters.
            if not name.startswith("sagemaker_") and str(value)
        ][:_HYPER_PARAMETERS_LIMIT]
    details["training_job_details"] = job_details
    return details


def _training_datasets(properties: dict[str, Any], lineage: dict[str, Any] | None) -> list[str]:
    if lineage is not None:
        objects = [_object_reference(item) for item in lineage.get("data_objects") or [] if isinstance(item, dict)]
        if objects:
            return objects[:_TRAINING_DATASETS_LIMIT]
    return [_cut(properties["data_uri"])] if properties.get("data_uri") else []


def _object_reference(item: dict[str, Any]) -> str:
    uri = item.get("uri") or f"s3://{item.get('bucket', '?')}/{item.get('key', '?')}"
    version = item.get("version_id")
    return _cut(f"{uri}?versionId={version}" if version else uri)


def _quality_evaluation(uri: str, report: dict[str, Any]) -> dict[str, Any]:
    groups: list[dict[str, Any]] = [
        {
            "name": "test split metrics",
            "metric_data": [
                {"name": name, "type": "number", "value": value}
                for name, value in report["metrics"].items()
                if _number(value) is not None
            ],
        }
    ]
    per_class = [
        {"name": f"class {label} {measure}", "type": "number", "value": value}
        for label, measures in sorted((report.get("per_class") or {}).items())
        for measure, value in measures.items()
        if _number(value) is not None
    ]
    if per_class:
        groups.append({"name": "per-class metrics", "metric_data": per_class})
    attributions = list((report.get("feature_attributions") or {}).items())[:_BAR_CHART_ITEMS]
    if attributions:
        groups.append(
            {
                "name": "feature attributions",
                "metric_data": [
                    {
                        "name": "mean absolute SHAP value",
                        "type": "bar_chart",
                        "value": [float(value) for _, value in attributions],
                        "x_axis_name": [_cut(name, _NAME_LIMIT) for name, _ in attributions],
                        "y_axis_name": "mean |SHAP|",
                        "notes": _cut(f"the {len(attributions)} features with the largest attributions, largest first"),
                    }
                ],
            }
        )
    return {
        "name": "held-out test split",
        "evaluation_observation": _cut(
            f"Evaluated on {report.get('n_test', 'unknown')} held-out test rows by the training pipeline's "
            "evaluate job; SHAP attributions from XGBoost's own tree SHAP.",
            2096,
        ),
        "datasets": [_cut(uri)],
        "metadata": {"evaluation_report": _cut(uri)},
        "metric_groups": groups,
    }


def _bias_evaluation(bias: dict[str, Any]) -> dict[str, Any]:
    facet = bias.get("facet")
    if not facet:
        return {
            "name": "bias",
            "evaluation_observation": _cut(f"No facet assessed: {bias.get('reason', 'none configured')}.", 2096),
            "metric_groups": [],
        }
    groups = []
    for stage, title in (("pretraining", "pre-training bias"), ("posttraining", "post-training bias")):
        section = bias.get(stage) or {}
        undefined = section.get("undefined") or {}
        data = []
        for name, value in (section.get("metrics") or {}).items():
            notes = _BIAS_METRIC_NAMES.get(name, "")
            if _number(value) is None:
                data.append(
                    {"name": name, "type": "string", "value": "undefined", "notes": _cut(undefined.get(name, notes))}
                )
            else:
                data.append({"name": name, "type": "number", "value": float(value), "notes": notes})
        if data:
            groups.append({"name": title, "metric_data": data})
    who = f"facet d: {facet.get('facet_column')} in {facet.get('sensitive_values')}; facet a: every other row"
    return {
        "name": "bias",
        "evaluation_observation": _cut(
            f"Clarify's bias metrics computed by the pipeline ({who}); pre-training on the training split, "
            "post-training on the held-out test split.",
            2096,
        ),
        "metadata": {
            "facet_column": _cut(facet.get("facet_column")),
            "sensitive_values": _cut(facet.get("sensitive_values")),
        },
        "metric_groups": groups,
    }


def _additional_information(package: dict[str, Any], bias: dict[str, Any], lineage: Any) -> dict[str, Any]:
    properties = package.get("CustomerMetadataProperties") or {}
    custom: dict[str, str] = {
        "evaluation_uri": _cut(properties.get("evaluation_uri", "")),
        "training_execution": _cut(properties.get("execution_arn", "unknown")),
    }
    if lineage is None:
        custom["lineage"] = _cut(NO_LINEAGE_MANIFEST)
    else:
        uri, manifest = lineage
        custom["lineage_manifest_uri"] = _cut(uri)
        if properties.get("lineage_manifest_sha256"):
            custom["lineage_manifest_sha256"] = _cut(properties["lineage_manifest_sha256"])
        objects = [_object_reference(o) for o in manifest.get("data_objects") or [] if isinstance(o, dict)]
        custom["lineage_data_objects"] = _cut(f"{len(objects)}: " + ", ".join(objects))
        for key in ("code", "image"):
            if manifest.get(key) is not None:
                custom[f"lineage_{key}"] = _cut(json.dumps(manifest[key], sort_keys=True))
    facet = bias.get("facet")
    ethics = (
        f"Bias was assessed for {facet.get('facet_column')} in {facet.get('sensitive_values')}: see the bias "
        "evaluation; the pipeline's bias gate bounds the disparate impact."
        if facet
        else f"No protected attribute was assessed ({bias.get('reason', 'no facet configured')}): configure a facet "
        "in pipeline.toml [bias] before using this model for decisions about people."
    )
    return {
        "ethical_considerations": _cut(ethics, _LONG_TEXT_LIMIT),
        "caveats_and_recommendations": _cut(
            "Metrics come from one held-out split; watch the drift and model-quality alarms after deployment.",
            _LONG_TEXT_LIMIT,
        ),
        "custom_details": custom,
    }


def _model_package_details(package: dict[str, Any]) -> dict[str, Any]:
    containers = (package.get("InferenceSpecification") or {}).get("Containers") or []
    details: dict[str, Any] = {
        "model_package_arn": package["ModelPackageArn"],
        "model_package_name": package.get("ModelPackageName", package["ModelPackageGroupName"]),
        "model_package_group_name": package["ModelPackageGroupName"],
        "model_package_version": package["ModelPackageVersion"],
        "model_package_status": package.get("ModelPackageStatus", "Completed"),
        "model_approval_status": package["ModelApprovalStatus"],
        "inference_specification": {
            "containers": [
                {
                    "image": c["Image"][:255],
                    **({"model_data_url": _cut(c["ModelDataUrl"])} if c.get("ModelDataUrl") else {}),
                }
                for c in containers
            ][:15]
        },
    }
    if package.get("ModelPackageDescription"):
        details["model_package_description"] = _cut(package["ModelPackageDescription"])
    if package.get("ApprovalDescription"):
        # The approver's reason, part of the card's record of the decision.
        details["approval_description"] = _cut(package["ApprovalDescription"])
    return details


def card_content(
    package: dict[str, Any],
    evaluation: tuple[str, dict[str, Any]],
    job: dict[str, Any] | None,
    lineage: tuple[str, dict[str, Any]] | None,
) -> dict[str, Any]:
    """The card's content in the model card JSON schema, from the package and what it points at."""
    uri, report = evaluation
    manifest = lineage[1] if lineage is not None else None
    return {
        "model_overview": _model_overview(package),
        "intended_uses": _intended_uses(package),
        "training_details": _training_details(package, report, job, manifest),
        "evaluation_details": [_quality_evaluation(uri, report), _bias_evaluation(report["bias"])],
        "additional_information": _additional_information(package, report["bias"], lineage),
        "model_package_details": _model_package_details(package),
    }


# ---- creating and updating the card -------------------------------------------------------------------------------


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _describe_card(sagemaker_client: Any, name: str) -> dict[str, Any] | None:
    try:
        described: dict[str, Any] = sagemaker_client.describe_model_card(ModelCardName=name)
    except ClientError as error:
        if _error_code(error) == "ResourceNotFound":
            return None
        raise
    return described


def sync_model_card(
    package_arn: str, settings: ModelCardSettings, s3_client: Any, sagemaker_client: Any
) -> dict[str, Any]:
    """Create the package's card, or bring the one it has to the package's current content and approval.

    Returns `{"model_card_name", "model_card_arn", "model_card_status", "action"}`; `action` is `created`,
    `updated` (a new version: the content changed), `status-updated`, `unchanged` or `kept-archived`.
    """
    package = sagemaker_client.describe_model_package(ModelPackageName=package_arn)
    if package.get("ModelPackageGroupName") != settings.model_package_group_name:
        raise ModelCardError(
            f"model package {package_arn} is in group {package.get('ModelPackageGroupName')!r}, not the stack's "
            f"{settings.model_package_group_name!r}"
        )
    approval = package.get("ModelApprovalStatus", "PendingManualApproval")
    if approval not in CARD_STATUS_BY_APPROVAL:
        raise ModelCardError(
            f"model package {package_arn} has ModelApprovalStatus {approval!r}, which no card status follows"
        )
    status = CARD_STATUS_BY_APPROVAL[approval]
    name = model_card_name(package["ModelPackageArn"])
    content = card_content(
        package,
        read_evaluation(s3_client, package),
        describe_training_job(sagemaker_client, package),
        read_lineage(s3_client, package),
    )
    text = json.dumps(content, sort_keys=True)
    existing = _describe_card(sagemaker_client, name)
    if existing is None:
        try:
            arn = sagemaker_client.create_model_card(
                ModelCardName=name,
                SecurityConfig={"KmsKeyId": settings.kms_key_id},
                Content=text,
                ModelCardStatus=status,
                Tags=[{"Key": "mlops:model-package-arn", "Value": package["ModelPackageArn"]}],
            )["ModelCardArn"]
            return {"model_card_name": name, "model_card_arn": arn, "model_card_status": status, "action": "created"}
        except ClientError as error:
            # Another invocation created it meanwhile (a retried state, the approval event): update that one.
            if _error_code(error) != "ConflictException":
                raise
            existing = _describe_card(sagemaker_client, name)
            if existing is None:
                raise
    return _update(sagemaker_client, existing, content, text, status)


def _update(
    sagemaker_client: Any, existing: dict[str, Any], content: dict[str, Any], text: str, status: str
) -> dict[str, Any]:
    name, arn, current = existing["ModelCardName"], existing["ModelCardArn"], existing.get("ModelCardStatus")
    result = {"model_card_name": name, "model_card_arn": arn, "model_card_status": current}
    if current == "Archived":
        # SageMaker refuses content changes to an archived card; its content is the record made when it was archived.
        if status == "Archived":
            return {**result, "action": "unchanged"}
        logger.warning(
            "model card is archived and stays so",
            extra={"model_card": name, "wanted_status": status, "why": "a re-approved rejected model needs review"},
        )
        return {**result, "action": "kept-archived"}
    content_changed = json.loads(existing.get("Content") or "{}") != content
    if not content_changed and current == status:
        return {**result, "action": "unchanged"}
    request: dict[str, Any] = {"ModelCardName": name, "ModelCardStatus": status}
    if content_changed:
        request["Content"] = text
    sagemaker_client.update_model_card(**request)
    return {**result, "model_card_status": status, "action": "updated" if content_changed else "status-updated"}


# ---- handlers -----------------------------------------------------------------------------------------------------


def _recorded(outcome: dict[str, Any], subject: str) -> dict[str, Any]:
    count_decision(
        {
            "created": "ModelCardCreated",
            "updated": "ModelCardUpdated",
            "status-updated": "ModelCardStatusUpdated",
            "unchanged": "ModelCardUnchanged",
            "kept-archived": "ModelCardKeptArchived",
        }[outcome["action"]]
    )
    logger.info(f"model card {outcome['action']} ({subject})", extra={"model_card": outcome})
    return outcome


def on_registration(event: dict[str, Any], settings: ModelCardSettings) -> dict[str, Any]:
    """The training state machine's step after RegisterModelPackage: the new package's card."""
    request = validated_request(RegistrationRequest, event, "model_card")
    try:
        outcome = sync_model_card(request.model_package_arn, settings, boto3.client("s3"), boto3.client("sagemaker"))
    except ModelCardError:
        count_decision("ModelCardUnbuildable")
        raise
    return _recorded(outcome, "registration")


def follow_approval(
    event: ModelPackageStateChangeEvent,
    settings: ModelCardSettings,
    persistence: BasePersistenceLayer,
    context: LambdaContext | None,
    s3_client: Any,
    sagemaker_client: Any,
) -> dict[str, Any]:
    """Sync the card once per (package, approval status, event time); a redelivery is answered from the store."""
    detail = event.detail

    @idempotent_function(
        data_keyword_argument="approval_change",
        persistence_store=persistence,
        config=idempotency_config(context, APPROVAL_CHANGE_MEMORY_SECONDS),
        key_prefix="model_card.approval",
    )
    def sync_once(approval_change: dict[str, str]) -> dict[str, Any]:
        return sync_model_card(detail.ModelPackageArn, settings, s3_client, sagemaker_client)

    change = {
        "package": detail.ModelPackageArn,
        "status": detail.ModelApprovalStatus,
        "time": event.time.isoformat() if isinstance(event.time, datetime) else str(event.time),
    }
    return sync_once(approval_change=change)


def on_approval_event(event: dict[str, Any], settings: ModelCardSettings, context: LambdaContext) -> dict[str, Any]:
    """The "SageMaker Model Package State Change" rule: the package's card follows its approval."""
    try:
        parsed = parse(event=event, model=ModelPackageStateChangeEvent)
    except ValidationError as error:
        count_decision("EventRejected")
        reason = f"not a SageMaker Model Package State Change event: {validation_summary(error)}"
        logger.error(f"model package event rejected: {reason}")
        return {"action": "rejected", "reason": reason}
    if parsed.detail.ModelPackageGroupName != settings.model_package_group_name:
        count_decision("EventRejected")
        group, ours = parsed.detail.ModelPackageGroupName, settings.model_package_group_name
        reason = f"package group {group!r} is not the stack's {ours!r}"
        logger.error(f"model package event rejected: {reason}")
        return {"action": "rejected", "reason": reason}
    outcome = follow_approval(
        parsed,
        settings,
        persistence_layer(settings.idempotency_table_name),
        context,
        boto3.client("s3"),
        boto3.client("sagemaker"),
    )
    if outcome.get("duplicate"):
        count_decision("DuplicateDelivery")
        return outcome
    return _recorded(outcome, f"approval {parsed.detail.ModelApprovalStatus}")


# The state machine's payload carries the package; an EventBridge event its own id.
@instrumented_handler(correlation_id_path="model_package_arn || id")
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """One function for both callers: an EventBridge event (it has a `detail-type`) or the state machine's payload."""
    settings = ModelCardSettings.from_env()
    if isinstance(event, dict) and "detail-type" in event:
        return on_approval_event(event, settings, context)
    return on_registration(event, settings)
