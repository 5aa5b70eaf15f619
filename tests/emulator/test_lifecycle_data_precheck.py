"""`mlops run --data FILE` refuses before starting what preprocessing would refuse, with the same one-line reason."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from emulator.commands.datasets import ML_DIR, DatasetError, load_user_dataset, with_pipeline_label
from emulator.commands.lifecycle import run_command

HEADER = "x1,x2,label\n"
ROWS = "".join(f"{i},{i % 3},{i % 2}\n" for i in range(12))


def _preprocess_error(path: Path, tmp_path: Path) -> str:
    """The ERROR line preprocess.py prints for the folder holding `path`, run as the processing job runs it."""
    process = subprocess.run(
        [
            sys.executable,
            str(ML_DIR / "preprocess.py"),
            "--input-dir",
            str(path.parent),
            "--output-dir",
            str(tmp_path / "out"),
            "--label-column",
            "label",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert process.returncode == 1, process.stdout
    return process.stderr.strip().removeprefix("ERROR: ")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ((HEADER + "1,inf,0\n" + ROWS).encode(), r"column 'x2', data row 1: inf is infinite"),
        ((HEADER + ROWS + "1e308,2,1\n").encode(), r"column 'x1', data row 13: 1e\+308 is beyond"),
        ("x1,x2,label,café\n".encode("latin-1") + ROWS.encode(), r"is not UTF-8 at byte 15 \(0xe9\)"),
    ],
    ids=["inf", "1e308", "latin-1"],
)
def test_data_the_processing_job_refuses_is_refused_up_front_with_its_message(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    path = tmp_path / "data" / "data.csv"
    path.parent.mkdir()
    path.write_bytes(content)

    with pytest.raises(DatasetError, match=expected) as refused:
        load_user_dataset(path, "label")

    assert str(refused.value) == _preprocess_error(path, tmp_path)


def test_run_stops_before_starting_the_twin_on_a_latin_1_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes("x1,x2,label,café\n".encode("latin-1") + ROWS.encode())

    exit_code = run_command(path, "label", tune=False, report=tmp_path / "report.html", work_dir=tmp_path / "work")

    assert exit_code != 0
    assert "is not UTF-8 at byte 15" in capsys.readouterr().err
    assert not (tmp_path / "report.html").exists()


def test_a_byte_order_mark_is_accepted_and_the_uploaded_copy_has_clean_names(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(b"\xef\xbb\xbf" + ("y,x1\n" + "".join(f"{i % 2},{i}\n" for i in range(10))).encode())

    dataset = load_user_dataset(path, "y")
    upload = with_pipeline_label(dataset, "target", tmp_path / "upload")

    assert dataset.feature_columns == ("x1",)
    assert upload.read_text().splitlines()[0] == "target,x1"
