"""The `training` state machine: preprocess, train or tune, evaluate, quality gate, register, notify."""

from __future__ import annotations

import json
from typing import Any

from sagemaker.estimator import Estimator
from sagemaker.inputs import TrainingInput
from sagemaker.processing import ProcessingInput, ProcessingOutput
from sagemaker.tuner import (
    CategoricalParameter,
    ContinuousParameter,
    HyperparameterTuner,
    IntegerParameter,
    ParameterRange,
)

from contract.pipeline_config import ParameterRange as RangeConfig
from contract.pipeline_config import PipelineConfig, PipelineConfigError
from contract.placeholders import (
    ARTIFACT_BUCKET,
    DATA_BUCKET,
    ENDPOINT_INSTANCE_TYPE,
    EVALUATION_REPORT_FUNCTION_ARN,
    GOVERNANCE_BUCKET,
    IMAGE_URI,
    KMS_KEY_ARN,
    LINEAGE_MANIFEST_FUNCTION_ARN,
    MODEL_APPROVAL_STATUS,
    MODEL_CARD_FUNCTION_ARN,
    MODEL_PACKAGE_GROUP_NAME,
    SAGEMAKER_JOB_ROLE_ARN,
    SNAPSHOT_TRAINING_DATA_FUNCTION_ARN,
    SOURCE_COMMIT,
    SOURCE_DIR_URI,
    TRAINING_INSTANCE_TYPE,
)
from workflows.policies import (
    LAMBDA_TIMEOUT_SECONDS,
    FailurePath,
    aws_sdk_task,
    failure_path,
    format_literal,
    guard,
    input_defaults,
    notification_message,
    notify_task,
    with_partition_placeholder,
)
from workflows.processing_jobs import (
    PROCESSING_OUTPUT_DIR,
    STAND_IN_URI,
    code_input,
    container_arguments,
    processing_step,
    set_processing_uri,
)
from workflows.sagemaker_params import (
    TAG_VALUES,
    TAGS,
    execution_scoped_name,
    offline_session,
    run_uri,
    secure_training_job_definition,
    set_dynamic,
    tuning_job_name,
)
from workflows.sdk import steps

WORKFLOW = "training"

# docs/interfaces.md, ml/ scripts: the sourcedir tarball is staged here and unpacked by the entrypoint.
PROCESSING_DATA_DIR = "/opt/ml/processing/input/data"
PROCESSING_MODEL_DIR = "/opt/ml/processing/model"
PROCESSING_TEST_DIR = "/opt/ml/processing/test"
PROCESSING_TRAIN_DIR = "/opt/ml/processing/train"
PROCESSING_EVALUATION_DIR = "/opt/ml/processing/evaluation"
PROCESSING_PRETRAINING_BIAS_DIR = "/opt/ml/processing/pretraining_bias"
# ml/bias.py reads the execution's facet (the input's `bias`, pipeline.toml [bias] by default) from this variable.
BIAS_CONFIG_VARIABLE = "BIAS_CONFIG"
PREPROCESS_OUTPUTS = ("train", "validation", "test", "baseline", "sample")
# With network isolation the training container cannot fetch its code from S3: it arrives as the `code` channel.
TRAINING_SUBMIT_DIRECTORY = "/opt/ml/input/data/code/sourcedir.tar.gz"
CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"
# What ml/train.py prints each round; MetricDefinitions turn the lines into training-job metrics.
TRAINING_METRICS = ("validation:auc", "validation:logloss", "train:auc")
# Where the trained job's description lands, from Train or from describing the best tuning job, so that
# Evaluate and RegisterModelPackage read one path either way.
TRAINING_RESULT = "$.training"
TRAINED_MODEL_ARTIFACT = "$.training.ModelArtifacts.S3ModelArtifacts"
EVALUATION_URI = run_uri("evaluation/evaluation.json")
SAMPLE_URI = run_uri("preprocess/sample/sample.csv")
# The drift baseline Evaluate writes (ml/evaluate.py); baseline.csv, its reference sample, is in the same folder.
BASELINE_STATISTICS_URI = run_uri("evaluation/baseline/baseline.json")
BASELINE_CONSTRAINTS_URI = run_uri("preprocess/baseline/constraints.json")
# Stand-in S3 URIs the SDK needs to build a request; each is then replaced by a per-execution `S3Uri.$`.
# Why the quality gate failed, one sentence: the Fail state's CausePath and the notification's reason.
QUALITY_GATE_RESULT = "$.quality_gate"
QUALITY_GATE_REASON = f"{QUALITY_GATE_RESULT}.reason"
# The bias gate's verdict, from the EvaluationReport function (functions/evaluation_report.py).
BIAS_GATE_RESULT = "$.report.Payload.bias_gate"
BIAS_GATE_REASON = f"{BIAS_GATE_RESULT}.reason"
# functions/training_data_snapshot.py: the versions under $.data_uri, copied to runs/<execution>/data/, which
# preprocessing reads instead of the data bucket's prefix.
SNAPSHOT_RESULT = "$.snapshot"
# runs/<execution>/data/ in docs/interfaces.md's run layout, where the snapshot function copies the versions.
SNAPSHOT_URI = run_uri("data/")
# The snapshot function's error for a data_uri outside the stack's data bucket and prefix.
DATA_LOCATION_ERROR = "DataLocationError"
# functions/lineage_manifest.py's result: where the manifest is and its SHA-256, recorded on the package.
LINEAGE_RESULT = "$.lineage.Payload"


