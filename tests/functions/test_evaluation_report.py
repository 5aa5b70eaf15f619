"""evaluation_report: the quality gate's facts from evaluation.json and the champion model package."""

from __future__ import annotations

import json
from typing import Any

import boto3
import evaluation_report
import pytest
from common.parsing import InvalidPayloadError
from evaluation_report import EvaluationReportError
from lambda_test_support import load_event

ARTIFACTS = "mlops-artifacts-123456789012-us-east-1"
GROUP = "mlops-breast-cancer"
METRICS = {"auc": 0.97, "accuracy": 0.93, "f1": 0.94, "precision": 0.95, "recall": 0.93, "logloss": 0.21}
NO_FACET = {"facet": None, "reason": "no facet configured (pipeline.toml [bias] facet_column is empty)"}
FACET = {"facet_column": "sex_female", "sensitive_values": [1.0]}


@pytest.fixture
def artifacts(aws: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("MODEL_PACKAGE_GROUP_NAME", GROUP)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=ARTIFACTS)
    boto3.client("sagemaker").create_model_package_group(ModelPackageGroupName=GROUP)
    return s3


def _write_report(s3: Any, report: Any) -> None:
    uri = load_event("evaluation_report/payload.json")["evaluation_uri"]
    key = uri.removeprefix(f"s3://{ARTIFACTS}/")
    if isinstance(report, dict) and "metrics" in report:
        report = {"bias": NO_FACET, **report}
    s3.put_object(Bucket=ARTIFACTS, Key=key, Body=report if isinstance(report, bytes) else json.dumps(report))


def _register(status: str, metadata: dict[str, str]) -> str:
    return boto3.client("sagemaker").create_model_package(
        ModelPackageGroupName=GROUP,
        ModelApprovalStatus=status,
        CustomerMetadataProperties=metadata,
        InferenceSpecification={
            "Containers": [{"Image": "xgboost:1.7-1", "ModelDataUrl": f"s3://{ARTIFACTS}/model.tar.gz"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
    )["ModelPackageArn"]


def test_first_model_without_a_champion_beats_it(artifacts, lambda_context):
    _write_report(artifacts, {"metrics": METRICS, "n_test": 114})

    result = evaluation_report.handler(load_event("evaluation_report/payload.json"), lambda_context)

    assert result == {
        "metric_name": "auc",
        "metric_value": 0.97,
        "champion_value": None,
        "beats_champion": True,
        "metrics": METRICS,
        "evaluation_uri": load_event("evaluation_report/payload.json")["evaluation_uri"],
        "champion_model_package_arn": None,
        "bias_gate": {
            "passed": True,
            "reason": f"no facet assessed: {NO_FACET['reason']}",
            "bias": NO_FACET,
        },
    }


@pytest.mark.parametrize(
    ("champion_auc", "tolerance", "beats"),
    [("0.95", 0.0, True), ("0.97", 0.0, True), ("0.98", 0.0, False), ("0.98", 0.02, True)],
)
def test_candidate_is_compared_with_the_newest_approved_package(
    artifacts, lambda_context, champion_auc, tolerance, beats
):
    _write_report(artifacts, {"metrics": METRICS})
    _register("Approved", {"metric_name": "auc", "metric_value": "0.50"})
    champion = _register("Approved", {"metric_name": "auc", "metric_value": champion_auc})
    _register("PendingManualApproval", {"metric_name": "auc", "metric_value": "0.99"})

    payload = {**load_event("evaluation_report/payload.json"), "champion_tolerance": tolerance}
    result = evaluation_report.handler(payload, lambda_context)

    assert (result["champion_value"], result["beats_champion"]) == (float(champion_auc), beats)
    assert result["champion_model_package_arn"] == champion


@pytest.mark.parametrize(
    ("report", "message"),
    [
        ({"metrics": {"accuracy": 0.9}}, "has no metric 'auc'; it has ['accuracy']"),
        ({"metrics": {"auc": "high"}}, "metric 'auc' is 'high', not a finite number"),
        ({"n_test": 3}, "has no 'metrics' object"),
        (b"<html>", "is not JSON"),
    ],
)
def test_unusable_evaluation_report_fails_naming_the_problem(artifacts, lambda_context, report, message):
    _write_report(artifacts, report)

    with pytest.raises(EvaluationReportError, match=message.replace("[", r"\[").replace("]", r"\]")):
        evaluation_report.handler(load_event("evaluation_report/payload.json"), lambda_context)


@pytest.mark.parametrize("bucket_exists", [True, False])
def test_missing_evaluation_report_says_which_job_should_have_written_it(artifacts, lambda_context, bucket_exists):
    if not bucket_exists:
        artifacts.delete_bucket(Bucket=ARTIFACTS)

    with pytest.raises(EvaluationReportError, match="does not exist; did the evaluate job write it"):
        evaluation_report.handler(load_event("evaluation_report/payload.json"), lambda_context)


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"metric_name": "f1", "metric_value": "0.9"}, "was judged on 'f1', not 'auc'"),
        ({"metric_name": "auc"}, "metric_value=None; set it to its auc value"),
        ({"metric_name": "auc", "metric_value": "n/a"}, "metric_value='n/a'"),
    ],
)
def test_champion_that_cannot_be_compared_fails_the_gate_loudly(artifacts, lambda_context, metadata, message):
    _write_report(artifacts, {"metrics": METRICS})
    _register("Approved", metadata)

    with pytest.raises(EvaluationReportError, match=message):
        evaluation_report.handler(load_event("evaluation_report/payload.json"), lambda_context)


