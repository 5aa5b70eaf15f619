"""model_card: one schema-valid, encrypted card per model package, whose status follows the package's approval.

SageMaker is the twin's local backend (its Model Cards API validates content against the model card JSON schema, as
SageMaker does and moto does not); S3 and DynamoDB are moto.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import model_card
import pytest
from common.naming import MAX_MODEL_CARD_NAME_LENGTH, model_card_name
from common.parsing import InvalidPayloadError
from lambda_test_support import load_event

from emulator.clock import Clock
from emulator.sagemaker_local import LocalSageMaker
from emulator.sagemaker_local.model_cards import content_problems
from emulator.sagemaker_local.store import NAME_PATTERN

ARTIFACTS = "mlops-artifacts-123456789012-us-east-1"
GROUP = "mlops-breast-cancer"
KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
EVALUATION_URI = f"s3://{ARTIFACTS}/runs/exec-1/evaluation/evaluation.json"
LINEAGE_URI = f"s3://{ARTIFACTS}/lineage/{GROUP}/exec-1/manifest.json"
REPORT = {
    "metrics": {"auc": 0.97, "accuracy": 0.93, "logloss": 0.21},
    "per_class": {"0": {"precision": 0.9, "recall": 0.92, "f1": 0.91, "support": 40}},
    "feature_attributions": {f"feature_{index}": 1.0 / (index + 1) for index in range(25)},
    "n_test": 114,
    "bias": {
        "facet": {"facet_column": "sex_female", "sensitive_values": [1.0]},
        "pretraining": {"metrics": {"CI": 0.1, "DPL": -0.05}},
        "posttraining": {"metrics": {"DPPL": 0.02, "DI": None, "RD": 0.0, "AD": 0.01}, "undefined": {"DI": "no rows"}},
    },
}


@pytest.fixture
def stack(aws: None, idempotency_table: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The stack's environment, its artifact bucket with an evaluation report, and the twin's local SageMaker."""
    monkeypatch.setenv("MODEL_PACKAGE_GROUP_NAME", GROUP)
    monkeypatch.setenv("MODEL_CARD_KMS_KEY_ID", KMS_KEY)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=ARTIFACTS)
    s3.put_object(Bucket=ARTIFACTS, Key=EVALUATION_URI.removeprefix(f"s3://{ARTIFACTS}/"), Body=json.dumps(REPORT))
    sagemaker = LocalSageMaker(tmp_path / "sagemaker", Clock(1000.0))
    sagemaker.install()
    boto3.client("sagemaker").create_model_package_group(ModelPackageGroupName=GROUP)
    try:
        yield s3
    finally:
        sagemaker.close()


