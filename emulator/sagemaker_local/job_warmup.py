"""The libraries the job code imports, and their bytecode, written once on a first run.

A fresh job environment (`.venv-job`) holds no bytecode, and a sandboxed process cannot write any (the job
environment is read-only in the sandbox): every job and warm container would compile pandas, scikit-learn and
xgboost again, seconds of CPU each. `compile_job_libraries` imports them once with the job environment's interpreter,
outside the sandbox, before the first warm container starts (warm_containers.py), on the machine's other core while
the twin starts.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from emulator.sagemaker_local.containers import JOB_VENV, JobEnvironmentMissing, job_python

# Below the twin's own start-up on a machine with a single free core.
_NICENESS = 10
_COMPILE_LOCK = threading.Lock()
_COMPILED: set[Path] = set()


def third_party_imports(code_dir: Path) -> list[str]:
    """The modules the job scripts in `code_dir` import that are neither the standard library nor the scripts."""
    local = {path.stem for path in code_dir.glob("*.py")}
    found: set[str] = set()
    for script in sorted(code_dir.glob("*.py")):
        for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"), filename=str(script))):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from sklearn import metrics` imports a submodule; `from numpy import array` names an attribute,
                # which the warm-up skips as it fails to import.
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
    top_level = {name.partition(".")[0] for name in found}
    keep = top_level - local - set(sys.stdlib_module_names) - {"__future__"}
    return sorted(name for name in found if name.partition(".")[0] in keep)


def job_site_packages() -> list[Path]:
    """The job environment's site-packages folder (one per Python the venv was made with: one)."""
    return sorted(JOB_VENV.glob("lib/python*/site-packages"))


def needs_compiling(modules: list[str], site_dirs: Sequence[Path] | None = None) -> list[str]:
    """The modules whose package in the job environment has no bytecode yet (a package compiled once is left alone)."""
    folders = job_site_packages() if site_dirs is None else site_dirs
    pending = []
    for module in modules:
        top = module.partition(".")[0]
        package = next((folder / top for folder in folders if (folder / top / "__init__.py").is_file()), None)
        if package is None:
            continue  # not installed (the job will say so) or not a package of Python files
        if not any((package / "__pycache__").glob("__init__.*.pyc")):
            pending.append(module)
    return pending


def compile_job_libraries_in_background(code_dir: Path) -> None:
    """`compile_job_libraries` on a thread of its own: a first run starts it before the twin imports moto."""
    threading.Thread(target=compile_job_libraries, args=(code_dir,), name="job-library-compile", daemon=True).start()


def compile_job_libraries(code_dir: Path) -> None:
    """Imports the job code's uncompiled libraries once, outside the sandbox, so their bytecode is written.

    Nothing runs when this interpreter writes no bytecode (PYTHONDONTWRITEBYTECODE, as the tests run), when the job
    environment is missing, or when everything is compiled already. It runs at low priority: the twin's own start
    comes first on a busy machine. A second call for the same folder waits for the first and does nothing more.
    """
    with _COMPILE_LOCK:
        if code_dir not in _COMPILED:
            _compile(code_dir)
            _COMPILED.add(code_dir)


def _compile(code_dir: Path) -> None:
    if sys.dont_write_bytecode:
        return
    modules = needs_compiling(third_party_imports(code_dir))
    if not modules:
        return
    try:
        python = job_python()
    except JobEnvironmentMissing:
        return  # every job fails naming the missing environment; nothing to compile for
    program = (
        f"import importlib, os\nos.nice({_NICENESS})\nfor module in {modules!r}:\n"
        "    try:\n        importlib.import_module(module)\n    except ImportError:\n        pass\n"
    )
    subprocess.run(
        [python, "-c", program],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
