"""The HTML report's model card section and the run's summary line, from a card as DescribeModelCard returns it."""

from __future__ import annotations

from emulator.commands.report import LifecycleReport, render_report
from emulator.commands.report_model_card import model_card_summary_line

KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
CARD = {
    "ModelCardName": "mlops-local-breast-cancer-1",
    "ModelCardVersion": 2,
    "ModelCardStatus": "Approved",
    "SecurityConfig": {"KmsKeyId": KEY},
    "content": {
        "model_package_details": {
            "model_package_arn": "arn:aws:sagemaker:us-east-1:123456789012:model-package/mlops-local-breast-cancer/1",
            "model_approval_status": "Approved",
            "approval_description": "reviewed <by> risk",
        },
        "evaluation_details": [
            {
                "name": "held-out test split",
                "metric_groups": [
                    {"name": "test split metrics", "metric_data": [{"name": "auc", "type": "number", "value": 0.9871}]},
                    {
                        "name": "feature attributions",
                        "metric_data": [
                            {"name": "shap", "type": "bar_chart", "value": [0.5], "x_axis_name": ["mean radius"]}
                        ],
                    },
                ],
            },
            {"name": "bias", "evaluation_observation": "No facet assessed: none configured.", "metric_groups": []},
        ],
        "additional_information": {"custom_details": {"lineage": "no lineage manifest: ..."}},
    },
}


def test_the_report_has_the_model_card_section_with_status_key_approval_and_metrics():
    page = render_report(LifecycleReport(title="run", executions=[], model_card=CARD))

    assert "<h2>Model card <span class='muted'>mlops-local-breast-cancer-1</span></h2>" in page
    assert f"<tr><th>KMS key</th><td>{KEY}</td></tr>" in page
    assert "<tr><th>status</th><td>Approved</td></tr>" in page
    assert "reviewed &lt;by&gt; risk" in page
    assert "<tr><th>auc</th><td>0.9871</td></tr>" in page
    assert "mean radius=0.5000" in page
    assert "No facet assessed: none configured." in page


def test_a_report_without_a_card_has_no_model_card_section():
    assert "Model card" not in render_report(LifecycleReport(title="run", executions=[]))


def test_the_summary_line_names_card_version_status_key_evaluations_and_lineage():
    assert model_card_summary_line(CARD) == (
        f"model card: mlops-local-breast-cancer-1 v2 (Approved, encrypted with {KEY}); "
        "evaluations: held-out test split, bias; lineage: no lineage manifest"
    )
