"""Search strategies of local tuning jobs: ranges, scaling types, Grid, Random and the Bayesian surrogate."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from emulator.sagemaker_local import SageMakerError
from emulator.sagemaker_local.tuning import (
    BayesianSearch,
    GridSearch,
    Observation,
    ParameterSpace,
    RandomSearch,
    strategy_for,
)

LOG_ETA = {
    "ContinuousParameterRanges": [{"Name": "eta", "MinValue": "0.001", "MaxValue": "1", "ScalingType": "Logarithmic"}]
}


def test_grid_enumerates_every_integer_and_categorical_combination_once() -> None:
    space = ParameterSpace(
        {
            "IntegerParameterRanges": [
                {"Name": "max_depth", "MinValue": "2", "MaxValue": "4", "ScalingType": "Linear"}
            ],
            "CategoricalParameterRanges": [{"Name": "booster", "Values": ["gbtree", "dart"]}],
        }
    )
    grid = GridSearch(space)

    suggestions = []
    while (suggestion := grid.suggest([], [])) is not None:
        suggestions.append(suggestion)

    assert len(suggestions) == 6
    assert {(s["max_depth"], s["booster"]) for s in suggestions} == {
        (depth, booster) for depth in ("2", "3", "4") for booster in ("gbtree", "dart")
    }


def test_grid_refuses_continuous_ranges_naming_them() -> None:
    with pytest.raises(SageMakerError, match="eta"):
        GridSearch(ParameterSpace(LOG_ETA)).suggest([], [])


def test_random_search_draws_log_scaled_ranges_uniformly_in_log_space() -> None:
    search = RandomSearch(ParameterSpace(LOG_ETA), np.random.default_rng(7))

    draws = [float(search.suggest([], [])["eta"]) for _ in range(600)]

    assert all(0.001 <= value <= 1 for value in draws)
    geometric_middle = math.sqrt(0.001 * 1)
    share_below = sum(value < geometric_middle for value in draws) / len(draws)
    assert 0.42 < share_below < 0.58, "a linear draw would put only 3% below the geometric middle"


def test_integer_ranges_yield_integers_within_bounds() -> None:
    space = ParameterSpace({"IntegerParameterRanges": [{"Name": "depth", "MinValue": "2", "MaxValue": "8"}]})
    search = RandomSearch(space, np.random.default_rng(1))

    values = {search.suggest([], [])["depth"] for _ in range(200)}

    assert values == {str(v) for v in range(2, 9)}


def _objective(hyperparameters: dict[str, str]) -> float:
    """Peaks at eta = 10**-1.5 (about 0.0316)."""
    return -((math.log10(float(hyperparameters["eta"])) + 1.5) ** 2)


def _best_after(search: RandomSearch | BayesianSearch, budget: int) -> float:
    observations: list[Observation] = []
    for _ in range(budget):
        suggestion = search.suggest(observations, [])
        assert suggestion is not None
        observations.append(Observation(suggestion, _objective(suggestion)))
    return max(o.objective for o in observations)


def test_bayesian_search_closes_in_on_the_optimum_faster_than_random() -> None:
    bayesian_best = [
        _best_after(BayesianSearch(ParameterSpace(LOG_ETA), np.random.default_rng(s), maximize=True), 10)
        for s in range(5)
    ]
    random_best = [_best_after(RandomSearch(ParameterSpace(LOG_ETA), np.random.default_rng(s)), 10) for s in range(5)]

    assert statistics.median(bayesian_best) > -0.005, "within ~0.07 decades of the optimum"
    assert statistics.median(bayesian_best) >= statistics.median(random_best)


def test_bayesian_search_minimises_when_the_objective_says_so() -> None:
    search = BayesianSearch(ParameterSpace(LOG_ETA), np.random.default_rng(3), maximize=False)
    observations = [Observation({"eta": str(v)}, -_objective({"eta": str(v)})) for v in (0.001, 0.01, 0.1, 1.0)]

    suggestion = search.suggest(observations, [])

    assert suggestion is not None
    assert abs(math.log10(float(suggestion["eta"])) + 1.5) < 0.6


def test_pending_trainings_push_parallel_suggestions_apart() -> None:
    search = BayesianSearch(ParameterSpace(LOG_ETA), np.random.default_rng(5), maximize=True)
    observations = [Observation({"eta": str(v)}, _objective({"eta": str(v)})) for v in (0.001, 0.01, 0.1, 1.0)]

    first = search.suggest(observations, [])
    second = search.suggest(observations, [first] if first else [])

    assert first is not None
    assert second is not None
    assert first["eta"] != second["eta"]


def test_hyperband_is_accepted_and_runs_as_random_search() -> None:
    config = {"Strategy": "Hyperband", "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "auc"}}

    assert isinstance(strategy_for(config, ParameterSpace(LOG_ETA), seed=1), RandomSearch)


@pytest.mark.parametrize(
    ("ranges", "message"),
    [
        (
            {
                "ContinuousParameterRanges": [
                    {"Name": "eta", "MinValue": "0", "MaxValue": "1", "ScalingType": "Logarithmic"}
                ]
            },
            "MinValue > 0",
        ),
        (
            {
                "ContinuousParameterRanges": [
                    {"Name": "gamma", "MinValue": "0.5", "MaxValue": "1", "ScalingType": "ReverseLogarithmic"}
                ]
            },
            "< 1",
        ),
        ({"IntegerParameterRanges": [{"Name": "depth", "MinValue": "9", "MaxValue": "2"}]}, "above MaxValue"),
        ({}, "no range"),
    ],
)
def test_invalid_parameter_ranges_are_refused_naming_the_problem(ranges: dict, message: str) -> None:
    with pytest.raises(SageMakerError, match=message):
        ParameterSpace(ranges)
