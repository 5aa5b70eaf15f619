"""A failed SageMaker job is notified with its own FailureReason, never with the rest of its Describe* output."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from stubbed_engine import run_stubbed

EXECUTION = "manual-0123456789abcdef"
SECRETS = ("subnet-0123456789abcdef0", "arn:aws:kms:us-east-1:123456789012:key/abcd", "sg-0123456789abcdef0")
DESCRIBED_JOB = {
    "ProcessingJobName": f"{EXECUTION}-prep",
    "ProcessingJobStatus": "Failed",
    "NetworkConfig": {"VpcConfig": {"Subnets": [SECRETS[0]], "SecurityGroupIds": [SECRETS[2]]}},
    "ProcessingOutputConfig": {"KmsKeyId": SECRETS[1]},
}


def _fail_with(training_definition: dict[str, Any], fail: str, error: str, cause: str) -> str:
    """Runs the `fail` path from its entry with `$.error` as a Catch would leave it; returns the notification."""
    definition = copy.deepcopy(training_definition)
    definition["States"]["InjectCaughtError"] = {
        "Type": "Pass",
        "Result": {"Error": error, "Cause": cause},
        "ResultPath": "$.error",
        "Next": f"Explain{fail}",
    }
    definition["StartAt"] = "InjectCaughtError"
    run = run_stubbed(definition, {}, {}, EXECUTION)
    assert (run.status, run.error) == ("FAILED", fail)
    message: str = run.requests[f"Notify{fail}"]["Message"]
    return message


@pytest.mark.parametrize("fail", ["PreprocessingFailed", "TrainingFailed", "EvaluationFailed"])
def test_a_failed_job_is_notified_with_its_failure_reason_only(training_definition: dict[str, Any], fail: str) -> None:
    reason = "AlgorithmError: ERROR: data.csv: column 'x2', data row 3: inf is infinite"
    cause = json.dumps({**DESCRIBED_JOB, "FailureReason": reason})

    message = _fail_with(training_definition, fail, "States.TaskFailed", cause)

    assert f"Why: States.TaskFailed: {reason}." in message
    assert not any(secret in message for secret in SECRETS)
    assert message.endswith(f"execution:stubbed:{EXECUTION}")


def test_a_job_without_failure_reason_says_so(training_definition: dict[str, Any]) -> None:
    message = _fail_with(training_definition, "TrainingFailed", "States.TaskFailed", json.dumps(DESCRIBED_JOB))

    assert "Why: States.TaskFailed: no FailureReason." in message
    assert not any(secret in message for secret in SECRETS)


def test_an_error_with_a_text_cause_is_notified_by_name(training_definition: dict[str, Any]) -> None:
    cause = "Rate exceeded (Service: SageMaker, Status Code: 400, Request ID: 1)"

    message = _fail_with(training_definition, "PreprocessingFailed", "SageMaker.ThrottlingException", cause)

    assert "Why: error SageMaker.ThrottlingException." in message
    assert "Rate exceeded" not in message
