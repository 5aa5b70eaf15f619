"""The `monitoring` state machine: the window's capture through the drift analyzer, its ground truth through the
served model, and the metrics of both.

Input `{"EndpointName": "<stack>-endpoint"}` and optionally `"WindowEnd"` (ISO-8601 UTC; the schedule passes
its event's time, a manual start defaults to the execution's start). `MonitoringWindow` finds the endpoint, the
package it serves and that package's baseline, and lists the capture and the ground truth of the window: no
endpoint ends quietly in Succeed `NoEndpoint`. With capture, `MonitorDrift` runs ml/monitor.py over a ManifestFile
of the window's capture objects and `PublishMonitoringMetrics` puts the report's metrics, which the drift alarms
watch; an error there is notified and ends in Fail `MonitoringFailed` before anything is published.

Then, with or without capture, model quality: when the window's ground truth holds enough labelled records
(`[monitoring] ground_truth_min_records`), `SplitGroundTruth` (ml/model_quality.py split) separates the features
from the labels, `TransformGroundTruth` runs a batch transform of the served model over the features,
`ScoreModelQuality` (ml/model_quality.py score) computes the quality gate's metric against the labels and
`PublishModelQuality` puts it as `ModelQuality<Metric>`, which the model-quality alarm watches (its summary at
`$.quality_published.Payload`). Too few records go
through `ModelQualitySkipped`, whose output (`$.model_quality`) holds the window Lambda's reason. An error there is
notified and ends in Fail `ModelQualityFailed` before the metric is published. The run ends in Succeed `NoData`
(no capture) or `Monitored`.
"""

from __future__ import annotations

from typing import Any

from sagemaker.processing import ProcessingInput, ProcessingOutput
from sagemaker.transformer import Transformer

