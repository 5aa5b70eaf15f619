"""The small helpers the workflows are built with reject what would produce broken or unsafe ASL."""

from __future__ import annotations

import pytest

from contract.placeholders import placeholder
from workflows.policies import retryable_errors, with_partition_placeholder
from workflows.sagemaker_params import execution_scoped_name
from workflows.sdk import steps


def test_placeholder_outside_the_contract_is_refused() -> None:
    assert placeholder("KmsKeyArn") == "${KmsKeyArn}"
    with pytest.raises(ValueError, match=r"unknown placeholder 'KmsKey': add it to docs/interfaces.md"):
        placeholder("KmsKey")


@pytest.mark.parametrize("suffix", ["model", "cfg", "train"])
def test_name_suffixes_of_at_most_five_characters_are_accepted(suffix: str) -> None:
    assert execution_scoped_name(suffix) == f"States.Format('{{}}-{suffix}', $$.Execution.Name)"


@pytest.mark.parametrize("suffix", ["deploy", "train_", "a b"])
def test_name_suffixes_that_could_break_sagemaker_names_are_refused(suffix: str) -> None:
    with pytest.raises(ValueError, match=r"must be \[a-zA-Z0-9-\] and at most 5 characters"):
        execution_scoped_name(suffix)


def test_sdk_resources_get_the_partition_placeholder() -> None:
    task = steps.Task("Publish", resource="arn:aws-us-gov:states:::sns:publish")
    assert with_partition_placeholder(task).fields["resource"] == "arn:${Partition}:states:::sns:publish"


def test_a_resource_that_is_not_an_integration_is_refused() -> None:
    task = steps.Task("Legacy", resource="arn:aws:lambda:us-east-1:111122223333:function:legacy")
    with pytest.raises(ValueError, match=r"state Legacy: Resource .* is not a Step Functions integration ARN"):
        with_partition_placeholder(task)


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        ("arn:${Partition}:states:::sagemaker:createTrainingJob.sync", "SageMaker.AmazonSageMakerException"),
        ("arn:${Partition}:states:::aws-sdk:sagemaker:describeEndpoint", "SageMaker.SageMakerException"),
        ("arn:${Partition}:states:::lambda:invoke", "Lambda.TooManyRequestsException"),
        ("arn:${Partition}:states:::sns:publish", "SNS.ThrottledException"),
    ],
)
def test_retryable_errors_follow_the_integration(resource: str, expected: str) -> None:
    assert expected in retryable_errors(resource)


def test_an_integration_without_a_retry_policy_is_refused() -> None:
    with pytest.raises(ValueError, match=r"no retry policy for integration 'aws-sdk:s3'"):
        retryable_errors("arn:${Partition}:states:::aws-sdk:s3:getObject")
