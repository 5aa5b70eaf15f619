"""Endpoint handlers (SageMaker inference toolkit contract): load the model, parse requests, predict, format replies.

Requests are rows of feature values in the training column order, without a header and without the label:
`text/csv` (one row per line, an empty cell is a missing value) or `application/json` (`{"instances": [[...], ...]}`
or a bare list of rows, `null` for a missing value). Replies are `application/json`
(`{"predictions": [{"score": <probability of class 1>, "label": <0 or 1>}, ...]}`) or `text/csv` (`score,label` per
row). A bad request raises `BadRequestError` (a ValueError) with a message naming the problem and the HTTP status
the SageMaker inference toolkit answers it with: 415 for an unsupported content type, 406 for an unsupported accept
type, 400 for a body that is not rows of feature values. The toolkit answers any other error with 500.
"""

from __future__ import annotations

import csv
import io
import json
import math
from http import HTTPStatus
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb
from mlcore import FEATURE_VALUE_LIMIT, MODEL_FILE_NAME, load_booster, predicted_labels

try:
    # In SageMaker's XGBoost container the inference toolkit answers an error of this class with its status_code.
    from sagemaker_inference.errors import BaseInferenceToolkitError
except ModuleNotFoundError:  # outside a container: the toolkit's class, same constructor and attributes

    class BaseInferenceToolkitError(Exception):  # type: ignore[no-redef]
        def __init__(self, status_code: int, message: str, phrase: str) -> None:
            self.status_code = status_code
            self.message = message
            self.phrase = phrase
            super().__init__(status_code, message, phrase)


CSV = "text/csv"
JSON = "application/json"
SUPPORTED_TYPES = (CSV, JSON)
# Accept values that leave the reply format to the server.
_ANY_TYPE = ("", "*/*")


class BadRequestError(BaseInferenceToolkitError, ValueError):
    """A request the model cannot take; the toolkit answers it with `status_code` and the message."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(int(status), message, status.phrase)

    def __str__(self) -> str:
        return str(self.message)


def _bad_request(message: str) -> BadRequestError:
    return BadRequestError(HTTPStatus.BAD_REQUEST, message)


def model_fn(model_dir: str) -> xgb.Booster:
    """The booster that train.py saved in the model artifact."""
    path = Path(model_dir) / MODEL_FILE_NAME
    if not path.is_file():
        raise ValueError(f"{path} does not exist: the model artifact must hold {MODEL_FILE_NAME} at its root.")
    return load_booster(path.read_bytes())


def input_fn(request_body: bytes | str, request_content_type: str) -> np.ndarray:
    """The request's rows as a float matrix (NaN for missing values)."""
    content_type = _media_type(request_content_type)
    try:
        text = request_body.decode("utf-8") if isinstance(request_body, (bytes, bytearray)) else request_body
    except UnicodeDecodeError as error:
        raise _bad_request(f"the request body is not UTF-8 text: {error}") from None
    if content_type == CSV:
        rows = _csv_rows(text)
    elif content_type == JSON:
        rows = _json_rows(text)
    else:
        raise BadRequestError(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            f"unsupported content type {request_content_type!r}: send {CSV} or {JSON} (rows of feature values).",
        )
    if not rows:
        raise _bad_request("the request holds no rows: send at least one row of feature values.")
    widths = sorted({len(row) for row in rows})
    if len(widths) > 1:
        raise _bad_request(f"the request's rows have different lengths {widths}: every row needs every feature.")
    return np.array(rows, dtype=float)


def predict_fn(input_data: np.ndarray, model: xgb.Booster) -> np.ndarray:
    """The probability of class 1 for each row."""
    expected = model.num_features()
    if input_data.ndim != 2 or input_data.shape[1] != expected:
        got = input_data.shape[1] if input_data.ndim == 2 else input_data.shape
        raise _bad_request(
            f"expected {expected} feature values per row, got {got}: send the features in training column order, "
            "without the label and without a header."
        )
    scores: np.ndarray = model.predict(xgb.DMatrix(input_data))
    return scores


def output_fn(prediction: np.ndarray, accept: str) -> tuple[str, str]:
    """The reply body and its content type; JSON unless the caller asks for CSV."""
    media_type = _media_type(accept) if accept else ""
    labels = predicted_labels(prediction)
    if media_type in (JSON, *_ANY_TYPE):
        predictions = [{"score": float(prediction[row]), "label": int(labels[row])} for row in range(len(labels))]
        return json.dumps({"predictions": predictions}), JSON
    if media_type == CSV:
        lines = [f"{float(prediction[row])!r},{int(labels[row])}" for row in range(len(labels))]
        return "\n".join(lines) + "\n", CSV
    raise BadRequestError(HTTPStatus.NOT_ACCEPTABLE, f"unsupported accept type {accept!r}: ask for {JSON} or {CSV}.")


def _media_type(header: str | None) -> str:
    # "text/csv; charset=utf-8" names the same format as "text/csv".
    return (header or "").split(";", 1)[0].strip().lower()


def _csv_rows(text: str) -> list[list[float]]:
    rows = []
    for line_number, cells in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not cells or all(not cell.strip() for cell in cells):
            continue
        rows.append([_csv_cell(cell, line_number, column) for column, cell in enumerate(cells, start=1)])
    return rows


def _csv_cell(cell: str, line_number: int, column: int) -> float:
    if not cell.strip():
        return math.nan
    try:
        value = float(cell)
    except ValueError:
        raise _bad_request(
            f"line {line_number}, column {column}: {cell!r} is not a number; send rows of feature values "
            "without a header row."
        ) from None
    return _finite(value, f"line {line_number}, column {column}")


def _json_rows(text: str) -> list[list[float]]:
    try:
        document = json.loads(text)
    except ValueError as error:
        raise _bad_request(f"the request body is not valid JSON: {error}") from None
    rows: Any = document.get("instances") if isinstance(document, dict) else document
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise _bad_request('expected {"instances": [[...], ...]} or a list of rows, each a list of feature values.')
    return [[_json_value(value, row_number) for value in row] for row_number, row in enumerate(rows, start=1)]


def _json_value(value: Any, row_number: int) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _bad_request(f"row {row_number}: {value!r} is not a number; feature values must be numbers or null.")
    return _finite(float(value), f"row {row_number}")


def _finite(value: float, where: str) -> float:
    # The model was trained on finite 32-bit values (mlcore.read_csv_file refuses others); NaN means missing.
    if math.isnan(value) or abs(value) <= FEATURE_VALUE_LIMIT:
        return value
    raise _bad_request(f"{where}: {value!r} is not a finite number the model can take; send null or an empty cell.")