def metric_definitions() -> list[dict[str, Any]]:
    """MetricDefinitions matching ml/train.py's `<name>=<float>;` lines."""
    return [{"Name": name, "Regex": f"{name}=([-+0-9.eE]+);"} for name in TRAINING_METRICS]


def training_hyperparameters(config: PipelineConfig) -> dict[str, Any]:
    """pipeline.toml's hyperparameters plus script mode's, JSON-encoded as framework estimators write them."""
    values: dict[str, Any] = dict(config.training.hyperparameters)
    values["sagemaker_program"] = "train.py"
    values["sagemaker_submit_directory"] = TRAINING_SUBMIT_DIRECTORY
    return {name: json.dumps(value) for name, value in values.items()}


def build_training_definition(config: PipelineConfig) -> dict[str, Any]:
    """The `training` state machine as an ASL dict, with `${Placeholders}` for everything per account."""
    retry = config.retry
    preprocessing_failed = failure_path(
        WORKFLOW, "PreprocessingFailed", "preprocessing the new data failed", retry, sagemaker_jobs=True
    )
    training_failed = failure_path(
        WORKFLOW, "TrainingFailed", "training or tuning the model failed", retry, sagemaker_jobs=True
    )
    evaluation_failed = failure_path(
        WORKFLOW, "EvaluationFailed", "evaluating the candidate model failed", retry, sagemaker_jobs=True
    )
    gate_failed = failure_path(
        WORKFLOW,
        "QualityGateFailed",
        "the candidate model did not pass the quality gate",
        retry,
        reason=("{}", QUALITY_GATE_REASON),
    )
    bias_gate_failed = failure_path(
        WORKFLOW,
        "BiasGateFailed",
        "the candidate model did not pass the bias gate",
        retry,
        reason=("{}", BIAS_GATE_REASON),
    )
    registration_failed = failure_path(WORKFLOW, "RegistrationFailed", "registering the model package failed", retry)
    model_card_failed = failure_path(
        WORKFLOW, "ModelCardFailed", "the model package was registered but its model card could not be made", retry
    )
    data_outside = failure_path(
        WORKFLOW,
        "DataOutsideStackPrefix",
        "the execution's data_uri is outside the stack's data bucket and prefix",
        retry,
        reason=("{}", "$.failure.cause.errorMessage"),
    )
    # A Lambda error's Cause is JSON ({"errorMessage", "errorType", ...}): the notification says the message.
    explain_data_outside = steps.Pass(
        "ExplainDataOutsideStackPrefix",
        parameters={"cause.$": "States.StringToJson($.error.Cause)"},
        result_path="$.failure",
    )
    explain_data_outside.next(data_outside.entry)
    lineage_failed = failure_path(WORKFLOW, "LineageFailed", "writing the lineage manifest failed", retry)
    notification_failed = steps.Fail(
        "NotificationFailed", error="NotificationFailed", cause="the model was registered but the notification failed"
    )

    apply_defaults, merge_defaults = _input_defaults(config)
    snapshot = _snapshot_step()
    # Before guard's States.ALL: a data location outside the stack is refused by name, not as a preprocessing error.
    snapshot.add_catch(
        steps.Catch(error_equals=[DATA_LOCATION_ERROR], result_path="$.error", next_step=explain_data_outside)
    )
    snapshot = guard(snapshot, preprocessing_failed, retry)
    preprocess = guard(_preprocess_step(config), preprocessing_failed, retry)
    lineage = guard(_lineage_manifest_step(), lineage_failed, retry)
    train = guard(_training_step(config), training_failed, retry)
    describe_best = guard(
        aws_sdk_task(
            "DescribeBestTrainingJob",
            "sagemaker:describeTrainingJob",
            {"TrainingJobName.$": "$.tuning.BestTrainingJob.TrainingJobName"},
            result_path=TRAINING_RESULT,
        ),
        training_failed,
        retry,
    )
    evaluate = guard(_evaluate_step(config), evaluation_failed, retry)
    report = guard(_evaluation_report_step(config), evaluation_failed, retry)
    register = guard(_register_step(config), registration_failed, retry)
    model_card = guard(_model_card_step(), model_card_failed, retry)
    notify_registered = notify_task(
        "NotifyModelRegistered",
        WORKFLOW,
        "ModelRegistered",
        retry,
        notification_failed,
        message=notification_message(
            "training registered model package {} with {} = {}.",
            "$.model_package.ModelPackageArn",
            "$.report.Payload.metric_name",
            "$.report.Payload.metric_value",
        ),
    )
    registered = steps.Succeed("ModelRegistered")

    tune_or_train = steps.Choice("TuneOrTrain")
    tune_or_train.add_choice(
        steps.ChoiceRule.BooleanEquals("$.tune", True), _tuning_branch(config, training_failed, then=describe_best)
    )
    tune_or_train.default_choice(train)
    train.next(evaluate)
    describe_best.next(evaluate)

    bias_gate = steps.Choice("BiasGate")
    bias_gate.add_choice(steps.ChoiceRule.BooleanEquals(f"{BIAS_GATE_RESULT}.passed", True), lineage)
    bias_gate.default_choice(bias_gate_failed.notify)
    gate = _quality_gate(config, passed=bias_gate, failed=gate_failed)
    steps.Chain([apply_defaults, merge_defaults, snapshot, preprocess, tune_or_train])
    lineage.next(register)
    steps.Chain([evaluate, report, gate])
    steps.Chain([register, model_card, notify_registered, registered])
    definition: dict[str, Any] = steps.Graph(apply_defaults, comment=_comment(config)).to_dict()
    # The SDK's Fail takes only a literal Cause; the gate's names the metric, its value, threshold and champion.
    gate_fail = definition["States"][gate_failed.fail.state_id]
    del gate_fail["Cause"]
    gate_fail["CausePath"] = QUALITY_GATE_REASON
    bias_fail = definition["States"][bias_gate_failed.fail.state_id]
    del bias_fail["Cause"]
    bias_fail["CausePath"] = BIAS_GATE_REASON
    return definition


