"""monitor.py against Evidently's DataDriftPreset: on the same reference and current data, the same verdicts.

Evidently (pinned test-only in the dev extra) is the reference implementation of the drift semantics monitor.py
reimplements with numpy and scipy. Each case runs one data set through both: the test chosen per column, its score,
the verdict and the drifted share must agree, for numeric and categorical columns and for reference samples of at
most and of more than 1000 rows (where Evidently switches tests).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest
from test_monitor import write_capture


def _import_evidently() -> tuple[Any, ...]:
    """Evidently's report API. Evidently 0.7.23 imports `infer_dtype_from_object` from pandas' internals, which
    pandas 3 removed; only its column-type data-integrity test calls it, never the drift path. A stand-in that fails
    if called lets the import succeed without changing what any drift result can be."""
    import pandas.core.dtypes.common as pandas_dtypes

    if not hasattr(pandas_dtypes, "infer_dtype_from_object"):

        def removed_in_pandas_3(*_: Any) -> Any:
            raise AssertionError("evidently called pandas' infer_dtype_from_object, which pandas 3 removed")

        pandas_dtypes.infer_dtype_from_object = removed_in_pandas_3
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    return DataDefinition, Dataset, Report, DataDriftPreset


@pytest.fixture(scope="module")
def evidently() -> Iterator[tuple[Any, ...]]:
    """Evidently's DataDefinition, Dataset, Report and DataDriftPreset, imported when a test here runs (its import
    takes seconds, which collecting the suite should not pay), with its telemetry off: Evidently sends none while
    DO_NOT_TRACK is set (evidently/telemetry.py reads it at each call)."""
    before = os.environ.get("DO_NOT_TRACK")
    os.environ["DO_NOT_TRACK"] = "1"
    try:
        yield _import_evidently()
    finally:
        if before is None:
            del os.environ["DO_NOT_TRACK"]
        else:
            os.environ["DO_NOT_TRACK"] = before


# Evidently's display name of each test (StatTest.display_name) against monitor.py's test name.
EVIDENTLY_TEST_NAMES = {
    "K-S p_value": "ks",
    "chi-square p_value": "chisquare",
    "Z-test p_value": "z",
    "Wasserstein distance (normed)": "wasserstein",
    "Jensen-Shannon distance": "jensenshannon",
}


def evidently_drift(
    evidently: tuple[Any, ...], reference: pd.DataFrame, current: pd.DataFrame, categorical: list[str]
) -> dict[str, Any]:
    """Evidently's per-column test, score and verdict and its drifted share, with the default DataDriftPreset."""
    DataDefinition, Dataset, Report, DataDriftPreset = evidently
    definition = DataDefinition(
        numerical_columns=[name for name in reference.columns if name not in categorical],
        categorical_columns=categorical,
    )
    snapshot = Report([DataDriftPreset()], include_tests=True).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    document = snapshot.dict()
    columns: dict[str, dict[str, Any]] = {}
    share = None
    for metric in document["metrics"]:
        config = metric["config"]
        if config["type"].endswith(":ValueDrift"):
            columns[config["column"]] = {
                "test": EVIDENTLY_TEST_NAMES[config["method"]],
                "threshold": config["threshold"],
                "score": metric["value"],
            }
        elif config["type"].endswith(":DriftedColumnsCount"):
            share = metric["value"]["share"]
    for test in document["tests"]:
        if test["id"] == "drift":
            columns[test["metric_config"]["params"]["column"]]["drifted"] = test["status"] == "FAIL"
    return {"columns": columns, "share": share}


def monitor_drift(
    monitor: ModuleType, tmp_path: Path, reference: pd.DataFrame, current: pd.DataFrame, categorical: list[str]
) -> dict[str, Any]:
    """monitor.py's report for `current` sent as captured CSV requests, against `reference` as its baseline."""
    monitor.write_baseline(tmp_path / "baseline", reference, monitor.baseline_statistics(reference, categorical, []))
    write_capture(tmp_path / "capture", current.to_numpy(), per_record=4)
    report: dict[str, Any] = monitor.analyze(
        monitor.load_baseline(tmp_path / "baseline"), monitor.find_capture_files(tmp_path / "capture"), min_records=1
    )
    return report


