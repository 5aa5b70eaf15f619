"""Glue for `deploy`: sends the sample rows to the new endpoint and checks one prediction comes back per row.

Called by a `LambdaStep` with `{"endpoint_name": "...", "sample_uri": "s3://.../sample.csv"}` (feature
rows, no header, no label: preprocess's `sample/sample.csv`). Returns `endpoint_name`, `rows` and
`predictions`. Raises `SmokeTestFailed` when the endpoint errors or answers with anything but one
prediction per row, and `InvalidPayloadError` for a bad payload.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError
from common.observability import count_decision, instrumented_handler, logger
from common.parsing import MISSING_OBJECT_CODES, split_s3_uri, validated_request
from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext


class SmokeTestFailed(RuntimeError):
    """The endpoint did not answer the sample as a serving model must; the message says how."""


class SmokeTestRequest(BaseModel):
    endpoint_name: str = Field(pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
    sample_uri: str = Field(pattern=r"^s3://[^/]+/.+")


def read_sample_rows(s3_client: Any, sample_uri: str) -> list[str]:
    """The sample's non-empty CSV lines."""
    bucket, key = split_s3_uri(sample_uri)
    try:
        text = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in MISSING_OBJECT_CODES:
            raise
        raise SmokeTestFailed(f"sample {sample_uri} does not exist; did preprocess write it?") from None
    rows = [line for line in text.splitlines() if line.strip()]
    if not rows:
        raise SmokeTestFailed(f"sample {sample_uri} has no rows to send")
    return rows


def smoke_test(request: SmokeTestRequest, s3_client: Any, runtime_client: Any) -> dict[str, Any]:
    """Invoke the endpoint with the sample as CSV and check the JSON answer has one prediction per row."""
    rows = read_sample_rows(s3_client, request.sample_uri)
    try:
        response = runtime_client.invoke_endpoint(
            EndpointName=request.endpoint_name,
            ContentType="text/csv",
            Accept="application/json",
            Body="\n".join(rows).encode("utf-8"),
        )
    except ClientError as error:
        raise SmokeTestFailed(f"endpoint {request.endpoint_name} refused the sample: {error}") from None
    body = response["Body"].read()
    try:
        predictions = json.loads(body)["predictions"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise SmokeTestFailed(
            f"endpoint {request.endpoint_name} answered {body[:200]!r}, not JSON with a 'predictions' list"
        ) from None
    if not isinstance(predictions, list) or len(predictions) != len(rows):
        count = len(predictions) if isinstance(predictions, list) else type(predictions).__name__
        raise SmokeTestFailed(f"endpoint {request.endpoint_name} returned {count} predictions for {len(rows)} rows")
    return {"endpoint_name": request.endpoint_name, "rows": len(rows), "predictions": predictions}


@instrumented_handler(correlation_id_path="endpoint_name")
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = validated_request(SmokeTestRequest, event, "smoke_test")
    try:
        result = smoke_test(request, boto3.client("s3"), boto3.client("sagemaker-runtime"))
    except SmokeTestFailed:
        count_decision("SmokeTestFailed")
        raise
    count_decision("SmokeTestPassed")
    logger.info("smoke test passed", extra={"endpoint_name": request.endpoint_name, "rows": result["rows"]})
    return result