def _comment(config: PipelineConfig) -> str:
    gate = f"{config.quality_gate.metric} >= {config.quality_gate.threshold}"
    if config.quality_gate.must_beat_champion:
        gate += " and not worse than the champion"
    source = "generated by `mlops export` from workflows/training.py"
    return f"Retrains the {config.model.name} model; {source}. Gate: {gate}."


def _input_defaults(config: PipelineConfig) -> tuple[steps.Pass, steps.Pass]:
    """Two Pass states that merge the execution input over its defaults (docs/interfaces.md, training input)."""
    defaults = {
        "data_uri": f"s3://{DATA_BUCKET}/{config.data.prefix}",
        "tune": False,
        "trigger": {"type": "manual"},
        "objects": [],
        # Exact data versions to train on (mlops lineage --training-input); empty: the current ones under data_uri.
        "data_versions": [],
        "warm_start_tuning_job": None,
        "bias": config.bias.facet(),
    }
    return input_defaults(defaults)


def _pass_facet(step: steps.ProcessingStep) -> None:
    """The execution's facet reaches the job as BIAS_CONFIG (ml/bias.py), JSON like pipeline.toml [bias]'s."""
    step.fields["parameters"].setdefault("Environment", {})[f"{BIAS_CONFIG_VARIABLE}.$"] = "States.JsonToString($.bias)"


