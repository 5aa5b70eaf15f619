"""Processing job: score the trained model on the held-out test split and write the evaluation report.

Reads `model.tar.gz` from --model-dir and the test CSV (header, label first) from --test-dir, and writes
`evaluation.json` to --output-dir: headline metrics, per-class metrics and feature attributions (mean absolute SHAP
value per feature, from XGBoost's own `pred_contribs`). The quality gate reads the metrics from that file.
"""

from __future__ import annotations

import argparse
import os
import sys
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb
from mlcore import (
    MODEL_FILE_NAME,
    MlInputError,
    booster_feature_names,
    classification_metrics,
    fail_processing_job,
    load_booster,
    per_class_metrics,
    read_labelled_split,
    write_json,
)

MODEL_ARCHIVE_NAME = "model.tar.gz"
REPORT_FILE_NAME = "evaluation.json"


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The job's arguments; paths default to the processing container's."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=Path("/opt/ml/processing/model"))
    parser.add_argument("--test-dir", type=Path, default=Path("/opt/ml/processing/test"))
    parser.add_argument("--output-dir", type=Path, default=Path("/opt/ml/processing/evaluation"))
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    """Runs the job; returns the process exit code."""
    args = parse_args(argv)
    try:
        model = load_model_archive(args.model_dir / MODEL_ARCHIVE_NAME)
        features, labels, feature_names = read_labelled_split(args.test_dir, "test")
        report = evaluate(model, features, labels, feature_names)
    except MlInputError as error:
        return fail_processing_job(error)
    write_json(args.output_dir / REPORT_FILE_NAME, report)
    headline = ", ".join(f"{name}={value:.4f}" for name, value in report["metrics"].items())
    print(f"test rows: {report['n_test']}; {headline}")
    print(f"report written to {args.output_dir / REPORT_FILE_NAME}")
    return 0


def load_model_archive(archive: Path) -> xgb.Booster:
    """The booster inside a training job's model.tar.gz, read without unpacking anything else to disk."""
    if not archive.is_file():
        found = sorted(path.name for path in archive.parent.iterdir()) if archive.parent.is_dir() else []
        raise MlInputError(
            f"{archive} does not exist (the folder holds {found}): stage the training job's model.tar.gz there."
        )
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            # SageMaker writes member names without a prefix; other tools write "./xgboost-model".
            if member.isfile() and os.path.normpath(member.name) == MODEL_FILE_NAME:
                extracted = tar.extractfile(member)
                if extracted is not None:
                    return load_booster(extracted.read())
    raise MlInputError(f"{archive} holds no {MODEL_FILE_NAME}: use the model.tar.gz that train.py's job wrote.")


def evaluate(model: xgb.Booster, features: np.ndarray, labels: np.ndarray, feature_names: list[str]) -> dict[str, Any]:
    """The evaluation report of docs/interfaces.md for `model` on the labelled test rows."""
    trained_on = booster_feature_names(model)
    if feature_names != trained_on:
        raise MlInputError(
            f"the test columns {feature_names} differ from the columns the model was trained on {trained_on}: "
            "evaluate with the test split of the same preprocess run."
        )
    data = xgb.DMatrix(features)
    scores = model.predict(data)
    return {
        "metrics": classification_metrics(labels, scores),
        "per_class": per_class_metrics(labels, scores),
        "feature_attributions": feature_attributions(model, data, feature_names),
        "n_test": len(labels),
    }


def feature_attributions(model: xgb.Booster, data: xgb.DMatrix, feature_names: list[str]) -> dict[str, float]:
    """Mean absolute SHAP value of each feature over the rows, largest first."""
    contributions = model.predict(data, pred_contribs=True)
    # The last column is the bias term, not a feature.
    mean_abs = np.abs(contributions[:, :-1]).mean(axis=0)
    order = np.argsort(-mean_abs, kind="stable")
    return {feature_names[index]: float(mean_abs[index]) for index in order}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
