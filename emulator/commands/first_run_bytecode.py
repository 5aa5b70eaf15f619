"""The bytecode of the twin's libraries, written ahead of the imports on a first run, on the machine's other core.

uv installs the run venv without bytecode (compiling all of it costs more than a run saves), so a first `mlops run`
compiles each of the ~1,500 library modules the twin imports as it imports them: about 5 s of its start on this
machine, on the one core the twin's start runs on. A compiler started first, in a process of its own, keeps ahead of
those imports (compiling a module is quicker than compiling and running it), so the twin mostly finds the bytecode
written (measured on a fresh clone: the twin up in 9.8 s and 10.6 s with it, 15.1 s and 16.9 s without). The
project's own modules go first; the library modules, in the order a run imports them, are listed in
`requirements/first-run-imports.txt`, made by `make first-run-imports` from the imports of the twin and the stack's
handlers; a stale list only costs speed, and a test says when it is stale. Nothing starts when Python writes no
bytecode (the tests' PYTHONDONTWRITEBYTECODE) or when everything is compiled already.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from contract.project import PROJECT_ROOT
from contract.template import SERVERLESS_FUNCTION, read_template

IMPORTS_FILE = PROJECT_ROOT / "requirements" / "first-run-imports.txt"
# The project's packages a run imports; listing them would make the list stale with every new module.
PROJECT_PACKAGES = tuple(PROJECT_ROOT / name for name in ("contract", "emulator", "mlops", "functions"))
# What `mlops run` imports by its first prediction: the command, the twin, and (in-process) every stack handler.
ENTRY_MODULES = ("mlops.cli", "emulator.commands.lifecycle", "emulator.commands.drift", "emulator.twin")
_HEADER = (
    "# Library modules a first `mlops run` imports, in import order, relative to the run venv's site-packages.\n"
    "# emulator/commands/first_run_bytecode.py compiles them ahead of the imports. Made by `make first-run-imports`.\n"
)


def site_packages() -> Path:
    """The running interpreter's site-packages (the run venv's, where the twin's libraries are)."""
    return Path(sysconfig.get_paths()["purelib"])


def listed_modules(imports_file: Path = IMPORTS_FILE) -> list[str]:
    """The list's entries (paths relative to site-packages); none when there is no list."""
    try:
        lines = imports_file.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    return [line for line in lines if line and not line.startswith("#")]


def files_to_compile(imports_file: Path = IMPORTS_FILE, site_dir: Path | None = None) -> list[Path]:
    """What has no bytecode yet: the project's own modules first (a few hundred milliseconds of compiling, imported
    from the first to the last moment of the twin's start), then the listed library modules that exist, in order."""
    site = site_dir or site_packages()
    own = sorted(path for package in PROJECT_PACKAGES for path in package.rglob("*.py"))
    candidates = [*own, *(site / entry for entry in listed_modules(imports_file))]
    return [path for path in candidates if path.is_file() and not _compiled(path)]


def _compiled(source: Path) -> bool:
    return Path(importlib.util.cache_from_source(str(source))).exists()


@contextmanager
def compiling_ahead() -> Iterator[None]:
    """The compiler runs in the background while the block runs, and is stopped when it ends (if still running).

    Stopping it loses nothing: py_compile writes each file under another name and renames it, so no half-written
    bytecode is ever read, and the next run compiles what is left.
    """
    compiler = start_compiler()
    try:
        yield
    finally:
        stop_compiler(compiler)


def start_compiler(files: list[Path] | None = None) -> subprocess.Popen[bytes] | None:
    """Starts the compiler over `files` (default: what `files_to_compile` finds); the process, or None when this
    interpreter writes no bytecode or nothing needs compiling."""
    if sys.dont_write_bytecode:
        return None
    pending = files_to_compile() if files is None else files
    if not pending:
        return None
    compiler = subprocess.Popen(
        [sys.executable, "-W", "ignore", "-m", "compileall", "-q", "-i", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert compiler.stdin is not None
    try:
        compiler.stdin.write("".join(f"{path}\n" for path in pending).encode())
        compiler.stdin.close()
    except OSError:
        stop_compiler(compiler)
        return None
    return compiler


def stop_compiler(compiler: subprocess.Popen[bytes] | None) -> None:
    """Ends the compiler if it still runs, and reaps it."""
    if compiler is None:
        return
    if compiler.poll() is None:
        compiler.terminate()
    compiler.wait()


_COLLECT = """
import importlib, json, sys, sysconfig
entries, handlers = sys.argv[1].split(","), json.loads(sys.argv[2])
for name in entries:
    importlib.import_module(name)
for code_dir, name in handlers:
    sys.path.insert(0, code_dir)
    importlib.import_module(name)
site = sysconfig.get_paths()["purelib"] + "/"
files = [getattr(m, "__file__", None) or "" for m in list(sys.modules.values())]
print(json.dumps([f[len(site):] for f in files if f.startswith(site) and f.endswith(".py")]))
"""


def imported_library_modules() -> list[str]:
    """What a fresh interpreter imports for `ENTRY_MODULES` and every stack handler, in order (site-packages only)."""
    collected = subprocess.run(
        [sys.executable, "-c", _COLLECT, ",".join(ENTRY_MODULES), json.dumps(handler_modules())],
        capture_output=True,
        text=True,
        check=False,
        cwd=PROJECT_ROOT,
    )
    if collected.returncode != 0:
        raise RuntimeError(f"importing the twin's modules failed:\n{collected.stderr[-2000:]}")
    modules: list[str] = json.loads(collected.stdout.strip().splitlines()[-1])
    return modules


def handler_modules() -> list[tuple[str, str]]:
    """(code directory, handler module) of every AWS::Serverless::Function of template.yaml, Globals applied."""
    template = read_template()
    defaults = (template.get("Globals") or {}).get("Function") or {}
    found = set()
    for resource in (template.get("Resources") or {}).values():
        if resource.get("Type") == SERVERLESS_FUNCTION:
            properties = {**defaults, **(resource.get("Properties") or {})}
            found.add((str(PROJECT_ROOT / properties["CodeUri"]), properties["Handler"].rpartition(".")[0]))
    return sorted(found)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write requirements/first-run-imports.txt from the twin's imports.")
    parser.add_argument("--output", type=Path, default=IMPORTS_FILE, help="the list to write (default: %(default)s)")
    arguments = parser.parse_args(argv)
    modules = imported_library_modules()
    arguments.output.write_text(_HEADER + "".join(f"{module}\n" for module in modules), encoding="utf-8")
    print(f"{arguments.output}: {len(modules)} library modules")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
