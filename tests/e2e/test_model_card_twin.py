"""The model card's status follows the package's approval on the twin: the registry's events, the template's rule,
the model_card function and the twin's Model Cards API, end to end (stand-in state machines: no training here)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from twin_runtime import stand_in_twin

from emulator.sagemaker_local.model_cards import content_problems
from emulator.twin import LocalTwin

pytestmark = pytest.mark.e2e

PASS_ASL = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}
REPORT = {
    "metrics": {"auc": 0.98, "accuracy": 0.95},
    "per_class": {},
    "feature_attributions": {"mean radius": 0.4},
    "n_test": 114,
    "bias": {"facet": None, "reason": "no facet configured"},
}
# Real seconds to wait for the rule's asynchronous delivery to the function.
DELIVERY_SECONDS = 30.0


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTwin]:
    with stand_in_twin(tmp_path_factory.mktemp("statemachines"), PASS_ASL, PASS_ASL) as started:
        bucket = started.stack.outputs["ArtifactBucketName"]
        boto3.client("s3").put_object(Bucket=bucket, Key="runs/e2e/evaluation/evaluation.json", Body=json.dumps(REPORT))
        yield started


def _register(twin: LocalTwin) -> str:
    bucket = twin.stack.outputs["ArtifactBucketName"]
    return str(
        boto3.client("sagemaker").create_model_package(
            ModelPackageGroupName=twin.stack.outputs["ModelPackageGroupName"],
            ModelApprovalStatus="PendingManualApproval",
            InferenceSpecification={
                "Containers": [{"Image": "xgboost:3.0-5", "ModelDataUrl": f"s3://{bucket}/models/m/model.tar.gz"}],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
            CustomerMetadataProperties={"evaluation_uri": f"s3://{bucket}/runs/e2e/evaluation/evaluation.json"},
        )["ModelPackageArn"]
    )


def _card_when(package_arn: str, status: str) -> dict[str, Any]:
    """The package's card once it has `status` (its name is the package's group and version)."""
    group, version = package_arn.rsplit("/", 2)[-2:]
    deadline = time.monotonic() + DELIVERY_SECONDS
    seen: Any = None
    while time.monotonic() < deadline:
        cards = boto3.client("sagemaker").list_model_cards(NameContains=f"{group}-{version}")["ModelCardSummaries"]
        seen = [card["ModelCardStatus"] for card in cards]
        if seen == [status]:
            return dict(boto3.client("sagemaker").describe_model_card(ModelCardName=f"{group}-{version}"))
        time.sleep(0.2)
    raise AssertionError(f"the card of {package_arn} is {seen}, not [{status!r}], after {DELIVERY_SECONDS} s")


def test_a_registered_package_gets_a_pending_review_card_encrypted_with_the_stack_key(twin: LocalTwin) -> None:
    package = _register(twin)

    card = _card_when(package, "PendingReview")

    assert card["SecurityConfig"] == {"KmsKeyId": twin.stack.outputs["KmsKeyArn"]}
    assert content_problems(json.loads(card["Content"])) == []


def test_approving_a_package_approves_its_card(twin: LocalTwin) -> None:
    package = _register(twin)
    _card_when(package, "PendingReview")

    boto3.client("sagemaker").update_model_package(
        ModelPackageArn=package, ModelApprovalStatus="Approved", ApprovalDescription="independent review passed"
    )

    card = _card_when(package, "Approved")
    details = json.loads(card["Content"])["model_package_details"]
    assert (details["model_approval_status"], details["approval_description"]) == (
        "Approved",
        "independent review passed",
    )


def test_rejecting_a_package_archives_its_card(twin: LocalTwin) -> None:
    package = _register(twin)
    _card_when(package, "PendingReview")

    boto3.client("sagemaker").update_model_package(ModelPackageArn=package, ModelApprovalStatus="Rejected")

    assert _card_when(package, "Archived")["ModelCardStatus"] == "Archived"
