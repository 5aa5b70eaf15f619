"""ml/bias.py: Clarify's bias metrics on hand-made data with known rates, checked against fairlearn's MetricFrame."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from fairlearn.metrics import MetricFrame, selection_rate
from sklearn.metrics import accuracy_score, recall_score

# 10 rows of facet a (sensitive value 0) and 5 of facet d (value 1), chosen so every rate is a round number:
# facet a: 6 positive labels; predictions 6 positive, 5 of them right positives, 8 of 10 right.
# facet d: 2 positive labels; predictions 1 positive, 1 right positive, 4 of 5 right.
FACET = np.array([0] * 10 + [1] * 5)
LABELS = np.array([*[1, 1, 1, 1, 1, 1, 0, 0, 0, 0], *[1, 1, 0, 0, 0]])
PREDICTED = np.array([*[1, 1, 1, 1, 1, 0, 1, 0, 0, 0], *[1, 0, 0, 0, 0]])


@pytest.fixture
def bias(ml_module: Callable[[str], ModuleType]) -> ModuleType:
    return ml_module("bias")


def _by_group(metric: Callable[..., float], y_pred: np.ndarray) -> dict[Any, float]:
    frame = MetricFrame(metrics=metric, y_true=LABELS, y_pred=y_pred, sensitive_features=FACET)
    return {int(group): float(value) for group, value in frame.by_group.items()}


def test_pretraining_metrics_are_clarifys_class_imbalance_and_label_proportion_difference(bias: ModuleType) -> None:
    report = bias.pretraining_bias(LABELS, FACET == 1)

    assert report["metrics"]["CI"] == pytest.approx((10 - 5) / 15)
    # DPL = q_a - q_d: the share of positive labels, here the selection rate of the labels themselves.
    label_shares = _by_group(selection_rate, LABELS)
    assert label_shares == {0: pytest.approx(0.6), 1: pytest.approx(0.4)}
    assert report["metrics"]["DPL"] == pytest.approx(label_shares[0] - label_shares[1])
    assert report["facet_a"] == {"rows": 10, "positive_label_share": pytest.approx(0.6)}
    assert report["facet_d"] == {"rows": 5, "positive_label_share": pytest.approx(0.4)}


def test_posttraining_metrics_equal_fairlearns_per_group_rates(bias: ModuleType) -> None:
    report = bias.posttraining_bias(LABELS, PREDICTED, FACET == 1)
    metrics = report["metrics"]

    selection = _by_group(selection_rate, PREDICTED)
    recall = _by_group(recall_score, PREDICTED)
    accuracy = _by_group(accuracy_score, PREDICTED)
    assert selection == {0: pytest.approx(0.6), 1: pytest.approx(0.2)}
    assert metrics["DPPL"] == pytest.approx(selection[0] - selection[1]) == pytest.approx(0.4)
    assert metrics["DI"] == pytest.approx(selection[1] / selection[0]) == pytest.approx(1 / 3)
    assert metrics["RD"] == pytest.approx(recall[0] - recall[1]) == pytest.approx(5 / 6 - 1 / 2)
    assert metrics["AD"] == pytest.approx(accuracy[0] - accuracy[1]) == pytest.approx(0.8 - 0.8)
    assert report["undefined"] == {}


def test_a_metric_whose_denominator_is_zero_is_undefined_with_its_reason_not_zero(bias: ModuleType) -> None:
    no_positive_in_a = np.where(FACET == 0, 0, PREDICTED)

    report = bias.posttraining_bias(LABELS, no_positive_in_a, FACET == 1)

    assert report["metrics"]["DI"] is None
    assert report["undefined"] == {"DI": "facet a has no positive prediction"}
    assert report["metrics"]["DPPL"] == pytest.approx(0.0 - 0.2)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "BIAS_CONFIG is not JSON"),
        ('["sex"]', "must be a JSON object"),
        ('{"facet": "sex"}', "unknown keys ['facet']"),
        ('{"facet_column": 3, "sensitive_values": [1]}', "facet_column must be a string"),
        ('{"facet_column": "sex", "sensitive_values": ["female"]}', "sensitive_values must be a list of numbers"),
        ('{"facet_column": "sex", "sensitive_values": []}', "needs at least one sensitive value"),
    ],
)
def test_malformed_facet_configuration_is_refused_naming_what_is_wrong(
    bias: ModuleType, text: str, message: str
) -> None:
    with pytest.raises(bias.MlInputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        bias.facet_config_from_json(text)


def test_no_facet_configured_is_an_explicit_empty_facet(bias: ModuleType) -> None:
    assert not bias.facet_config_from_json(None).configured
    assert not bias.facet_config_from_json('{"facet_column": "", "sensitive_values": []}').configured


@pytest.mark.parametrize(("values", "side"), [([7], "no"), ([0, 1], "every")])
def test_a_facet_that_selects_no_row_or_every_row_is_refused(bias: ModuleType, values: list[int], side: str) -> None:
    facet = bias.FacetConfig("sex_female", tuple(float(v) for v in values))
    with pytest.raises(bias.MlInputError, match=f"{side} row has facet 'sex_female'"):
        bias.sensitive_rows(FACET, facet, "the test split")
