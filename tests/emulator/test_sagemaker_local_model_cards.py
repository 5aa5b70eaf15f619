"""The local SageMaker's Model Cards API through boto3: SageMaker's schema, status vocabulary, versions and key."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from emulator.clock import Clock
from emulator.sagemaker_local import LocalSageMaker

KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
CONTENT = {
    "model_overview": {"model_name": "breast-cancer", "model_version": 1},
    "intended_uses": {"risk_rating": "Low"},
    "evaluation_details": [
        {
            "name": "test",
            "metric_groups": [{"name": "m", "metric_data": [{"name": "auc", "type": "number", "value": 0.9}]}],
        }
    ],
}


@pytest.fixture
def sagemaker(tmp_path: Path) -> Iterator[Any]:
    with mock_aws():
        backend = LocalSageMaker(tmp_path / "sagemaker", Clock(1000.0))
        backend.install()
        try:
            yield boto3.client("sagemaker", region_name="us-east-1")
        finally:
            backend.close()


def _create(client: Any, content: Any = None, status: str = "PendingReview", name: str = "card-1") -> str:
    return str(
        client.create_model_card(
            ModelCardName=name,
            Content=json.dumps(CONTENT if content is None else content),
            ModelCardStatus=status,
            SecurityConfig={"KmsKeyId": KMS_KEY},
        )["ModelCardArn"]
    )


def _error(call: Any) -> dict[str, str]:
    with pytest.raises(ClientError) as raised:
        call()
    return dict(raised.value.response["Error"])


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ({"model_overview": {"model_version": 0}}, "model_overview/model_version: 0 is less than the minimum of 1"),
        ({"intended_uses": {"risk_rating": "Severe"}}, "intended_uses/risk_rating: 'Severe' is not one of"),
        ({"unknown_section": {}}, "(root): Additional properties are not allowed ('unknown_section' was unexpected)"),
        ({"evaluation_details": [{"metric_groups": []}]}, "evaluation_details/0: 'name' is a required property"),
        ({"additional_information": {"custom_details": {"k": "x" * 1025}}}, "custom_details/k: 'xxxx"),
    ],
)
def test_the_twin_refuses_schema_invalid_content_with_a_validation_exception(sagemaker, content, named):
    error = _error(lambda: _create(sagemaker, content))

    assert error["Code"] == "ValidationException"
    assert "Content does not follow the model card JSON schema" in error["Message"]
    assert named in error["Message"]


def test_the_twin_refuses_content_that_is_not_json(sagemaker):
    error = _error(lambda: sagemaker.create_model_card(ModelCardName="c", Content="{not json", ModelCardStatus="Draft"))

    assert (error["Code"], error["Message"].split(":")[0]) == ("ValidationException", "Content is not valid JSON")


def test_the_twin_refuses_a_status_outside_the_model_card_vocabulary(sagemaker):
    error = _error(lambda: _create(sagemaker, status="Rejected"))

    assert error["Code"] == "ValidationException"
    assert "Member must satisfy enum value set: [Draft, PendingReview, Approved, Archived]" in error["Message"]


def test_a_card_keeps_its_kms_key_and_a_second_create_conflicts(sagemaker):
    arn = _create(sagemaker)

    described = sagemaker.describe_model_card(ModelCardName=arn)

    assert described["SecurityConfig"] == {"KmsKeyId": KMS_KEY}
    assert json.loads(described["Content"]) == CONTENT
    assert _error(lambda: _create(sagemaker))["Code"] == "ConflictException"


def test_a_status_update_keeps_the_version_and_a_content_update_adds_one(sagemaker):
    _create(sagemaker)

    sagemaker.update_model_card(ModelCardName="card-1", ModelCardStatus="Approved")
    after_status = sagemaker.describe_model_card(ModelCardName="card-1")
    sagemaker.update_model_card(ModelCardName="card-1", Content=json.dumps({**CONTENT, "intended_uses": {}}))
    after_content = sagemaker.describe_model_card(ModelCardName="card-1")

    assert (after_status["ModelCardVersion"], after_status["ModelCardStatus"]) == (1, "Approved")
    assert json.loads(after_status["Content"]) == CONTENT
    assert (after_content["ModelCardVersion"], after_content["ModelCardStatus"]) == (2, "Approved")
    assert json.loads(sagemaker.describe_model_card(ModelCardName="card-1", ModelCardVersion=1)["Content"]) == CONTENT
    versions = sagemaker.list_model_card_versions(ModelCardName="card-1")["ModelCardVersionSummaryList"]
    assert [v["ModelCardVersion"] for v in versions] == [2, 1]


def test_an_archived_cards_content_cannot_change(sagemaker):
    _create(sagemaker, status="Archived")

    error = _error(lambda: sagemaker.update_model_card(ModelCardName="card-1", Content=json.dumps(CONTENT)))

    assert (error["Code"], error["Message"]) == ("ValidationException", "Model Card is in Archived state")


def test_an_update_of_schema_invalid_content_is_refused_and_the_card_kept(sagemaker):
    _create(sagemaker)

    error = _error(
        lambda: sagemaker.update_model_card(ModelCardName="card-1", Content=json.dumps({"intended_uses": []}))
    )

    assert error["Code"] == "ValidationException"
    assert sagemaker.describe_model_card(ModelCardName="card-1")["ModelCardVersion"] == 1


def test_describing_a_missing_card_is_resource_not_found(sagemaker):
    assert _error(lambda: sagemaker.describe_model_card(ModelCardName="nope"))["Code"] == "ResourceNotFound"


def test_list_model_cards_filters_by_status_and_name(sagemaker):
    _create(sagemaker, name="card-a", status="Approved")
    _create(sagemaker, name="card-b", status="PendingReview")

    approved = sagemaker.list_model_cards(ModelCardStatus="Approved")["ModelCardSummaries"]
    named = sagemaker.list_model_cards(NameContains="-b")["ModelCardSummaries"]

    assert [card["ModelCardName"] for card in approved] == ["card-a"]
    assert [card["ModelCardName"] for card in named] == ["card-b"]


def test_exporting_a_card_to_pdf_is_refused_naming_the_action(sagemaker):
    _create(sagemaker)

    error = _error(
        lambda: sagemaker.create_model_card_export_job(
            ModelCardName="card-1", ModelCardExportJobName="export", OutputConfig={"S3OutputPath": "s3://b/p"}
        )
    )

    assert error["Code"] == "UnknownOperationException"
    assert error["Message"].startswith("CreateModelCardExportJob: The local twin does not export model cards")
