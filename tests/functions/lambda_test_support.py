"""Helpers the Lambda function tests share: event files, constants, reading executions back."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from common.settings import ReaperSettings
from moto.core import DEFAULT_ACCOUNT_ID as ACCOUNT_ID
from moto.sagemaker.models import sagemaker_backends

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"
IDEMPOTENCY_TABLE = "mlops-idempotency"
DATA_BUCKET = "mlops-local-data-123456789012-us-east-1"
MODEL_NAME = "breast-cancer"
SERVICE = "mlops-tests"
NAMESPACE = "MlopsTests"
AUDIT_STACK = "mlops"
AUDIT_BUS = "mlops-audit"
AUDIT_LOG_GROUP = "/mlops/audit"


def audited() -> list[dict[str, Any]]:
    """The details of the audit events that reached the audit log group, oldest first."""
    logs = boto3.client("logs")
    found = []
    for page in logs.get_paginator("filter_log_events").paginate(logGroupName=AUDIT_LOG_GROUP):
        found += [json.loads(event["message"]) for event in page["events"]]
    return [event["detail"] for event in sorted(found, key=lambda event: event["detail"]["time"])]


def audit_details(put_events_calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The audit event details in the PutEvents calls a test captured, in the order they were sent."""
    return [json.loads(entry["Detail"]) for call in put_events_calls for entry in call["Entries"]]


def load_event(relative_path: str) -> dict[str, Any]:
    """A deep copy of a file in events/, so a test may mutate it."""
    return copy.deepcopy(json.loads((EVENTS_DIR / relative_path).read_text()))


def executions(state_machine_arn: str) -> list[dict[str, Any]]:
    """Every execution of the state machine with its parsed input."""
    sfn = boto3.client("stepfunctions")
    found = []
    for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=state_machine_arn):
        for execution in page["executions"]:
            described = sfn.describe_execution(executionArn=execution["executionArn"])
            found.append({**execution, "input": json.loads(described["input"])})
    return found


