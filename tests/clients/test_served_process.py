"""`mlops up` as a process: a port in use, a second twin beside the first, Ctrl-C, and malformed requests.

These run against the twin only (a real stack has no process to stop); the malformed requests go to the session's
served twin from this process, signed as any SDK signs them, or not signed at all.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from client_suite import MLOPS, ServedTwin, Target, client_environment, start_served_twin, wait_for

twin_only = pytest.mark.skipif(bool(os.environ.get("AWS_SAM_STACK_NAME")), reason="about the served twin's process")


def test_port_in_use_is_refused_naming_the_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        completed = subprocess.run(
            [MLOPS, "up", "--port", str(port), "--work-dir", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert completed.returncode == 2
    assert f"port {port} on 127.0.0.1 is in use" in completed.stderr
    assert "--port" in completed.stderr
    # Refused before any twin was started: nothing was printed for clients.
    assert "AWS_ENDPOINT_URL" not in completed.stdout
    assert time.monotonic() - started < 60


@twin_only
@pytest.mark.e2e
def test_second_twin_runs_beside_the_first_and_ctrl_c_leaves_no_child_process(
    served_twin: ServedTwin, target: Target, tmp_path: Path
) -> None:
    # GIVEN a second `mlops up` on another port, beside the session's
    second = start_served_twin(tmp_path / "second", "--approval", "auto")
    try:
        assert second.url != served_twin.url
        second_target = Target(client_environment(second.exports), second.stack_name, True, 900)
        second_target.load_outputs()
        # Each answers from its own twin: an object put into the second is not in the first.
        bucket = second_target.outputs["DataBucketName"]
        marker = tmp_path / "marker.txt"
        marker.write_text("only in the second twin")
        second_target.run_cli("s3", "cp", str(marker), f"s3://{bucket}/notes/marker.txt")
        assert second_target.aws("s3api", "head-object", "--bucket", bucket, "--key", "notes/marker.txt")
        first_listing = target.aws("s3api", "list-objects-v2", "--bucket", bucket, "--prefix", "notes/") or {}
        assert not first_listing.get("Contents")

        # WHEN an upload has started a training job (a child process of the twin) and Ctrl-C arrives
        data = tmp_path / "data.csv"
        data.write_text(_small_dataset())
        second_target.run_cli("s3", "cp", str(data), f"s3://{bucket}/incoming/data.csv")
        parent = psutil.Process(second.process.pid)
        children = wait_for("a job process of the second twin", lambda: parent.children(recursive=True), 120, 0.5)
        pids = {child.pid for child in children}
    finally:
        code = second.stop()

    # THEN it exits cleanly and none of its child processes is left
    assert code == 0, "".join(second.lines[-20:])
    left = [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    assert left == [], f"child processes left running: {left}"
    assert "# the local twin stopped" in "".join(second.lines)
    # and the first twin still answers
    assert target.aws("stepfunctions", "list-state-machines")["stateMachines"]


def _small_dataset() -> str:
    from sklearn.datasets import load_breast_cancer

    return str(load_breast_cancer(as_frame=True).frame.to_csv(index=False))


def _send(url: str, service: str | None, body: bytes, headers: dict[str, str], path: str = "/") -> tuple[int, Any, str]:
    request = AWSRequest(method="POST", url=url + path, data=body, headers=headers)
    if service is not None:
        SigV4Auth(Credentials("testing", "testing"), service, "us-east-1").add_auth(request)
    # The served twin's own http://127.0.0.1 URL, as `mlops up` printed it.
    raw = urllib.request.Request(url + path, data=body, headers=dict(request.headers.items()), method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(raw, timeout=30) as response:  # noqa: S310
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode()


@twin_only
@pytest.mark.e2e
@pytest.mark.parametrize(
    ("service", "headers", "body", "path", "status", "code"),
    [
        pytest.param(
            "states",
            {"X-Amz-Target": "AWSStepFunctions.ListExecutions", "Content-Type": "application/x-amz-json-1.0"},
            b"{not json",
            "/",
            400,
            "SerializationException",
            id="json-protocol-body-not-json",
        ),
        pytest.param(
            "sagemaker",
            {"X-Amz-Target": "SageMaker.DescribeEndpoint", "Content-Type": "application/x-amz-json-1.1"},
            b"{}",
            "/",
            400,
            "ValidationException",
            id="json-protocol-missing-member",
        ),
        pytest.param(
            "states",
            {"X-Amz-Target": "AWSStepFunctions.NoSuchOperation", "Content-Type": "application/x-amz-json-1.0"},
            b"{}",
            "/",
            400,
            "UnknownOperationException",
            id="json-protocol-unknown-operation",
        ),
        pytest.param(
            "sns",
            {"Content-Type": "application/x-www-form-urlencoded"},
            b"Action=Publish&Version=2010-03-31",
            "/",
            400,
            None,
            id="query-protocol-missing-parameters",
        ),
        pytest.param(
            None, {"Content-Type": "application/json"}, b"{}", "/", 403, "MissingAuthenticationToken", id="unsigned"
        ),
        pytest.param(
            "s3",
            {"Content-Type": "application/json"},
            b"{}",
            "/moto-api/reset",
            403,
            "AccessDeniedException",
            id="moto-control-api",
        ),
    ],
)
def test_malformed_requests_get_aws_shaped_errors(
    served_twin: ServedTwin,
    service: str | None,
    headers: dict[str, str],
    body: bytes,
    path: str,
    status: int,
    code: str | None,
) -> None:
    got_status, got_headers, text = _send(served_twin.url, service, body, headers, path)
    assert got_status == status, text
    assert "Traceback" not in text
    assert "<html" not in text.lower()
    content_type = got_headers.get("Content-Type", "")
    if "json" in content_type:
        error = json.loads(text)
        found = error.get("__type") or got_headers.get("x-amzn-ErrorType")
        assert error.get("message") or error.get("Message")
    else:
        assert "xml" in content_type, content_type
        found = text.split("<Code>", 1)[1].split("</Code>", 1)[0]
        assert "<Message>" in text
    if code is not None:
        assert found == code
    else:
        assert found


@twin_only
def test_sigterm_is_handled_like_ctrl_c() -> None:
    # The handler `mlops up` installs treats both signals the same; SIGTERM is what a supervisor sends.
    from emulator.commands.up import StopSignal

    stop = StopSignal()
    with stop.installed():
        os.kill(os.getpid(), signal.SIGTERM)
        stop.wait()
    assert signal.getsignal(signal.SIGTERM) is not stop._handle
