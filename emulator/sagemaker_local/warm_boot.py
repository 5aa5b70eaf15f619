"""The program of a warm container: imports the job code's libraries, then runs the job it is handed.

Run with the job environment's interpreter inside the job's sandbox (`warm_containers.py` starts it):
`python3 warm_boot.py --control-fd N --preload '["numpy", ...]'`. It imports each preload module (one that fails to
import is skipped: the job's own import fails as it would have), says it is ready on the control socket and waits
there for one request from the twin: a length-prefixed JSON object `{"argv", "cwd", "env", "fds", "shim"}` sent with
file descriptors (SCM_RIGHTS); `fds` names the number each descriptor takes (1 and 2 for the job's log, a model
server's listening socket).

Then it is a fork server for the job's Python processes:
- A command that is the job interpreter and a script (`python3 train.py ...`) runs in a child forked from this
  process, as `python3 <argv...>` started in `cwd` with `env` would run: the whole environment replaced, `sys.argv`,
  `sys.path[0]` the script's folder (symbolic links resolved), a fresh `__main__` module with `__file__` absolute, an
  uncaught exception through `sys.excepthook` without this program's frames and exit status 1.
- Any other command is executed as it is, in a child. With `shim` (a shell entrypoint that starts `python3`), its
  PATH starts with `warm_shim/`, whose `python3` restores PATH and hands its command back here
  (`warm_boot.py --shim`): a script runs in a forked child and its exit status goes back to the shim, which exits with
  it; anything else (interpreter options, `-c`) the shim runs with the real interpreter.
This process exits as the command's own process ended (its exit status, or its signal), so the twin, waiting on the
sandbox, sees what a cold start would show. Stdin is empty, as a SageMaker container's is.

It runs on the container's Python (3.10) and imports nothing but the standard library and the preload modules, so the
job sees only what its container would.
"""

import argparse
import builtins
import contextlib
import fcntl
import importlib
import importlib.machinery
import json
import os
import runpy
import selectors
import shutil
import signal
import socket
import struct
import sys
import types

_HEADER = struct.Struct("!I")
_STATUS = struct.Struct("!i")
# The shim's answer when this process does not run its command: the shim runs the real interpreter.
_NOT_HERE = -1
# Received descriptors are moved above the numbers they are given, so none is overwritten before it is placed.
_PARKING_FLOOR = 100
_MAX_FDS = 8
_READY = b"R"
_SHIM_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "warm_shim")
# Where a shim finds this process: an abstract Unix socket (no file in the job's file system), named in its
# environment; the shim removes the variable before anything of the job sees it.
SOCKET_VARIABLE = "MLOPS_WARM_BOOT_SOCKET"
_POLL_SECONDS = 0.02


def _read_exactly(connection: socket.socket, count: int, first: bytes = b"") -> bytes:
    data = bytearray(first)
    while len(data) < count:
        chunk = connection.recv(count - len(data))
        if not chunk:
            raise EOFError("the other side closed the connection before the message was whole")
        data += chunk
    return bytes(data)


def send_request(connection: socket.socket, request: dict, fds: list) -> None:
    payload = json.dumps(request).encode()
    socket.send_fds(connection, [_HEADER.pack(len(payload))], fds)
    connection.sendall(payload)


def _receive_request(connection: socket.socket) -> tuple:
    first, fds, _flags, _address = socket.recv_fds(connection, _HEADER.size, _MAX_FDS)
    if not first:
        raise EOFError("the connection closed without a request")
    (length,) = _HEADER.unpack(_read_exactly(connection, _HEADER.size, first))
    return json.loads(_read_exactly(connection, length)), fds


def _is_open(fd: int) -> bool:
    try:
        fcntl.fcntl(fd, fcntl.F_GETFD)
    except OSError:
        return False
    return True


def _place_descriptors(received: list, targets: list) -> None:
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


def _runs_here(argv: list, env: dict) -> bool:
    """True for `python3 script ...` whose interpreter, on the job's PATH, is this one (no interpreter options)."""
    if len(argv) < 2 or argv[1].startswith("-"):
        return False
    interpreter = argv[0] if os.sep in argv[0] else shutil.which(argv[0], path=env.get("PATH", os.defpath))
    return interpreter is not None and os.path.realpath(interpreter) == os.path.realpath(sys.executable)


