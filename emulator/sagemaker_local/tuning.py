"""Hyperparameter search for local tuning jobs: SageMaker's parameter ranges and its Random, Grid, Bayesian strategies.

- Random: independent draws, honouring each range's ScalingType.
- Grid: every combination of categorical values and integer values (continuous ranges are refused, as on
  AWS), in a fixed order.
- Bayesian: a small, honest surrogate rather than SageMaker's own. Hyperparameters are mapped to the unit
  cube (log scale where the range says so, one-hot for categories); a Gaussian process with an RBF
  kernel, its length scale chosen by marginal likelihood from a few values, models the standardised
  objective; the next point is the best of 2,000 random candidates by expected improvement. Until three
  objectives are known it draws at random. Points still training count as their predicted mean
  ("kriging believer"), so parallel suggestions spread out. Warm-start parents' results seed it.
- Hyperband: accepted and run as Random search, each training with its full budget: the local twin does
  not stop trainings early, so there are no brackets to allocate.

`ScalingType: Auto` is treated as Logarithmic when the range is positive and spans at least two orders of
magnitude, else Linear.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from emulator.sagemaker_local.errors import validation_error

BAYESIAN_WARMUP_OBSERVATIONS = 3
BAYESIAN_CANDIDATES = 2000
_LENGTH_SCALES = (0.1, 0.2, 0.4, 0.8)
_NOISE = 1e-4


@dataclass(frozen=True)
class NumericRange:
    name: str
    low: float
    high: float
    scaling: str
    integer: bool

    def _effective_scaling(self) -> str:
        if self.scaling != "Auto":
            return self.scaling
        return "Logarithmic" if self.low > 0 and self.high / self.low >= 100 else "Linear"

    def to_unit(self, value: float) -> float:
        if self.high == self.low:
            return 0.0
        scaling = self._effective_scaling()
        if scaling == "Logarithmic":
            return (math.log(value) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        if scaling == "ReverseLogarithmic":
            return (math.log(1 - self.low) - math.log(1 - value)) / (math.log(1 - self.low) - math.log(1 - self.high))
        return (value - self.low) / (self.high - self.low)

    def from_unit(self, unit: float) -> float:
        unit = min(1.0, max(0.0, unit))
        scaling = self._effective_scaling()
        if scaling == "Logarithmic":
            value = math.exp(math.log(self.low) + unit * (math.log(self.high) - math.log(self.low)))
        elif scaling == "ReverseLogarithmic":
            value = 1 - math.exp(math.log(1 - self.low) - unit * (math.log(1 - self.low) - math.log(1 - self.high)))
        else:
            value = self.low + unit * (self.high - self.low)
        value = min(self.high, max(self.low, value))
        return float(round(value)) if self.integer else value

    def render(self, value: float) -> str:
        return str(int(value)) if self.integer else repr(float(value))


@dataclass(frozen=True)
class CategoricalRange:
    name: str
    values: tuple[str, ...]


class ParameterSpace:
    """The tuning job's ParameterRanges, with a unit-cube encoding for the Bayesian surrogate."""

    def __init__(self, parameter_ranges: dict[str, Any]) -> None:
        self.numeric: list[NumericRange] = []
        for key, integer in (("IntegerParameterRanges", True), ("ContinuousParameterRanges", False)):
            for spec in parameter_ranges.get(key, []):
                low, high = float(spec["MinValue"]), float(spec["MaxValue"])
                scaling = spec.get("ScalingType", "Auto")
                if low > high:
                    raise validation_error(f"Range {spec['Name']!r}: MinValue {low} is above MaxValue {high}")
                if scaling == "Logarithmic" and low <= 0:
                    raise validation_error(f"Range {spec['Name']!r}: Logarithmic scaling needs MinValue > 0, got {low}")
                if scaling == "ReverseLogarithmic" and not (low >= 0 and high < 1):
                    raise validation_error(f"Range {spec['Name']!r}: ReverseLogarithmic needs 0 <= values < 1")
                self.numeric.append(NumericRange(spec["Name"], low, high, scaling, integer))
        self.categorical = [
            CategoricalRange(spec["Name"], tuple(str(v) for v in spec["Values"]))
            for spec in parameter_ranges.get("CategoricalParameterRanges", [])
        ]
        if not self.numeric and not self.categorical:
            raise validation_error("HyperParameterTuningJobConfig.ParameterRanges defines no range to tune")

    def sample_unit(self, rng: np.random.Generator) -> np.ndarray:
        parts = [rng.random(len(self.numeric))]
        for category in self.categorical:
            one_hot = np.zeros(len(category.values))
            one_hot[rng.integers(len(category.values))] = 1.0
            parts.append(one_hot)
        return np.concatenate(parts)

    def decode(self, unit: np.ndarray) -> dict[str, str]:
        values = {r.name: r.render(r.from_unit(float(u))) for r, u in zip(self.numeric, unit, strict=False)}
        offset = len(self.numeric)
        for category in self.categorical:
            block = unit[offset : offset + len(category.values)]
            values[category.name] = category.values[int(np.argmax(block))]
            offset += len(category.values)
        return values

    def encode(self, hyperparameters: dict[str, str]) -> np.ndarray | None:
        """The unit-cube point of a finished training, or None when it lacks one of this space's parameters."""
        parts: list[float] = []
        try:
            for numeric in self.numeric:
                parts.append(numeric.to_unit(float(hyperparameters[numeric.name])))
            for category in self.categorical:
                parts.extend(1.0 if value == str(hyperparameters[category.name]) else 0.0 for value in category.values)
        except (KeyError, ValueError):
            return None
        return np.array(parts)

    def grid(self) -> Iterator[dict[str, str]]:
        continuous = [r.name for r in self.numeric if not r.integer]
        if continuous:
            raise validation_error(
                f"Grid search cannot enumerate continuous ranges {continuous}: use Bayesian or Random"
            )
        axes: list[list[tuple[str, str]]] = [
            [(r.name, str(v)) for v in range(int(r.low), int(r.high) + 1)] for r in self.numeric
        ]
        axes += [[(c.name, v) for v in c.values] for c in self.categorical]
        for combination in itertools.product(*axes):
            yield dict(combination)