def drift_case(reference_rows: int, current_rows: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Columns for every default test: some drifted, some not, numeric and categorical (numeric codes)."""
    rng = np.random.default_rng(seed)

    def frame(rows: int, shifted: bool) -> pd.DataFrame:
        step = 1.0 if shifted else 0.0
        columns = {
            "steady": rng.normal(10.0, 2.0, rows),
            "shifted_mean": rng.normal(10.0 + step, 2.0, rows),
            # A shift of 0.15 standard deviations: a normed Wasserstein distance near 0.15, just past its threshold.
            "slightly_shifted": rng.normal(0.15 * step, 1.0, rows),
            "wider": rng.normal(0.0, 1.0 + step, rows),
            "few_levels": rng.choice([1.0, 2.0, 3.0, 4.0], rows, p=[0.4, 0.3, 0.2, 0.1]),
            "few_levels_moved": rng.choice(
                [1.0, 2.0, 3.0, 4.0], rows, p=[0.1, 0.2, 0.3, 0.4] if shifted else [0.4, 0.3, 0.2, 0.1]
            ),
            "flag": rng.choice([0.0, 1.0], rows, p=[0.7, 0.3]),
            "flag_moved": rng.choice([0.0, 1.0], rows, p=[0.4, 0.6] if shifted else [0.7, 0.3]),
            "region": rng.choice(np.arange(12.0), rows),
            "region_moved": rng.choice(np.arange(12.0), rows, p=_tilted(12) if shifted else None),
            "segment": rng.choice([0.0, 1.0, 2.0], rows, p=[0.5, 0.3, 0.2]),
        }
        # Values as the payload carries them: float32, the precision monitor.py keeps.
        return pd.DataFrame(columns).astype(np.float32).astype(np.float64)

    categorical = ["region", "region_moved", "segment", "flag_moved"]
    return frame(reference_rows, shifted=False), frame(current_rows, shifted=True), categorical


def _tilted(levels: int) -> np.ndarray:
    weights = np.linspace(1.0, 3.0, levels)
    return np.asarray(weights / weights.sum())


@pytest.fixture
def monitor(ml_module: Callable[[str], ModuleType]) -> ModuleType:
    return ml_module("monitor")


@pytest.mark.parametrize(
    ("reference_rows", "current_rows"),
    [
        pytest.param(600, 400, id="small-reference"),
        pytest.param(1000, 700, id="reference-at-1000"),
        pytest.param(2500, 1800, id="large-reference"),
    ],
)
def test_verdicts_and_drifted_share_agree_with_evidently(
    evidently: tuple[Any, ...], monitor: ModuleType, tmp_path: Path, reference_rows: int, current_rows: int
) -> None:
    reference, current, categorical = drift_case(reference_rows, current_rows, seed=reference_rows)

    expected = evidently_drift(evidently, reference, current, categorical)
    report = monitor_drift(monitor, tmp_path, reference, current, categorical)
    ours = {entry["name"]: entry for entry in report["features"]}

    for name, theirs in expected["columns"].items():
        assert ours[name]["test"] == theirs["test"], name
        assert ours[name]["threshold"] == theirs["threshold"], name
        assert ours[name]["score"] == pytest.approx(theirs["score"], rel=1e-6, abs=1e-12), name
        assert ours[name]["drifted"] is theirs["drifted"], name
    assert report["drifted_share"] == pytest.approx(expected["share"])
    # Both kinds of verdict occur, so agreement is not all-drifted or none-drifted by accident.
    assert {theirs["drifted"] for theirs in expected["columns"].values()} == {True, False}


def test_the_large_reference_uses_the_distance_tests(monitor: ModuleType, tmp_path: Path) -> None:
    reference, current, categorical = drift_case(2500, 1800, seed=5)

    report = monitor_drift(monitor, tmp_path, reference, current, categorical)

    assert {entry["test"] for entry in report["features"]} == {"wasserstein", "jensenshannon"}


def test_the_breast_cancer_features_agree_with_evidently_unshifted_and_shifted(
    evidently: tuple[Any, ...], monitor: ModuleType, tmp_path: Path, breast_cancer: pd.DataFrame
) -> None:
    features = breast_cancer.drop(columns=["target"]).astype(np.float32).astype(np.float64)
    shuffled = features.sample(frac=1.0, random_state=1).reset_index(drop=True)
    reference, held_out = shuffled.iloc[:300], shuffled.iloc[300:].reset_index(drop=True)

    for name, current in (("unshifted", held_out), ("shifted", (held_out * 1.2).astype(np.float32).astype(np.float64))):
        expected = evidently_drift(evidently, reference, current, [])
        report = monitor_drift(monitor, tmp_path / name, reference, current, [])
        verdicts = {entry["name"]: entry["drifted"] for entry in report["features"]}
        assert verdicts == {column: result["drifted"] for column, result in expected["columns"].items()}, name
        assert report["drifted_share"] == pytest.approx(expected["share"]), name
