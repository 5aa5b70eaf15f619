"""`ServedAPIs`: moto's HTTP server in the twin's own process, so clients elsewhere reach the twin's backends.

moto's server application (`DomainDispatcherApplication`) dispatches each request to the same response classes
and the same module-level backends the twin's in-process `mock_aws` uses. Everything the twin installs on them
(the local SageMaker and SageMaker Runtime, the event router's S3 notifications and PutEvents, the alarms, Step
Functions' executing engine) therefore answers HTTP requests exactly as it answers the twin's own boto3 calls.

moto's `ThreadedMotoServer` is not used: it binds its socket in its thread, so a port in use hangs `start()`
instead of failing, and it serves Flask's HTML error pages. Here the socket is bound by `bind()` in the caller's
thread (a port in use is a `PortInUseError` naming it, before the twin is started), requests are served only from
`serve()` on (after the twin is ready; until then connections wait in the listen backlog), and every error is
AWS-shaped (`emulator.serve.errors`).
"""

from __future__ import annotations

import errno
import logging
import socket
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from emulator.serve.errors import AwsShapedErrors

LOOPBACK = "127.0.0.1"
# Real seconds stop() waits for the serving thread once the server is shut down.
_STOP_JOIN_SECONDS = 10.0


class PortInUseError(OSError):
    """The port asked for is taken; the message names host and port."""


class ServedAPIs:
    """One HTTP server on `host:port` (port 0: any free port) for every AWS API moto serves."""

    def __init__(self, host: str = LOOPBACK, port: int = 0) -> None:
        self.host = host
        self.requested_port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def bind(self) -> None:
        """Takes the port; raises `PortInUseError` when another process holds it.

        The socket is bound here, not by werkzeug: werkzeug prints its own message and exits the process on a
        port in use.
        """
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        listening = socket.socket(family, socket.SOCK_STREAM)
        try:
            listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                listening.bind((self.host, self.requested_port))
            except OSError as error:
                if error.errno == errno.EADDRINUSE:
                    raise PortInUseError(
                        error.errno, f"port {self.requested_port} on {self.host} is in use by another process"
                    ) from error
                raise
            listening.listen(socket.SOMAXCONN)
            application = AwsShapedErrors(DomainDispatcherApplication(create_backend_app))
            # werkzeug serves a duplicate of this descriptor; the original is closed below.
            self._server = make_server(
                self.host,
                self.requested_port,
                application,
                threaded=True,
                request_handler=MotoRequestHandler,
                fd=listening.fileno(),
            )
        finally:
            listening.close()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("ServedAPIs.bind() was not called")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def serve(self) -> None:
        """Starts answering requests, in a thread of its own, until `stop()`."""
        if self._server is None:
            self.bind()
        server = self._server
        assert server is not None
        self._thread = threading.Thread(target=server.serve_forever, name=f"served-apis-{self.port}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stops serving and releases the port; safe to call twice, and before `serve()`."""
        server, self._server = self._server, None
        if server is None:
            return
        if self._thread is not None:
            server.shutdown()
            self._thread.join(timeout=_STOP_JOIN_SECONDS)
            self._thread = None
        server.server_close()


def quiet_request_log() -> None:
    """werkzeug logs every request at INFO: the served twin's terminal shows what happened, not each call."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
