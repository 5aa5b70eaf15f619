"""The program of a warm container: imports the job code's libraries, then becomes the job it is handed.

Run as a script with the job environment's interpreter, inside the job's sandbox (`warm_containers.py` starts it):
`python3 warm_boot.py --control-fd N --preload '["numpy", ...]'`. It imports each preload module (one that fails to
import is skipped: the job's own import fails as it would have), then waits on the control socket for one request:
a length-prefixed JSON object `{"argv", "cwd", "env", "fds"}` sent with file descriptors (SCM_RIGHTS). `fds` names,
for each descriptor sent, the number it takes in this process (1 and 2 for the job's log, a model server's listening
socket). Then, as `python3 <argv...>` started in `cwd` with `env` would, it runs the script as `__main__`: the whole
environment replaced, `sys.argv`, `sys.path[0]` the script's folder (symbolic links resolved), a fresh `__main__`
module with `__file__` absolute, an uncaught exception through `sys.excepthook` with this program's frames left out
and exit status 1. Its stdin is empty, as a SageMaker container's is.

It runs on the container's Python (3.10) and imports nothing but the standard library and the preload modules, so the
job sees only what its container would.
"""

import argparse
import builtins
import fcntl
import importlib
import importlib.machinery
import json
import os
import runpy
import socket
import struct
import sys
import types

_HEADER = struct.Struct("!I")
# Received descriptors are moved above the numbers they are given, so none is overwritten before it is placed.
_PARKING_FLOOR = 100
_MAX_FDS = 8
_READY = b"R"


def _read_exactly(control: socket.socket, count: int, first: bytes) -> bytes:
    data = bytearray(first)
    while len(data) < count:
        chunk = control.recv(count - len(data))
        if not chunk:
            raise EOFError("the twin closed the control socket before the request was whole")
        data += chunk
    return bytes(data)


def _receive_request(control: socket.socket) -> tuple[dict, list[int]]:
    first, fds, _flags, _address = socket.recv_fds(control, _HEADER.size, _MAX_FDS)
    if not first:
        raise EOFError("the twin closed the control socket without a request")
    (length,) = _HEADER.unpack(_read_exactly(control, _HEADER.size, first))
    return json.loads(_read_exactly(control, length, b"")), fds


def _is_open(fd: int) -> bool:
    try:
        fcntl.fcntl(fd, fcntl.F_GETFD)
    except OSError:
        return False
    return True


def _place_descriptors(received: list[int], targets: list[int]) -> None:
    for target in targets:
        if target > 2 and _is_open(target):
            raise SystemExit(f"warm_boot.py: descriptor {target} is in use, cannot hand the job its descriptor there")
    parked = [fcntl.fcntl(fd, fcntl.F_DUPFD, _PARKING_FLOOR) for fd in received]
    for fd in received:
        os.close(fd)
    for source, target in zip(parked, targets, strict=True):
        os.dup2(source, target)
        os.close(source)


def _without_boot_frames(traceback):
    skipped = {os.path.abspath(__file__), os.path.abspath(runpy.__file__)}
    while traceback is not None and os.path.abspath(traceback.tb_frame.f_code.co_filename) in skipped:
        traceback = traceback.tb_next
    return traceback


def _run_as_main(script: str) -> None:
    """Runs `script` (its path as the command line gave it) as `python3 script` runs it."""
    script_path = script if os.path.isabs(script) else os.path.join(os.getcwd(), script)
    sys.path.insert(0, os.path.dirname(os.path.realpath(script_path)))
    if not os.path.isfile(script_path):
        # A folder or zip archive with a __main__.py, which runpy finds as the interpreter does.
        runpy.run_path(script, run_name="__main__")
        return
    main_module = types.ModuleType("__main__")
    main_module.__dict__.update(
        __file__=script_path,
        __builtins__=builtins,
        __loader__=importlib.machinery.SourceFileLoader("__main__", script_path),
        __spec__=None,
        __package__=None,
        __cached__=None,
        __annotations__={},
    )
    sys.modules["__main__"] = main_module
    with open(script_path, "rb") as source:
        code = compile(source.read(), script_path, "exec")
    exec(code, main_module.__dict__)  # noqa: S102 - running the job's script is this program's job


def main() -> None:
    # Nothing of this folder may be importable by the job: its sys.path[0] is the script's folder alone.
    del sys.path[0]
    parser = argparse.ArgumentParser()
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--preload", default="[]")
    arguments = parser.parse_args()
    for module in json.loads(arguments.preload):
        try:
            importlib.import_module(module)
        except Exception:  # noqa: S112 - the job's own import of it fails as it would have
            continue
    control = socket.socket(fileno=arguments.control_fd)
    control.sendall(_READY)
    request, received = _receive_request(control)
    control.close()
    _place_descriptors(received, [int(target) for target in request["fds"]])
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    sys.argv = list(request["argv"][1:])
    try:
        _run_as_main(sys.argv[0])
    except SystemExit:
        raise
    except BaseException as error:  # what the interpreter does with an uncaught exception
        # The interpreter prints the exception's own traceback: it is cut to the job's frames first.
        trimmed = _without_boot_frames(error.__traceback__)
        sys.excepthook(type(error), error.with_traceback(trimmed), trimmed)
        sys.exit(1)


if __name__ == "__main__":
    main()
