"""Training job (SageMaker script mode): fit an XGBoost binary classifier with early stopping and spot checkpoints.

Hyperparameters arrive as `--name value` arguments, each value plain or JSON-encoded (`"0.1"` with its quotes, as
framework estimators write them); SageMaker's own (`sagemaker_*`, `_tuning_objective_metric`) are ignored, any other
unknown name is an error. Data comes from the `train` and `validation` channels (CSV, header, label first). Every
round prints `train:<metric>=<value>;` and `validation:<metric>=<value>;` for the job's MetricDefinitions, and every
`checkpoint_frequency` rounds the booster is saved under the checkpoint folder, from which an interrupted (spot) job
resumes. The model goes to SM_MODEL_DIR as `xgboost-model` with the inference code in `code/`, so the artifact can
be served by an endpoint that cannot fetch code. On failure the reason is written to `<OPT_ML_ROOT>/output/failure`,
which SageMaker reports as the job's FailureReason.

`OPT_ML_ROOT` is not part of SageMaker's contract: it is kept only for running outside a container, where `/opt/ml`
is not the job's directory: the twin's fallback on a machine that cannot run its sandbox, and ml/'s unit tests, which
run this script as a plain process. SageMaker never sets it, and neither does the sandboxed twin, so there it is
`/opt/ml`. It places only what the contract names by path alone (the checkpoint folder, the failure file); everything
with an `SM_*` variable is read from that variable.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb
from mlcore import (
    FEATURE_NAMES_ATTRIBUTE,
    MODEL_FILE_NAME,
    MlInputError,
    classification_metrics,
    load_booster,
    read_labelled_split,
    save_booster,
    write_json,
)

# Files the endpoint needs besides the model: the SageMaker SDK's repack puts them in model.tar.gz's code/ too.
INFERENCE_CODE_FILES = ("inference.py", "mlcore.py")
CHECKPOINT_PREFIX = "xgboost-checkpoint."
METRICS_FILE_NAME = "metrics.json"
# Metrics every run reports whatever eval_metric says: the workflows' MetricDefinitions and the tuning objective.
ALWAYS_REPORTED_METRICS = ("auc", "logloss")
# xgboost metrics where larger is better; the rest (logloss, error, rmse, ...) improve downwards.
_MAXIMIZED_METRIC_PREFIXES = ("auc", "aucpr", "map", "ndcg", "pre")
# The only objective whose predictions are the probabilities that evaluate.py and inference.py expect.
SUPPORTED_OBJECTIVE = "binary:logistic"


def _positive_int(name: str, value: Any) -> int:
    number = _as_int(name, value)
    if number < 1:
        raise MlInputError(f"hyperparameter {name} is {value!r}: it must be a whole number of at least 1.")
    return number


def _non_negative_int(name: str, value: Any) -> int:
    number = _as_int(name, value)
    if number < 0:
        raise MlInputError(f"hyperparameter {name} is {value!r}: it must be a whole number of at least 0 (0 = off).")
    return number


def _as_int(name: str, value: Any) -> int:
    number = _as_float(name, value)
    if not number.is_integer():
        raise MlInputError(f"hyperparameter {name} is {value!r}: it must be a whole number.")
    return int(number)


def _as_float(name: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise MlInputError(f"hyperparameter {name} is {value!r}: it must be a number.") from None


def _as_text(name: str, value: Any) -> str:
    return str(value)


def _objective(name: str, value: Any) -> str:
    if value != SUPPORTED_OBJECTIVE:
        raise MlInputError(
            f"hyperparameter {name} is {value!r}: this pipeline trains binary classifiers that output "
            f"probabilities, so it must be {SUPPORTED_OBJECTIVE!r}."
        )
    return SUPPORTED_OBJECTIVE


# Hyperparameters the script itself consumes, with their defaults.
SCRIPT_HYPERPARAMETERS: dict[str, tuple[Callable[[str, Any], Any], Any]] = {
    "num_round": (_positive_int, 100),
    "early_stopping_rounds": (_non_negative_int, 0),
    "checkpoint_frequency": (_positive_int, 10),
    "eval_metric": (_as_text, "auc"),
}
# Hyperparameters handed to xgboost as booster parameters.
BOOSTER_HYPERPARAMETERS: dict[str, Callable[[str, Any], Any]] = {
    "objective": _objective,
    "eta": _as_float,
    "gamma": _as_float,
    "max_depth": _as_int,
    "min_child_weight": _as_float,
    "max_delta_step": _as_float,
    "subsample": _as_float,
    "colsample_bytree": _as_float,
    "colsample_bylevel": _as_float,
    "colsample_bynode": _as_float,
    "lambda": _as_float,
    "alpha": _as_float,
    "scale_pos_weight": _as_float,
    "max_leaves": _as_int,
    "max_bin": _as_int,
    "grow_policy": _as_text,
    "tree_method": _as_text,
    "seed": _as_int,
}
# `hist` is explicit because xgboost 1.7's default ("auto") and 3.x's differ; the seed makes runs repeatable.
BOOSTER_DEFAULTS = {"objective": SUPPORTED_OBJECTIVE, "tree_method": "hist", "seed": 0}
# Names SageMaker adds to every framework job's hyperparameters; they are for the platform, not the model.
_PLATFORM_PREFIXES = ("sagemaker_", "_tuning_objective_metric")


@dataclass(frozen=True)
class TrainingSettings:
    """What to train: the boosting budget, when to stop and checkpoint, and the booster's parameters."""

    num_round: int
    early_stopping_rounds: int
    checkpoint_frequency: int
    # The last metric decides early stopping, as in xgboost itself.
    eval_metrics: list[str]
    booster_params: dict[str, Any]