from contract.pipeline_config import PipelineConfig
from contract.placeholders import (
    DATA_BUCKET,
    DRIFT_SHARE_THRESHOLD,
    ENDPOINT_INSTANCE_TYPE,
    KMS_KEY_ARN,
    MONITORING_WINDOW_FUNCTION_ARN,
    PUBLISH_MONITORING_METRICS_FUNCTION_ARN,
)
from workflows.policies import (
    CAUGHT_ERROR_NAME,
    LAMBDA_TIMEOUT_SECONDS,
    FailurePath,
    failure_path,
    guard,
    input_defaults,
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
from workflows.sagemaker_params import TAG_VALUES, execution_scoped_name, offline_session, run_uri, set_dynamic
from workflows.sdk import steps

WORKFLOW = "monitoring"
PROCESSING_BASELINE_DIR = "/opt/ml/processing/input/baseline"
PROCESSING_CAPTURE_DIR = "/opt/ml/processing/input/capture"
# Where the window Lambda's answer lands; the Choice and the job read its Payload.
WINDOW = "$.window.Payload"
# The window's statuses (functions/monitoring_window.py): NoEndpoint ends the run, NoData skips the drift analysis.
READY, NO_ENDPOINT, NO_DATA = "Ready", "NoEndpoint", "NoData"
# The window's ground truth (functions/monitoring_window.py): Ready to score, or Skipped with a reason.
GROUND_TRUTH = f"{WINDOW}.GroundTruth"
SKIPPED = "Skipped"
PROCESSING_GROUND_TRUTH_DIR = "/opt/ml/processing/input/ground-truth"
PROCESSING_PREDICTIONS_DIR = "/opt/ml/processing/input/predictions"
PROCESSING_LABELS_INPUT_DIR = "/opt/ml/processing/input/labels"
PROCESSING_FEATURES_DIR = f"{PROCESSING_OUTPUT_DIR}/features"
PROCESSING_LABELS_DIR = f"{PROCESSING_OUTPUT_DIR}/labels"
# The one file of features the split writes (ml/model_quality.py), and the transform's output of it.
FEATURES_FILE = "features.csv"
# SageMaker's default and largest mini-batch of records per request to the model, which serves up to 6 MB.
TRANSFORM_MAX_PAYLOAD_MB = 6


def model_quality_metric_name(metric: str) -> str:
    """The CloudWatch metric of the quality gate's metric on ground truth: `auc` -> `ModelQualityAuc`.

    template.yaml's model-quality alarm watches it by this name (Mapping Pipeline.Monitoring.ModelQualityMetric,
    kept equal by tests/template/test_parameters_match_pipeline_config.py).
    """
    return "ModelQuality" + metric[:1].upper() + metric[1:]


def build_monitoring_definition(config: PipelineConfig) -> dict[str, Any]:
    """The `monitoring` state machine as an ASL dict, with `${Placeholders}` for everything per account."""
    retry = config.retry
    failed = failure_path(
        WORKFLOW,
        "MonitoringFailed",
        "finding the window, analyzing it for drift or publishing its metrics failed",
        retry,
        sagemaker_jobs=True,
    )
    quality_failed = failure_path(
        WORKFLOW,
        "ModelQualityFailed",
        "scoring the served model on the ground truth of the window or publishing its metric failed",
        retry,
        sagemaker_jobs=True,
    )
    apply_defaults, merge_defaults = _input_defaults()
    window = guard(_window_step(config), failed, retry)
    monitor = guard(_monitor_step(config), failed, retry)
    publish = guard(_publish_step(), failed, retry)
    split = guard(_split_step(config), quality_failed, retry)
    transform = guard(_transform_step(config), quality_failed, retry)
    score = guard(_score_step(config), quality_failed, retry)
    publish_quality = guard(_publish_quality_step(config), quality_failed, retry)
    skipped = steps.Pass(
        "ModelQualitySkipped",
        parameters={
            "Status": SKIPPED,
            "Reason.$": f"{GROUND_TRUTH}.Reason",
            "MinRecords.$": f"{GROUND_TRUTH}.MinRecords",
        },
        result_path="$.model_quality",
    )

    # The run's end says whether it had capture to analyze; model quality does not need any.
    outcome = steps.Choice("MonitoringOutcome")
    outcome.add_choice(steps.ChoiceRule.StringEquals(f"{WINDOW}.Status", NO_DATA), steps.Succeed(NO_DATA))
    outcome.default_choice(steps.Succeed("Monitored"))

    ground_truth = steps.Choice("GroundTruthStatus")
    ground_truth.add_choice(steps.ChoiceRule.StringEquals(f"{GROUND_TRUTH}.Status", READY), split)
    ground_truth.add_choice(steps.ChoiceRule.StringEquals(f"{GROUND_TRUTH}.Status", SKIPPED), skipped)
    ground_truth.default_choice(_unknown_status(quality_failed, "UnknownGroundTruthStatus", f"{GROUND_TRUTH}.Status"))

    status = steps.Choice("WindowStatus")
    status.add_choice(steps.ChoiceRule.StringEquals(f"{WINDOW}.Status", NO_ENDPOINT), steps.Succeed(NO_ENDPOINT))
    status.add_choice(steps.ChoiceRule.StringEquals(f"{WINDOW}.Status", NO_DATA), ground_truth)
    status.add_choice(steps.ChoiceRule.StringEquals(f"{WINDOW}.Status", READY), monitor)
    status.default_choice(_unknown_status(failed, "UnknownWindowStatus", f"{WINDOW}.Status"))

    steps.Chain([apply_defaults, merge_defaults, window, status])
    steps.Chain([monitor, publish, ground_truth])
    steps.Chain([split, transform, score, publish_quality, outcome])
    skipped.next(outcome)
    comment = (
        f"Monitors the {config.model.name} endpoint's data capture for drift, and its model's "
        f"{config.quality_gate.metric} on ground truth, every window of "
        f"{config.monitoring.window_minutes} minutes; generated by `mlops export` from workflows/monitoring.py."
    )
    definition: dict[str, Any] = steps.Graph(apply_defaults, comment=comment).to_dict()
    return definition


def _input_defaults() -> tuple[steps.Pass, steps.Pass]:
    """The execution input merged over `WindowEnd` = the execution's start (docs/interfaces.md, monitoring input)."""
    # The twin's engine (moto 5.2.5) holds StartTime as a datetime, which no Pass can serialize: local runs pass
    # WindowEnd, as the schedule always does (docs/interfaces.md, monitoring input).
    return input_defaults({"WindowEnd.$": "$$.Execution.StartTime"})


def _window_step(config: PipelineConfig) -> steps.LambdaStep:
    step = steps.LambdaStep(
        "MonitoringWindow",
        parameters={
            "FunctionName": MONITORING_WINDOW_FUNCTION_ARN,
            "Payload": {
                "EndpointName.$": "$.EndpointName",
                "WindowEnd.$": "$.WindowEnd",
                "WindowMinutes": config.monitoring.window_minutes,
                # The manifest and the report of this execution: runs/<execution>/monitoring/.
                "RunS3Uri.$": run_uri("monitoring/"),
                "GroundTruthS3Uri": f"s3://{DATA_BUCKET}/{config.monitoring.ground_truth_prefix}",
                "GroundTruthMinRecords": config.monitoring.ground_truth_min_records,
            },
        },
        result_path="$.window",
        timeout_seconds=LAMBDA_TIMEOUT_SECONDS,
    )
    return with_partition_placeholder(step)


def _monitor_step(config: PipelineConfig) -> steps.ProcessingStep:
    step = processing_step(
        "MonitorDrift",
        config,
        script="monitor.py",
        inputs=[
            code_input(),
            ProcessingInput(source=STAND_IN_URI, destination=PROCESSING_BASELINE_DIR, input_name="baseline"),
            # The window's capture objects, listed by the window Lambda: SageMaker stages each under its key
            # relative to the manifest's prefix, so the analyzer sees <endpoint>/<variant>/yyyy/mm/dd/hh/*.jsonl.
            ProcessingInput(
                source=STAND_IN_URI,
                destination=PROCESSING_CAPTURE_DIR,
                input_name="capture",
                s3_data_type="ManifestFile",
            ),
        ],
        outputs=[ProcessingOutput(source=PROCESSING_OUTPUT_DIR, destination=STAND_IN_URI, output_name="report")],
        arguments=container_arguments(
            {
                "--baseline-dir": PROCESSING_BASELINE_DIR,
                "--capture-dir": PROCESSING_CAPTURE_DIR,
                "--output-dir": PROCESSING_OUTPUT_DIR,
                # The stack's value (template Parameter DriftShareThreshold), which its drift alarm uses too.
                "--drift-share": DRIFT_SHARE_THRESHOLD,
                "--min-records": config.monitoring.min_records,
            }
        ),
        job_suffix="mon",
        result_path="$.monitor",
    )
    parameters = step.fields["parameters"]
    set_processing_uri(parameters, "input", "baseline", f"{WINDOW}.BaselineS3Uri")
    set_processing_uri(parameters, "input", "capture", f"{WINDOW}.CaptureManifestS3Uri")
    set_processing_uri(parameters, "output", "report", f"{WINDOW}.ReportS3Uri")
    return step


def _publish_step() -> steps.LambdaStep:
    step = steps.LambdaStep(
        "PublishMonitoringMetrics",
        parameters={
            "FunctionName": PUBLISH_MONITORING_METRICS_FUNCTION_ARN,
            "Payload": {
                "EndpointName.$": "$.EndpointName",
                "ReportS3Uri.$": f"{WINDOW}.ReportS3Uri",
                "ModelPackageArn.$": f"{WINDOW}.ModelPackageArn",
                "WindowStart.$": f"{WINDOW}.WindowStart",
                "WindowEnd.$": f"{WINDOW}.WindowEnd",
            },
        },
        result_path="$.published",
        timeout_seconds=LAMBDA_TIMEOUT_SECONDS,
    )
    return with_partition_placeholder(step)


def _split_step(config: PipelineConfig) -> steps.ProcessingStep:
    """ml/model_quality.py split: the window's ground truth into unlabelled features (payload order) and labels."""
    step = processing_step(
        "SplitGroundTruth",
        config,
        script="model_quality.py",
        inputs=[
            code_input(),
            # The package's baseline names the payload's features in order.
            ProcessingInput(source=STAND_IN_URI, destination=PROCESSING_BASELINE_DIR, input_name="baseline"),
            ProcessingInput(
                source=STAND_IN_URI,
                destination=PROCESSING_GROUND_TRUTH_DIR,
                input_name="ground-truth",
                s3_data_type="ManifestFile",
            ),
        ],
        outputs=[
            ProcessingOutput(source=PROCESSING_FEATURES_DIR, destination=STAND_IN_URI, output_name="features"),
            ProcessingOutput(source=PROCESSING_LABELS_DIR, destination=STAND_IN_URI, output_name="labels"),
        ],
        arguments=[
            "split",
            *container_arguments(
                {
                    "--ground-truth-dir": PROCESSING_GROUND_TRUTH_DIR,
                    "--baseline-dir": PROCESSING_BASELINE_DIR,
                    "--label-column": config.model.label_column,
                    "--features-dir": PROCESSING_FEATURES_DIR,
                    "--labels-dir": PROCESSING_LABELS_DIR,
                    "--min-records": config.monitoring.ground_truth_min_records,
                }
            ),
        ],
        job_suffix="gtspl",
        result_path="$.ground_truth_split",
    )
    parameters = step.fields["parameters"]
    set_processing_uri(parameters, "input", "baseline", f"{WINDOW}.BaselineS3Uri")
    set_processing_uri(parameters, "input", "ground-truth", f"{GROUND_TRUTH}.ManifestS3Uri")
    set_processing_uri(parameters, "output", "features", f"{GROUND_TRUTH}.FeaturesS3Uri")
    set_processing_uri(parameters, "output", "labels", f"{GROUND_TRUTH}.LabelsS3Uri")
    return step


def _transform_step(config: PipelineConfig) -> steps.TransformStep:
    """A batch transform of the served model (the window Lambda names it) over the split's features.

    The model carries the VPC and network isolation the deploy state machine created it with; the job adds the
    stack key for its volume and output, and the stack's tags. MultiRecord batches lines up to the model's payload
    limit; AssembleWith Line keeps one `score,label` output line per input line, in order.
    """
    transformer = Transformer(
        model_name="stand-in",
        instance_count=1,
        # The SDK validates instance types, so it gets pipeline.toml's; the request then takes the placeholder.
        instance_type=config.deploy.instance_type,
        strategy="MultiRecord",
        assemble_with="Line",
        accept="text/csv",
        max_payload=TRANSFORM_MAX_PAYLOAD_MB,
        output_path=STAND_IN_URI,
        output_kms_key=KMS_KEY_ARN,
        volume_kms_key=KMS_KEY_ARN,
        sagemaker_session=offline_session(),
    )
    step = steps.TransformStep(
        "TransformGroundTruth",
        transformer=transformer,
        job_name="stand-in-gt",
        model_name="stand-in",
        data=STAND_IN_URI,
        content_type="text/csv",
        split_type="Line",
        tags=TAG_VALUES,
        result_path="$.transform",
    )
    parameters = step.fields["parameters"]
    set_dynamic(parameters, "TransformJobName", execution_scoped_name("gtxfm"))
    set_dynamic(parameters, "ModelName", f"{GROUND_TRUTH}.ModelName")
    set_dynamic(parameters["TransformInput"]["DataSource"]["S3DataSource"], "S3Uri", f"{GROUND_TRUTH}.FeaturesS3Uri")
    set_dynamic(parameters["TransformOutput"], "S3OutputPath", f"{GROUND_TRUTH}.PredictionsS3Uri")
    parameters["TransformResources"]["InstanceType"] = ENDPOINT_INSTANCE_TYPE
    return with_partition_placeholder(step)


def _score_step(config: PipelineConfig) -> steps.ProcessingStep:
    """ml/model_quality.py score: the quality gate's metric of the transform's scores against the labels."""
    step = processing_step(
        "ScoreModelQuality",
        config,
        script="model_quality.py",
        inputs=[
            code_input(),
            ProcessingInput(source=STAND_IN_URI, destination=PROCESSING_PREDICTIONS_DIR, input_name="predictions"),
            ProcessingInput(source=STAND_IN_URI, destination=PROCESSING_LABELS_INPUT_DIR, input_name="labels"),
        ],
        outputs=[ProcessingOutput(source=PROCESSING_OUTPUT_DIR, destination=STAND_IN_URI, output_name="report")],
        arguments=[
            "score",
            *container_arguments(
                {
                    "--predictions-dir": PROCESSING_PREDICTIONS_DIR,
                    "--labels-dir": PROCESSING_LABELS_INPUT_DIR,
                    "--metric": config.quality_gate.metric,
                    "--min-records": config.monitoring.ground_truth_min_records,
                    "--output-dir": PROCESSING_OUTPUT_DIR,
                }
            ),
        ],
        job_suffix="gtsco",
        result_path="$.model_quality_score",
    )
    parameters = step.fields["parameters"]
    set_processing_uri(parameters, "input", "predictions", f"{GROUND_TRUTH}.PredictionsS3Uri")
    set_processing_uri(parameters, "input", "labels", f"{GROUND_TRUTH}.LabelsS3Uri")
    set_processing_uri(parameters, "output", "report", f"{GROUND_TRUTH}.ReportS3Uri")
    return step


def _publish_quality_step(config: PipelineConfig) -> steps.LambdaStep:
    step = steps.LambdaStep(
        "PublishModelQuality",
        parameters={
            "FunctionName": PUBLISH_MONITORING_METRICS_FUNCTION_ARN,
            "Payload": {
                "Report": "model_quality",
                "MetricName": model_quality_metric_name(config.quality_gate.metric),
                "EndpointName.$": "$.EndpointName",
                "ReportS3Uri.$": f"{GROUND_TRUTH}.ReportS3Uri",
                "ModelPackageArn.$": f"{WINDOW}.ModelPackageArn",
                "WindowStart.$": f"{WINDOW}.WindowStart",
                "WindowEnd.$": f"{WINDOW}.WindowEnd",
            },
        },
        result_path="$.quality_published",
        timeout_seconds=LAMBDA_TIMEOUT_SECONDS,
    )
    return with_partition_placeholder(step)


def _unknown_status(failed: FailurePath, state_id: str, status_path: str) -> steps.Pass:
    """A status the state machine does not know is a failure, named like a caught error, never a silent success."""
    unknown = steps.Pass(
        state_id,
        parameters={"Error": state_id, "Cause.$": f"States.Format('status {{}}', {status_path})"},
        # Where the failure path reads a caught error's name.
        result_path=CAUGHT_ERROR_NAME.rsplit(".", 1)[0],
    )
    unknown.next(failed.entry)
    return unknown
