"""The first-run warm-up imports exactly the job scripts' third-party libraries, and only when bytecode is written."""

from __future__ import annotations

import py_compile
import sys

from contract.project import ML_DIR
from emulator.sagemaker_local import job_warmup
from emulator.sagemaker_local.containers import JOB_VENV, job_python


def test_third_party_imports_leave_out_the_standard_library_and_the_scripts_themselves(tmp_path):
    (tmp_path / "helpers.py").write_text("import json\n")
    (tmp_path / "job.py").write_text(
        "from __future__ import annotations\nimport os, numpy as np\nfrom helpers import thing\n"
        "from sklearn import metrics\nfrom . import sibling\nimport xgboost.core\n"
    )

    assert job_warmup.third_party_imports(tmp_path) == ["numpy", "sklearn", "sklearn.metrics", "xgboost.core"]


def test_the_project_job_code_needs_its_frameworks():
    modules = job_warmup.third_party_imports(ML_DIR)

    assert {"pandas", "xgboost", "sklearn.metrics", "sklearn.model_selection"} <= set(modules)
    assert not {name for name in modules if name.partition(".")[0] in {"mlcore", "json", "sys"}}


def test_a_compiled_or_missing_package_of_the_job_environment_needs_no_compiling(tmp_path):
    site = tmp_path / "site-packages"
    package = site / "freshpkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")

    assert job_warmup.needs_compiling(["freshpkg.sub", "no_such_package_here"], [site]) == ["freshpkg.sub"]

    py_compile.compile(str(package / "__init__.py"), cfile=str(package / "__pycache__" / "__init__.cpython-310.pyc"))

    assert job_warmup.needs_compiling(["freshpkg.sub"], [site]) == []


def test_the_warmup_looks_in_the_job_environment_not_the_dev_venv():
    assert job_warmup.job_site_packages(), "the job environment is installed by make install"
    assert all(folder.is_relative_to(JOB_VENV) for folder in job_warmup.job_site_packages())


def _recorded_runs(monkeypatch) -> list[list[str]]:
    started: list[list[str]] = []
    real_run = job_warmup.subprocess.run

    def run(command, **kwargs):
        started.append(command)
        return real_run(command, **kwargs)

    monkeypatch.setattr(job_warmup.subprocess, "run", run)
    return started


def test_the_compile_runs_the_job_environment_interpreter(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    monkeypatch.setattr(job_warmup, "needs_compiling", lambda modules: ["json"])
    started = _recorded_runs(monkeypatch)

    job_warmup.compile_job_libraries(tmp_path)

    assert [command[0] for command in started] == [job_python()]


def test_nothing_compiles_when_no_bytecode_is_written(monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    started = _recorded_runs(monkeypatch)

    job_warmup.compile_job_libraries(ML_DIR)

    assert started == []


def test_nothing_compiles_when_everything_is_compiled(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    monkeypatch.setattr(job_warmup, "needs_compiling", lambda modules: [])
    started = _recorded_runs(monkeypatch)

    job_warmup.compile_job_libraries(tmp_path)

    assert started == []


def test_the_compile_survives_a_name_that_is_not_a_module(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    monkeypatch.setattr(job_warmup, "needs_compiling", lambda modules: ["not_a_module_at_all", "json"])
    finished = []
    real_run = job_warmup.subprocess.run
    monkeypatch.setattr(
        job_warmup.subprocess, "run", lambda command, **kwargs: finished.append(real_run(command, **kwargs))
    )

    job_warmup.compile_job_libraries(tmp_path)

    assert [result.returncode for result in finished] == [0]
