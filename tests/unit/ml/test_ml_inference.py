"""inference.py, the endpoint handlers inside model.tar.gz: request formats, reply formats and clear errors."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest

N_FEATURES = 30


@pytest.fixture
def test_rows(prepared_data: Path) -> pd.DataFrame:
    return pd.read_csv(prepared_data / "test" / "test.csv")


@pytest.fixture
def model(inference: ModuleType, served_model_dir: Path) -> Any:
    return inference.model_fn(str(served_model_dir))


def serve(inference: ModuleType, model: Any, body: str | bytes, content_type: str, accept: str) -> tuple[str, str]:
    """One request through the handlers in the order the serving toolkit calls them."""
    result: tuple[str, str] = inference.output_fn(
        inference.predict_fn(inference.input_fn(body, content_type), model), accept
    )
    return result


def as_csv(frame: pd.DataFrame) -> str:
    return frame.to_csv(header=False, index=False)


def test_csv_rows_get_json_predictions_that_match_the_true_labels(
    inference: ModuleType, model: Any, test_rows: pd.DataFrame
) -> None:
    body, content_type = serve(
        inference, model, as_csv(test_rows.drop(columns="target")).encode(), "text/csv", "application/json"
    )

    predictions = json.loads(body)["predictions"]
    assert content_type == "application/json"
    assert len(predictions) == len(test_rows)
    assert all(0.0 <= p["score"] <= 1.0 and p["label"] == int(p["score"] >= 0.5) for p in predictions)
    accuracy = np.mean([p["label"] for p in predictions] == test_rows["target"].to_numpy())
    assert accuracy >= 0.93


def test_json_instances_and_a_bare_list_of_rows_predict_like_csv(
    inference: ModuleType, model: Any, test_rows: pd.DataFrame
) -> None:
    features = test_rows.drop(columns="target").head(4)
    rows = features.to_numpy().tolist()

    from_csv, _ = serve(inference, model, as_csv(features), "text/csv", "application/json")
    from_instances, _ = serve(inference, model, json.dumps({"instances": rows}), "application/json", "application/json")
    from_list, _ = serve(inference, model, json.dumps(rows), "application/json; charset=utf-8", "application/json")

    assert json.loads(from_instances) == json.loads(from_csv) == json.loads(from_list)


def test_csv_reply_has_one_score_and_label_line_per_row(
    inference: ModuleType, model: Any, test_rows: pd.DataFrame
) -> None:
    features = as_csv(test_rows.drop(columns="target").head(3))

    body, content_type = serve(inference, model, features, "text/csv", "text/csv")
    as_json, _ = serve(inference, model, features, "text/csv", "application/json")

    assert content_type == "text/csv"
    expected = [f"{p['score']!r},{p['label']}" for p in json.loads(as_json)["predictions"]]
    assert body.splitlines() == expected


@pytest.mark.parametrize("accept", ["*/*", ""])
def test_reply_defaults_to_json_when_the_caller_accepts_anything(
    inference: ModuleType, model: Any, test_rows: pd.DataFrame, accept: str
) -> None:
    _, content_type = serve(inference, model, as_csv(test_rows.drop(columns="target").head(1)), "text/csv", accept)

    assert content_type == "application/json"


def test_missing_values_are_accepted_as_empty_cells_and_nulls(inference: ModuleType, model: Any) -> None:
    csv_row = ",".join(["1.0"] * (N_FEATURES - 1)) + ","
    json_row = [1.0] * (N_FEATURES - 1) + [None]

    from_csv, _ = serve(inference, model, csv_row, "text/csv", "application/json")
    from_json, _ = serve(inference, model, json.dumps([json_row]), "application/json", "application/json")

    assert json.loads(from_csv) == json.loads(from_json)


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (",".join(["1"] * (N_FEATURES - 1)), "text/csv", f"expected {N_FEATURES} feature values per row, got 29"),
        ("mean radius,mean texture\n1,2", "text/csv", "line 1, column 1: 'mean radius' is not a number"),
        ("1,2\n1,2,3", "text/csv", "the request's rows have different lengths [2, 3]"),
        ("\n\n", "text/csv", "the request holds no rows"),
        ('{"rows": [[1, 2]]}', "application/json", 'expected {"instances": [[...], ...]} or a list of rows'),
        ("[1, 2, 3]", "application/json", "or a list of rows, each a list of feature values"),
        ('[[1, "two"]]', "application/json", "row 1: 'two' is not a number"),
        ("{not json", "application/json", "the request body is not valid JSON"),
        ("1,2", "application/x-npy", "unsupported content type 'application/x-npy': send text/csv or application/json"),
    ],
)
def test_bad_requests_raise_value_errors_that_name_the_problem(
    inference: ModuleType, model: Any, body: str, content_type: str, message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        serve(inference, model, body, content_type, "application/json")


@pytest.mark.parametrize(
    ("body", "content_type", "accept", "status"),
    [
        ("1,2", "application/x-npy", "application/json", 415),
        ("mean radius,mean texture\n1,2", "text/csv", "application/json", 400),
        (b"\xff\xfe", "text/csv", "application/json", 400),
        (",".join(["1"] * N_FEATURES), "text/csv", "application/x-protobuf", 406),
    ],
    ids=["content-type", "malformed-csv", "not-utf8", "accept"],
)
def test_bad_requests_carry_the_status_the_inference_toolkit_answers_with(
    inference: ModuleType, model: Any, body: str | bytes, content_type: str, accept: str, status: int
) -> None:
    with pytest.raises(inference.BadRequestError) as refused:
        serve(inference, model, body, content_type, accept)

    assert refused.value.status_code == status


def test_unsupported_accept_type_is_refused(inference: ModuleType, model: Any) -> None:
    row = ",".join(["1"] * N_FEATURES)

    with pytest.raises(ValueError, match=re.escape("unsupported accept type 'application/x-protobuf'")):
        serve(inference, model, row, "text/csv", "application/x-protobuf")


def test_model_fn_names_the_missing_model_file(inference: ModuleType, tmp_path: Path) -> None:
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()

    with pytest.raises(ValueError, match=re.escape(f"{empty_dir / 'xgboost-model'} does not exist")):
        inference.model_fn(str(empty_dir))
