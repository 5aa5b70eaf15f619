"""`mlops run` refuses bad input before it starts the twin, with an exit code and a message that names the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulator.lifecycle import EXIT_BAD_INPUT, run_command


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