def test_payload_without_metric_is_rejected_naming_the_field(artifacts, lambda_context):
    with pytest.raises(InvalidPayloadError, match=r"evaluation_report payload is invalid \(metric: Field required\)"):
        evaluation_report.handler(load_event("evaluation_report/missing_metric.json"), lambda_context)


def _bias_with_disparate_impact(impact: float | None) -> dict[str, Any]:
    undefined = {} if impact is not None else {"DI": "facet a has no positive prediction"}
    return {
        "facet": FACET,
        "pretraining": {"metrics": {"CI": 0.2, "DPL": 0.1}},
        "posttraining": {"metrics": {"DPPL": 0.1, "DI": impact, "RD": 0.0, "AD": 0.0}, "undefined": undefined},
    }


@pytest.mark.parametrize(
    ("impact", "passed", "reason"),
    [
        (0.8, True, "disparate impact of facet sex_female in [1.0] is 0.800, within the gate's band [0.8, 1.25]"),
        (1.25, True, "is 1.250, within the gate's band [0.8, 1.25]"),
        (0.79, False, "disparate impact of facet sex_female in [1.0] is 0.790, outside the gate's band [0.8, 1.25]"),
        (1.3, False, "is 1.300, outside the gate's band"),
        (None, False, "facet sex_female in [1.0] is undefined (facet a has no positive prediction)"),
    ],
)
def test_bias_gate_passes_only_a_disparate_impact_within_the_band(artifacts, lambda_context, impact, passed, reason):
    _write_report(artifacts, {"metrics": METRICS, "bias": _bias_with_disparate_impact(impact)})

    gate = evaluation_report.handler(load_event("evaluation_report/payload.json"), lambda_context)["bias_gate"]

    assert gate["passed"] is passed
    assert reason in gate["reason"]
    assert gate["bias"]["posttraining"]["metrics"]["DI"] == impact


def test_report_without_a_bias_section_is_refused_by_name(artifacts, lambda_context):
    _write_report(artifacts, b'{"metrics": {"auc": 0.97}}')

    with pytest.raises(EvaluationReportError, match="has no 'bias' object"):
        evaluation_report.handler(load_event("evaluation_report/payload.json"), lambda_context)
