"""`mlops invoke FUNCTION -e EVENT_FILE` on the sample events of events/, against the local twin."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from contract.project import PROJECT_ROOT
from emulator.commands.invoke import EXIT_FUNCTION_FAILED, EXIT_OK, invoke_command

EVENTS = PROJECT_ROOT / "events"
# A training stand-in that finishes at once: what matters here is that the function started it.
STAND_IN_ASL = {"StartAt": "Started", "States": {"Started": {"Type": "Pass", "Result": "${DataBucket}", "End": True}}}


@pytest.fixture
def stand_in_statemachines(tmp_path: Path) -> Path:
    for name in ("training", "deploy", "monitoring"):
        (tmp_path / f"{name}.asl.json").write_text(json.dumps(STAND_IN_ASL), encoding="utf-8")
    shutil.copy(PROJECT_ROOT / "statemachines" / "image-uris.json", tmp_path)
    return tmp_path


@pytest.mark.e2e
def test_a_function_prints_its_json_result_and_the_executions_it_started(
    stand_in_statemachines: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = invoke_command(
        "RetrainOnDriftFunction",
        EVENTS / "retrain_on_drift" / "alarm.json",
        via_eventbridge=False,
        statemachines_dir=stand_in_statemachines,
    )
    captured = capsys.readouterr()
    assert code == EXIT_OK
    result = json.loads(captured.out)  # stdout holds the result only: logs and metrics went to stderr
    assert result["action"] == "started"
    assert f"started execution {result['execution_arn']}" in captured.err


@pytest.mark.e2e
def test_a_failing_handler_prints_lambdas_error_payload_and_exits_1(
    stand_in_statemachines: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = invoke_command(
        "smoke_test",
        EVENTS / "smoke_test" / "missing_sample_uri.json",
        via_eventbridge=False,
        statemachines_dir=stand_in_statemachines,
    )
    assert code == EXIT_FUNCTION_FAILED
    error = json.loads(capsys.readouterr().out)
    assert error["errorType"] == "InvalidPayloadError"
    assert "sample_uri" in error["errorMessage"]


@pytest.mark.e2e
def test_via_eventbridge_the_stacks_rule_routes_the_alarm_to_its_function(
    stand_in_statemachines: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = invoke_command(
        "retrain_on_drift",
        EVENTS / "retrain_on_drift" / "alarm.json",
        via_eventbridge=True,
        statemachines_dir=stand_in_statemachines,
    )
    captured = capsys.readouterr()
    assert code == EXIT_OK
    assert json.loads(captured.out)["action"] == "started"
    assert "rule mlops-local-drift-alarm -> " in captured.err


@pytest.mark.e2e
def test_via_eventbridge_an_event_no_rule_sends_to_the_function_exits_1(
    stand_in_statemachines: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = invoke_command(
        "RetrainOnDriftFunction",
        EVENTS / "retrain_on_drift" / "unknown_alarm.json",
        via_eventbridge=True,
        statemachines_dir=stand_in_statemachines,
    )
    assert code == EXIT_FUNCTION_FAILED
    assert "the event reached no rule that targets RetrainOnDriftFunction" in capsys.readouterr().err