@dataclass(frozen=True)
class Observation:
    hyperparameters: dict[str, str]
    objective: float


class SearchStrategy(Protocol):
    def suggest(self, observations: list[Observation], pending: list[dict[str, str]]) -> dict[str, str] | None:
        """The next hyperparameters to train, or None when the strategy has nothing left to try."""
        ...


class RandomSearch:
    def __init__(self, space: ParameterSpace, rng: np.random.Generator) -> None:
        self.space = space
        self.rng = rng

    def suggest(self, observations: list[Observation], pending: list[dict[str, str]]) -> dict[str, str] | None:
        return self.space.decode(self.space.sample_unit(self.rng))


class GridSearch:
    def __init__(self, space: ParameterSpace) -> None:
        self._combinations = space.grid()

    def suggest(self, observations: list[Observation], pending: list[dict[str, str]]) -> dict[str, str] | None:
        return next(self._combinations, None)


def _rbf(a: np.ndarray, b: np.ndarray, length_scale: float) -> np.ndarray:
    squared = np.sum(a**2, axis=1)[:, None] + np.sum(b**2, axis=1)[None, :] - 2 * a @ b.T
    return np.exp(-0.5 * np.maximum(squared, 0) / length_scale**2)


class GaussianProcess:
    """Zero-mean GP on standardised targets; length scale picked by log marginal likelihood."""

    def __init__(self, points: np.ndarray, targets: np.ndarray) -> None:
        self.mean = float(np.mean(targets))
        self.scale = float(np.std(targets)) or 1.0
        self.points = points
        standardised = (targets - self.mean) / self.scale
        best: tuple[float, float, np.ndarray, np.ndarray] | None = None
        for length_scale in _LENGTH_SCALES:
            kernel = _rbf(points, points, length_scale) + _NOISE * np.eye(len(points))
            cholesky = np.linalg.cholesky(kernel)
            alpha = np.linalg.solve(cholesky.T, np.linalg.solve(cholesky, standardised))
            log_likelihood = -0.5 * standardised @ alpha - np.sum(np.log(np.diag(cholesky)))
            if best is None or log_likelihood > best[0]:
                best = (log_likelihood, length_scale, cholesky, alpha)
        assert best is not None
        _, self.length_scale, self._cholesky, self._alpha = best

    def predict(self, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cross = _rbf(candidates, self.points, self.length_scale)
        mean = cross @ self._alpha
        solved = np.linalg.solve(self._cholesky, cross.T)
        variance = np.maximum(1.0 - np.sum(solved**2, axis=0), 1e-12)
        return mean * self.scale + self.mean, np.sqrt(variance) * self.scale


class BayesianSearch:
    """Expected improvement on a Gaussian-process surrogate (see the module docstring)."""

    def __init__(self, space: ParameterSpace, rng: np.random.Generator, maximize: bool) -> None:
        self.space = space
        self.rng = rng
        self.sign = 1.0 if maximize else -1.0

    def suggest(self, observations: list[Observation], pending: list[dict[str, str]]) -> dict[str, str] | None:
        known = [(self.space.encode(o.hyperparameters), self.sign * o.objective) for o in observations]
        known = [(point, value) for point, value in known if point is not None]
        if len(known) < BAYESIAN_WARMUP_OBSERVATIONS:
            return self.space.decode(self.space.sample_unit(self.rng))
        points = np.array([point for point, _ in known])
        targets = np.array([value for _, value in known])
        pending_points = [p for p in (self.space.encode(h) for h in pending) if p is not None]
        if pending_points:
            believed = GaussianProcess(points, targets).predict(np.array(pending_points))[0]
            points = np.vstack([points, pending_points])
            targets = np.concatenate([targets, believed])
        process = GaussianProcess(points, targets)
        candidates = np.array([self.space.sample_unit(self.rng) for _ in range(BAYESIAN_CANDIDATES)])
        mean, deviation = process.predict(candidates)
        improvement = mean - float(np.max(targets)) - 0.01 * process.scale
        # Imported here: scipy.stats takes about a second to import, and only a Bayesian tuning job needs it (every
        # `mlops run` starts the twin, few tune).
        from scipy.stats import norm

        z = improvement / deviation
        expected_improvement = improvement * norm.cdf(z) + deviation * norm.pdf(z)
        return self.space.decode(candidates[int(np.argmax(expected_improvement))])


def strategy_for(config: dict[str, Any], space: ParameterSpace, seed: int) -> SearchStrategy:
    """The search strategy a tuning job's HyperParameterTuningJobConfig asks for."""
    strategy = config.get("Strategy", "Bayesian")
    maximize = config["HyperParameterTuningJobObjective"]["Type"] == "Maximize"
    rng = np.random.default_rng(seed)
    if strategy == "Bayesian":
        return BayesianSearch(space, rng, maximize)
    if strategy in ("Random", "Hyperband"):
        return RandomSearch(space, rng)
    if strategy == "Grid":
        return GridSearch(space)
    raise validation_error(f"Strategy {strategy!r} is not one of Bayesian, Random, Hyperband, Grid")
