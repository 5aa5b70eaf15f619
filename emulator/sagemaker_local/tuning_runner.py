"""Runs a hyper-parameter tuning job: launches its trainings as the strategy suggests, counts them, keeps the best."""

from __future__ import annotations

import copy
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

from emulator.sagemaker_local.jobs import JobRecord
from emulator.sagemaker_local.store import TERMINAL_JOB_STATUSES
from emulator.sagemaker_local.tuning import Observation

if TYPE_CHECKING:
    from emulator.sagemaker_local.jobs_api import JobAPIs

# What a tuning job's TrainingJobDefinition has that a training job's request does not.
_TUNING_ONLY_FIELDS = ("StaticHyperParameters", "HyperParameterRanges", "DefinitionName", "TuningObjective")


class TuningRunner:
    """One tuning job's run, on the thread the backend started for it; `run()` ends the job in a terminal status.

    Up to `MaxParallelTrainingJobs` trainings (and no more than the backend's `max_parallel`) run at once, each
    a training job of the backend, so they are described, listed and stopped like any other.
    """

    def __init__(self, jobs: JobAPIs, record: JobRecord, strategy: Any, seed_observations: list[Observation]) -> None:
        self.jobs = jobs
        self.record = record
        self.strategy = strategy
        self.description = record.description
        self.name = self.description["HyperParameterTuningJobName"]
        config = self.description["HyperParameterTuningJobConfig"]
        self.objective = config["HyperParameterTuningJobObjective"]
        self.maximize = self.objective["Type"] == "Maximize"
        limits = config.get("ResourceLimits") or {}
        self.max_jobs = int(limits.get("MaxNumberOfTrainingJobs") or 10**6)
        self.parallel = max(1, min(int(limits.get("MaxParallelTrainingJobs") or 1), jobs.max_parallel))
        self.cpus = jobs._cpus_per_training(self.parallel)
        self.definition = self.description["TrainingJobDefinition"]
        self.observations = list(seed_observations)
        with jobs._lock:
            self.progress = jobs._tuning_progress[self.name]

    def run(self) -> None:
        pending: dict[Future[JobRecord], dict[str, str]] = {}
        best: tuple[float, JobRecord] | None = None
        update = self.jobs._updater(self.record, "HyperParameterTuningJobStatus")
        metric_name = self.objective["MetricName"]
        launched = 0
        with ThreadPoolExecutor(max_workers=self.parallel, thread_name_prefix=self.name) as pool:
            exhausted = False
            while pending or (launched < self.max_jobs and not exhausted and not self.record.stop_requested):
                while (
                    len(pending) < self.parallel
                    and launched < self.max_jobs
                    and not exhausted
                    and not self.record.stop_requested
                ):
                    suggestion = self.strategy.suggest(self.observations, list(pending.values()))
                    if suggestion is None:
                        exhausted = True
                        break
                    launched += 1
                    pending[pool.submit(self._train, launched, suggestion)] = suggestion
                if not pending:
                    break
                finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for future in finished:
                    hyperparameters = pending.pop(future)
                    training = future.result()
                    value = self.jobs._objective_value(training, metric_name)
                    if value is None:
                        continue
                    observation = Observation(hyperparameters, value)
                    self.observations.append(observation)
                    with self.jobs._lock:
                        self.progress.observations.append(observation)
                    if best is None or (value > best[0] if self.maximize else value < best[0]):
                        best = (value, training)
        fields: dict[str, Any] = {"HyperParameterTuningEndTime": self.jobs.clock.now()}
        if best is not None:
            fields["BestTrainingJob"] = self.jobs._training_summary(best[1], self.objective, best[0])
        if self.record.stop_requested:
            fields["HyperParameterTuningJobStatus"] = "Stopped"
        elif best is None:
            fields["HyperParameterTuningJobStatus"] = "Failed"
            fields["FailureReason"] = f"All {launched} training jobs failed or reported no {metric_name!r}"
        else:
            fields["HyperParameterTuningJobStatus"] = "Completed"
        update(**fields)

    def _counters_changed(self) -> None:
        """Recount the tuning job's TrainingJobStatusCounters and ObjectiveStatusCounters from its trainings."""
        jobs, description = self.jobs, self.description
        with jobs._lock:
            training = [jobs._jobs["training"][n] for n in self.progress.trainings]
            statuses = [t.description["TrainingJobStatus"] for t in training]
            succeeded = sum(1 for t in training if jobs._objective_value(t, self.objective["MetricName"]) is not None)
            description["TrainingJobStatusCounters"] = {
                "Completed": statuses.count("Completed"),
                "InProgress": statuses.count("InProgress") + statuses.count("Stopping"),
                "RetryableError": 0,
                "NonRetryableError": statuses.count("Failed"),
                "Stopped": statuses.count("Stopped"),
            }
            finished = sum(1 for s in statuses if s in TERMINAL_JOB_STATUSES)
            description["ObjectiveStatusCounters"] = {
                "Succeeded": succeeded,
                "Pending": len(statuses) - finished,
                "Failed": finished - succeeded,
            }
            description["LastModifiedTime"] = jobs.clock.now()

    def _train(self, index: int, hyperparameters: dict[str, str]) -> JobRecord:
        """Run the tuning job's `index`th training with `hyperparameters`, on the calling pool thread."""
        jobs = self.jobs
        training_name = f"{self.name}-{index:03d}-{uuid.uuid4().hex[:8]}"
        params = {key: copy.deepcopy(value) for key, value in self.definition.items() if key not in _TUNING_ONLY_FIELDS}
        params["TrainingJobName"] = training_name
        params["HyperParameters"] = {**self.definition.get("StaticHyperParameters", {}), **hyperparameters}
        training = jobs._new_job(
            "training",
            training_name,
            "training job",
            jobs._training_description(params, self.description["HyperParameterTuningJobArn"]),
        )
        with jobs._lock:
            self.progress.trainings.append(training_name)
        self._counters_changed()
        if self.record.stop_requested:
            jobs._updater(training, "TrainingJobStatus")(TrainingJobStatus="Stopped", TrainingEndTime=jobs.clock.now())
        else:
            jobs._run_training(training, self.cpus)
        self._counters_changed()
        return training
