"""The first run's compiler: its list of the twin's library modules, what it compiles, and that it stops."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from emulator.commands import first_run_bytecode
from emulator.commands.first_run_bytecode import (
    files_to_compile,
    imported_library_modules,
    listed_modules,
    site_packages,
    start_compiler,
    stop_compiler,
)


def _bytecode(source: Path) -> Path:
    return Path(importlib.util.cache_from_source(str(source)))


def test_the_list_names_exactly_the_library_modules_the_twin_and_its_handlers_import() -> None:
    listed = set(listed_modules())
    imported = set(imported_library_modules())
    stale = "requirements/first-run-imports.txt is stale: run `make first-run-imports`"
    assert sorted(imported - listed) == [], f"{stale}; these imported modules are missing from it"
    assert sorted(listed - imported) == [], f"{stale}; these listed modules are no longer imported"


def test_every_listed_module_is_installed_in_this_venv() -> None:
    absent = [entry for entry in listed_modules() if not (site_packages() / entry).is_file()]
    assert absent == []


def test_the_project_modules_then_the_listed_ones_that_exist_without_bytecode_are_compiled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site, own = tmp_path / "site", tmp_path / "project" / "emulator"
    (site / "pkg").mkdir(parents=True)
    own.mkdir(parents=True)
    compiled, uncompiled = site / "pkg" / "compiled.py", site / "pkg" / "uncompiled.py"
    for source in (compiled, uncompiled, own / "engine.py"):
        source.write_text("VALUE = 1\n", encoding="utf-8")
    _bytecode(compiled).parent.mkdir()
    _bytecode(compiled).write_bytes(b"")
    imports = tmp_path / "imports.txt"
    imports.write_text("# a comment\npkg/compiled.py\npkg/not_installed.py\npkg/uncompiled.py\n", encoding="utf-8")
    monkeypatch.setattr(first_run_bytecode, "PROJECT_PACKAGES", (own,))

    assert files_to_compile(imports, site) == [own / "engine.py", uncompiled]


def test_no_list_means_only_the_project_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(first_run_bytecode, "PROJECT_PACKAGES", (tmp_path / "no-package",))
    assert files_to_compile(tmp_path / "missing.txt", tmp_path) == []


def test_the_compiler_writes_the_bytecode_of_the_files_it_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sources = [tmp_path / f"module_{number}.py" for number in range(3)]
    for source in sources:
        source.write_text(f"NUMBER = {sources.index(source)}\n", encoding="utf-8")
    monkeypatch.setattr(sys, "dont_write_bytecode", False)

    compiler = start_compiler(sources)

    assert compiler is not None
    assert compiler.wait(timeout=60) == 0
    assert [_bytecode(source).is_file() for source in sources] == [True, True, True]


def test_nothing_starts_when_python_writes_no_bytecode_or_nothing_is_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "module.py"
    source.write_text("X = 1\n", encoding="utf-8")
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    assert start_compiler([source]) is None
    assert not _bytecode(source).exists()
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    assert start_compiler([]) is None


def test_stopping_a_compiler_that_still_runs_ends_and_reaps_it() -> None:
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])

    stop_compiler(running)

    assert running.returncode is not None
    stop_compiler(running)  # a second stop, or of one already done, is harmless
    stop_compiler(None)
