"""smoke_test: one prediction per sample row, or a SmokeTestFailed that says what came back."""

from __future__ import annotations

import io
import json
from typing import Any

import boto3
import pytest
import smoke_test
from botocore.response import StreamingBody
from botocore.stub import Stubber
from common.parsing import InvalidPayloadError
from lambda_test_support import load_event
from smoke_test import SmokeTestFailed, SmokeTestRequest

SAMPLE_ROWS = ["17.99,10.38,122.8,1001.0", "13.54,14.36,87.46,566.3", "9.504,12.44,60.34,273.9"]


@pytest.fixture
def sample(aws: None) -> Any:
    """The payload's sample.csv in a moto bucket."""
    bucket, key = load_event("smoke_test/payload.json")["sample_uri"].removeprefix("s3://").split("/", 1)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key=key, Body="\n".join(SAMPLE_ROWS) + "\n")
    return s3


def _endpoint_answering(body: bytes) -> tuple[Any, Stubber]:
    """A sagemaker-runtime client whose InvokeEndpoint returns `body` for the payload's CSV rows."""
    runtime = boto3.client("sagemaker-runtime")
    stubber = Stubber(runtime)
    stubber.add_response(
        "invoke_endpoint",
        {"Body": StreamingBody(io.BytesIO(body), len(body)), "ContentType": "application/json"},
        {
            "EndpointName": "mlops-local-endpoint",
            "ContentType": "text/csv",
            "Accept": "application/json",
            "Body": "\n".join(SAMPLE_ROWS).encode(),
        },
    )
    return runtime, stubber


def test_one_prediction_per_row_passes(sample):
    predictions = [{"score": 0.02, "label": 0}, {"score": 0.91, "label": 1}, {"score": 0.88, "label": 1}]
    runtime, stubber = _endpoint_answering(json.dumps({"predictions": predictions}).encode())

    with stubber:
        result = smoke_test.smoke_test(SmokeTestRequest(**load_event("smoke_test/payload.json")), sample, runtime)

    assert result == {"endpoint_name": "mlops-local-endpoint", "rows": 3, "predictions": predictions}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"predictions": [{"score": 0.5, "label": 1}]}', "returned 1 predictions for 3 rows"),
        (b'{"scores": [1, 2, 3]}', "not JSON with a 'predictions' list"),
        (b"0.1\n0.9\n0.8", "not JSON with a 'predictions' list"),
        (b'{"predictions": "all good"}', "returned str predictions for 3 rows"),
    ],
)
def test_answer_without_one_prediction_per_row_fails(sample, body, message):
    runtime, stubber = _endpoint_answering(body)

    with stubber, pytest.raises(SmokeTestFailed, match=message):
        smoke_test.smoke_test(SmokeTestRequest(**load_event("smoke_test/payload.json")), sample, runtime)


def test_endpoint_error_fails_the_smoke_test(sample):
    runtime = boto3.client("sagemaker-runtime")
    stubber = Stubber(runtime)
    stubber.add_client_error("invoke_endpoint", service_error_code="ModelError", http_status_code=424)
    request = SmokeTestRequest(**load_event("smoke_test/payload.json"))

    with stubber, pytest.raises(SmokeTestFailed, match="refused the sample"):
        smoke_test.smoke_test(request, sample, runtime)


def test_empty_sample_fails_before_calling_the_endpoint(sample):
    payload = load_event("smoke_test/payload.json")
    bucket, key = payload["sample_uri"].removeprefix("s3://").split("/", 1)
    sample.put_object(Bucket=bucket, Key=key, Body="\n")

    with pytest.raises(SmokeTestFailed, match="has no rows to send"):
        smoke_test.smoke_test(SmokeTestRequest(**payload), sample, boto3.client("sagemaker-runtime"))


def test_payload_without_sample_uri_is_rejected_naming_the_field(lambda_context):
    with pytest.raises(InvalidPayloadError, match=r"smoke_test payload is invalid \(sample_uri: Field required\)"):
        smoke_test.handler(load_event("smoke_test/missing_sample_uri.json"), lambda_context)


def test_missing_sample_fails_naming_the_uri(aws):
    payload = load_event("smoke_test/payload.json")

    with pytest.raises(SmokeTestFailed, match="does not exist; did preprocess write it"):
        smoke_test.smoke_test(SmokeTestRequest(**payload), boto3.client("s3"), boto3.client("sagemaker-runtime"))