def _preprocess_step(config: PipelineConfig) -> steps.ProcessingStep:
    data = config.data
    outputs = [
        ProcessingOutput(source=f"{PROCESSING_OUTPUT_DIR}/{name}", destination=STAND_IN_URI, output_name=name)
        for name in PREPROCESS_OUTPUTS
    ]
    step = processing_step(
        "Preprocess",
        config,
        script="preprocess.py",
        inputs=[
            code_input(),
            ProcessingInput(source=STAND_IN_URI, destination=PROCESSING_DATA_DIR, input_name="data"),
        ],
        outputs=outputs,
        arguments=container_arguments(
            {
                "--input-dir": PROCESSING_DATA_DIR,
                "--output-dir": PROCESSING_OUTPUT_DIR,
                "--label-column": config.model.label_column,
                "--test-fraction": data.test_fraction,
                "--validation-fraction": data.validation_fraction,
                "--seed": data.split_seed,
            }
        ),
        job_suffix="prep",
        result_path="$.preprocess",
    )
    parameters = step.fields["parameters"]
    # The snapshot's copies of the exact versions recorded, not the data bucket's prefix, which may change meanwhile.
    set_processing_uri(parameters, "input", "data", SNAPSHOT_URI)
    _pass_facet(step)
    for name in PREPROCESS_OUTPUTS:
        set_processing_uri(parameters, "output", name, run_uri(f"preprocess/{name}/"))
    return step


def _snapshot_step() -> steps.LambdaStep:
    step = steps.LambdaStep(
        "SnapshotTrainingData",
        parameters={
            "FunctionName": SNAPSHOT_TRAINING_DATA_FUNCTION_ARN,
            "Payload": {
                "data_uri.$": "$.data_uri",
                "execution_name.$": "$$.Execution.Name",
                "data_versions.$": "$.data_versions",
            },
        },
        result_path=SNAPSHOT_RESULT,
        timeout_seconds=LAMBDA_TIMEOUT_SECONDS,
    )
    return with_partition_placeholder(step)