def utc(text: str) -> datetime:
    """`2024-05-14T10:00` -> an aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class EndpointFleet:
    """Builds SageMaker endpoints under moto the way the reaper sees them: configs, tags and Invocations data."""

    ROLE = "arn:aws:iam::123456789012:role/sagemaker-execution"

    def __init__(self) -> None:
        self.sagemaker = boto3.client("sagemaker")
        self.cloudwatch = boto3.client("cloudwatch")
        self.sagemaker.create_model(
            ModelName="model", ExecutionRoleArn=self.ROLE, PrimaryContainer={"Image": "xgboost:1.7-1"}
        )
        instance = {"VariantName": "AllTraffic", "ModelName": "model", "InitialInstanceCount": 1}
        self.sagemaker.create_endpoint_config(
            EndpointConfigName="realtime", ProductionVariants=[{**instance, "InstanceType": "ml.m5.large"}]
        )
        self.sagemaker.create_endpoint_config(
            EndpointConfigName="two-variants",
            ProductionVariants=[
                {**instance, "VariantName": "Blue", "InstanceType": "ml.m5.large"},
                {**instance, "VariantName": "Green", "InstanceType": "ml.m5.large"},
            ],
        )
        self.sagemaker.create_endpoint_config(
            EndpointConfigName="async",
            ProductionVariants=[{**instance, "InstanceType": "ml.m5.large"}],
            AsyncInferenceConfig={"OutputConfig": {"S3OutputPath": "s3://bucket/async/"}},
        )
        self.sagemaker.create_endpoint_config(
            EndpointConfigName="serverless",
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": "model",
                    "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 2},
                }
            ],
        )

    def add(
        self,
        name: str,
        created_at: datetime,
        config: str = "realtime",
        tags: dict[str, str] | None = None,
        modified_at: datetime | None = None,
    ) -> None:
        """Create an endpoint as if at `created_at`, last updated at `modified_at` (its creation when None)."""
        self.sagemaker.create_endpoint(
            EndpointName=name,
            EndpointConfigName=config,
            Tags=[{"Key": key, "Value": value} for key, value in (tags or {}).items()],
        )
        # moto stamps the real clock and has no API to backdate; the tests run on a fake clock, so the
        # record's creation time is arranged in moto's store, the state the reaper reads back.
        record = sagemaker_backends[ACCOUNT_ID][boto3.session.Session().region_name].endpoints[name]
        record.creation_time = created_at.astimezone(UTC).replace(tzinfo=None)
        record.last_modified_time = (modified_at or created_at).astimezone(UTC).replace(tzinfo=None)

    def invoke(self, name: str, at: datetime, count: float = 1.0, variant: str = "AllTraffic") -> None:
        """Record `count` invocations of a variant at a moment, as SageMaker publishes them."""
        self.cloudwatch.put_metric_data(
            Namespace="AWS/SageMaker",
            MetricData=[
                {
                    "MetricName": "Invocations",
                    "Dimensions": [
                        {"Name": "EndpointName", "Value": name},
                        {"Name": "VariantName", "Value": variant},
                    ],
                    "Timestamp": at,
                    "Value": count,
                    "Unit": "None",
                }
            ],
        )

    def names(self) -> set[str]:
        pages = self.sagemaker.get_paginator("list_endpoints").paginate()
        return {endpoint["EndpointName"] for page in pages for endpoint in page["Endpoints"]}

    def tags(self, name: str) -> dict[str, str]:
        arn = self.sagemaker.describe_endpoint(EndpointName=name)["EndpointArn"]
        return {tag["Key"]: tag["Value"] for tag in self.sagemaker.list_tags(ResourceArn=arn)["Tags"]}


# The reaper tests' fake clock.
NOW = datetime(2030, 1, 10, 12, 0, tzinfo=UTC)
OPT_OUT = "mlops:reaper-opt-out"
MARK = "mlops:idle-since"
MANAGEMENT_TAG = "mlops:model-package-arn"
MANAGED_PREFIX = f"arn:aws:sagemaker:us-east-1:{ACCOUNT_ID}:model-package/mlops-dev-breast-cancer/"


def reaper_settings(topic_arn: str, **overrides: Any) -> ReaperSettings:
    """The reaper's settings as pipeline.toml sets them, live (not dry run), with overrides."""
    values: dict[str, Any] = {
        "idle_window_hours": 24,
        "min_age_hours": 24,
        "dry_run": False,
        "opt_out_tag": OPT_OUT,
        "mark_tag": MARK,
        "max_deletions_per_run": 5,
        "report_topic_arn": topic_arn,
        "audit_event_bus_name": AUDIT_BUS,
        "scope": "account",
        "management_tag": MANAGEMENT_TAG,
        "managed_tag_value_prefix": MANAGED_PREFIX,
    }
    return ReaperSettings(**{**values, **overrides})


def mark_value(hours_ago: float) -> str:
    """The mark tag's value for a mark set `hours_ago` before NOW."""
    return (NOW - timedelta(hours=hours_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def alter_metric_answers(cloudwatch: Any, alter: Callable[[dict[str, Any], dict[str, str]], None]) -> None:
    """Let `alter(answer, query id -> endpoint)` change every GetMetricData answer before the reaper reads it."""
    asked: dict[str, str] = {}

    def remember(params: dict[str, Any], **_: Any) -> None:
        asked.clear()
        for query in params["MetricDataQueries"]:
            dimensions = {d["Name"]: d["Value"] for d in query["MetricStat"]["Metric"]["Dimensions"]}
            asked[query["Id"]] = dimensions["EndpointName"]

    def change(parsed: dict[str, Any], **_: Any) -> None:
        alter(parsed, asked)

    cloudwatch.meta.events.register("before-parameter-build.cloudwatch.GetMetricData", remember)
    cloudwatch.meta.events.register("after-call.cloudwatch.GetMetricData", change)


def emitted_metric_names(stdout: str) -> set[str]:
    """The names of every metric a handler emitted in CloudWatch's embedded metric format on `stdout`."""
    blobs = [json.loads(line) for line in stdout.splitlines() if '"_aws"' in line]
    return {
        metric["Name"]
        for blob in blobs
        for directive in blob["_aws"]["CloudWatchMetrics"]
        for metric in directive["Metrics"]
    }
