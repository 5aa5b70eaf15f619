"""A model server that is gone answers as SageMaker does, not with a socket error out of InvokeEndpoint."""

from __future__ import annotations

import socket

import pytest

from emulator.sagemaker_local.model_server import ModelServer, ModelServerUnreachable


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_request_to_a_stopped_server_raises_model_server_unreachable() -> None:
    server = ModelServer.__new__(ModelServer)  # only its port matters to invoke(); no process is started
    server.port = _closed_port()

    with pytest.raises(ModelServerUnreachable, match="ConnectionRefusedError"):
        server.invoke(b"{}", "application/json", None)
