"""The local SageMaker's job APIs: training, processing, transform and hyper-parameter tuning jobs."""

from __future__ import annotations

import copy
from typing import Any

from emulator.sagemaker_local.errors import SageMakerError, validation_error
from emulator.sagemaker_local.jobs import JobRecord, ProcessingRunner, TrainingRunner, TransformRunner
from emulator.sagemaker_local.request_shapes import refuse_pipe_mode_inputs
from emulator.sagemaker_local.store import (
    TUNING_NAME_PATTERN,
    SageMakerStore,
    TuningProgress,
    paginate,
)
from emulator.sagemaker_local.tuning import Observation, ParameterSpace, strategy_for
from emulator.sagemaker_local.tuning_runner import TuningRunner


class JobAPIs(SageMakerStore):
    """Create, describe, list and stop jobs; each runs on a thread of its own and ends in a terminal status."""

    def _training_description(self, params: dict[str, Any], tuning_arn: str | None = None) -> dict[str, Any]:
        name = self._check_name(params.get("TrainingJobName"), "TrainingJobName")
        for required in ("AlgorithmSpecification", "OutputDataConfig", "ResourceConfig", "RoleArn"):
            if required not in params:
                raise validation_error(f"CreateTrainingJob {name}: {required} is required")
        now = self.clock.now()
        description = {
            **{key: value for key, value in params.items() if key != "Tags"},
            "TrainingJobArn": self._arn("training-job", name),
            "HyperParameters": {key: str(value) for key, value in params.get("HyperParameters", {}).items()},
            "TrainingJobStatus": "InProgress",
            "SecondaryStatus": "Starting",
            "CreationTime": now,
            "LastModifiedTime": now,
            "EnableNetworkIsolation": bool(params.get("EnableNetworkIsolation", False)),
            "EnableInterContainerTrafficEncryption": bool(params.get("EnableInterContainerTrafficEncryption", False)),
            "EnableManagedSpotTraining": bool(params.get("EnableManagedSpotTraining", False)),
        }
        if tuning_arn:
            description["TuningJobArn"] = tuning_arn
        return description

    def _run_training(self, record: JobRecord, cpus: int) -> None:
        def announce() -> None:
            self._emit(
                "SageMaker Training Job State Change", [record.description["TrainingJobArn"]], record.description
            )

        update = self._updater(record, "TrainingJobStatus", announce)
        self._guarded(
            record,
            "TrainingJobStatus",
            update,
            lambda: TrainingRunner(self.clock, self.stager, self.work_dir, self.warm_containers).run(
                record, update, cpus
            ),
        )

    def _op_CreateTrainingJob(self, params: dict[str, Any]) -> dict[str, Any]:
        refuse_pipe_mode_inputs("CreateTrainingJob", params)
        description = self._training_description(params)
        record = self._new_job("training", description["TrainingJobName"], "training job", description)
        self._record_tags(description["TrainingJobArn"], params.get("Tags"))
        self._start_thread(
            lambda: self._run_training(record, self._cpus_per_training(1)), description["TrainingJobName"]
        )
        return {"TrainingJobArn": description["TrainingJobArn"]}

    def _op_DescribeTrainingJob(self, params: dict[str, Any]) -> dict[str, Any]:
        record = self._job("training", params["TrainingJobName"], "training job")
        with self._lock:
            return copy.deepcopy(record.description)

    def _op_StopTrainingJob(self, params: dict[str, Any]) -> dict[str, Any]:
        self._stop(self._job("training", params["TrainingJobName"], "training job"), "TrainingJobStatus")
        return {}

    def _op_ListTrainingJobs(self, params: dict[str, Any]) -> dict[str, Any]:
        fields = [
            "TrainingJobName",
            "TrainingJobArn",
            "CreationTime",
            "TrainingEndTime",
            "LastModifiedTime",
            "TrainingJobStatus",
        ]
        return self._job_summaries(
            "training", params, fields, "TrainingJobStatus", "TrainingJobName", "TrainingJobSummaries"
        )

    def _op_CreateProcessingJob(self, params: dict[str, Any]) -> dict[str, Any]:
        name = self._check_name(params.get("ProcessingJobName"), "ProcessingJobName")
        for required in ("AppSpecification", "ProcessingResources", "RoleArn"):
            if required not in params:
                raise validation_error(f"CreateProcessingJob {name}: {required} is required")
        refuse_pipe_mode_inputs("CreateProcessingJob", params)
        now = self.clock.now()
        description = {
            **{key: value for key, value in params.items() if key != "Tags"},
            "ProcessingJobArn": self._arn("processing-job", name),
            "ProcessingJobStatus": "InProgress",
            "CreationTime": now,
            "LastModifiedTime": now,
        }
        record = self._new_job("processing", name, "processing job", description)
        self._record_tags(description["ProcessingJobArn"], params.get("Tags"))
        runner = ProcessingRunner(self.clock, self.stager, self.work_dir, self.warm_containers)
        update = self._updater(record, "ProcessingJobStatus")
        self._start_thread(
            lambda: self._guarded(record, "ProcessingJobStatus", update, lambda: runner.run(record, update)), name
        )
        return {"ProcessingJobArn": description["ProcessingJobArn"]}

    def _op_DescribeProcessingJob(self, params: dict[str, Any]) -> dict[str, Any]:
        record = self._job("processing", params["ProcessingJobName"], "processing job")
        with self._lock:
            return copy.deepcopy(record.description)

    def _op_StopProcessingJob(self, params: dict[str, Any]) -> dict[str, Any]:
        self._stop(self._job("processing", params["ProcessingJobName"], "processing job"), "ProcessingJobStatus")
        return {}

    def _op_ListProcessingJobs(self, params: dict[str, Any]) -> dict[str, Any]:
        fields = [
            "ProcessingJobName",
            "ProcessingJobArn",
            "CreationTime",
            "ProcessingEndTime",
            "LastModifiedTime",
            "ProcessingJobStatus",
            "FailureReason",
        ]
        return self._job_summaries(
            "processing", params, fields, "ProcessingJobStatus", "ProcessingJobName", "ProcessingJobSummaries"
        )

    def _op_CreateTransformJob(self, params: dict[str, Any]) -> dict[str, Any]:
        name = self._check_name(params.get("TransformJobName"), "TransformJobName")
        model = self._model(params.get("ModelName", ""))
        now = self.clock.now()
        description = {
            **{key: value for key, value in params.items() if key != "Tags"},
            "TransformJobArn": self._arn("transform-job", name),
            "TransformJobStatus": "InProgress",
            "CreationTime": now,
            "LastModifiedTime": now,
        }
        record = self._new_job("transform", name, "transform job", description)
        self._record_tags(description["TransformJobArn"], params.get("Tags"))

        update = self._updater(record, "TransformJobStatus")

        def run() -> None:
            try:
                model_dir, environment = self._extract_model(
                    model, self.work_dir / "transform" / f"{name}-model", self.work_dir / "transform" / f"{name}-code"
                )
            except (OSError, ValueError, SageMakerError) as error:
                update(
                    TransformJobStatus="Failed",
                    FailureReason=f"ClientError: {error}",
                    TransformEndTime=self.clock.now(),
                )
                return
            TransformRunner(self.clock, self.stager, self.work_dir, self.warm_containers).run(
                record, update, model_dir, environment, network_isolation=bool(model.get("EnableNetworkIsolation"))
            )

        self._start_thread(lambda: self._guarded(record, "TransformJobStatus", update, run), name)
        return {"TransformJobArn": description["TransformJobArn"]}

    def _op_DescribeTransformJob(self, params: dict[str, Any]) -> dict[str, Any]:
        record = self._job("transform", params["TransformJobName"], "transform job")
        with self._lock:
            return copy.deepcopy(record.description)

    def _op_StopTransformJob(self, params: dict[str, Any]) -> dict[str, Any]:
        self._stop(self._job("transform", params["TransformJobName"], "transform job"), "TransformJobStatus")
        return {}

    def _op_CreateHyperParameterTuningJob(self, params: dict[str, Any]) -> dict[str, Any]:
        name = self._check_name(
            params.get("HyperParameterTuningJobName"), "HyperParameterTuningJobName", TUNING_NAME_PATTERN
        )
        config = params.get("HyperParameterTuningJobConfig") or {}
        definition = params.get("TrainingJobDefinition")
        if not definition:
            raise validation_error(
                f"Tuning job {name}: only TrainingJobDefinition (not TrainingJobDefinitions) runs locally"
            )
        refuse_pipe_mode_inputs("CreateHyperParameterTuningJob", params)
        objective = config.get("HyperParameterTuningJobObjective") or {}
        metric_names = [m["Name"] for m in definition.get("AlgorithmSpecification", {}).get("MetricDefinitions", [])]
        if objective.get("MetricName") not in metric_names:
            raise validation_error(
                f"Tuning job {name}: objective metric {objective.get('MetricName')!r} is not among the "
                f"MetricDefinitions {metric_names}"
            )
        space = ParameterSpace(config.get("ParameterRanges") or {})
        strategy = strategy_for(config, space, seed=sum(name.encode()))
        seed_observations = self._warm_start_observations(params.get("WarmStartConfig"))
        now = self.clock.now()
        description = {
            **{key: value for key, value in params.items() if key != "Tags"},
            "HyperParameterTuningJobArn": self._arn("hyper-parameter-tuning-job", name),
            "HyperParameterTuningJobStatus": "InProgress",
            "CreationTime": now,
            "LastModifiedTime": now,
            "TrainingJobStatusCounters": {
                "Completed": 0,
                "InProgress": 0,
                "RetryableError": 0,
                "NonRetryableError": 0,
                "Stopped": 0,
            },
            "ObjectiveStatusCounters": {"Succeeded": 0, "Pending": 0, "Failed": 0},
        }
        record = self._new_job("tuning", name, "hyper-parameter tuning job", description)
        with self._lock:
            self._tuning_progress[name] = TuningProgress()
        self._record_tags(description["HyperParameterTuningJobArn"], params.get("Tags"))
        update = self._updater(record, "HyperParameterTuningJobStatus")
        self._start_thread(
            lambda: self._guarded(
                record,
                "HyperParameterTuningJobStatus",
                update,
                lambda: TuningRunner(self, record, strategy, seed_observations).run(),
            ),
            name,
        )
        return {"HyperParameterTuningJobArn": description["HyperParameterTuningJobArn"]}

    def _warm_start_observations(self, warm_start: dict[str, Any] | None) -> list[Observation]:
        if not warm_start:
            return []
        observations = []
        for parent in warm_start.get("ParentHyperParameterTuningJobs", []):
            parent_name = parent["HyperParameterTuningJobName"]
            # Raises SageMaker's ValidationException for a parent this twin never ran.
            self._job("tuning", parent_name, "parent hyper-parameter tuning job")
            with self._lock:
                observations.extend(self._tuning_progress[parent_name].observations)
        return observations

    @staticmethod
    def _objective_value(training: JobRecord, metric_name: str) -> float | None:
        if training.description.get("TrainingJobStatus") != "Completed":
            return None
        for metric in training.description.get("FinalMetricDataList", []):
            if metric["MetricName"] == metric_name:
                return float(metric["Value"])
        return None

    def _training_summary(self, training: JobRecord, objective: dict[str, Any], value: float | None) -> dict[str, Any]:
        d = training.description
        ranges = d.get("HyperParameters", {})
        tuned_names = self._tuned_parameter_names(d)
        summary: dict[str, Any] = {
            "TrainingJobName": d["TrainingJobName"],
            "TrainingJobArn": d["TrainingJobArn"],
            "TuningJobName": d["TuningJobArn"].rsplit("/", 1)[-1],
            "CreationTime": d["CreationTime"],
            "TrainingStartTime": d.get("TrainingStartTime"),
            "TrainingEndTime": d.get("TrainingEndTime"),
            "TrainingJobStatus": d["TrainingJobStatus"],
            "TunedHyperParameters": {name: ranges[name] for name in tuned_names if name in ranges},
            "ObjectiveStatus": "Succeeded" if value is not None else "Failed",
        }
        if value is not None:
            summary["FinalHyperParameterTuningJobObjectiveMetric"] = {
                "Type": objective["Type"],
                "MetricName": objective["MetricName"],
                "Value": value,
            }
        if d.get("FailureReason"):
            summary["FailureReason"] = d["FailureReason"]
        return {key: value for key, value in summary.items() if value is not None}

    def _tuned_parameter_names(self, training_description: dict[str, Any]) -> list[str]:
        tuning_name = training_description["TuningJobArn"].rsplit("/", 1)[-1]
        tuning = self._jobs["tuning"].get(tuning_name)
        if tuning is None:
            return []
        ranges = tuning.description["HyperParameterTuningJobConfig"].get("ParameterRanges", {})
        return [spec["Name"] for specs in ranges.values() for spec in specs]

    def _op_DescribeHyperParameterTuningJob(self, params: dict[str, Any]) -> dict[str, Any]:
        record = self._job("tuning", params["HyperParameterTuningJobName"], "hyper-parameter tuning job")
        with self._lock:
            return copy.deepcopy(record.description)

    def _op_ListTrainingJobsForHyperParameterTuningJob(self, params: dict[str, Any]) -> dict[str, Any]:
        record = self._job("tuning", params["HyperParameterTuningJobName"], "hyper-parameter tuning job")
        objective = record.description["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]
        with self._lock:
            trainings = [
                self._jobs["training"][n]
                for n in self._tuning_progress[record.description["HyperParameterTuningJobName"]].trainings
            ]
            summaries = [
                self._training_summary(t, objective, self._objective_value(t, objective["MetricName"]))
                for t in trainings
            ]
        if params.get("StatusEquals"):
            summaries = [s for s in summaries if s["TrainingJobStatus"] == params["StatusEquals"]]
        if params.get("SortBy") == "FinalObjectiveMetricValue":
            summaries.sort(
                key=lambda s: s.get("FinalHyperParameterTuningJobObjectiveMetric", {}).get("Value", float("-inf")),
                reverse=params.get("SortOrder", "Descending") == "Descending",
            )
        return paginate(summaries, params, "TrainingJobSummaries")

    def _op_StopHyperParameterTuningJob(self, params: dict[str, Any]) -> dict[str, Any]:
        record = self._job("tuning", params["HyperParameterTuningJobName"], "hyper-parameter tuning job")
        self._stop(record, "HyperParameterTuningJobStatus")
        with self._lock:
            trainings = [
                self._jobs["training"][n]
                for n in self._tuning_progress[record.description["HyperParameterTuningJobName"]].trainings
            ]
        for training in trainings:
            self._stop(training, "TrainingJobStatus")
        return {}

    def _op_ListHyperParameterTuningJobs(self, params: dict[str, Any]) -> dict[str, Any]:
        fields = [
            "HyperParameterTuningJobName",
            "HyperParameterTuningJobArn",
            "HyperParameterTuningJobStatus",
            "CreationTime",
            "HyperParameterTuningEndTime",
            "LastModifiedTime",
            "TrainingJobStatusCounters",
            "ObjectiveStatusCounters",
        ]
        result = self._job_summaries(
            "tuning",
            params,
            fields,
            "HyperParameterTuningJobStatus",
            "HyperParameterTuningJobName",
            "HyperParameterTuningJobSummaries",
        )
        for summary, source in zip(
            result["HyperParameterTuningJobSummaries"], result["HyperParameterTuningJobSummaries"], strict=True
        ):
            strategy = self._jobs["tuning"][source["HyperParameterTuningJobName"]].description[
                "HyperParameterTuningJobConfig"
            ]
            summary["Strategy"] = strategy.get("Strategy", "Bayesian")
            summary["ResourceLimits"] = strategy.get("ResourceLimits", {})
        return result