def _lineage_manifest_step() -> steps.LambdaStep:
    """The manifest of docs/interfaces.md (lineage manifest), written before the package that points at it."""
    step = steps.LambdaStep(
        "WriteLineageManifest",
        parameters={
            "FunctionName": LINEAGE_MANIFEST_FUNCTION_ARN,
            "Payload": {
                "governance_bucket": GOVERNANCE_BUCKET,
                "model_package_group_name": MODEL_PACKAGE_GROUP_NAME,
                "execution_arn.$": "$$.Execution.Id",
                "execution_name.$": "$$.Execution.Name",
                "state_machine_arn.$": "$$.StateMachine.Id",
                "data_uri.$": "$.data_uri",
                "snapshot.$": f"{SNAPSHOT_RESULT}.Payload",
                "trigger.$": "$.trigger",
                "trigger_objects.$": "$.objects",
                "tune.$": "$.tune",
                "warm_start_tuning_job.$": "$.warm_start_tuning_job",
                "bias.$": "$.bias",
                "preprocess.$": "$.preprocess",
                "training.$": TRAINING_RESULT,
                "evaluation_uri.$": EVALUATION_URI,
                "report.$": "$.report.Payload",
                "baseline": {
                    "statistics_uri.$": BASELINE_STATISTICS_URI,
                    "constraints_uri.$": BASELINE_CONSTRAINTS_URI,
                    "sample_uri.$": SAMPLE_URI,
                },
                "source_dir_uri": SOURCE_DIR_URI,
                "source_commit": SOURCE_COMMIT,
                "image_uri": IMAGE_URI,
            },
        },
        result_path="$.lineage",
        timeout_seconds=LAMBDA_TIMEOUT_SECONDS,
    )
    return with_partition_placeholder(step)


def _estimator(config: PipelineConfig) -> Estimator:
    training = config.training
    return Estimator(
        image_uri=IMAGE_URI,
        role=SAGEMAKER_JOB_ROLE_ARN,
        instance_count=training.instance_count,
        instance_type=training.instance_type,
        volume_size=training.volume_size_gb,
        volume_kms_key=KMS_KEY_ARN,
        output_kms_key=KMS_KEY_ARN,
        output_path=f"s3://{ARTIFACT_BUCKET}/models/",
        max_run=training.max_runtime_seconds,
        use_spot_instances=training.use_spot,
        max_wait=training.max_wait_seconds if training.use_spot else None,
        metric_definitions=metric_definitions(),
        hyperparameters=training_hyperparameters(config),
        # The debugger and profiler would write to S3 from a container that has no network.
        debugger_hook_config=False,
        disable_profiler=True,
        sagemaker_session=offline_session(),
    )


def _training_channels() -> dict[str, TrainingInput]:
    channels = {name: TrainingInput(STAND_IN_URI, content_type="text/csv") for name in ("train", "validation")}
    channels["code"] = TrainingInput(SOURCE_DIR_URI, input_mode="File")
    return channels


def _wire_training_job(definition: dict[str, Any]) -> None:
    """Per-execution channel URIs, the instance type placeholder and the security settings of a training job."""
    for channel in definition["InputDataConfig"]:
        if channel["ChannelName"] in ("train", "validation"):
            name = channel["ChannelName"]
            set_dynamic(channel["DataSource"]["S3DataSource"], "S3Uri", run_uri(f"preprocess/{name}/"))
    definition["ResourceConfig"]["InstanceType"] = TRAINING_INSTANCE_TYPE
    secure_training_job_definition(definition)


def _training_step(config: PipelineConfig) -> steps.TrainingStep:
    step = steps.TrainingStep(
        "Train",
        estimator=_estimator(config),
        job_name="stand-in-train",
        data=_training_channels(),
        tags=TAG_VALUES,
        result_path=TRAINING_RESULT,
    )
    parameters = step.fields["parameters"]
    set_dynamic(parameters, "TrainingJobName", execution_scoped_name("train"))
    _wire_training_job(parameters)
    if config.training.use_spot:
        # Managed spot: an interrupted job restarts from the last checkpoint train.py wrote, not from round 0.
        parameters["CheckpointConfig"] = {
            "S3Uri.$": f"States.Format('s3://{ARTIFACT_BUCKET}/checkpoints/{{}}/', $$.Execution.Name)",
            "LocalPath": CHECKPOINT_LOCAL_PATH,
        }
    return with_partition_placeholder(step)


def _parameter_range(spec: RangeConfig) -> ParameterRange:
    if spec.type == "Categorical":
        return CategoricalParameter(list(spec.values))
    if spec.min is None or spec.max is None:
        raise PipelineConfigError(f"pipeline config: [tuning.ranges] {spec.name}: {spec.type} needs min and max")
    if spec.type == "Integer":
        return IntegerParameter(int(spec.min), int(spec.max), scaling_type=spec.scaling)
    return ContinuousParameter(spec.min, spec.max, scaling_type=spec.scaling)


