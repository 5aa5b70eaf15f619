"""`mlops run` parts that need no twin: bad input refused before it starts, a missing approval routing named."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulator.commands.lifecycle import EXIT_BAD_INPUT, LifecycleError, run_command, wait_for_deploy_start


def test_a_csv_without_the_label_column_exits_before_starting_the_twin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data.csv"
    data.write_text("x1,x2,outcome\n1,2,0\n3,4,1\n")

    code = run_command(data, None, tune=False, report=tmp_path / "report.html", work_dir=tmp_path / "work")

    assert code == EXIT_BAD_INPUT
    assert "label column 'target' is not in" in capsys.readouterr().err
    assert not (tmp_path / "report.html").exists()


def test_a_label_column_without_data_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run_command(None, "diagnosis", tune=False, report=tmp_path / "report.html", work_dir=tmp_path / "work")

    assert code == EXIT_BAD_INPUT
    assert "--label-column 'diagnosis' needs --data" in capsys.readouterr().err


def test_a_missing_approval_routing_is_named_instead_of_deploying_by_hand() -> None:
    with pytest.raises(LifecycleError, match=r"ModelApprovedRule .* this run does not start deploy by hand"):
        wait_for_deploy_start(list, timeout=0.3)


def test_the_deploy_started_by_the_approval_is_followed() -> None:
    started = [{"executionArn": "arn:aws:states:us-east-1:123456789012:execution:deploy:approval"}]

    assert wait_for_deploy_start(lambda: started, timeout=0.3) == started[0]["executionArn"]
