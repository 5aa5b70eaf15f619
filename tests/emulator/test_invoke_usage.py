"""`mlops invoke`'s usage errors: an unknown function, an unreadable or non-JSON event, a non-EventBridge event."""

from __future__ import annotations

from pathlib import Path

import pytest

from contract.project import PROJECT_ROOT
from emulator.commands.invoke import EXIT_USAGE, invoke_command

EVENTS = PROJECT_ROOT / "events"


def test_an_unknown_function_lists_the_valid_ones(capsys: pytest.CaptureFixture[str]) -> None:
    code = invoke_command("retrain_on_wishes", EVENTS / "retrain_on_drift" / "alarm.json", via_eventbridge=False)
    message = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert "no function 'retrain_on_wishes'" in message
    assert "RetrainOnDriftFunction (retrain_on_drift)" in message
    assert "EndpointReaperFunction (endpoint_reaper)" in message


def test_an_event_file_that_is_not_json_names_the_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    event = tmp_path / "broken.json"
    event.write_text('{\n  "detail": oops\n}\n', encoding="utf-8")
    assert invoke_command("retrain_on_drift", event, via_eventbridge=False) == EXIT_USAGE
    assert f"event file {event} is not valid JSON (line 2, column 13" in capsys.readouterr().err


def test_a_missing_event_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere.json"
    assert invoke_command("retrain_on_drift", missing, via_eventbridge=False) == EXIT_USAGE
    assert f"cannot read event file {missing}" in capsys.readouterr().err


def test_via_eventbridge_needs_an_eventbridge_event(capsys: pytest.CaptureFixture[str]) -> None:
    event = EVENTS / "evaluation_report" / "payload.json"
    assert invoke_command("evaluation_report", event, via_eventbridge=True) == EXIT_USAGE
    assert "is not an EventBridge event" in capsys.readouterr().err
