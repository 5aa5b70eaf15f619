"""The monitoring resources of template.yaml: drift alarms retrain_on_drift recognises, and least-privilege roles."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import stack_rules
from publish_monitoring_metrics import CRITICAL_FEATURE_DRIFT, DRIFTED_FEATURE_SHARE
from samtranslator.yaml_helper import yaml_parse

from contract.pipeline_config import load_pipeline_config
from contract.project import PROJECT_ROOT
from mlops.iam_policy import sam_transformed_template
from workflows.monitoring import build_monitoring_definition, model_quality_metric_name

TEMPLATE_PATH = PROJECT_ROOT / "template.yaml"
ARTIFACTS = f"arn:aws:s3:::{stack_rules.STAND_IN_BUCKETS['ArtifactBucket']}"
DATA = f"arn:aws:s3:::{stack_rules.STAND_IN_BUCKETS['DataBucket']}"
RUN = f"{ARTIFACTS}/runs/mlops-dev-monitoring-0123456789abcdef/monitoring"
CAPTURE = f"{ARTIFACTS}/data-capture/mlops-dev-endpoint/AllTraffic/2026/12/01/11/00-00-000-a.jsonl"
GROUND_TRUTH = f"{DATA}/ground-truth/2026/12/01/11/05-00-labels.csv"
OTHERS = [
    f"{DATA}/incoming/breast_cancer.csv",
    f"{ARTIFACTS}/code/0123abcd/sourcedir.tar.gz",
    f"{ARTIFACTS}/models/job/output/model.tar.gz",
    f"{ARTIFACTS}/runs/training-1/evaluation/evaluation.json",
]
# Alarm logical id -> (name after the stack's, metric, threshold)
DRIFT_ALARMS = {
    "DriftFeatureShareAlarm": ("drift-feature-share", DRIFTED_FEATURE_SHARE, {"Ref": "DriftShareThreshold"}),
    "DriftCriticalFeatureAlarm": ("drift-critical-feature", CRITICAL_FEATURE_DRIFT, 1),
}


@pytest.fixture(scope="module")
def declared() -> dict[str, Any]:
    return yaml_parse(TEMPLATE_PATH.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def transformed_once() -> dict[str, Any]:
    return sam_transformed_template(TEMPLATE_PATH)


@pytest.fixture
def transformed(transformed_once: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(transformed_once)


def _drift_prefix(declared: dict[str, Any]) -> str:
    variables = declared["Resources"]["RetrainOnDriftFunction"]["Properties"]["Environment"]["Variables"]
    return str(variables["DRIFT_ALARM_PREFIX"]["Fn::Sub"])


@pytest.mark.parametrize("alarm_id", sorted(DRIFT_ALARMS))
def test_each_drift_alarm_is_named_for_retrain_on_drift_and_watches_its_metric(
    declared: dict[str, Any], alarm_id: str
) -> None:
    suffix, metric, threshold = DRIFT_ALARMS[alarm_id]
    properties = declared["Resources"][alarm_id]["Properties"]

    assert properties["AlarmName"] == {"Fn::Sub": f"${{AWS::StackName}}-{suffix}"}
    assert properties["AlarmName"]["Fn::Sub"].startswith(_drift_prefix(declared))
    assert (properties["Namespace"], properties["MetricName"]) == ({"Ref": "ProjectName"}, metric)
    assert properties["Dimensions"] == [{"Name": "Endpoint", "Value": {"Fn::Sub": "${AWS::StackName}-endpoint"}}]
    assert properties["Statistic"] == "Maximum"
    assert properties["Period"] == {"Fn::FindInMap": ["Pipeline", "Monitoring", "WindowSeconds"]}
    assert properties["EvaluationPeriods"] == {"Ref": "DriftAlarmEvaluationPeriods"}
    assert properties["DatapointsToAlarm"] == {"Ref": "DriftAlarmDatapointsToAlarm"}
    assert (properties["ComparisonOperator"], properties["Threshold"]) == ("GreaterThanOrEqualToThreshold", threshold)
    # Missing data (no endpoint, no traffic, no verdict) is not drift.
    assert properties["TreatMissingData"] == "notBreaching"


def test_the_model_quality_alarm_is_named_for_retrain_on_drift_and_watches_the_published_metric(
    declared: dict[str, Any],
) -> None:
    properties = declared["Resources"]["DriftModelQualityAlarm"]["Properties"]
    mapping = declared["Mappings"]["Pipeline"]["Monitoring"]
    config = load_pipeline_config()

    assert properties["AlarmName"] == {"Fn::Sub": "${AWS::StackName}-drift-model-quality"}
    assert properties["AlarmName"]["Fn::Sub"].startswith(_drift_prefix(declared))
    # The name the state machine publishes under (its PublishModelQuality payload) is the mapping's.
    assert properties["MetricName"] == {"Fn::FindInMap": ["Pipeline", "Monitoring", "ModelQualityMetric"]}
    assert mapping["ModelQualityMetric"] == model_quality_metric_name(config.quality_gate.metric)
    assert properties["Namespace"] == {"Ref": "ProjectName"}
    assert properties["Dimensions"] == [{"Name": "Endpoint", "Value": {"Fn::Sub": "${AWS::StackName}-endpoint"}}]
    assert properties["Period"] == {"Fn::FindInMap": ["Pipeline", "Monitoring", "WindowSeconds"]}
    assert properties["EvaluationPeriods"] == {"Ref": "ModelQualityAlarmEvaluationPeriods"}
    # The gate's metrics are better when higher: quality below the threshold breaches.
    assert (properties["ComparisonOperator"], properties["Threshold"]) == (
        "LessThanThreshold",
        {"Ref": "ModelQualityThreshold"},
    )
    # A window without enough ground truth publishes nothing, which is not a quality problem.
    assert properties["TreatMissingData"] == "notBreaching"


def test_the_published_model_quality_metric_name_is_the_alarms(declared: dict[str, Any]) -> None:
    definition = build_monitoring_definition(load_pipeline_config())
    payload = definition["States"]["PublishModelQuality"]["Parameters"]["Payload"]

    assert payload["MetricName"] == declared["Mappings"]["Pipeline"]["Monitoring"]["ModelQualityMetric"]


def test_the_drift_rule_routes_every_alarm_with_the_prefix(declared: dict[str, Any]) -> None:
    rule = declared["Resources"]["RetrainOnDriftFunction"]["Properties"]["Events"]["DriftAlarm"]["Properties"]

    assert rule["Pattern"]["detail"]["alarmName"] == [{"prefix": {"Fn::Sub": _drift_prefix(declared)}}]
    assert _drift_prefix(declared) == "${AWS::StackName}-drift-"


def test_the_schedule_monitors_the_window_ending_at_its_event_time(declared: dict[str, Any]) -> None:
    rule = declared["Resources"]["MonitoringScheduleRule"]["Properties"]
    [target] = rule["Targets"]

    assert rule["ScheduleExpression"] == {"Fn::FindInMap": ["Pipeline", "Monitoring", "ScheduleExpression"]}
    assert target["Arn"] == {"Ref": "MonitoringStateMachine"}
    assert target["InputTransformer"] == {
        "InputPathsMap": {"time": "$.time"},
        "InputTemplate": {"Fn::Sub": '{"EndpointName": "${AWS::StackName}-endpoint", "WindowEnd": <time>}'},
    }
    assert "DeadLetterConfig" in target


def test_the_publisher_puts_metrics_only_in_the_stack_namespace(transformed: dict[str, Any]) -> None:
    role = transformed["Resources"]["PublishMonitoringMetricsFunctionRole"]
    statements = [
        s for s in stack_rules.role_policy_statements(role) if "cloudwatch:PutMetricData" in str(s.get("Action"))
    ]

    assert statements == [
        {
            "Sid": "PutTheStackMetricsOnly",
            "Effect": "Allow",
            "Action": "cloudwatch:PutMetricData",
            "Resource": "*",
            "Condition": {"StringEquals": {"cloudwatch:namespace": {"Ref": "ProjectName"}}},
        }
    ]


def test_the_publisher_reads_only_monitoring_reports(transformed: dict[str, Any]) -> None:
    problems = stack_rules.s3_access_problems(
        "PublishMonitoringMetricsFunctionRole",
        transformed["Resources"]["PublishMonitoringMetricsFunctionRole"],
        reads=[f"{RUN}/report/monitoring_report.json", f"{RUN}/quality/report/model_quality_report.json"],
        writes=[],
        forbidden_reads=[*OTHERS, CAPTURE, GROUND_TRUTH, f"{RUN}/capture.manifest", f"{RUN}/quality/labels/labels.csv"],
        forbidden_writes=[*OTHERS, CAPTURE, f"{RUN}/report/monitoring_report.json"],
    )

    assert problems == []


def test_the_window_function_lists_the_capture_reads_only_ground_truth_and_writes_only_the_manifests(
    transformed: dict[str, Any],
) -> None:
    role = transformed["Resources"]["MonitoringWindowFunctionRole"]
    problems = stack_rules.s3_access_problems(
        "MonitoringWindowFunctionRole",
        role,
        # It counts the records of the window's ground-truth files.
        reads=[GROUND_TRUTH],
        writes=[f"{RUN}/capture.manifest", f"{RUN}/ground-truth.manifest"],
        forbidden_reads=[*OTHERS, CAPTURE, f"{RUN}/capture.manifest"],
        forbidden_writes=[*OTHERS, CAPTURE, GROUND_TRUTH, f"{RUN}/report/monitoring_report.json"],
    )
    [listing] = [s for s in stack_rules.role_policy_statements(role) if s.get("Sid") == "ListTheEndpointCapture"]

    assert problems == []
    assert listing["Condition"] == {
        "StringLike": {"s3:prefix": {"Fn::Sub": "data-capture/${AWS::StackName}-endpoint/*"}}
    }


def test_a_window_function_reading_capture_objects_is_reported(transformed: dict[str, Any]) -> None:
    role = transformed["Resources"]["MonitoringWindowFunctionRole"]
    role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"].append(
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": {"Fn::Sub": "${ArtifactBucket.Arn}/data-capture/*"}}
    )

    problems = stack_rules.s3_access_problems(
        "MonitoringWindowFunctionRole", role, reads=[], writes=[], forbidden_reads=[CAPTURE], forbidden_writes=[]
    )

    assert problems == [f"MonitoringWindowFunctionRole may read {CAPTURE}"]


def test_the_analyzer_job_reads_the_endpoint_capture_and_writes_its_report(declared: dict[str, Any]) -> None:
    problems = stack_rules.s3_access_problems(
        "SageMakerJobRole",
        declared["Resources"]["SageMakerJobRole"],
        reads=[CAPTURE, f"{RUN}/capture.manifest", f"{ARTIFACTS}/runs/training-1/evaluation/baseline/baseline.csv"],
        writes=[f"{RUN}/report/monitoring_report.json"],
        forbidden_reads=[f"{ARTIFACTS}/data-capture/another-endpoint/AllTraffic/2026/12/01/11/a.jsonl"],
        forbidden_writes=[CAPTURE, f"{RUN}/capture.manifest"],
    )

    assert problems == []


def test_the_model_quality_jobs_read_ground_truth_and_write_only_their_run_folders(declared: dict[str, Any]) -> None:
    problems = stack_rules.s3_access_problems(
        "SageMakerJobRole",
        declared["Resources"]["SageMakerJobRole"],
        reads=[GROUND_TRUTH, f"{RUN}/ground-truth.manifest", f"{RUN}/quality/predictions/features.csv.out"],
        writes=[
            f"{RUN}/quality/features/features.csv",
            f"{RUN}/quality/labels/labels.csv",
            f"{RUN}/quality/report/model_quality_report.json",
        ],
        forbidden_reads=[],
        forbidden_writes=[GROUND_TRUTH, f"{RUN}/ground-truth.manifest"],
    )

    assert problems == []


def test_the_transform_runs_as_the_model_reading_the_features_and_writing_only_predictions(
    declared: dict[str, Any],
) -> None:
    problems = stack_rules.s3_access_problems(
        "SageMakerModelRole",
        declared["Resources"]["SageMakerModelRole"],
        reads=[f"{RUN}/quality/features/features.csv"],
        writes=[f"{RUN}/quality/predictions/features.csv.out"],
        # Never the labels, the ground truth itself or another part of a run (its own model artifact it reads).
        forbidden_reads=[
            *(arn for arn in OTHERS if not arn.endswith("model.tar.gz")),
            GROUND_TRUTH,
            f"{RUN}/quality/labels/labels.csv",
            f"{RUN}/capture.manifest",
        ],
        forbidden_writes=[*OTHERS, f"{RUN}/quality/features/features.csv", f"{RUN}/quality/report/r.json"],
    )

    assert problems == []


def test_the_state_machine_creates_only_its_transform_jobs_with_the_stack_key(transformed: dict[str, Any]) -> None:
    role = transformed["Resources"]["MonitoringStateMachineRole"]
    [create] = [
        s for s in stack_rules.role_policy_statements(role) if stack_rules._grants(s, "sagemaker:CreateTransformJob")
    ]
    job = "arn:aws:sagemaker:us-east-1:123456789012:transform-job/"

    assert stack_rules.may(role, "sagemaker:CreateTransformJob", f"{job}mlops-dev-monitoring-1-gtxfm")
    assert not stack_rules.may(role, "sagemaker:CreateTransformJob", f"{job}someone-elses-job")
    assert set(create["Condition"]["StringEquals"]) == {"sagemaker:VolumeKmsKey", "sagemaker:OutputKmsKey"}


@pytest.mark.parametrize(
    "role_id", ["MonitoringStateMachineRole", "MonitoringWindowFunctionRole", "PublishMonitoringMetricsFunctionRole"]
)
def test_no_part_of_monitoring_may_invoke_the_endpoint(transformed: dict[str, Any], role_id: str) -> None:
    # Monitoring must never make an idle endpoint look busy to the reaper.
    endpoint = "arn:aws:sagemaker:us-east-1:123456789012:endpoint/mlops-dev-endpoint"

    assert not stack_rules.may(transformed["Resources"][role_id], "sagemaker:InvokeEndpoint", endpoint)
    assert not stack_rules.may(transformed["Resources"][role_id], "sagemaker:UpdateEndpoint", endpoint)
