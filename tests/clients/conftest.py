"""The client suite's target: `mlops up` started once for the session, or a real stack named by AWS_SAM_STACK_NAME.

The tests here drive the system only through public AWS APIs, from other processes (the pinned AWS CLI, a Python
process with the SageMaker SDK), as a user or an operator would. Resource names come from the stack's CloudFormation
outputs on both targets, as AWS's serverless test samples find a deployed stack.

- Without AWS_SAM_STACK_NAME: one `mlops up --port 0` for the whole session (a fast clock, manual approval, a
  reaper that deletes after one idle hour), stopped with SIGINT at the end.
- With AWS_SAM_STACK_NAME=<stack>: the deployed stack in the account and region of the caller's own AWS variables
  (tests/conftest.py keeps them for this suite only). Tests that need the twin's fast clock skip there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from client_suite import (
    SUITE_CLOCK_SPEED,
    SUITE_PARAMETER_OVERRIDES,
    ServedTwin,
    Target,
    client_suite_target,
    start_served_twin,
)

# The session's served twin while it runs: stopped after the suite's last test (pytest_runtest_teardown below), not
# at the end of the session, so its fast clock's jobs do not run on beside the tests that come after.
_RUNNING: list[ServedTwin] = []
_SUITE_DIR = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def served_twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedTwin | None]:
    """The session's `mlops up` (None when the suite targets a real stack)."""
    if os.environ.get("AWS_SAM_STACK_NAME"):
        yield None
        return
    twin = start_served_twin(
        tmp_path_factory.mktemp("served-twin"),
        "--clock-speed",
        str(SUITE_CLOCK_SPEED),
        "--parameter-overrides",
        *SUITE_PARAMETER_OVERRIDES,
    )
    _RUNNING.append(twin)
    yield twin
    _stop_running()


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    if _RUNNING and (nextitem is None or _SUITE_DIR not in Path(nextitem.path).resolve().parents):
        _stop_running()


def _stop_running() -> None:
    while _RUNNING:
        twin = _RUNNING.pop()
        code = twin.stop()
        assert code == 0, f"mlops up exited {code} on SIGINT: {''.join(twin.lines[-20:])}"


@pytest.fixture(scope="session")
def target(served_twin: ServedTwin | None) -> Target:
    return client_suite_target(served_twin)
