"""functions/common: execution names and settings read from the environment."""

from __future__ import annotations

import json
import re

import pytest
from common.naming import MAX_EXECUTION_NAME_LENGTH, execution_name
from common.observability import count_decision, instrumented_handler
from common.parsing import split_s3_uri
from common.settings import DriftSettings, NewDataSettings, ReaperSettings, SettingsError, StackScope
from common.training import MAX_COPIED_TEXT_CHARACTERS, bounded_text
from hypothesis import given
from hypothesis import strategies as st

SAGEMAKER_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")


# Any text around at least one letter or digit: model names come from configuration.
_prefixes = st.tuples(st.text(), st.sampled_from("aZ09"), st.text()).map("".join)


@given(prefix=_prefixes, key_material=st.text())
def test_execution_names_are_valid_sagemaker_name_stems_for_any_input(prefix, key_material):
    name = execution_name(prefix, key_material)

    assert len(name) <= MAX_EXECUTION_NAME_LENGTH
    # The longest suffix a task appends (docs/interfaces.md) still gives a valid SageMaker name.
    assert SAGEMAKER_NAME.fullmatch(f"{name}-train")


def test_execution_name_is_deterministic_and_differs_by_key_material():
    assert execution_name("breast-cancer-data", "a") == execution_name("breast-cancer-data", "a")
    assert execution_name("breast-cancer-data", "a") != execution_name("breast-cancer-data", "b")


def test_execution_name_keeps_a_readable_prefix():
    assert re.fullmatch(r"breast-cancer-drift-[0-9a-f]{16}", execution_name("breast_cancer drift", "x"))


def test_prefix_without_letters_or_digits_is_refused():
    with pytest.raises(ValueError, match="has no letters or digits"):
        execution_name("__--", "x")


def test_reaper_is_a_dry_run_unless_told_otherwise():
    base = {
        "IDLE_WINDOW_HOURS": "24",
        "MIN_AGE_HOURS": "24",
        "OPT_OUT_TAG": "opt-out",
        "MARK_TAG": "mark",
        "MAX_DELETIONS_PER_RUN": "5",
        "REPORT_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:t",
        "AUDIT_EVENT_BUS_NAME": "default",
        "REAPER_SCOPE": "account",
        "MANAGEMENT_TAG": "mlops:model-package-arn",
    }

    assert ReaperSettings.from_env(base).dry_run is True
    assert ReaperSettings.from_env({**base, "DRY_RUN": "false"}).dry_run is False
    with pytest.raises(SettingsError, match="DRY_RUN='maybe' is not a boolean"):
        ReaperSettings.from_env({**base, "DRY_RUN": "maybe"})


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("RETRAIN_COOLDOWN_MINUTES", "soon", "RETRAIN_COOLDOWN_MINUTES='soon' is not a whole number"),
        ("RETRAIN_COOLDOWN_MINUTES", "-5", "RETRAIN_COOLDOWN_MINUTES=-5 must be at least 0"),
        ("TRAINING_DATA_URI", "bucket/incoming/", "TRAINING_DATA_URI='bucket/incoming/' is not an s3://"),
        ("MODEL_NAME", "  ", "MODEL_NAME is not set"),
        (
            "TRAINING_STATE_MACHINE_ARN",
            "training",
            "TRAINING_STATE_MACHINE_ARN='training' is not a state machine ARN",
        ),
        ("DRIFT_ALARM_PREFIX", "mlops-dev", "DRIFT_ALARM_PREFIX='mlops-dev' must end with its separator"),
    ],
)
def test_bad_setting_is_an_error_naming_the_variable_and_value(variable, value, message):
    env = {
        "TRAINING_STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:training",
        "MODEL_NAME": "breast-cancer",
        "DRIFT_ALARM_PREFIX": "mlops-dev-drift-",
        "RETRAIN_COOLDOWN_MINUTES": "360",
        "TRAINING_DATA_URI": "s3://data/incoming/",
        "IDEMPOTENCY_TABLE_NAME": "idempotency",
    }

    with pytest.raises(SettingsError, match=re.escape(message)):
        DriftSettings.from_env({**env, variable: value})


def test_new_data_settings_normalise_suffixes_and_build_the_data_uri():
    settings = NewDataSettings.from_env(
        {
            "TRAINING_STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:training",
            "MODEL_NAME": "breast-cancer",
            "DATA_BUCKET": "data",
            "DATA_PREFIX": "incoming/",
            "ALLOWED_SUFFIXES": " .CSV, .csv.gz ,",
            "IDEMPOTENCY_TABLE_NAME": "idempotency",
            "NEW_DATA_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/new-data",
            "NEW_DATA_DEFER_SECONDS": "900",
        }
    )

    assert settings.allowed_suffixes == (".csv", ".csv.gz")
    assert settings.data_uri == "s3://data/incoming/"
    assert settings.scope == StackScope("aws", "us-east-1", "123456789012")


@pytest.mark.parametrize("uri", ["s3://bucket", "s3://bucket/", "https://bucket/key", "bucket/key"])
def test_s3_uri_without_bucket_and_key_is_refused(uri):
    with pytest.raises(ValueError, match="is not an s3://bucket/key URI"):
        split_s3_uri(uri)


def test_each_call_reports_metrics_under_its_own_functions_service_and_namespace(monkeypatch, lambda_context, capsys):
    # The local twin runs every function in one process, sharing these instances.
    @instrumented_handler(correlation_id_path="id")
    def decide(event, context):
        count_decision("Decided")
        return event

    for service, namespace in [("retrain-on-drift", "ProjectA"), ("endpoint-reaper", "ProjectB")]:
        monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", service)
        monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", namespace)
        decide({"id": "event-1"}, lambda_context)

    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert [(blob["service"], blob["_aws"]["CloudWatchMetrics"][0]["Namespace"]) for blob in blobs] == [
        ("retrain-on-drift", "ProjectA"),
        ("endpoint-reaper", "ProjectB"),
    ]


def test_stack_scope_builds_arns_in_its_partition_region_and_account():
    scope = StackScope("aws-us-gov", "us-gov-west-1", "123456789012")

    assert scope.arn("cloudwatch", "alarm:a") == "arn:aws-us-gov:cloudwatch:us-gov-west-1:123456789012:alarm:a"


def test_bounded_text_keeps_short_text_and_cuts_long_text_with_a_marker():
    long = "x" * (MAX_COPIED_TEXT_CHARACTERS + 10)

    assert bounded_text("short") == "short"
    assert bounded_text(long) == "x" * MAX_COPIED_TEXT_CHARACTERS + f"... [truncated 10 of {len(long)} characters]"