@dataclass(frozen=True)
class ContainerPaths:
    """Where the training container contract puts inputs and expects outputs."""

    train_dir: Path
    validation_dir: Path
    model_dir: Path
    output_data_dir: Path
    checkpoint_dir: Path
    failure_file: Path

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> ContainerPaths:
        """SageMaker's SM_* variables; each default, and what has no variable, lives under OPT_ML_ROOT (/opt/ml)."""
        root = Path(environ.get("OPT_ML_ROOT", "/opt/ml"))
        return cls(
            train_dir=Path(environ.get("SM_CHANNEL_TRAIN", root / "input" / "data" / "train")),
            validation_dir=Path(environ.get("SM_CHANNEL_VALIDATION", root / "input" / "data" / "validation")),
            model_dir=Path(environ.get("SM_MODEL_DIR", root / "model")),
            output_data_dir=Path(environ.get("SM_OUTPUT_DATA_DIR", root / "output" / "data")),
            checkpoint_dir=root / "checkpoints",
            failure_file=root / "output" / "failure",
        )


def parse_hyperparameters(argv: list[str]) -> TrainingSettings:
    """Settings from `--name value` / `--name=value` arguments; fails naming any unknown or invalid one."""
    raw = _argument_pairs(argv)
    unknown = sorted(
        name
        for name in raw
        if name not in SCRIPT_HYPERPARAMETERS
        and name not in BOOSTER_HYPERPARAMETERS
        and not name.startswith(_PLATFORM_PREFIXES)
    )
    if unknown:
        known = sorted([*SCRIPT_HYPERPARAMETERS, *BOOSTER_HYPERPARAMETERS])
        raise MlInputError(f"unknown hyperparameter(s) {unknown}: remove them or use one of {known}.")
    values = {name: _decode(value) for name, value in raw.items()}
    script = {
        name: convert(name, values[name]) if name in values else default
        for name, (convert, default) in SCRIPT_HYPERPARAMETERS.items()
    }
    booster_params = dict(BOOSTER_DEFAULTS)
    booster_params.update(
        {name: convert(name, values[name]) for name, convert in BOOSTER_HYPERPARAMETERS.items() if name in values}
    )
    eval_metrics = [metric.strip() for metric in script["eval_metric"].split(",") if metric.strip()]
    if not eval_metrics:
        raise MlInputError("hyperparameter eval_metric is empty: name at least one metric, e.g. auc.")
    return TrainingSettings(
        num_round=script["num_round"],
        early_stopping_rounds=script["early_stopping_rounds"],
        checkpoint_frequency=script["checkpoint_frequency"],
        eval_metrics=eval_metrics,
        booster_params=booster_params,
    )


