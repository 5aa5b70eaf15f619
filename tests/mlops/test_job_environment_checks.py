"""`mlops check`: job-environment and ml-python fail where the job environment or ml/ and the container differ."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops import checks


def test_the_job_environment_is_the_container_s() -> None:
    assert checks.check_job_environment() == "11 packages, as in the container, installed as locked"


def test_a_pin_that_differs_from_the_container_fails_naming_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    lock = tmp_path / "job.lock"
    text = checks.JOB_LOCK_FILE.read_text().replace("numpy==2.1.0", "numpy==2.4.6")
    lock.write_text(text.replace("six==1.17.0\n", "") + "requests==2.32.3\n")
    monkeypatch.setattr(checks, "JOB_LOCK_FILE", lock)

    with pytest.raises(checks.CheckFailed) as failure:
        checks.check_job_environment()

    message = str(failure.value)
    assert "numpy: job.lock has 2.4.6, the container has 2.1.0" in message
    assert "six: the container has 1.17.0, job.lock lacks it" in message
    assert "requests==2.32.3: in job.lock, not in the container" in message


def test_a_requirement_that_is_not_an_exact_pin_is_refused(tmp_path: Path) -> None:
    requirements = tmp_path / "job.lock"
    requirements.write_text("numpy==2.1.0\npandas>=2.2\n")

    with pytest.raises(checks.CheckFailed, match=r"job.lock:2: 'pandas>=2.2' is not an exact"):
        checks.requirement_pins(requirements)


def test_the_container_python_is_read_from_the_record() -> None:
    assert checks.container_python_version() == "3.10"


@pytest.mark.parametrize(
    ("source", "named"),
    [
        ("try:\n    pass\nexcept* ValueError:\n    pass\n", "3.11"),
        ("from typing import Self\n", 'Module "typing" has no attribute "Self"'),
    ],
    ids=["except-star", "typing-self"],
)
def test_ml_code_that_needs_python_3_11_fails_the_ml_python_check(tmp_path: Path, source: str, named: str) -> None:
    (tmp_path / "job.py").write_text(source)

    problems = checks.ml_python_problems(tmp_path, checks.container_python_version(), checks.JOB_PYTHON)

    assert named in problems


def test_the_project_ml_code_passes_the_ml_python_check() -> None:
    assert checks.check_ml_python() == "ml/ suits Python 3.10"


def test_an_installed_job_environment_that_is_not_the_lock_fails_naming_the_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    installed = {**checks.requirement_pins(checks.JOB_LOCK_FILE), "pandas": "3.1.1", "evidently": "0.7.23"}
    monkeypatch.setattr(checks, "installed_packages", lambda python: installed)

    with pytest.raises(checks.CheckFailed) as failure:
        checks.check_job_environment()

    message = str(failure.value)
    assert "pandas: the installed .venv-job has 3.1.1, job.lock has 2.2.3" in message
    assert "evidently==0.7.23: in the installed .venv-job, not in job.lock" in message
