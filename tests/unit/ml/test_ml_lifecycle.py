"""preprocess -> train -> evaluate -> inference on breast-cancer data, each script in its own process like SageMaker."""

from __future__ import annotations

import json
import re
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
import pytest

# The training workflow's MetricDefinitions: `<name>=<number>;` for each of these names.
WORKFLOW_METRICS = ("validation:auc", "validation:logloss", "train:auc")
MIN_TEST_ACCURACY = 0.93
REPORT_METRICS = {"auc", "accuracy", "f1", "precision", "recall", "logloss"}


@pytest.fixture(scope="module")
def evaluation(
    tmp_path_factory: pytest.TempPathFactory,
    model_archive: Path,
    prepared_data: Path,
    ml_script: Callable[..., subprocess.CompletedProcess[str]],
) -> dict[str, Any]:
    """evaluation.json of the trained model on the test split, plus what the job printed under `stdout`."""
    output_dir = tmp_path_factory.mktemp("evaluation")
    args = ["--model-dir", str(model_archive), "--test-dir", str(prepared_data / "test")]
    args += ["--train-dir", str(prepared_data / "train"), "--pretraining-bias-dir", str(prepared_data / "baseline")]
    process = ml_script("evaluate.py", [*args, "--output-dir", str(output_dir)])
    assert process.returncode == 0, process.stderr
    report: dict[str, Any] = json.loads((output_dir / "evaluation.json").read_text())
    return {**report, "stdout": process.stdout}


def test_model_reaches_the_accuracy_target_on_the_test_split(evaluation: dict[str, Any]) -> None:
    assert evaluation["metrics"]["accuracy"] >= MIN_TEST_ACCURACY
    assert f"accuracy={evaluation['metrics']['accuracy']:.4f}" in evaluation["stdout"]


def test_evaluation_report_has_the_interface_shape(evaluation: dict[str, Any], prepared_data: Path) -> None:
    test = pd.read_csv(prepared_data / "test" / "test.csv")

    assert set(evaluation) - {"stdout"} == {"metrics", "per_class", "feature_attributions", "n_test", "bias"}
    # The breast-cancer data has no protected attribute: pipeline.toml [bias] names no facet, and the report says so.
    assert evaluation["bias"] == {
        "facet": None,
        "reason": "no facet configured (pipeline.toml [bias] facet_column is empty)",
    }
    assert set(evaluation["metrics"]) == REPORT_METRICS
    assert all(0.0 <= evaluation["metrics"][name] <= 1.0 for name in REPORT_METRICS - {"logloss"})
    assert evaluation["n_test"] == len(test)
    assert set(evaluation["per_class"]) == {"0", "1"}
    for label, scores in evaluation["per_class"].items():
        assert scores["support"] == int((test["target"] == int(label)).sum())
        assert set(scores) == {"precision", "recall", "f1", "support"}


def test_feature_attributions_cover_every_feature_largest_first(
    evaluation: dict[str, Any], prepared_data: Path
) -> None:
    features = list(pd.read_csv(prepared_data / "test" / "test.csv").columns[1:])
    attributions = evaluation["feature_attributions"]

    assert sorted(attributions) == sorted(features)
    values = list(attributions.values())
    assert values == sorted(values, reverse=True)
    assert values[0] > 0
    assert all(value >= 0 for value in values)


def test_training_prints_each_round_for_the_workflow_metric_definitions(trained_model: Any) -> None:
    stdout = trained_model.process.stdout
    round_lines = [line for line in stdout.splitlines() if re.match(r"\[\d+\] ", line)]

    assert len(round_lines) == trained_model.metrics["rounds_trained"]
    for name in WORKFLOW_METRICS:
        values = re.findall(rf"{re.escape(name)}=([-+0-9.eE]+);", stdout)
        # One value per round, then the saved model's value on the final line, which is what the job reports.
        assert len(values) == len(round_lines) + 1
        assert float(values[-1]) == pytest.approx(trained_model.metrics["final_metrics"][name], abs=1e-6)


def test_early_stopping_keeps_the_trees_up_to_the_best_round(
    trained_model: Any, pipeline_hyperparameters: dict[str, Any]
) -> None:
    metrics = trained_model.metrics

    assert metrics["stopped_early"] is True
    assert metrics["rounds_trained"] < pipeline_hyperparameters["num_round"]
    assert (
        metrics["rounds_trained"] == metrics["best_iteration"] + 1 + pipeline_hyperparameters["early_stopping_rounds"]
    )
    assert metrics["model_rounds"] == metrics["best_iteration"] + 1
    assert metrics["final_metrics"]["validation:auc"] == pytest.approx(metrics["best_score"])


def test_model_archive_holds_the_model_and_its_inference_code(model_archive: Path) -> None:
    with tarfile.open(model_archive / "model.tar.gz") as tar:
        names = set(tar.getnames())

    assert {"xgboost-model", "code/inference.py", "code/mlcore.py"} <= names


def test_served_model_predicts_the_smoke_test_sample_rows(
    inference: ModuleType, served_model_dir: Path, prepared_data: Path
) -> None:
    # GIVEN the smoke test's sample rows, which are the first rows of the test split without their label
    sample = (prepared_data / "sample" / "sample.csv").read_text()
    test = pd.read_csv(prepared_data / "test" / "test.csv")
    n_sample = len(sample.splitlines())

    # WHEN the endpoint handlers serve them
    model = inference.model_fn(str(served_model_dir))
    body, content_type = inference.output_fn(
        inference.predict_fn(inference.input_fn(sample, "text/csv"), model), "application/json"
    )

    # THEN each row gets a probability and the label it implies, and mostly the true label
    predictions = json.loads(body)["predictions"]
    assert content_type == "application/json"
    assert len(predictions) == n_sample
    assert all(p["label"] == int(p["score"] >= 0.5) for p in predictions)
    matches = sum(p["label"] == label for p, label in zip(predictions, test["target"][:n_sample], strict=True))
    assert matches >= n_sample - 1
