"""evaluate.py's drift baseline: the inference payload's features from the training split, critical = top SHAP."""

from __future__ import annotations

import json
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from contract.pipeline_config import MonitoringConfig, load_pipeline_config

BaselineRun = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def evaluation_output(
    tmp_path_factory: pytest.TempPathFactory,
    model_archive: Path,
    prepared_data: Path,
    ml_script: Callable[..., subprocess.CompletedProcess[str]],
) -> Path:
    """The output folder of evaluate.py run as a child process with the workflow's defaults (3 critical features)."""
    output_dir = tmp_path_factory.mktemp("evaluation")
    args = ["--model-dir", str(model_archive), "--test-dir", str(prepared_data / "test")]
    args += ["--train-dir", str(prepared_data / "train"), "--output-dir", str(output_dir)]
    args += ["--pretraining-bias-dir", str(prepared_data / "baseline")]
    args += ["--critical-feature-count", "3"]
    process = ml_script("evaluate.py", args)
    assert process.returncode == 0, process.stderr
    return output_dir


@pytest.fixture
def run_evaluate(
    tmp_path: Path,
    model_archive: Path,
    prepared_data: Path,
    ml_module: Callable[[str], ModuleType],
    capsys: pytest.CaptureFixture[str],
) -> BaselineRun:
    """evaluate.py's `main` in this process on the prepared data into `<tmp_path>/out`; extra arguments follow."""
    main = ml_module("evaluate").main

    def run(*extra: str, train_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
        args = ["--model-dir", str(model_archive), "--test-dir", str(prepared_data / "test")]
        args += ["--train-dir", str(train_dir or prepared_data / "train"), "--output-dir", str(tmp_path / "out")]
        args += ["--pretraining-bias-dir", str(prepared_data / "baseline")]
        exit_code = main([*args, *extra])
        printed = capsys.readouterr()
        return subprocess.CompletedProcess(args, exit_code, printed.out, printed.err)

    return run


def model_from(archive_dir: Path) -> xgb.Booster:
    with tarfile.open(archive_dir / "model.tar.gz") as tar:
        member = tar.extractfile("xgboost-model")
        assert member is not None
        booster = xgb.Booster()
        booster.load_model(bytearray(member.read()))
    return booster


def read_statistics(output_dir: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((output_dir / "baseline" / "baseline.json").read_text())
    return loaded


def test_baseline_sample_is_the_training_split_in_payload_order_without_label(
    evaluation_output: Path, prepared_data: Path, model_archive: Path
) -> None:
    train = pd.read_csv(prepared_data / "train" / "train.csv")
    sample = pd.read_csv(evaluation_output / "baseline" / "baseline.csv")
    payload_order = json.loads(model_from(model_archive).attr("feature_names") or "[]")

    assert list(sample.columns) == payload_order == list(train.columns[1:])
    assert "target" not in sample.columns
    # The split has fewer rows than baseline_sample_rows: the sample is all of it, row for row.
    np.testing.assert_allclose(sample.to_numpy(), train.drop(columns="target").to_numpy())


def test_baseline_json_lists_each_payload_feature_with_its_training_range(
    evaluation_output: Path, prepared_data: Path
) -> None:
    train = pd.read_csv(prepared_data / "train" / "train.csv").drop(columns="target")
    statistics = read_statistics(evaluation_output)

    assert statistics["format_version"] == 1
    assert [feature["name"] for feature in statistics["features"]] == list(train.columns)
    for feature in statistics["features"]:
        column = train[feature["name"]].to_numpy(dtype=np.float32)
        assert feature["type"] == "numerical"
        assert feature["min"] == float(column.min())
        assert feature["max"] == float(column.max())


def test_critical_features_are_the_top_three_by_mean_absolute_shap_on_the_test_split(
    evaluation_output: Path, prepared_data: Path, model_archive: Path
) -> None:
    test = pd.read_csv(prepared_data / "test" / "test.csv").drop(columns="target")
    contributions = model_from(model_archive).predict(xgb.DMatrix(test.to_numpy()), pred_contribs=True)
    mean_abs = np.abs(contributions[:, :-1]).mean(axis=0)
    top_three = [test.columns[index] for index in np.argsort(-mean_abs, kind="stable")[:3]]
    evaluation = json.loads((evaluation_output / "evaluation.json").read_text())

    assert read_statistics(evaluation_output)["critical_features"] == top_three
    assert top_three == list(evaluation["feature_attributions"])[:3]


def test_written_baseline_is_one_the_monitoring_job_loads(
    evaluation_output: Path, ml_module: Callable[[str], ModuleType]
) -> None:
    baseline = ml_module("monitor").load_baseline(evaluation_output / "baseline")

    assert baseline.names == list(pd.read_csv(evaluation_output / "baseline" / "baseline.csv").columns)
    assert baseline.critical == read_statistics(evaluation_output)["critical_features"]
    assert baseline.types == ["numerical"] * baseline.width


def test_larger_training_split_gives_a_seeded_sample_of_baseline_sample_rows(
    run_evaluate: BaselineRun, tmp_path: Path, prepared_data: Path
) -> None:
    train_features = pd.read_csv(prepared_data / "train" / "train.csv").drop(columns="target")

    first = run_evaluate("--baseline-sample-rows", "50", "--seed", "7")
    sample = pd.read_csv(tmp_path / "out" / "baseline" / "baseline.csv")
    again = run_evaluate("--baseline-sample-rows", "50", "--seed", "7")

    assert first.returncode == again.returncode == 0, first.stderr + again.stderr
    assert len(sample) == 50
    assert "baseline: 50 of " in first.stdout
    training_rows = {tuple(row) for row in train_features.to_numpy().round(6)}
    assert {tuple(row) for row in sample.to_numpy().round(6)} <= training_rows
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "out" / "baseline" / "baseline.csv"), sample)


