"""The `training` definition built from workflows/training.py: transitions, settings from pipeline.toml, names."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from asl_walk import choice_targets, execution_scoped_name, path_from, tasks

from contract.pipeline_config import PipelineConfig
from workflows.training import TRAINING_METRICS, build_training_definition

LONGEST_EXECUTION_NAME = "x" * 56  # docs/interfaces.md: execution names are at most 56 characters
SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")


def test_training_preprocesses_then_branches_on_tune(training_definition: dict[str, Any]) -> None:
    assert training_definition["StartAt"] == "ApplyInputDefaults"
    assert path_from(training_definition, "ApplyInputDefaults") == [
        "ApplyInputDefaults",
        "MergeInputDefaults",
        "SnapshotTrainingData",
        "Preprocess",
        "TuneOrTrain",
    ]
    tune_or_train = training_definition["States"]["TuneOrTrain"]
    assert tune_or_train["Choices"] == [{"Variable": "$.tune", "BooleanEquals": True, "Next": "WarmStartOrNot"}]
    assert tune_or_train["Default"] == "Train"


def test_training_and_both_tuning_paths_meet_at_evaluate(training_definition: dict[str, Any]) -> None:
    states = training_definition["States"]
    assert choice_targets(states["WarmStartOrNot"]) == ["TuneWithWarmStart", "Tune"]
    assert states["Train"]["Next"] == "Evaluate"
    assert states["Tune"]["Next"] == "DescribeBestTrainingJob"
    assert states["TuneWithWarmStart"]["Next"] == "DescribeBestTrainingJob"
    # The best job's description lands where the training job's would, so Evaluate reads one path either way.
    assert states["DescribeBestTrainingJob"]["Parameters"] == {
        "TrainingJobName.$": "$.tuning.BestTrainingJob.TrainingJobName"
    }
    assert states["DescribeBestTrainingJob"]["ResultPath"] == states["Train"]["ResultPath"] == "$.training"
    assert path_from(training_definition, "DescribeBestTrainingJob") == [
        "DescribeBestTrainingJob",
        "Evaluate",
        "EvaluationReport",
        "QualityGate",
    ]


def test_passing_the_gate_registers_makes_the_model_card_then_notifies_then_succeeds(
    training_definition: dict[str, Any],
) -> None:
    states = training_definition["States"]
    assert choice_targets(states["QualityGate"]) == ["BiasGate", "ExplainQualityGateFailure"]
    assert choice_targets(states["BiasGate"]) == ["WriteLineageManifest", "NotifyBiasGateFailed"]
    assert states["WriteLineageManifest"]["Next"] == "RegisterModelPackage"
    assert path_from(training_definition, "RegisterModelPackage") == [
        "RegisterModelPackage",
        "CreateModelCard",
        "NotifyModelRegistered",
        "ModelRegistered",
    ]
    assert states["ModelRegistered"]["Type"] == "Succeed"


def test_the_model_card_step_names_the_registered_package_and_fails_as_model_card_failed(
    training_definition: dict[str, Any],
) -> None:
    card = training_definition["States"]["CreateModelCard"]

    assert card["Parameters"]["FunctionName"] == "${ModelCardFunctionArn}"
    assert card["Parameters"]["Payload"] == {"model_package_arn.$": "$.model_package.ModelPackageArn"}
    assert [catch["Next"] for catch in card["Catch"]] == ["NotifyModelCardFailed"]
    assert path_from(training_definition, "NotifyModelCardFailed") == ["NotifyModelCardFailed", "ModelCardFailed"]


def test_failing_the_gate_notifies_then_fails_as_quality_gate_failed(training_definition: dict[str, Any]) -> None:
    states = training_definition["States"]
    assert choice_targets(states["ExplainQualityGateFailure"]) == [
        "ExplainGateWithoutChampion",
        "ExplainGateAgainstChampion",
    ]
    for explain in ("ExplainGateWithoutChampion", "ExplainGateAgainstChampion"):
        assert path_from(training_definition, explain) == [explain, "NotifyQualityGateFailed", "QualityGateFailed"]
        assert states[explain]["ResultPath"] == "$.quality_gate"
    assert states["ExplainGateAgainstChampion"]["Parameters"]["reason.$"] == (
        "States.Format('{} = {}; the gate needs >= 0.9 and at most 0.0 below the champion, whose value is {}', "
        "$.report.Payload.metric_name, $.report.Payload.metric_value, $.report.Payload.champion_value)"
    )
    # The Fail's cause is that sentence: metric, value, threshold and the champion's value.
    assert states["QualityGateFailed"] == {
        "Error": "QualityGateFailed",
        "CausePath": "$.quality_gate.reason",
        "Type": "Fail",
    }


@pytest.mark.parametrize(
    ("task", "fail"),
    [
        ("Preprocess", "PreprocessingFailed"),
        ("Train", "TrainingFailed"),
        ("Tune", "TrainingFailed"),
        ("TuneWithWarmStart", "TrainingFailed"),
        ("DescribeBestTrainingJob", "TrainingFailed"),
        ("Evaluate", "EvaluationFailed"),
        ("EvaluationReport", "EvaluationFailed"),
        ("WriteLineageManifest", "LineageFailed"),
        ("RegisterModelPackage", "RegistrationFailed"),
    ],
)
def test_each_task_error_is_caught_notified_and_ends_in_its_named_fail(
    training_definition: dict[str, Any], task: str, fail: str
) -> None:
    [catcher] = training_definition["States"][task]["Catch"]
    # Phases of SageMaker jobs first word the job's FailureReason for the notification.
    explained = fail in ("PreprocessingFailed", "TrainingFailed", "EvaluationFailed")
    entry = f"Explain{fail}" if explained else f"Notify{fail}"
    assert catcher == {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": entry}
    if explained:
        assert choice_targets(training_definition["States"][entry]) == [f"Describe{fail}Job", f"{entry}FromError"]
        assert path_from(training_definition, f"Describe{fail}Job")[-2:] == [f"Notify{fail}", fail]
        assert path_from(training_definition, f"{entry}FromError") == [f"{entry}FromError", f"Notify{fail}", fail]
    assert path_from(training_definition, f"Notify{fail}") == [f"Notify{fail}", fail]


def test_input_defaults_are_merged_under_the_execution_input(
    training_definition: dict[str, Any], config: PipelineConfig
) -> None:
    states = training_definition["States"]
    defaults = states["ApplyInputDefaults"]["Parameters"]["defaults"]
    assert defaults == {
        "data_uri": f"s3://${{DataBucket}}/{config.data.prefix}",
        "tune": False,
        "trigger": {"type": "manual"},
        "objects": [],
        "data_versions": [],
        "warm_start_tuning_job": None,
        "bias": {"facet_column": config.bias.facet_column, "sensitive_values": list(config.bias.sensitive_values)},
    }
    assert states["MergeInputDefaults"]["Parameters"] == {"request.$": "States.JsonMerge($.defaults, $.request, false)"}
    assert states["MergeInputDefaults"]["OutputPath"] == "$.request"


def test_quality_gate_threshold_is_read_from_config(config_with: Any) -> None:
    definition = build_training_definition(config_with(quality_gate={"threshold": 0.77}))
    [rule] = definition["States"]["QualityGate"]["Choices"]
    assert {"Variable": "$.report.Payload.metric_value", "NumericGreaterThanEquals": 0.77} in rule["And"]
    assert {"Variable": "$.report.Payload.beats_champion", "BooleanEquals": True} in rule["And"]


def test_quality_gate_ignores_the_champion_when_config_says_so(config_with: Any) -> None:
    definition = build_training_definition(config_with(quality_gate={"must_beat_champion": False}))
    [rule] = definition["States"]["QualityGate"]["Choices"]
    assert rule["And"] == [{"Variable": "$.report.Payload.metric_value", "NumericGreaterThanEquals": 0.9}]


def test_evaluation_report_gets_metric_and_tolerance_from_config(config_with: Any) -> None:
    definition = build_training_definition(config_with(quality_gate={"metric": "f1", "champion_tolerance": 0.01}))
    payload = definition["States"]["EvaluationReport"]["Parameters"]["Payload"]
    assert payload["metric"] == "f1"
    assert payload["champion_tolerance"] == 0.01
    assert payload["evaluation_uri.$"].endswith("/evaluation/evaluation.json', $$.Execution.Name)")
    assert definition["States"]["EvaluationReport"]["Parameters"]["FunctionName"] == "${EvaluationReportFunctionArn}"


def test_tuning_settings_come_from_config(training_definition: dict[str, Any], config: PipelineConfig) -> None:
    tuning_config = training_definition["States"]["Tune"]["Parameters"]["HyperParameterTuningJobConfig"]
    assert tuning_config["Strategy"] == config.tuning.strategy
    assert tuning_config["ResourceLimits"] == {
        "MaxNumberOfTrainingJobs": config.tuning.max_jobs,
        "MaxParallelTrainingJobs": config.tuning.max_parallel_jobs,
    }
    assert tuning_config["TrainingJobEarlyStoppingType"] == config.tuning.early_stopping
    assert tuning_config["HyperParameterTuningJobObjective"] == {
        "Type": config.tuning.objective_type,
        "MetricName": config.tuning.objective_metric,
    }
    ranges = tuning_config["ParameterRanges"]
    declared = {
        (r["Name"], kind, r["ScalingType"])
        for kind in ("Continuous", "Integer")
        for r in ranges[f"{kind}ParameterRanges"]
    }
    assert declared == {(r.name, r.type, r.scaling) for r in config.tuning.ranges}


def test_changed_tuning_config_changes_the_tuning_job(config_with: Any) -> None:
    definition = build_training_definition(
        config_with(tuning={"strategy": "Hyperband", "max_jobs": 12, "max_parallel_jobs": 3})
    )
    tuning_config = definition["States"]["Tune"]["Parameters"]["HyperParameterTuningJobConfig"]
    assert tuning_config["Strategy"] == "Hyperband"
    assert tuning_config["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 12, "MaxParallelTrainingJobs": 3}
    # Hyperband stops weak trials itself; SageMaker rejects it together with automatic early stopping.
    assert tuning_config["TrainingJobEarlyStoppingType"] == "Off"


def test_tuned_hyperparameters_are_not_also_static(training_definition: dict[str, Any], config: PipelineConfig) -> None:
    definition = training_definition["States"]["Tune"]["Parameters"]["TrainingJobDefinition"]
    static = definition["StaticHyperParameters"]
    assert not {r.name for r in config.tuning.ranges} & set(static)
    assert static["sagemaker_program"] == '"train.py"'


def test_warm_start_uses_the_input_job_and_exists_only_when_config_enables_it(
    training_definition: dict[str, Any], config_with: Any
) -> None:
    warm = training_definition["States"]["TuneWithWarmStart"]["Parameters"]["WarmStartConfig"]
    assert warm == {
        "WarmStartType": "TransferLearning",
        "ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName.$": "$.warm_start_tuning_job"}],
    }
    assert "WarmStartConfig" not in training_definition["States"]["Tune"]["Parameters"]
    assert training_definition["States"]["WarmStartOrNot"]["Choices"][0] == {
        "Variable": "$.warm_start_tuning_job",
        "IsString": True,
        "Next": "TuneWithWarmStart",
    }

    cold_only = build_training_definition(config_with(tuning={"warm_start": False}))
    assert "TuneWithWarmStart" not in cold_only["States"]
    assert "WarmStartOrNot" not in cold_only["States"]
    assert cold_only["States"]["TuneOrTrain"]["Choices"][0]["Next"] == "Tune"


def test_training_uses_managed_spot_with_per_execution_checkpoints(
    training_definition: dict[str, Any], config: PipelineConfig
) -> None:
    parameters = training_definition["States"]["Train"]["Parameters"]
    assert parameters["EnableManagedSpotTraining"] is True
    assert parameters["StoppingCondition"] == {
        "MaxRuntimeInSeconds": config.training.max_runtime_seconds,
        "MaxWaitTimeInSeconds": config.training.max_wait_seconds,
    }
    assert parameters["CheckpointConfig"] == {
        "S3Uri.$": "States.Format('s3://${ArtifactBucket}/checkpoints/{}/', $$.Execution.Name)",
        "LocalPath": "/opt/ml/checkpoints",
    }


def test_training_without_spot_has_no_checkpoints_or_wait(config_with: Any) -> None:
    parameters = build_training_definition(config_with(training={"use_spot": False}))["States"]["Train"]["Parameters"]
    assert "CheckpointConfig" not in parameters
    assert "EnableManagedSpotTraining" not in parameters
    assert "MaxWaitTimeInSeconds" not in parameters["StoppingCondition"]


def test_training_sets_what_the_sdk_drops(training_definition: dict[str, Any]) -> None:
    for name in ("Train", "Tune", "TuneWithWarmStart"):
        parameters = training_definition["States"][name]["Parameters"]
        job = parameters.get("TrainingJobDefinition", parameters)
        assert job["EnableNetworkIsolation"] is True, name
        assert job["EnableInterContainerTrafficEncryption"] is True, name
        assert job["ResourceConfig"]["InstanceType"] == "${TrainingInstanceType}", name


def test_training_code_arrives_as_a_channel_because_of_network_isolation(
    training_definition: dict[str, Any], config: PipelineConfig
) -> None:
    parameters = training_definition["States"]["Train"]["Parameters"]
    channels = {channel["ChannelName"]: channel for channel in parameters["InputDataConfig"]}
    assert set(channels) == {"train", "validation", "code"}
    assert channels["code"]["DataSource"]["S3DataSource"]["S3Uri"] == "${SourceDirUri}"
    for name in ("train", "validation"):
        uri = channels[name]["DataSource"]["S3DataSource"]["S3Uri.$"]
        assert uri == f"States.Format('s3://${{ArtifactBucket}}/runs/{{}}/preprocess/{name}/', $$.Execution.Name)"
    hyperparameters = parameters["HyperParameters"]
    assert hyperparameters["sagemaker_program"] == '"train.py"'
    assert hyperparameters["sagemaker_submit_directory"] == '"/opt/ml/input/data/code/sourcedir.tar.gz"'
    # JSON-encoded, as the SageMaker SDK writes framework hyperparameters.
    for name, value in config.training.hyperparameters.items():
        assert json.loads(hyperparameters[name]) == value, name


def test_metric_definitions_parse_the_lines_train_prints(training_definition: dict[str, Any]) -> None:
    definitions = training_definition["States"]["Train"]["Parameters"]["AlgorithmSpecification"]["MetricDefinitions"]
    line = "[12] validation:auc=0.9875; validation:logloss=1.5e-01; train:auc=1.0;"
    parsed = {}
    for definition in definitions:
        match = re.search(definition["Regex"], line)
        assert match, definition
        parsed[definition["Name"]] = float(match[1])
    assert parsed == {"validation:auc": 0.9875, "validation:logloss": 0.15, "train:auc": 1.0}
    assert {d["Name"] for d in definitions} == set(TRAINING_METRICS)


def test_preprocess_runs_the_interfaces_entrypoint_with_config_arguments(
    training_definition: dict[str, Any], config: PipelineConfig
) -> None:
    parameters = training_definition["States"]["Preprocess"]["Parameters"]
    app = parameters["AppSpecification"]
    assert app["ContainerEntrypoint"] == [
        "/bin/sh",
        "-c",
        'cd /opt/ml/processing/input/code && tar -xzf sourcedir.tar.gz && exec python3 preprocess.py "$@"',
        "sh",
    ]
    arguments = dict(zip(app["ContainerArguments"][::2], app["ContainerArguments"][1::2], strict=True))
    assert arguments == {
        "--input-dir": "/opt/ml/processing/input/data",
        "--output-dir": "/opt/ml/processing/output",
        "--label-column": config.model.label_column,
        "--test-fraction": str(config.data.test_fraction),
        "--validation-fraction": str(config.data.validation_fraction),
        "--seed": str(config.data.split_seed),
    }
    inputs = {i["InputName"]: i["S3Input"] for i in parameters["ProcessingInputs"]}
    assert inputs["code"]["S3Uri"] == "${SourceDirUri}"
    assert inputs["data"]["S3Uri.$"] == "States.Format('s3://${ArtifactBucket}/runs/{}/data/', $$.Execution.Name)"
    outputs = {o["OutputName"]: o["S3Output"]["LocalPath"] for o in parameters["ProcessingOutputConfig"]["Outputs"]}
    assert outputs == {name: f"/opt/ml/processing/output/{name}" for name in outputs}
    assert set(outputs) == {"train", "validation", "test", "baseline", "sample"}


def test_evaluate_reads_the_trained_model_and_the_test_split(training_definition: dict[str, Any]) -> None:
    parameters = training_definition["States"]["Evaluate"]["Parameters"]
    inputs = {i["InputName"]: i["S3Input"] for i in parameters["ProcessingInputs"]}
    assert inputs["model"]["S3Uri.$"] == "$.training.ModelArtifacts.S3ModelArtifacts"
    assert inputs["model"]["LocalPath"] == "/opt/ml/processing/model"
    assert inputs["test"]["LocalPath"] == "/opt/ml/processing/test"
    assert "python3 evaluate.py" in parameters["AppSpecification"]["ContainerEntrypoint"][2]


def test_registered_package_carries_lineage_and_isolated_inference_code(
    training_definition: dict[str, Any],
) -> None:
    parameters = training_definition["States"]["RegisterModelPackage"]["Parameters"]
    assert parameters["ModelPackageGroupName"] == "${ModelPackageGroupName}"
    assert parameters["ModelApprovalStatus"] == "${ModelApprovalStatus}"
    lineage = {key.removesuffix(".$") for key in parameters["CustomerMetadataProperties"]}
    # docs/interfaces.md, Model packages carry CustomerMetadataProperties.
    assert lineage == {
        "metric_name",
        "metric_value",
        "training_job",
        "execution_arn",
        "data_uri",
        "sample_uri",
        "evaluation_uri",
        "trigger_type",
        "lineage_manifest_uri",
        "lineage_manifest_sha256",
        "lineage_manifest_version_id",
    }
    [container] = parameters["InferenceSpecification"]["Containers"]
    assert container["Image"] == "${ImageUri}"
    assert container["ModelDataUrl.$"] == "$.training.ModelArtifacts.S3ModelArtifacts"
    assert container["Environment"] == {
        "SAGEMAKER_PROGRAM": "inference.py",
        "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
    }
    assert parameters["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri.$"].endswith(
        "/evaluation/evaluation.json', $$.Execution.Name)"
    )
    assert (
        "baseline/constraints.json" in parameters["DriftCheckBaselines"]["ModelDataQuality"]["Constraints"]["S3Uri.$"]
    )


def test_evaluate_writes_the_drift_baseline_from_the_training_split_with_config_settings(config_with: Any) -> None:
    config = config_with(monitoring={"critical_feature_count": 5, "baseline_sample_rows": 250})
    parameters = build_training_definition(config)["States"]["Evaluate"]["Parameters"]
    inputs = {i["InputName"]: i["S3Input"] for i in parameters["ProcessingInputs"]}
    app = parameters["AppSpecification"]
    arguments = dict(zip(app["ContainerArguments"][::2], app["ContainerArguments"][1::2], strict=True))

    assert inputs["train"]["LocalPath"] == "/opt/ml/processing/train"
    assert inputs["train"]["S3Uri.$"] == (
        "States.Format('s3://${ArtifactBucket}/runs/{}/preprocess/train/', $$.Execution.Name)"
    )
    assert arguments["--train-dir"] == "/opt/ml/processing/train"
    assert arguments["--critical-feature-count"] == "5"
    assert arguments["--baseline-sample-rows"] == "250"
    assert arguments["--seed"] == str(config.data.split_seed)


def test_registered_package_drift_check_baseline_is_the_baseline_json_evaluate_wrote(
    training_definition: dict[str, Any],
) -> None:
    states = training_definition["States"]
    [evaluation_output] = states["Evaluate"]["Parameters"]["ProcessingOutputConfig"]["Outputs"]
    output_prefix = evaluation_output["S3Output"]["S3Uri.$"]
    drift_check = states["RegisterModelPackage"]["Parameters"]["DriftCheckBaselines"]["ModelDataQuality"]

    # docs/interfaces.md, Baseline: baseline.json under the Evaluate job's output; baseline.csv is its sibling.
    assert drift_check["Statistics"] == {
        "ContentType": "application/json",
        "S3Uri.$": output_prefix.replace("/evaluation/'", "/evaluation/baseline/baseline.json'"),
    }
    assert output_prefix == "States.Format('s3://${ArtifactBucket}/runs/{}/evaluation/', $$.Execution.Name)"
    assert "statistics.json" not in json.dumps(training_definition)


def test_job_names_are_execution_scoped_and_valid_sagemaker_names(training_definition: dict[str, Any]) -> None:
    name_keys = {"Preprocess": "ProcessingJobName.$", "Train": "TrainingJobName.$", "Evaluate": "ProcessingJobName.$"}
    for state, key in name_keys.items():
        name = execution_scoped_name(training_definition["States"][state]["Parameters"][key], LONGEST_EXECUTION_NAME)
        assert len(name) <= 63, name
        assert SAGEMAKER_NAME.match(name), name
    for state in ("Tune", "TuneWithWarmStart"):
        # Tuning job names are limited to 32 characters: an MD5 hex digest of the execution name.
        assert training_definition["States"][state]["Parameters"]["HyperParameterTuningJobName.$"] == (
            "States.Hash($$.Execution.Name, 'MD5')"
        )


def test_every_task_retries_with_the_config_policy(config_with: Any) -> None:
    definition = build_training_definition(config_with(retry={"interval_seconds": 5, "max_attempts": 3}))
    for name, state in tasks(definition):
        [retrier] = state["Retry"]
        assert retrier["IntervalSeconds"] == 5, name
        assert retrier["MaxAttempts"] == 3, name
        assert retrier["ErrorEquals"], name
        # A job that ran and failed is not retried: rerunning it would fail the same way.
        assert "States.TaskFailed" not in retrier["ErrorEquals"], name
        assert "States.ALL" not in retrier["ErrorEquals"], name


def test_two_builds_give_the_same_bytes(config: PipelineConfig) -> None:
    first = json.dumps(build_training_definition(config), indent=2)
    second = json.dumps(build_training_definition(config), indent=2)
    assert first == second


def test_both_jobs_read_the_executions_facet_and_evaluate_reads_the_pretraining_metrics(
    training_definition: dict[str, Any], config: PipelineConfig
) -> None:
    states = training_definition["States"]
    for job in ("Preprocess", "Evaluate"):
        environment = states[job]["Parameters"]["Environment"]
        assert environment == {"BIAS_CONFIG.$": "States.JsonToString($.bias)"}
    inputs = {i["InputName"]: i for i in states["Evaluate"]["Parameters"]["ProcessingInputs"]}
    assert inputs["pretraining_bias"]["S3Input"]["LocalPath"] == "/opt/ml/processing/pretraining_bias"
    assert inputs["pretraining_bias"]["S3Input"]["S3Uri.$"].endswith("/preprocess/baseline/', $$.Execution.Name)")
    payload = states["EvaluationReport"]["Parameters"]["Payload"]
    assert payload["disparate_impact_band"] == [config.bias.disparate_impact_min, config.bias.disparate_impact_max]
    assert states["BiasGateFailed"]["CausePath"] == "$.report.Payload.bias_gate.reason"


def test_preprocessing_reads_the_snapshot_of_exact_versions_not_the_data_prefix(
    training_definition: dict[str, Any],
) -> None:
    states = training_definition["States"]
    snapshot = states["SnapshotTrainingData"]
    assert snapshot["Parameters"]["FunctionName"] == "${SnapshotTrainingDataFunctionArn}"
    assert snapshot["Parameters"]["Payload"] == {
        "data_uri.$": "$.data_uri",
        "execution_name.$": "$$.Execution.Name",
        "data_versions.$": "$.data_versions",
    }
    [data] = [entry for entry in states["Preprocess"]["Parameters"]["ProcessingInputs"] if entry["InputName"] == "data"]
    assert data["S3Input"]["S3Uri.$"] == "States.Format('s3://${ArtifactBucket}/runs/{}/data/', $$.Execution.Name)"


def test_a_data_location_outside_the_stack_prefix_ends_in_its_named_fail_with_a_notification(
    training_definition: dict[str, Any],
) -> None:
    states = training_definition["States"]
    # The named catch comes before the catch-all, so it is the one that matches.
    first, last = states["SnapshotTrainingData"]["Catch"]
    assert first == {
        "ErrorEquals": ["DataLocationError"],
        "ResultPath": "$.error",
        "Next": "ExplainDataOutsideStackPrefix",
    }
    assert last["ErrorEquals"] == ["States.ALL"]
    assert path_from(training_definition, "ExplainDataOutsideStackPrefix") == [
        "ExplainDataOutsideStackPrefix",
        "NotifyDataOutsideStackPrefix",
        "DataOutsideStackPrefix",
    ]
    assert states["DataOutsideStackPrefix"]["Error"] == "DataOutsideStackPrefix"


def test_the_package_points_at_the_lineage_manifest_written_before_it(training_definition: dict[str, Any]) -> None:
    states = training_definition["States"]
    payload = states["WriteLineageManifest"]["Parameters"]["Payload"]
    assert payload["governance_bucket"] == "${GovernanceBucket}"
    assert payload["source_commit"] == "${SourceCommit}"
    assert payload["source_dir_uri"] == "${SourceDirUri}"
    assert payload["snapshot.$"] == "$.snapshot.Payload"
    properties = states["RegisterModelPackage"]["Parameters"]["CustomerMetadataProperties"]
    assert properties["lineage_manifest_uri.$"] == "$.lineage.Payload.manifest_uri"
    assert properties["lineage_manifest_sha256.$"] == "$.lineage.Payload.manifest_sha256"
