"""Processing job: score the trained model on the held-out test split, write the evaluation report and the baseline.

Reads `model.tar.gz` from --model-dir, the test CSV from --test-dir and the training CSV from --train-dir (header,
label first, as preprocess.py writes them), and writes to --output-dir `evaluation.json` (headline metrics,
per-class metrics and feature attributions: mean absolute SHAP value per feature on the test split, from XGBoost's
own `pred_contribs`; the quality gate reads the metrics) and the drift baseline `baseline/baseline.csv` +
`baseline/baseline.json` in monitor.py's format: the inference payload's features in payload order (the model's
training columns), no label, a sample of the training split, and the top --critical-feature-count features by
attribution as the critical ones. The model package registers the baseline; monitoring compares traffic with it.
evaluation.json's `bias` holds the configured facet's pre-training metrics (preprocess.py's bias.json, read from
--pretraining-bias-dir) and its post-training metrics on the test split (bias.py); the bias gate reads them.
"""

from __future__ import annotations

import argparse
import os
import sys
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb
from bias import BIAS_REPORT_FILE_NAME, FacetConfig, facet_config_from_environment, posttraining_bias, sensitive_rows
from mlcore import (
    MODEL_FILE_NAME,
    MlInputError,
    booster_feature_names,
    classification_metrics,
    fail_processing_job,
    load_booster,
    per_class_metrics,
    predicted_labels,
    read_json,
    read_labelled_split,
    write_json,
)
from monitor import baseline_statistics, write_baseline

MODEL_ARCHIVE_NAME = "model.tar.gz"
REPORT_FILE_NAME = "evaluation.json"
# The baseline's folder under --output-dir: the registered DriftCheckBaselines point into it.
BASELINE_DIR_NAME = "baseline"
DEFAULT_CRITICAL_FEATURE_COUNT = 3
DEFAULT_BASELINE_SAMPLE_ROWS = 10000


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The job's arguments; paths default to the processing container's."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=Path("/opt/ml/processing/model"))
    parser.add_argument("--test-dir", type=Path, default=Path("/opt/ml/processing/test"))
    parser.add_argument("--train-dir", type=Path, default=Path("/opt/ml/processing/train"))
    parser.add_argument("--output-dir", type=Path, default=Path("/opt/ml/processing/evaluation"))
    parser.add_argument(
        "--pretraining-bias-dir",
        type=Path,
        default=Path("/opt/ml/processing/pretraining_bias"),
        help=f"folder of preprocess.py's {BIAS_REPORT_FILE_NAME}",
    )
    parser.add_argument(
        "--critical-feature-count",
        type=int,
        default=DEFAULT_CRITICAL_FEATURE_COUNT,
        help="the baseline's critical features: this many of the top features by mean |SHAP| on the test split",
    )
    parser.add_argument(
        "--baseline-sample-rows",
        type=int,
        default=DEFAULT_BASELINE_SAMPLE_ROWS,
        help="training rows in baseline.csv; a larger training split is sampled",
    )
    parser.add_argument("--seed", type=int, default=42, help="seed of the baseline's sample of the training split")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    """Runs the job; returns the process exit code."""
    args = parse_args(argv)
    try:
        _check_baseline_arguments(args.critical_feature_count, args.baseline_sample_rows)
        model = load_model_archive(args.model_dir / MODEL_ARCHIVE_NAME)
        features, labels, feature_names = read_labelled_split(args.test_dir, "test")
        report, scores = evaluate(model, features, labels, feature_names)
        report["bias"] = bias_report(
            args.pretraining_bias_dir / BIAS_REPORT_FILE_NAME,
            facet_config_from_environment(),
            features,
            labels,
            predicted_labels(scores),
            feature_names,
        )
        train_features, _, train_names = read_labelled_split(args.train_dir, "training")
        reference = baseline_reference(model, train_features, train_names, args.baseline_sample_rows, args.seed)
        critical = critical_features(report["feature_attributions"], args.critical_feature_count)
        statistics = baseline_statistics(reference, [], critical)
    except MlInputError as error:
        return fail_processing_job(error)
    write_json(args.output_dir / REPORT_FILE_NAME, report)
    write_baseline(args.output_dir / BASELINE_DIR_NAME, reference, statistics)
    headline = ", ".join(f"{name}={value:.4f}" for name, value in report["metrics"].items())
    print(f"test rows: {report['n_test']}; {headline}")
    print(f"report written to {args.output_dir / REPORT_FILE_NAME}")
    print(
        f"baseline: {len(reference)} of {len(train_features)} training rows, critical features {critical}, "
        f"written to {args.output_dir / BASELINE_DIR_NAME}"
    )
    return 0


