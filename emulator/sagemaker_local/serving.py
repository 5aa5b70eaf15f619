"""The model server one local endpoint variant runs as a child process, like SageMaker's inference container.

Run as a script (`python3 serving.py --model-dir D`), not imported: it loads the model's own inference
code (`SAGEMAKER_PROGRAM`, default `inference.py`, from `SAGEMAKER_SUBMIT_DIRECTORY`, default
`<model-dir>/code`) with the SageMaker inference toolkit's handler contract (`model_fn`, `input_fn`,
`predict_fn`, `output_fn`), serves `GET /ping` and `POST /invocations` on 127.0.0.1, and prints
`LISTENING <port>` once the model is loaded. It imports nothing from the emulator, so the model code
sees only what a container would.

An error raised by the model's handlers is answered as the SageMaker inference toolkit answers it: an exception
carrying an HTTP `status_code` (the toolkit's `BaseInferenceToolkitError`, with `message`) gets that status, any
other exception 500; the body is the message, a newline and the traceback.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import socket
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any


def _load_inference_module(model_dir: Path) -> ModuleType:
    code_dir = Path(os.environ.get("SAGEMAKER_SUBMIT_DIRECTORY") or model_dir / "code")
    if str(code_dir).startswith("/opt/ml/model"):
        code_dir = model_dir / Path(str(code_dir)).relative_to("/opt/ml/model")
    program = os.environ.get("SAGEMAKER_PROGRAM", "inference.py")
    script = code_dir / program
    if not script.is_file():
        raise FileNotFoundError(f"Inference script {script} not found: the model.tar.gz must hold code/{program}")
    sys.path.insert(0, str(code_dir))
    spec = importlib.util.spec_from_file_location(Path(program).stem, script)
    if spec is None or spec.loader is None:
        raise ImportError(f"Cannot load inference script {script}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class _ModelHandlers:
    def __init__(self, module: ModuleType, model_dir: Path) -> None:
        for required in ("model_fn",):
            if not hasattr(module, required):
                raise AttributeError(f"{module.__file__} must define {required}(model_dir)")
        self.module = module
        self.model = module.model_fn(str(model_dir))

    def invoke(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        module = self.module
        data = module.input_fn(body, content_type) if hasattr(module, "input_fn") else body
        prediction = module.predict_fn(data, self.model) if hasattr(module, "predict_fn") else self.model(data)
        result: Any = module.output_fn(prediction, accept) if hasattr(module, "output_fn") else prediction
        response_type = accept
        if isinstance(result, tuple):
            result, response_type = result
        if isinstance(result, str):
            result = result.encode()
        return bytes(result), response_type


def _error_status(error: Exception) -> tuple[int, str]:
    """The HTTP status and message the inference toolkit answers `error` with (its `Transformer.transform`)."""
    status = getattr(error, "status_code", None)
    if isinstance(status, int) and 400 <= status < 600:
        return status, str(getattr(error, "message", error))
    return 500, str(error)


def _handler_class(handlers: _ModelHandlers) -> type[BaseHTTPRequestHandler]:
    class InvocationHandler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/ping":
                self._reply(200, b"", "text/plain")
            else:
                self._reply(404, b"not found", "text/plain")

        def do_POST(self) -> None:
            if self.path != "/invocations":
                self._reply(404, b"not found", "text/plain")
                return
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            content_type = self.headers.get("Content-Type") or "application/json"
            accept = self.headers.get("Accept") or content_type
            if accept in ("*/*", ""):
                accept = content_type
            try:
                result, result_type = handlers.invoke(body, content_type, accept)
            except Exception as error:
                # The container answers a model error with a 4xx/5xx; the runtime API turns it into ModelError.
                status, message = _error_status(error)
                self._reply(status, f"{message}\n{traceback.format_exc()}".encode(), "text/plain")
                return
            self._reply(200, result, result_type)

    return InvocationHandler


def _exit_with_parent(poll_seconds: float = 1.0) -> None:
    """End this server when the twin that started it is gone, so a crashed twin leaves no server behind."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_seconds)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main() -> None:
    _exit_with_parent()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", type=Path, required=True, help="extracted model.tar.gz")
    # A network-isolated server has no network of its own: it serves on the twin's socket, made outside.
    parser.add_argument("--listen-fd", type=int, help="serve on this inherited listening socket instead of a new one")
    args = parser.parse_args()
    handlers = _ModelHandlers(_load_inference_module(args.model_dir), args.model_dir)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(handlers), bind_and_activate=args.listen_fd is None)
    if args.listen_fd is not None:
        server.socket.close()
        server.socket = socket.socket(fileno=args.listen_fd)
        server.server_address = server.socket.getsockname()
    print(f"LISTENING {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
