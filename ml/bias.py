"""Clarify's standardized bias metrics, computed from their published definitions with numpy.

SageMaker Clarify is closed to new customers; its metric reference defines the metrics, and these are those
definitions. A facet is a column of the data; the rows whose facet value is one of the configured sensitive values
form facet d (the group that may be disadvantaged), every other row forms facet a. The positive label is the
favourable outcome (1 after preprocess.py's 0/1 encoding).

Pre-training (labels only, preprocess.py):
- CI, class imbalance: (n_a - n_d) / (n_a + n_d).
- DPL, difference in proportions of labels: q_a - q_d, q the share of positive observed labels in a facet.
Post-training (labels and the model's predicted labels on the test split, evaluate.py):
- DPPL, difference in positive proportions in predicted labels: q^_a - q^_d.
- DI, disparate impact: q^_d / q^_a (the four-fifths rule reads it: within [0.8, 1.25]).
- RD, recall difference: TPR_a - TPR_d, TPR = TP / (TP + FN).
- AD, accuracy difference: ACC_a - ACC_d.
A metric whose denominator is zero (no positive predictions in facet a for DI, no positive labels in a facet for RD)
is undefined: it is reported as null with the reason, never as 0 or infinity.

The facet is configured as JSON, `{"facet_column": "...", "sensitive_values": [numbers]}`: pipeline.toml [bias] sets it,
a training input's `bias` overrides it, and the jobs read it from the BIAS_CONFIG environment variable. An empty
facet_column means the model has no protected attribute to assess: the report says so.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from mlcore import MlInputError

BIAS_CONFIG_VARIABLE = "BIAS_CONFIG"
BIAS_REPORT_FILE_NAME = "bias.json"
POSITIVE_LABEL = 1


@dataclass(frozen=True)
class FacetConfig:
    """Which column is the facet and which of its values make facet d; an empty column: no facet."""

    facet_column: str
    sensitive_values: tuple[float, ...]

    @property
    def configured(self) -> bool:
        return bool(self.facet_column)

    def describe(self) -> dict[str, Any]:
        return {"facet_column": self.facet_column, "sensitive_values": list(self.sensitive_values)}


def facet_config_from_json(text: str | None, source: str = BIAS_CONFIG_VARIABLE) -> FacetConfig:
    """The facet of a JSON document; None or empty text is "no facet". A malformed document is refused by name."""
    if not text:
        return FacetConfig("", ())
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise MlInputError(f"{source} is not JSON ({error}): {text[:200]!r}") from None
    if not isinstance(document, dict):
        raise MlInputError(f"{source} must be a JSON object with facet_column and sensitive_values, not {text!r}")
    unknown = sorted(set(document) - {"facet_column", "sensitive_values"})
    if unknown:
        raise MlInputError(f"{source} has unknown keys {unknown}; it takes facet_column and sensitive_values")
    column = document.get("facet_column", "")
    values = document.get("sensitive_values", [])
    if not isinstance(column, str):
        raise MlInputError(f"{source}: facet_column must be a string, not {column!r}")
    if not isinstance(values, list) or any(isinstance(v, bool) or not isinstance(v, int | float) for v in values):
        # The features are numbers (preprocess.py refuses others), so the facet's values are too.
        raise MlInputError(f"{source}: sensitive_values must be a list of numbers, not {values!r}")
    if column and not values:
        raise MlInputError(f"{source}: facet {column!r} needs at least one sensitive value (the rows of facet d)")
    return FacetConfig(column, tuple(float(v) for v in values))


def facet_config_from_environment() -> FacetConfig:
    return facet_config_from_json(os.environ.get(BIAS_CONFIG_VARIABLE))


def sensitive_rows(column: np.ndarray, facet: FacetConfig, source: str) -> np.ndarray:
    """A boolean mask of facet d's rows; refuses a facet with no row on either side (no comparison possible)."""
    mask = np.isin(column.astype(float), np.asarray(facet.sensitive_values, dtype=float))
    if not mask.any() or mask.all():
        side = "no" if not mask.any() else "every"
        raise MlInputError(
            f"{source}: {side} row has facet {facet.facet_column!r} in {list(facet.sensitive_values)}, so facets a "
            "and d cannot be compared; check pipeline.toml [bias] (or the training input's bias) against the data"
        )
    return mask


def _share(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def _difference(a: float | None, d: float | None) -> float | None:
    return None if a is None or d is None else a - d


def pretraining_bias(labels: np.ndarray, facet_d: np.ndarray) -> dict[str, Any]:
    """CI and DPL of observed 0/1 labels, with the counts they come from."""
    labels = np.asarray(labels)
    facet_d = np.asarray(facet_d, dtype=bool)
    n_d, n_a = int(facet_d.sum()), int((~facet_d).sum())
    q_a = _share(float((labels[~facet_d] == POSITIVE_LABEL).sum()), n_a)
    q_d = _share(float((labels[facet_d] == POSITIVE_LABEL).sum()), n_d)
    return {
        "metrics": {"CI": (n_a - n_d) / (n_a + n_d), "DPL": _difference(q_a, q_d)},
        "facet_a": {"rows": n_a, "positive_label_share": q_a},
        "facet_d": {"rows": n_d, "positive_label_share": q_d},
    }


def _facet_rates(labels: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    positive = labels == POSITIVE_LABEL
    predicted_positive = predicted == POSITIVE_LABEL
    return {
        "rows": int(labels.size),
        "predicted_positive_share": _share(float(predicted_positive.sum()), labels.size),
        "recall": _share(float((positive & predicted_positive).sum()), float(positive.sum())),
        "accuracy": _share(float((labels == predicted).sum()), labels.size),
    }


def posttraining_bias(labels: np.ndarray, predicted: np.ndarray, facet_d: np.ndarray) -> dict[str, Any]:
    """DPPL, DI, RD and AD of predicted 0/1 labels against observed ones, with each facet's rates."""
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    facet_d = np.asarray(facet_d, dtype=bool)
    a = _facet_rates(labels[~facet_d], predicted[~facet_d])
    d = _facet_rates(labels[facet_d], predicted[facet_d])
    q_a, q_d = a["predicted_positive_share"], d["predicted_positive_share"]
    disparate_impact = None if q_a is None or q_d is None or q_a == 0 else q_d / q_a
    metrics = {
        "DPPL": _difference(q_a, q_d),
        "DI": disparate_impact,
        "RD": _difference(a["recall"], d["recall"]),
        "AD": _difference(a["accuracy"], d["accuracy"]),
    }
    undefined = {
        name: reason
        for name, reason in (
            ("DI", "facet a has no positive prediction"),
            ("RD", "a facet has no positive label"),
        )
        if metrics[name] is None
    }
    return {"metrics": metrics, "undefined": undefined, "facet_a": a, "facet_d": d}