def _tuning_step(state_id: str, config: PipelineConfig, warm_start: bool) -> steps.TuningStep:
    tuning = config.tuning
    if tuning.objective_metric not in TRAINING_METRICS:
        raise ValueError(
            f"[tuning] objective_metric {tuning.objective_metric!r} is not a metric ml/train.py prints; "
            f"use one of {', '.join(TRAINING_METRICS)}"
        )
    tuner = HyperparameterTuner(
        _estimator(config),
        objective_metric_name=tuning.objective_metric,
        hyperparameter_ranges={spec.name: _parameter_range(spec) for spec in tuning.ranges},
        metric_definitions=metric_definitions(),
        strategy=tuning.strategy,
        objective_type=tuning.objective_type,
        max_jobs=tuning.max_jobs,
        max_parallel_jobs=tuning.max_parallel_jobs,
        # Hyperband stops weak trials itself and SageMaker rejects it combined with automatic early stopping.
        early_stopping_type="Off" if tuning.strategy == "Hyperband" else tuning.early_stopping,
    )
    step = steps.TuningStep(
        state_id, tuner=tuner, job_name="stand-in", data=_training_channels(), tags=TAG_VALUES, result_path="$.tuning"
    )
    parameters = step.fields["parameters"]
    set_dynamic(parameters, "HyperParameterTuningJobName", tuning_job_name())
    # No CheckpointConfig here: the trials of one tuning job would share it and resume from each other's models.
    _wire_training_job(parameters["TrainingJobDefinition"])
    if warm_start:
        parameters["WarmStartConfig"] = {
            # New data since the parent job: transfer what it learnt instead of assuming identical data.
            "WarmStartType": "TransferLearning",
            "ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName.$": "$.warm_start_tuning_job"}],
        }
    return with_partition_placeholder(step)


def _tuning_branch(config: PipelineConfig, failed: FailurePath, then: steps.State) -> steps.State:
    """Tune, warm-started from `$.warm_start_tuning_job` when the input names one and config allows it.

    Returns the branch's first state; every tuning state continues to `then`.
    """
    cold = guard(_tuning_step("Tune", config, warm_start=False), failed, config.retry)
    cold.next(then)
    if not config.tuning.warm_start:
        return cold
    warm = guard(_tuning_step("TuneWithWarmStart", config, warm_start=True), failed, config.retry)
    warm.next(then)
    choose = steps.Choice("WarmStartOrNot")
    choose.add_choice(steps.ChoiceRule.IsString("$.warm_start_tuning_job", True), warm)
    choose.default_choice(cold)
    return choose