def _argument_pairs(argv: list[str]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    position = 0
    while position < len(argv):
        argument = argv[position]
        if not argument.startswith("--") or argument == "--":
            raise MlInputError(f"expected a hyperparameter name like --eta, got {argument!r} in {argv}.")
        name, separator, inline_value = argument[2:].partition("=")
        if separator:
            pairs[name] = inline_value
            position += 1
            continue
        if position + 1 >= len(argv):
            raise MlInputError(f"hyperparameter --{name} has no value: pass it as --{name} <value>.")
        pairs[name] = argv[position + 1]
        position += 2
    return pairs


def _decode(value: str) -> Any:
    # Framework estimators JSON-encode every value ("0.1" arrives with its quotes); plain values arrive as they are.
    try:
        return json.loads(value)
    except ValueError:
        return value


@dataclass
class EarlyStopping:
    """The best validation score so far and whether the run has gone `patience` rounds without beating it."""

    metric: str
    patience: int
    best_iteration: int = -1
    best_score: float | None = None
    maximize: bool = field(init=False)

    def __post_init__(self) -> None:
        self.maximize = self.metric.startswith(_MAXIMIZED_METRIC_PREFIXES)

    def update(self, iteration: int, score: float) -> None:
        """Records the score of `iteration` (0-based)."""
        improved = self.best_score is None or (score > self.best_score if self.maximize else score < self.best_score)
        if improved:
            self.best_iteration, self.best_score = iteration, score

    def should_stop(self, iteration: int) -> bool:
        """True once `patience` rounds after the best one have passed (never when patience is 0)."""
        return self.patience > 0 and self.best_iteration >= 0 and iteration - self.best_iteration >= self.patience

    def to_attributes(self) -> dict[str, str]:
        """The state as booster attributes, so a checkpoint carries it across an interruption."""
        return {"best_iteration": str(self.best_iteration), "best_score": repr(self.best_score)}

    def restore(self, booster: xgb.Booster) -> None:
        """Takes the state saved by `to_attributes` from a checkpointed booster."""
        self.best_iteration = int(booster.attr("best_iteration") or -1)
        score = booster.attr("best_score")
        self.best_score = None if score in (None, "None") else float(score)


class CheckpointStore:
    """The newest booster of an interrupted run, in the folder SageMaker syncs with the job's S3 checkpoint URI."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def save(self, booster: xgb.Booster, rounds_done: int, attributes: dict[str, str]) -> None:
        """Writes the booster after `rounds_done` rounds, then removes older checkpoints."""
        self.directory.mkdir(parents=True, exist_ok=True)
        booster.set_attr(**attributes)
        target = self.directory / f"{CHECKPOINT_PREFIX}{rounds_done}"
        # Written aside and renamed: an interruption mid-write must not leave a truncated newest checkpoint.
        partial = self.directory / f".{target.name}.partial"
        save_booster(booster, partial)
        os.replace(partial, target)
        for older in self._checkpoints():
            if older != target:
                older.unlink()

    def load_newest(self, fingerprint: str) -> xgb.Booster | None:
        """The newest checkpoint, or None when there is none or it belongs to other data or hyperparameters."""
        checkpoints = self._checkpoints()
        if not checkpoints:
            return None
        newest = checkpoints[-1]
        booster = load_booster(newest.read_bytes())
        if booster.attr("fingerprint") != fingerprint:
            print(f"ignoring checkpoint {newest}: it was trained on other data or hyperparameters", flush=True)
            return None
        return booster

    def _checkpoints(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        found = [
            path
            for path in self.directory.iterdir()
            if path.name.startswith(CHECKPOINT_PREFIX) and path.name[len(CHECKPOINT_PREFIX) :].isdigit()
        ]
        return sorted(found, key=lambda path: int(path.name[len(CHECKPOINT_PREFIX) :]))


class RoundReporter(xgb.callback.TrainingCallback):
    """Prints each round's metrics for MetricDefinitions, tracks early stopping and writes checkpoints."""

    def __init__(self, stopping: EarlyStopping, checkpoints: CheckpointStore, frequency: int, fingerprint: str) -> None:
        super().__init__()
        self.stopping = stopping
        self.checkpoints = checkpoints
        self.frequency = frequency
        self.fingerprint = fingerprint

    def after_iteration(self, model: xgb.Booster, epoch: int, evals_log: dict[str, Any]) -> bool:
        """Reports the round just trained; returning True stops training."""
        # The absolute round, not `epoch`, which restarts at 0 when training resumes from a checkpoint.
        rounds_done = model.num_boosted_rounds()
        iteration = rounds_done - 1
        latest = {
            f"{data}:{metric}": float(history[-1])
            for data, metrics in evals_log.items()
            for metric, history in metrics.items()
        }
        print(f"[{iteration}] {format_metrics(latest)}", flush=True)
        self.stopping.update(iteration, latest[f"validation:{self.stopping.metric}"])
        if rounds_done % self.frequency == 0:
            attributes = {**self.stopping.to_attributes(), "fingerprint": self.fingerprint}
            self.checkpoints.save(model, rounds_done, attributes)
        return self.stopping.should_stop(iteration)


def format_metrics(values: Mapping[str, float]) -> str:
    """`name=value;` pairs with fixed-point values, which every MetricDefinitions regex for a number matches."""
    return " ".join(f"{name}={value:.6f};" for name, value in values.items())


def train(settings: TrainingSettings, paths: ContainerPaths, nthread: int) -> dict[str, Any]:
    """Trains, resuming from a matching checkpoint, and writes the model artifact; returns the run's summary."""
    x_train, y_train, feature_names = read_labelled_split(paths.train_dir, "train")
    x_validation, y_validation, validation_names = read_labelled_split(paths.validation_dir, "validation")
    if validation_names != feature_names:
        raise MlInputError(
            f"the validation columns {validation_names} differ from the train columns {feature_names}: "
            "use the train and validation outputs of one preprocess run."
        )
    dtrain = xgb.DMatrix(x_train, label=y_train, nthread=nthread)
    dvalidation = xgb.DMatrix(x_validation, label=y_validation, nthread=nthread)
    metrics = settings.eval_metrics + [m for m in ALWAYS_REPORTED_METRICS if m not in settings.eval_metrics]
    params = {**settings.booster_params, "eval_metric": metrics}
    fingerprint = _fingerprint(params, (x_train, y_train, x_validation, y_validation))

    checkpoints = CheckpointStore(paths.checkpoint_dir)
    stopping = EarlyStopping(metric=settings.eval_metrics[-1], patience=settings.early_stopping_rounds)
    resumed = checkpoints.load_newest(fingerprint)
    rounds_before = 0
    if resumed is not None:
        stopping.restore(resumed)
        rounds_before = resumed.num_boosted_rounds()
        print(f"resuming from checkpoint: {rounds_before} of {settings.num_round} rounds already trained", flush=True)
    remaining = max(0, settings.num_round - rounds_before)
    if stopping.should_stop(rounds_before - 1):
        remaining = 0

    print(
        f"training up to {remaining} round(s) on {len(y_train)} rows, {len(feature_names)} features, "
        f"{nthread} thread(s)",
        flush=True,
    )
    booster = xgb.train(
        {**params, "nthread": nthread},
        dtrain,
        num_boost_round=remaining,
        evals=[(dtrain, "train"), (dvalidation, "validation")],
        xgb_model=resumed,
        callbacks=[RoundReporter(stopping, checkpoints, settings.checkpoint_frequency, fingerprint)],
        verbose_eval=False,
    )
    rounds_trained = booster.num_boosted_rounds()
    stopped_early = settings.early_stopping_rounds > 0 and rounds_trained < settings.num_round
    # With early stopping the model keeps the trees up to the best round only, so every consumer predicts with it.
    # Slicing also drops the checkpoint bookkeeping attributes from the artifact.
    kept_rounds = stopping.best_iteration + 1 if settings.early_stopping_rounds > 0 else rounds_trained
    model = booster[:kept_rounds]
    model.set_attr(**{FEATURE_NAMES_ATTRIBUTE: json.dumps(feature_names)})
    write_model_artifact(model, paths.model_dir)

    final = {
        **_scored(model, "train", dtrain, y_train),
        **_scored(model, "validation", dvalidation, y_validation),
    }
    # Printed last so the job's final metric values (what tuning compares) are the saved model's, not the last round's.
    print(f"final: {format_metrics(final)}", flush=True)
    summary = {
        "rounds_trained": rounds_trained,
        "resumed_from_round": rounds_before or None,
        "stopped_early": stopped_early,
        "stopping_metric": f"validation:{stopping.metric}",
        "best_iteration": stopping.best_iteration,
        "best_score": stopping.best_score,
        "model_rounds": model.num_boosted_rounds(),
        "final_metrics": final,
        "hyperparameters": {**settings.booster_params, "num_round": settings.num_round},
    }
    write_json(paths.output_data_dir / METRICS_FILE_NAME, summary)
    return summary


def _scored(model: xgb.Booster, name: str, data: xgb.DMatrix, labels: np.ndarray) -> dict[str, float]:
    scores = classification_metrics(labels, model.predict(data))
    return {f"{name}:{metric}": scores[metric] for metric in ALWAYS_REPORTED_METRICS}


def write_model_artifact(model: xgb.Booster, model_dir: Path) -> None:
    """`xgboost-model` plus the inference code in `code/`: what SageMaker tars into model.tar.gz."""
    code_dir = model_dir / "code"
    code_dir.mkdir(parents=True, exist_ok=True)
    save_booster(model, model_dir / MODEL_FILE_NAME)
    source_dir = Path(__file__).resolve().parent
    for name in INFERENCE_CODE_FILES:
        shutil.copy2(source_dir / name, code_dir / name)


def _fingerprint(params: dict[str, Any], arrays: tuple[np.ndarray, ...]) -> str:
    # Identifies what a checkpoint was trained on: resuming someone else's boosting would corrupt the model.
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _thread_count(environ: Mapping[str, str]) -> int:
    # SageMaker sets SM_NUM_CPUS to the instance's cores; a local run gets the machine's.
    return int(environ.get("SM_NUM_CPUS") or os.cpu_count() or 1)


def main(argv: list[str]) -> int:
    """Runs the job; on any failure writes the reason where SageMaker reads it and returns exit code 1."""
    paths = ContainerPaths.from_environment(os.environ)
    try:
        settings = parse_hyperparameters(argv)
        print(f"hyperparameters: {json.dumps(settings.booster_params, sort_keys=True)}", flush=True)
        train(settings, paths, _thread_count(os.environ))
    except Exception as error:
        if isinstance(error, MlInputError):
            message = str(error)
        else:
            traceback.print_exc()
            message = f"{type(error).__name__}: {error}"
        print(f"ERROR: {message}", file=sys.stderr)
        _write_failure(paths.failure_file, message)
        return 1
    return 0


def _write_failure(failure_file: Path, message: str) -> None:
    try:
        failure_file.parent.mkdir(parents=True, exist_ok=True)
        failure_file.write_text(message + "\n", encoding="utf-8")
    except OSError as error:
        # Outside a container /opt/ml may not be writable; stderr above already carries the message.
        print(f"could not write the failure reason to {failure_file}: {error}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