def _register(status: str = "PendingManualApproval", **properties: str) -> str:
    return str(
        boto3.client("sagemaker").create_model_package(
            ModelPackageGroupName=GROUP,
            ModelApprovalStatus=status,
            ModelPackageDescription="breast-cancer trained by execution exec-1",
            InferenceSpecification={
                "Containers": [{"Image": "xgboost:3.0-5", "ModelDataUrl": f"s3://{ARTIFACTS}/models/m/model.tar.gz"}],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
            CustomerMetadataProperties={
                "metric_name": "auc",
                "metric_value": "0.97",
                "execution_arn": "arn:aws:states:us-east-1:123456789012:execution:mlops-training:exec-1",
                "data_uri": "s3://mlops-data/incoming/",
                "evaluation_uri": EVALUATION_URI,
                "trigger_type": "manual",
                **properties,
            },
        )["ModelPackageArn"]
    )


def _card(package_arn: str) -> dict[str, Any]:
    return dict(boto3.client("sagemaker").describe_model_card(ModelCardName=model_card_name(package_arn)))


def _approval_event(package_arn: str, status: str, time: str = "2026-12-01T17:00:00Z") -> dict[str, Any]:
    event = load_event("model_card/approved.json")
    event["resources"] = [package_arn]
    event["time"] = time
    event["detail"].update({"ModelPackageArn": package_arn, "ModelApprovalStatus": status})
    return event


def test_registration_creates_a_card_with_schema_valid_content_and_the_stack_key(stack, lambda_context):
    package = _register()

    result = model_card.handler({"model_package_arn": package}, lambda_context)

    card = _card(package)
    content = json.loads(card["Content"])
    assert result["action"] == "created"
    assert content_problems(content) == []
    assert card["SecurityConfig"] == {"KmsKeyId": KMS_KEY}
    assert card["ModelCardStatus"] == "PendingReview"
    assert content["model_package_details"]["model_package_arn"] == package
    quality, bias = content["evaluation_details"]
    assert {m["name"]: m["value"] for m in quality["metric_groups"][0]["metric_data"]}["auc"] == 0.97
    assert len(quality["metric_groups"][2]["metric_data"][0]["x_axis_name"]) == 20
    assert {m["name"]: m["value"] for g in bias["metric_groups"] for m in g["metric_data"]} == {
        "CI": 0.1,
        "DPL": -0.05,
        "DPPL": 0.02,
        "DI": "undefined",
        "RD": 0.0,
        "AD": 0.01,
    }


def test_an_auto_approved_package_gets_an_approved_card(stack, lambda_context):
    package = _register("Approved")

    model_card.handler({"model_package_arn": package}, lambda_context)

    assert _card(package)["ModelCardStatus"] == "Approved"


def test_a_retried_registration_does_not_create_a_second_card(stack, lambda_context):
    package = _register()
    model_card.handler({"model_package_arn": package}, lambda_context)

    again = model_card.handler({"model_package_arn": package}, lambda_context)

    cards = boto3.client("sagemaker").list_model_cards()["ModelCardSummaries"]
    assert again["action"] == "unchanged"
    assert [card["ModelCardName"] for card in cards] == [model_card_name(package)]
    assert _card(package)["ModelCardVersion"] == 1


def test_without_a_lineage_manifest_the_card_says_so(stack, lambda_context):
    package = _register()

    model_card.handler({"model_package_arn": package}, lambda_context)

    custom = json.loads(_card(package)["Content"])["additional_information"]["custom_details"]
    assert custom["lineage"] == model_card.NO_LINEAGE_MANIFEST


def test_a_lineage_manifest_puts_the_data_objects_code_and_image_in_the_card(stack, lambda_context):
    manifest = {
        "data_objects": [{"uri": "s3://mlops-data/incoming/a.csv", "version_id": "v1", "sha256": "ab" * 32}],
        "code": {"sourcedir_sha256": "cd" * 32, "commit": "0123abc"},
        "image": {"uri": "xgboost:3.0-5"},
    }
    body = json.dumps(manifest).encode()
    stack.put_object(Bucket=ARTIFACTS, Key=LINEAGE_URI.removeprefix(f"s3://{ARTIFACTS}/"), Body=body)
    package = _register(lineage_manifest_uri=LINEAGE_URI, lineage_manifest_sha256=hashlib.sha256(body).hexdigest())

    model_card.handler({"model_package_arn": package}, lambda_context)

    content = json.loads(_card(package)["Content"])
    datasets = content["training_details"]["training_job_details"]["training_datasets"]
    custom = content["additional_information"]["custom_details"]
    assert datasets == ["s3://mlops-data/incoming/a.csv?versionId=v1"]
    assert custom["lineage_manifest_uri"] == LINEAGE_URI
    assert json.loads(custom["lineage_code"])["commit"] == "0123abc"
    assert content_problems(content) == []


def test_a_lineage_manifest_that_does_not_hash_to_the_registered_sha256_makes_no_card(stack, lambda_context):
    body = json.dumps({"data_objects": []}).encode()
    stack.put_object(Bucket=ARTIFACTS, Key=LINEAGE_URI.removeprefix(f"s3://{ARTIFACTS}/"), Body=body)
    package = _register(lineage_manifest_uri=LINEAGE_URI, lineage_manifest_sha256="ef" * 32)

    with pytest.raises(model_card.ModelCardError, match="does not hash to the SHA-256 the model package records"):
        model_card.handler({"model_package_arn": package}, lambda_context)


def test_the_card_status_follows_approval_and_rejection(stack, lambda_context):
    sagemaker = boto3.client("sagemaker")
    approved, rejected = _register(), _register()
    for package in (approved, rejected):
        model_card.handler({"model_package_arn": package}, lambda_context)

    sagemaker.update_model_package(
        ModelPackageArn=approved, ModelApprovalStatus="Approved", ApprovalDescription="reviewed by risk"
    )
    model_card.handler(_approval_event(approved, "Approved"), lambda_context)
    sagemaker.update_model_package(ModelPackageArn=rejected, ModelApprovalStatus="Rejected")
    model_card.handler(_approval_event(rejected, "Rejected"), lambda_context)

    approved_card = _card(approved)
    details = json.loads(approved_card["Content"])["model_package_details"]
    assert approved_card["ModelCardStatus"] == "Approved"
    assert (details["model_approval_status"], details["approval_description"]) == ("Approved", "reviewed by risk")
    assert _card(rejected)["ModelCardStatus"] == "Archived"


def test_a_redelivered_approval_event_is_answered_from_the_idempotency_store(stack, lambda_context):
    package = _register()
    boto3.client("sagemaker").update_model_package(ModelPackageArn=package, ModelApprovalStatus="Approved")
    event = _approval_event(package, "Approved")
    first = model_card.handler(event, lambda_context)

    again = model_card.handler(event, lambda_context)

    assert first["action"] == "created"
    assert again["duplicate"] is True
    assert _card(package)["ModelCardVersion"] == 1


def test_an_archived_card_is_kept_when_its_package_is_approved_later(stack, lambda_context):
    sagemaker = boto3.client("sagemaker")
    package = _register("Rejected")
    model_card.handler({"model_package_arn": package}, lambda_context)
    sagemaker.update_model_package(ModelPackageArn=package, ModelApprovalStatus="Approved")

    outcome = model_card.handler(_approval_event(package, "Approved"), lambda_context)

    assert outcome["action"] == "kept-archived"
    assert _card(package)["ModelCardStatus"] == "Archived"


def test_an_archived_cards_content_is_left_as_archived_when_the_package_changes(stack, lambda_context):
    sagemaker = boto3.client("sagemaker")
    package = _register("Rejected")
    model_card.handler({"model_package_arn": package}, lambda_context)
    sagemaker.update_model_package(ModelPackageArn=package, ApprovalDescription="fails the bias gate on review")

    outcome = model_card.handler({"model_package_arn": package}, lambda_context)

    assert outcome["action"] == "unchanged"
    assert _card(package)["ModelCardVersion"] == 1


def test_an_event_of_another_group_is_rejected_without_touching_cards(stack, lambda_context):
    event = _approval_event(f"arn:aws:sagemaker:us-east-1:123456789012:model-package/{GROUP}/1", "Approved")
    event["detail"]["ModelPackageGroupName"] = "someone-elses-group"

    outcome = model_card.handler(event, lambda_context)

    assert outcome["action"] == "rejected"
    assert boto3.client("sagemaker").list_model_cards()["ModelCardSummaries"] == []


def test_a_package_without_an_evaluation_report_names_what_is_missing(stack, lambda_context):
    package = _register(evaluation_uri=f"s3://{ARTIFACTS}/runs/missing/evaluation.json")

    with pytest.raises(model_card.ModelCardError, match=r"runs/missing/evaluation\.json does not exist"):
        model_card.handler({"model_package_arn": package}, lambda_context)


def test_a_payload_without_a_package_arn_is_refused_naming_the_field(stack, lambda_context):
    with pytest.raises(InvalidPayloadError, match="model_package_arn"):
        model_card.handler(load_event("model_card/missing_package_arn.json"), lambda_context)


@pytest.mark.parametrize(
    ("group", "version"),
    [("mlops-breast-cancer", "7"), ("a" * 63, "12"), ("b" * 60 + "-x", "1")],
)
def test_model_card_name_is_a_valid_name_deterministic_per_package(group, version):
    arn = f"arn:aws:sagemaker:us-east-1:123456789012:model-package/{group}/{version}"

    name = model_card_name(arn)

    assert name == model_card_name(arn)
    assert len(name) <= MAX_MODEL_CARD_NAME_LENGTH
    assert NAME_PATTERN.match(name)
    assert name.endswith(f"-{version}")
    assert name != model_card_name(arn.replace(f"/{version}", f"/{int(version) + 1}"))


def test_model_card_name_refuses_an_unversioned_package_arn():
    with pytest.raises(ValueError, match="not a versioned model package ARN"):
        model_card_name("arn:aws:sagemaker:us-east-1:123456789012:model-package/unversioned")