def _evaluate_step(config: PipelineConfig) -> steps.ProcessingStep:
    step = processing_step(
        "Evaluate",
        config,
        script="evaluate.py",
        inputs=[
            code_input(),
            ProcessingInput(source=STAND_IN_URI, destination=PROCESSING_MODEL_DIR, input_name="model"),
            ProcessingInput(source=STAND_IN_URI, destination=PROCESSING_TEST_DIR, input_name="test"),
            # The drift baseline's reference sample comes from the training split.
            ProcessingInput(source=STAND_IN_URI, destination=PROCESSING_TRAIN_DIR, input_name="train"),
            # Preprocessing's pre-training bias metrics, reported beside the post-training ones.
            ProcessingInput(
                source=STAND_IN_URI, destination=PROCESSING_PRETRAINING_BIAS_DIR, input_name="pretraining_bias"
            ),
        ],
        outputs=[
            ProcessingOutput(source=PROCESSING_EVALUATION_DIR, destination=STAND_IN_URI, output_name="evaluation")
        ],
        arguments=container_arguments(
            {
                "--model-dir": PROCESSING_MODEL_DIR,
                "--test-dir": PROCESSING_TEST_DIR,
                "--train-dir": PROCESSING_TRAIN_DIR,
                "--output-dir": PROCESSING_EVALUATION_DIR,
                "--pretraining-bias-dir": PROCESSING_PRETRAINING_BIAS_DIR,
                "--critical-feature-count": config.monitoring.critical_feature_count,
                "--baseline-sample-rows": config.monitoring.baseline_sample_rows,
                "--seed": config.data.split_seed,
            }
        ),
        job_suffix="eval",
        result_path="$.evaluation",
    )
    parameters = step.fields["parameters"]
    set_processing_uri(parameters, "input", "model", TRAINED_MODEL_ARTIFACT)
    set_processing_uri(parameters, "input", "test", run_uri("preprocess/test/"))
    set_processing_uri(parameters, "input", "train", run_uri("preprocess/train/"))
    set_processing_uri(parameters, "input", "pretraining_bias", run_uri("preprocess/baseline/"))
    _pass_facet(step)
    set_processing_uri(parameters, "output", "evaluation", run_uri("evaluation/"))
    return step


def _evaluation_report_step(config: PipelineConfig) -> steps.LambdaStep:
    step = steps.LambdaStep(
        "EvaluationReport",
        parameters={
            "FunctionName": EVALUATION_REPORT_FUNCTION_ARN,
            "Payload": {
                "evaluation_uri.$": EVALUATION_URI,
                "metric": config.quality_gate.metric,
                "champion_tolerance": config.quality_gate.champion_tolerance,
                "disparate_impact_band": [config.bias.disparate_impact_min, config.bias.disparate_impact_max],
            },
        },
        result_path="$.report",
        timeout_seconds=LAMBDA_TIMEOUT_SECONDS,
    )
    return with_partition_placeholder(step)


def _quality_gate(config: PipelineConfig, passed: steps.State, failed: FailurePath) -> steps.Choice:
    """Passes when the metric reaches pipeline.toml's threshold (a literal here) and, if asked, the champion."""
    gate = config.quality_gate
    rules = [steps.ChoiceRule.NumericGreaterThanEquals("$.report.Payload.metric_value", gate.threshold)]
    if gate.must_beat_champion:
        rules.append(steps.ChoiceRule.BooleanEquals("$.report.Payload.beats_champion", True))
    choice = steps.Choice("QualityGate")
    choice.add_choice(steps.ChoiceRule.And(rules), passed)
    choice.default_choice(_explain_gate_failure(config, failed.notify))
    return choice


def _explain_gate_failure(config: PipelineConfig, then: steps.State) -> steps.Choice:
    """Pass states writing at QUALITY_GATE_REASON why the gate failed: metric, value, threshold, champion's value.

    Two of them because States.Format prints a missing champion as `null`; a Choice picks the sentence instead.
    """
    gate = config.quality_gate
    report = "$.report.Payload"
    rule = f"the gate needs >= {gate.threshold}"
    if gate.must_beat_champion:
        rule += f" and at most {gate.champion_tolerance} below the champion"
    no_champion = steps.Pass(
        "ExplainGateWithoutChampion",
        parameters={
            "reason.$": f"States.Format('{{}} = {{}}; {format_literal(rule)} (no champion yet)', "
            f"{report}.metric_name, {report}.metric_value)"
        },
        result_path=QUALITY_GATE_RESULT,
    )
    with_champion = steps.Pass(
        "ExplainGateAgainstChampion",
        parameters={
            "reason.$": f"States.Format('{{}} = {{}}; {format_literal(rule)}, whose value is {{}}', "
            f"{report}.metric_name, {report}.metric_value, {report}.champion_value)"
        },
        result_path=QUALITY_GATE_RESULT,
    )
    no_champion.next(then)
    with_champion.next(then)
    explain = steps.Choice("ExplainQualityGateFailure")
    explain.add_choice(steps.ChoiceRule.IsNull(f"{report}.champion_value", True), no_champion)
    explain.default_choice(with_champion)
    return explain


