"""End to end on the local twin: a training whose data_uri lies outside the stack's data prefix is refused by name."""

from __future__ import annotations

import io

import boto3
import pytest
from moto.sns.models import sns_backends

from contract.local_account import LOCAL_ACCOUNT_ID, LOCAL_REGION
from emulator.commands.lifecycle import started_twin

pytestmark = pytest.mark.e2e


def test_a_data_location_outside_the_stack_prefix_fails_as_data_outside_stack_prefix_with_a_notification(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    work = tmp_path_factory.mktemp("data-location")
    with started_twin(work / "twin", io.StringIO()) as twin:
        outputs = twin.stack.outputs
        outside = f"s3://{outputs['DataBucketName']}/ground-truth/"
        boto3.client("s3").put_object(Bucket=outputs["DataBucketName"], Key="ground-truth/labels.csv", Body=b"y\n1\n")

        result = twin.wait_for_execution(twin.start_execution("training", {"data_uri": outside}), timeout=300)

        topic = sns_backends[LOCAL_ACCOUNT_ID][LOCAL_REGION].topics[outputs["NotificationTopicArn"]]
        notifications = [(subject, message) for _, message, subject, *_ in topic.sent_notifications]
        packages = boto3.client("sagemaker").list_model_packages(
            ModelPackageGroupName=outputs["ModelPackageGroupName"]
        )["ModelPackageSummaryList"]
        jobs = boto3.client("sagemaker").list_processing_jobs()["ProcessingJobSummaries"]

    assert result.status == "FAILED"
    assert result.error == "DataOutsideStackPrefix"
    [(subject, message)] = notifications
    assert subject == "training: DataOutsideStackPrefix"
    assert f"data_uri {outside} is outside the stack's data location" in message
    assert packages == []
    assert jobs == []