def _check_baseline_arguments(critical_feature_count: int, baseline_sample_rows: int) -> None:
    if critical_feature_count < 0:
        raise MlInputError(f"--critical-feature-count {critical_feature_count} must be at least 0.")
    if baseline_sample_rows < 1:
        raise MlInputError(f"--baseline-sample-rows {baseline_sample_rows} must be at least 1.")


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


def evaluate(
    model: xgb.Booster, features: np.ndarray, labels: np.ndarray, feature_names: list[str]
) -> tuple[dict[str, Any], np.ndarray]:
    """The evaluation report of docs/interfaces.md for `model` on the labelled test rows, and its scores of them.

    The report's `bias` section is `bias_report`'s.
    """
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
    }, scores


def bias_report(
    pretraining_file: Path,
    facet: FacetConfig,
    features: np.ndarray,
    labels: np.ndarray,
    predicted: np.ndarray,
    feature_names: list[str],
) -> dict[str, Any]:
    """The facet's pre-training metrics (from preprocessing) and post-training metrics on the test split."""
    if not pretraining_file.is_file():
        raise MlInputError(f"{pretraining_file} does not exist: stage the preprocess job's baseline folder there.")
    pretraining = read_json(pretraining_file)
    if pretraining.get("facet") != (facet.describe() if facet.configured else None):
        raise MlInputError(
            f"{pretraining_file} assessed facet {pretraining.get('facet')!r} but this job is configured with "
            f"{facet.describe()!r}: evaluate with the preprocess run of the same training execution."
        )
    if not facet.configured:
        return pretraining
    if facet.facet_column not in feature_names:
        raise MlInputError(f"the bias facet {facet.facet_column!r} is not a test feature; they are {feature_names}")
    column = features[:, feature_names.index(facet.facet_column)]
    facet_d = sensitive_rows(column, facet, "the test split")
    return {**pretraining, "posttraining": posttraining_bias(labels, predicted, facet_d)}


def feature_attributions(model: xgb.Booster, data: xgb.DMatrix, feature_names: list[str]) -> dict[str, float]:
    """Mean absolute SHAP value of each feature over the rows, largest first."""
    contributions = model.predict(data, pred_contribs=True)
    # The last column is the bias term, not a feature.
    mean_abs = np.abs(contributions[:, :-1]).mean(axis=0)
    order = np.argsort(-mean_abs, kind="stable")
    return {feature_names[index]: float(mean_abs[index]) for index in order}


def baseline_reference(
    model: xgb.Booster, features: np.ndarray, feature_names: list[str], sample_rows: int, seed: int
) -> pd.DataFrame:
    """The baseline's reference sample: training rows, the features in the model's (the payload's) order, no label.

    The whole training split when it has at most `sample_rows` rows, else a seeded random sample of that many.
    """
    trained_on = booster_feature_names(model)
    if feature_names != trained_on:
        raise MlInputError(
            f"the training columns {feature_names} differ from the columns the model was trained on {trained_on}: "
            "give the baseline the training split the model was trained on."
        )
    reference = pd.DataFrame(features, columns=feature_names)
    if len(reference) > sample_rows:
        reference = reference.sample(n=sample_rows, random_state=seed).reset_index(drop=True)
    return reference


def critical_features(attributions: dict[str, float], count: int) -> list[str]:
    """The first `count` features of `attributions` (largest mean |SHAP| first) that the model uses at all.

    A feature with no attribution never changes a prediction, so its drift cannot be critical; fewer than `count`
    features are returned when the model uses fewer.
    """
    used = [name for name, value in attributions.items() if value > 0]
    return used[:count]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