def _register_step(config: PipelineConfig) -> steps.Task:
    statistics = {"ContentType": "application/json", "S3Uri.$": BASELINE_STATISTICS_URI}
    constraints = {"ContentType": "application/json", "S3Uri.$": BASELINE_CONSTRAINTS_URI}
    evaluation = {"ContentType": "application/json", "S3Uri.$": EVALUATION_URI}
    lineage = {
        "metric_name.$": "$.report.Payload.metric_name",
        # CustomerMetadataProperties values are strings.
        "metric_value.$": "States.Format('{}', $.report.Payload.metric_value)",
        "training_job.$": "$.training.TrainingJobName",
        "execution_arn.$": "$$.Execution.Id",
        "data_uri.$": "$.data_uri",
        "sample_uri.$": SAMPLE_URI,
        "evaluation_uri.$": EVALUATION_URI,
        "trigger_type.$": "$.trigger.type",
        # The complete lineage (functions/lineage_manifest.py); the version id names the very bytes hashed.
        "lineage_manifest_uri.$": f"{LINEAGE_RESULT}.manifest_uri",
        "lineage_manifest_sha256.$": f"{LINEAGE_RESULT}.manifest_sha256",
        "lineage_manifest_version_id.$": f"{LINEAGE_RESULT}.manifest_version_id",
    }
    return aws_sdk_task(
        "RegisterModelPackage",
        "sagemaker:createModelPackage",
        {
            "ModelPackageGroupName": MODEL_PACKAGE_GROUP_NAME,
            "ModelApprovalStatus": MODEL_APPROVAL_STATUS,
            "ModelPackageDescription.$": (
                f"States.Format('{config.model.name} trained by execution {{}}', $$.Execution.Name)"
            ),
            # Idempotent retries: the token is derived from the execution (at most 36 characters).
            "ClientToken.$": "States.Hash($$.Execution.Name, 'MD5')",
            "InferenceSpecification": {
                "Containers": [
                    {
                        "Image": IMAGE_URI,
                        "ModelDataUrl.$": TRAINED_MODEL_ARTIFACT,
                        "Framework": "XGBOOST",
                        "FrameworkVersion": config.training.framework_version,
                        # The inference code travels inside model.tar.gz: isolated endpoints cannot fetch it.
                        "Environment": {
                            "SAGEMAKER_PROGRAM": "inference.py",
                            "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                        },
                    }
                ],
                "SupportedContentTypes": ["text/csv", "application/json"],
                "SupportedResponseMIMETypes": ["application/json", "text/csv"],
                "SupportedRealtimeInferenceInstanceTypes": [ENDPOINT_INSTANCE_TYPE],
            },
            "ModelMetrics": {
                "ModelQuality": {"Statistics": evaluation},
                "ModelDataQuality": {"Statistics": statistics, "Constraints": constraints},
            },
            "DriftCheckBaselines": {
                "ModelQuality": {"Statistics": evaluation},
                "ModelDataQuality": {"Statistics": statistics, "Constraints": constraints},
            },
            "CustomerMetadataProperties": lineage,
            "MetadataProperties": {"GeneratedBy.$": "$$.Execution.Id"},
            "Tags": TAGS,
        },
        result_path="$.model_package",
    )


def _model_card_step() -> steps.LambdaStep:
    """The registered package's model card (functions/model_card.py), at `$.model_card`: created, or brought up to date
    on a retry, with the status of the package's approval."""
    step = steps.LambdaStep(
        "CreateModelCard",
        parameters={
            "FunctionName": MODEL_CARD_FUNCTION_ARN,
            "Payload": {"model_package_arn.$": "$.model_package.ModelPackageArn"},
        },
        result_path="$.model_card",
        timeout_seconds=LAMBDA_TIMEOUT_SECONDS,
    )
    return with_partition_placeholder(step)