def test_critical_feature_count_sets_how_many_and_zero_gives_none(
    run_evaluate: BaselineRun, tmp_path: Path, evaluation_output: Path
) -> None:
    attributions = json.loads((evaluation_output / "evaluation.json").read_text())["feature_attributions"]
    used = [name for name, value in attributions.items() if value > 0]

    five = run_evaluate("--critical-feature-count", "5")
    five_critical = read_statistics(tmp_path / "out")["critical_features"]
    none = run_evaluate("--critical-feature-count", "0")
    no_critical = read_statistics(tmp_path / "out")["critical_features"]
    every = run_evaluate("--critical-feature-count", str(len(attributions) + 10))
    every_critical = read_statistics(tmp_path / "out")["critical_features"]

    assert five.returncode == none.returncode == every.returncode == 0
    assert five_critical == used[:5]
    assert no_critical == []
    # A feature the model never uses (zero attribution) is not critical, however many are asked for.
    assert len(used) < len(attributions), "the trained model leaves some features unused"
    assert every_critical == used


def test_fails_when_the_training_columns_differ_from_the_model_and_writes_nothing(
    run_evaluate: BaselineRun, tmp_path: Path, prepared_data: Path
) -> None:
    train = pd.read_csv(prepared_data / "train" / "train.csv")
    renamed = tmp_path / "train"
    renamed.mkdir()
    train.rename(columns={"mean radius": "radius"}).to_csv(renamed / "train.csv", index=False)

    process = run_evaluate(train_dir=renamed)

    assert process.returncode == 1
    assert process.stderr.startswith("ERROR: the training columns"), process.stderr
    assert "the training split the model was trained on" in process.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("argument", "value", "message"),
    [
        ("--critical-feature-count", "-1", "--critical-feature-count -1 must be at least 0."),
        ("--baseline-sample-rows", "0", "--baseline-sample-rows 0 must be at least 1."),
    ],
)
def test_bad_baseline_argument_is_named(
    run_evaluate: BaselineRun, tmp_path: Path, argument: str, value: str, message: str
) -> None:
    process = run_evaluate(argument, value)

    assert process.returncode == 1
    assert process.stderr == f"ERROR: {message}\n"
    assert not (tmp_path / "out").exists()


def test_script_defaults_are_the_pipeline_config_defaults(ml_module: Callable[[str], ModuleType]) -> None:
    # The workflow always passes pipeline.toml's values; a bare run of the script must mean the same thing.
    evaluate = ml_module("evaluate")
    defaults = evaluate.parse_args([])

    assert defaults.critical_feature_count == MonitoringConfig().critical_feature_count
    assert defaults.baseline_sample_rows == MonitoringConfig().baseline_sample_rows
    assert defaults.seed == load_pipeline_config().data.split_seed
