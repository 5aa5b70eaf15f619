"""The served twin's error shaping (emulator.serve.errors) in-process: every failure in its request's protocol."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from werkzeug.test import Client

from emulator.serve.errors import AwsShapedErrors

SIGNED = (
    "AWS4-HMAC-SHA256 Credential=testing/20261201/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0"
)


def _app(behaviour: str) -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if behaviour == "missing-member":
            raise KeyError("EndpointName")
        if behaviour == "broken":
            raise RuntimeError("a bug")
        if behaviour == "flask-404":
            start_response("404 NOT FOUND", [("Content-Type", "text/html; charset=utf-8")])
            return [b"<!doctype html><title>404 Not Found</title>"]
        start_response("200 OK", [("Content-Type", "application/x-amz-json-1.1")])
        return [environ["wsgi.input"].read()]

    return app


def _call(
    behaviour: str, service: str | None, path: str = "/", body: bytes = b"{}", headers: dict[str, str] | None = None
) -> Any:
    headers = dict(headers or {})
    if service is not None:
        headers["Authorization"] = SIGNED.format(service=service)
    return Client(AwsShapedErrors(_app(behaviour))).post(path, data=body, headers=headers)


JSON_TARGET = {"X-Amz-Target": "SageMaker.DescribeEndpoint", "Content-Type": "application/x-amz-json-1.1"}


def test_a_json_protocol_body_that_is_not_json_is_a_serialization_exception() -> None:
    response = _call("echo", "sagemaker", body=b"{not json", headers=JSON_TARGET)
    assert response.status_code == 400
    assert json.loads(response.data)["__type"] == "SerializationException"


def test_a_valid_body_reaches_the_service_intact() -> None:
    response = _call("echo", "sagemaker", body=b'{"EndpointName": "e"}', headers=JSON_TARGET)
    assert response.status_code == 200
    assert json.loads(response.data) == {"EndpointName": "e"}


def test_a_missing_member_is_a_validation_exception() -> None:
    response = _call("missing-member", "sagemaker", headers=JSON_TARGET)
    assert response.status_code == 400
    assert json.loads(response.data)["__type"] == "ValidationException"
    assert "EndpointName" in json.loads(response.data)["message"]


def test_a_failure_of_the_twin_is_an_internal_failure_without_a_traceback() -> None:
    response = _call("broken", "sagemaker", headers=JSON_TARGET)
    assert response.status_code == 500
    assert json.loads(response.data)["__type"] == "InternalFailure"
    assert "Traceback" not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("service", "headers", "content_type", "code_of"),
    [
        ("s3", {}, "application/xml", lambda r: r.get_data(as_text=True).split("<Code>")[1].split("</Code>")[0]),
        (
            "sns",
            {"Content-Type": "application/x-www-form-urlencoded"},
            "text/xml",
            lambda r: r.get_data(as_text=True).split("<Code>")[1].split("</Code>")[0],
        ),
        ("lambda", {"Content-Type": "application/json"}, "application/json", lambda r: r.headers["x-amzn-ErrorType"]),
    ],
)
def test_a_route_no_service_has_is_an_unknown_operation_in_the_protocol(
    service: str, headers: dict[str, str], content_type: str, code_of: Callable[[Any], str]
) -> None:
    response = _call("flask-404", service, path="/nowhere", headers=headers)
    assert response.status_code == 404
    assert response.headers["Content-Type"] == content_type
    assert code_of(response) == "UnknownOperationException"
    assert "<html" not in response.get_data(as_text=True).lower()


def test_unsigned_requests_and_motos_control_api_are_refused() -> None:
    unsigned = _call("echo", None)
    assert unsigned.status_code == 403
    assert "<Code>MissingAuthenticationToken</Code>" in unsigned.get_data(as_text=True)
    control = _call("echo", "s3", path="/moto-api/reset")
    assert control.status_code == 403
    assert "<Code>AccessDeniedException</Code>" in control.get_data(as_text=True)
