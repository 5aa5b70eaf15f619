"""Data files that cannot be trained on fail preprocessing with one line naming what is wrong and where.

Non-finite cells, magnitudes XGBoost's 32-bit floats cannot hold (their statistics overflow too), files that are
not UTF-8; a UTF-8 byte order mark in the header is read as UTF-8 and works.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

RunPreprocess = Callable[..., subprocess.CompletedProcess[str]]


def _fails_with_one_line(process: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert process.returncode == 1, process.stdout
    lines = process.stderr.strip().splitlines()
    assert len(lines) == 1, process.stderr
    assert lines[0].startswith("ERROR: ")
    for fragment in fragments:
        assert fragment in lines[0]


def _with_cell(frame: pd.DataFrame, row: int, column: str, value: object) -> pd.DataFrame:
    changed = frame.copy()
    changed[column] = changed[column].astype(object)
    changed.loc[row, column] = value
    return changed


@pytest.mark.parametrize(
    ("value", "problem"),
    [("inf", "inf is infinite"), ("-inf", "-inf is infinite"), ("1e308", "1e+308 is beyond"), ("-1e308", "-1e+308")],
)
def test_a_cell_that_is_not_a_finite_float32_fails_naming_column_and_row(
    tmp_path: Path, breast_cancer: pd.DataFrame, run_preprocess: RunPreprocess, value: str, problem: str
) -> None:
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    _with_cell(breast_cancer, 41, "mean area", value).to_csv(input_dir / "data.csv", index=False)

    process = run_preprocess(input_dir)

    _fails_with_one_line(process, "data.csv: column 'mean area', data row 42", problem, "32-bit floats")
    assert not (tmp_path / "output").exists()


def test_huge_values_whose_statistics_would_overflow_fail_before_any_output(
    tmp_path: Path, breast_cancer: pd.DataFrame, run_preprocess: RunPreprocess
) -> None:
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    frame = breast_cancer.copy()
    frame["mean radius"] = [1e308 if index % 2 else -1e308 for index in range(len(frame))]
    frame.to_csv(input_dir / "data.csv", index=False)

    _fails_with_one_line(run_preprocess(input_dir), "column 'mean radius', data row 1", "is beyond")
    assert not (tmp_path / "output").exists()


def test_a_latin_1_file_fails_naming_the_byte_offset(
    tmp_path: Path, breast_cancer: pd.DataFrame, run_preprocess: RunPreprocess
) -> None:
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    renamed = breast_cancer.rename(columns={"mean area": "mean área"})
    renamed.to_csv(input_dir / "data.csv", index=False, encoding="latin-1")
    offset = (input_dir / "data.csv").read_bytes().index("á".encode("latin-1"))

    _fails_with_one_line(
        run_preprocess(input_dir), f"data.csv is not UTF-8 at byte {offset} (0xe1)", "save it as UTF-8"
    )


def test_the_byte_offset_is_exact_across_read_chunks(tmp_path: Path, ml_module: Callable[[str], ModuleType]) -> None:
    mlcore = ml_module("mlcore")
    # A two-byte character straddling the first chunk boundary, then one stray Latin-1 byte much later.
    prefix = b"a" * ((1 << 20) - 1) + "é".encode() + b"b" * 5000
    path = tmp_path / "big.csv"
    path.write_bytes(prefix + b"\xe9" + b"c" * 10)

    with pytest.raises(mlcore.MlInputError, match=f"not UTF-8 at byte {len(prefix)} "):
        mlcore.check_utf8(path)


def test_a_utf8_byte_order_mark_before_the_header_is_skipped(
    tmp_path: Path, breast_cancer: pd.DataFrame, run_preprocess: RunPreprocess
) -> None:
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    # The label first: the mark would otherwise make its name '\ufefftarget' and the label column "missing".
    label_first = breast_cancer[["target", *breast_cancer.columns.drop("target")]]
    label_first.to_csv(input_dir / "data.csv", index=False, encoding="utf-8-sig")
    assert (input_dir / "data.csv").read_bytes().startswith(b"\xef\xbb\xbf")

    process = run_preprocess(input_dir)

    assert process.returncode == 0, process.stderr
    train = pd.read_csv(tmp_path / "output" / "train" / "train.csv")
    assert list(train.columns) == list(label_first.columns)


@pytest.mark.parametrize(
    ("body", "content_type", "where"),
    [
        (b"1,inf,3\n", "text/csv", "line 1, column 2: inf"),
        (b"1,2,3\n4,-1e39,6\n", "text/csv", "line 2, column 2: -1e+39"),
        (b'{"instances": [[1, Infinity]]}', "application/json", "row 1: inf"),
    ],
    ids=["csv-inf", "csv-beyond-float32", "json-infinity"],
)
def test_a_request_with_a_non_finite_value_is_refused_naming_where(
    ml_module: Callable[[str], ModuleType], body: bytes, content_type: str, where: str
) -> None:
    inference = ml_module("inference")

    with pytest.raises(ValueError, match=f"^{re.escape(where)} is not a finite number"):
        inference.input_fn(body, content_type)