def _become(request: dict, received: list) -> None:
    """In a forked child: takes the request's descriptors, environment and folder; never returns to the server."""
    _place_descriptors(received, [int(target) for target in request["fds"]])
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])


def _run_job(request: dict, received: list) -> None:
    """In a forked child: runs the request's script, then ends the process as the interpreter would."""
    _become(request, received)
    # The interpreter names itself as the command found it (`python3` on PATH is .../bin/python3).
    named = request["argv"][0]
    sys.executable = os.path.abspath(named if os.sep in named else shutil.which(named) or sys.executable)
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
    sys.exit(0)


def _exec_command(request: dict, received: list, socket_name: str) -> None:
    """In a forked child: executes the request's command, with the shim first on PATH when asked."""
    _become(request, received)
    argv = request["argv"]
    if request.get("shim"):
        os.environ["PATH"] = _SHIM_DIR + os.pathsep + os.environ.get("PATH", "")
        os.environ[SOCKET_VARIABLE] = socket_name
    try:
        os.execvp(argv[0], argv)  # noqa: S606 - the job's own command, as its sandbox would run it
    except OSError as error:
        # Bubblewrap's own words when a cold start cannot execute the command.
        os.write(2, f"bwrap: execvp {argv[0]}: {error.strerror}\n".encode())
        os._exit(1)


def _exit_as(status: int) -> None:
    """Ends this process the way the waited-for child ended (its exit status or its signal)."""
    if os.WIFSIGNALED(status):
        signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
        os.kill(os.getpid(), os.WTERMSIG(status))
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


def _serve(request: dict, received: list) -> None:
    socket_name = f"mlops-warm-boot-{os.getpid()}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind("\0" + socket_name)
    listener.listen()
    listener.setblocking(False)
    command = os.fork()
    if command == 0:
        listener.close()
        if _runs_here(request["argv"], request["env"]):
            _run_job(request, received)
        _exec_command(request, received, socket_name)
    for fd in received:
        os.close(fd)
    waiting_shims: dict = {}
    command_status = None
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    while command_status is None or waiting_shims:
        for _key, _events in selector.select(_POLL_SECONDS):
            try:
                connection, _address = listener.accept()
            except BlockingIOError:
                continue
            connection.setblocking(True)
            try:
                shim_request, shim_fds = _receive_request(connection)
            except (OSError, EOFError, ValueError):
                connection.close()
                continue
            if not _runs_here(shim_request["argv"], shim_request["env"]):
                for fd in shim_fds:
                    os.close(fd)
                connection.sendall(_STATUS.pack(_NOT_HERE))
                connection.close()
                continue
            job = os.fork()
            if job == 0:
                selector.close()
                listener.close()
                for other in [connection, *waiting_shims.values()]:
                    other.close()
                _run_job(shim_request, shim_fds)
            for fd in shim_fds:
                os.close(fd)
            waiting_shims[job] = connection
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                pid = 0
            if pid == 0:
                break
            if pid == command:
                command_status = status
            elif pid in waiting_shims:
                shim = waiting_shims.pop(pid)
                with contextlib.suppress(OSError):  # a killed shim waits for no status
                    shim.sendall(_STATUS.pack(status))
                shim.close()
    _exit_as(command_status)


def _shim(name: str, arguments: list) -> None:
    """`python3` started by a warm container's shell entrypoint: run here by the warm server, else for real."""
    socket_name = os.environ.pop(SOCKET_VARIABLE, None)
    argv = [name, *arguments]
    if socket_name:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
                connection.connect("\0" + socket_name)
                request = {"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ), "fds": [0, 1, 2]}
                send_request(connection, request, [0, 1, 2])
                (status,) = _STATUS.unpack(_read_exactly(connection, _STATUS.size))
        except (OSError, EOFError):
            status = _NOT_HERE
        if status != _NOT_HERE:
            _exit_as(status)
    os.execvp(name, argv)  # noqa: S606 - the real interpreter, with the command the shell gave


def main() -> None:
    # warm_shim/python3 runs `warm_boot.py --shim NAME -- ARGS...`: every argument after `--` is the command's own.
    if sys.argv[1:2] == ["--shim"] and sys.argv[3:4] == ["--"]:
        _shim(sys.argv[2], sys.argv[4:])
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
    _serve(request, received)


if __name__ == "__main__":
    main()
