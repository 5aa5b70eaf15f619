"""AWS-shaped error responses for the served twin: every failure a client sees is in its service's error protocol.

moto's server answers a request it cannot route with Flask's HTML 404/405 page and lets an exception in a
handler (a body that is not JSON, a missing parameter) escape as an HTML 500 page. A client of AWS expects the
error of its protocol instead, which botocore parses into a `ClientError` with a code and a message:

- JSON protocols (an `X-Amz-Target` header: Step Functions, SageMaker, EventBridge, CloudWatch's JSON protocol):
  `{"__type": code, "message": ...}`;
- S3 (REST-XML): `<Error><Code>..</Code><Message>..</Message></Error>`;
- query protocols (a form-encoded body: SNS, CloudFormation, STS, IAM): `<ErrorResponse><Error>..</Error>..`;
- REST-JSON (Lambda, SageMaker Runtime): a JSON body and the `x-amzn-ErrorType` header.

`AwsShapedErrors` wraps the WSGI application and rewrites those answers; an AWS-shaped error moto produced
itself passes through untouched.
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

logger = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_REASONS = {400: "Bad Request", 403: "Forbidden", 404: "Not Found", 500: "Internal Server Error"}


def signing_service(environ: dict[str, Any]) -> str | None:
    """The service named in the request's SigV4 credential scope (`s3`, `states`, `sagemaker`, ...); None unsigned."""
    auth = environ.get("HTTP_AUTHORIZATION") or ""
    if auth.startswith("AWS4-HMAC-SHA256"):
        scope = auth.split("Credential=", 1)[-1].split(",", 1)[0]
    else:
        # A presigned URL carries its signature in the query string.
        query = parse_qs(str(environ.get("QUERY_STRING") or ""))
        scope = (query.get("X-Amz-Credential") or [""])[0]
    parts = scope.split("/")
    return parts[3].lower() if len(parts) == 5 else None


def error_response(
    environ: dict[str, Any], status: int, code: str, message: str
) -> tuple[str, list[tuple[str, str]], bytes]:
    """Status line, headers and body of the error `code` in the protocol the request was made in."""
    request_id = str(uuid.uuid4())
    status_line = f"{status} {_REASONS.get(status, 'Error')}"
    headers = [("x-amzn-RequestId", request_id)]
    service = signing_service(environ)
    content_type = environ.get("CONTENT_TYPE") or ""
    if environ.get("HTTP_X_AMZ_TARGET"):
        body = json.dumps({"__type": code, "message": message}).encode()
        headers += [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-query-error", f"{code};Sender")]
    elif service == "s3":
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{escape(code)}</Code>'
            f"<Message>{escape(message)}</Message><RequestId>{request_id}</RequestId></Error>"
        ).encode()
        headers += [("Content-Type", "application/xml"), ("x-amz-request-id", request_id)]
    elif content_type.startswith("application/x-www-form-urlencoded") or service is None:
        fault = "Sender" if status < 500 else "Receiver"
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<ErrorResponse><Error><Type>{fault}</Type>'
            f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        headers += [("Content-Type", "text/xml")]
    else:
        body = json.dumps({"message": message}).encode()
        headers += [("Content-Type", "application/json"), ("x-amzn-ErrorType", code)]
    headers.append(("Content-Length", str(len(body))))
    return status_line, headers, body


class AwsShapedErrors:
    """WSGI middleware: see the module docstring."""

    def __init__(self, app: WsgiApp) -> None:
        self._app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        refusal = _refusal(environ)
        if refusal is not None:
            return _send(start_response, error_response(environ, *refusal))
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], Any]:
            captured["status"], captured["headers"] = status, headers
            return lambda _chunk: None  # the body is returned below, never written through this callable

        try:
            chunks = self._app(environ, capture)
            try:
                body = b"".join(chunks)
            finally:
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()
        except Exception as error:
            return _send(start_response, _from_exception(environ, error))
        status = int(str(captured.get("status", "500")).split(" ", 1)[0])
        headers = list(captured.get("headers", []))
        content_type = next((value for name, value in headers if name.lower() == "content-type"), "")
        if status >= 400 and content_type.startswith("text/html"):
            # Flask's own page: no route of the service matched (404), or not with this method (405).
            code = "UnknownOperationException" if status in (404, 405) else "InternalFailure"
            message = (
                f"{environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')} is no operation of "
                f"{signing_service(environ) or 'any service'} the local twin serves"
            )
            return _send(start_response, error_response(environ, 404 if status == 405 else status, code, message))
        start_response(captured.get("status", "500 Internal Server Error"), headers)
        return [body]


def _refusal(environ: dict[str, Any]) -> tuple[int, str, str] | None:
    path = str(environ.get("PATH_INFO") or "")
    if path.startswith("/moto-api"):
        # moto's control API (reset, config, seeding) would change the twin under the running stack: not an AWS API.
        return 403, "AccessDeniedException", f"{path} is moto's control API, which the local twin does not serve"
    if signing_service(environ) is None:
        return (
            403,
            "MissingAuthenticationToken",
            "The request is not signed with AWS Signature Version 4: use an AWS SDK or CLI with any credentials",
        )
    if environ.get("HTTP_X_AMZ_TARGET"):
        # A JSON-protocol body that is not JSON: moto would read what it can of it and fail later, elsewhere.
        problem = _json_body_problem(environ)
        if problem is not None:
            return 400, "SerializationException", f"The request body is not JSON: {problem}"
    return None


def _json_body_problem(environ: dict[str, Any]) -> str | None:
    """Why the request's body is not a JSON document (None when it is, or empty); the body stays readable."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return f"Content-Length {environ.get('CONTENT_LENGTH')!r} is not a number"
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)
    if not body.strip():
        return None
    try:
        json.loads(body)
    except ValueError as error:
        return str(error)
    return None


def _from_exception(environ: dict[str, Any], error: Exception) -> tuple[str, list[tuple[str, str]], bytes]:
    service = signing_service(environ)
    if isinstance(error, NotImplementedError):
        logger.info("Refused a %s request the twin does not serve: %s", service, error)
        return error_response(environ, 400, "UnknownOperationException", f"The local twin does not serve it: {error}")
    if isinstance(error, ValueError):
        # A body that is not JSON (json.JSONDecodeError is a ValueError): refused before anything runs, as AWS does.
        logger.info("Refused a malformed %s request: %s", service, error)
        return error_response(environ, 400, "SerializationException", f"The request body could not be read: {error}")
    if isinstance(error, KeyError | TypeError):
        # A member the operation needs is missing or of the wrong type.
        logger.info("Refused an invalid %s request: %s: %s", service, type(error).__name__, error)
        message = (
            f"The request is missing a required member or has one of the wrong type: {type(error).__name__}: {error}"
        )
        return error_response(environ, 400, "ValidationException", message)
    logger.exception("The local twin failed on a %s request", service)
    return error_response(
        environ, 500, "InternalFailure", f"The local twin failed on this request: {type(error).__name__}: {error}"
    )


def _send(start_response: Callable[..., Any], response: tuple[str, list[tuple[str, str]], bytes]) -> list[bytes]:
    status, headers, body = response
    start_response(status, headers)
    return [body]
