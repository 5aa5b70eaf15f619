"""`make run`'s set-up recipe: the job environment installs alongside the run venv, and either failing fails make.

make runs the Makefile's real recipes with a stand-in for uv (it logs each call and fails for the lock named in
FAIL_LOCK), in a temporary venv folder, so nothing is installed and no package index is asked.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from contract.project import PROJECT_ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")

FAKE_UV = """#!/bin/sh
echo "$*" >> "$UV_CALLS"
if [ "$1" = venv ]; then for last; do :; done; mkdir -p "$last"; exit 0; fi
for argument; do
    case "$argument" in *"$FAIL_LOCK") echo "fake uv: cannot install $argument" >&2; exit 3;; esac
done
"""


def _make(tmp_path: Path, *arguments: str, fail_lock: str = "no-such-lock") -> subprocess.CompletedProcess[str]:
    fake_uv = tmp_path / "uv"
    if not fake_uv.exists():
        fake_uv.write_text(FAKE_UV)
        fake_uv.chmod(0o755)
        (tmp_path / ".venv").mkdir()
        (tmp_path / "uv-stamp").touch()
    variables = {
        "VENV": tmp_path / ".venv",
        "JOB_VENV": tmp_path / ".venv-job",
        "UV_STAMP": tmp_path / "uv-stamp",
        "UV_BIN": fake_uv,
        "UV": fake_uv,
        "PYTHON": sys.executable,
    }
    environ = {key: value for key, value in os.environ.items() if key not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    environ.update(UV_CALLS=str(tmp_path / "calls"), FAIL_LOCK=fail_lock)
    command = ["make", "--no-print-directory", "-C", str(PROJECT_ROOT)]
    command += [f"{name}={value}" for name, value in variables.items()]
    return subprocess.run([*command, *arguments], capture_output=True, text=True, env=environ, check=False)


def _calls(tmp_path: Path) -> list[str]:
    calls = tmp_path / "calls"
    return calls.read_text().splitlines() if calls.exists() else []


def test_installs_the_run_venv_and_the_job_environment_once(tmp_path: Path) -> None:
    run_stamp = tmp_path / ".venv" / ".installed-run"
    result = _make(tmp_path, str(run_stamp))
    assert result.returncode == 0, result.stderr
    calls = _calls(tmp_path)
    assert any("requirements/job.lock" in call and call.startswith("pip sync") for call in calls)
    assert any(call.endswith("-r requirements/run.lock") for call in calls)
    # datasets.lock without its dependencies, with the project, in one call
    assert any("--no-deps -r requirements/datasets.lock -e ." in call for call in calls)
    assert run_stamp.exists()
    assert (tmp_path / ".venv-job" / ".installed-job").exists()

    again = _make(tmp_path, str(run_stamp))
    assert again.returncode == 0, again.stderr
    assert _calls(tmp_path) == calls, "a second make installed again"


@pytest.mark.parametrize("failing", ["run.lock", "job.lock"])
def test_a_failing_install_fails_make_with_its_message(tmp_path: Path, failing: str) -> None:
    run_stamp = tmp_path / ".venv" / ".installed-run"
    result = _make(tmp_path, str(run_stamp), fail_lock=failing)
    assert result.returncode != 0
    assert f"fake uv: cannot install requirements/{failing}" in result.stderr
    assert not run_stamp.exists()
    # make waited for the job environment's install: it ran to its end (its stamp) unless it was the one failing
    assert (tmp_path / ".venv-job" / ".installed-job").exists() == (failing != "job.lock")


def test_the_benchmark_finds_each_set_up_step_in_what_make_echoes(tmp_path: Path) -> None:
    bench = _first_prediction_bench()
    # A fresh venv folder: `make -n` prints every step of the set-up without running it.
    shutil.rmtree(tmp_path)
    tmp_path.mkdir()
    environ = {key: value for key, value in os.environ.items() if key not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    echoed = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-n",
            "-C",
            str(PROJECT_ROOT),
            f"VENV={tmp_path / '.venv'}",
            f"JOB_VENV={tmp_path / '.venv-job'}",
            "run",
        ],
        capture_output=True,
        text=True,
        env=environ,
        check=True,
    ).stdout.splitlines()
    steps = [bench.UV_STAMPED, bench.RUN_VENV_STAMPED, bench.RUN_COMMAND]
    found = [[i for i, line in enumerate(echoed) if pattern.match(line.strip())] for pattern in steps]
    assert all(found), f"{[p.pattern for p in steps]} in {echoed}"
    first = [lines[0] for lines in found]
    assert first == sorted(first), "the set-up's steps come in another order than the benchmark names them"
    assert not (tmp_path / ".venv").exists(), "make -n installed something"
    assert re.search(r"pip install .*--target \S*uv uv==", "\n".join(echoed))


def _first_prediction_bench() -> Any:
    spec = importlib.util.spec_from_file_location("first_prediction", PROJECT_ROOT / "bench" / "first_prediction.py")
    assert spec is not None
    assert spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


@pytest.mark.parametrize(
    ("cold", "empty_twin_cache", "emptied"),
    [
        (False, False, set()),
        (False, True, {"MLOPS_CACHE_DIR"}),
        (True, False, {"UV_CACHE_DIR", "PIP_CACHE_DIR", "MLOPS_CACHE_DIR"}),
    ],
    ids=["warm", "empty twin cache", "cold"],
)
def test_the_benchmark_empties_exactly_the_caches_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cold: bool, empty_twin_cache: bool, emptied: set[str]
) -> None:
    for variable in ("UV_CACHE_DIR", "PIP_CACHE_DIR", "MLOPS_CACHE_DIR"):
        monkeypatch.setenv(variable, f"/the/machines/{variable}")
    environ = _first_prediction_bench().newcomer_environment(tmp_path, cold, empty_twin_cache)

    for variable in ("UV_CACHE_DIR", "PIP_CACHE_DIR", "MLOPS_CACHE_DIR"):
        if variable in emptied:
            assert Path(environ[variable]).is_relative_to(tmp_path)
            assert list(Path(environ[variable]).iterdir()) == []
        else:
            assert environ[variable] == f"/the/machines/{variable}"
