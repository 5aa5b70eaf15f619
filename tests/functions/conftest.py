"""Fixtures for the Lambda function tests: moto, a fake Lambda context, settings through the environment."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import pytest
from aws_lambda_powertools.metrics.provider import cold_start
from common.observability import metrics
from lambda_test_support import AUDIT_BUS, AUDIT_LOG_GROUP, AUDIT_STACK, IDEMPOTENCY_TABLE, NAMESPACE, SERVICE
from moto import mock_aws


@dataclass
class FakeLambdaContext:
    function_name: str = "mlops-test-function"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:mlops-test-function"
    aws_request_id: str = "52fdfc07-2182-154f-163f-5f0f9a621d72"
    log_group_name: str = "/aws/lambda/mlops-test-function"
    log_stream_name: str = "2024/05/14/[$LATEST]0123456789abcdef"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


@pytest.fixture(autouse=True)
def fresh_powertools(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts cold, with no metrics left over and tracing off."""
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", SERVICE)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", NAMESPACE)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    # The stack every audit event names (template.yaml sets it on each producer).
    monkeypatch.setenv("AUDIT_STACK_NAME", AUDIT_STACK)
    metrics.clear_metrics()
    cold_start.reset_cold_start_flag()
    yield
    metrics.clear_metrics()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto for every AWS call of the test, in us-east-1."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        _audit_trail(monkeypatch)
        yield


def _audit_trail(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stack's audit bus and the rule that copies every audit event into its log group (template.yaml)."""
    boto3.client("events").create_event_bus(Name=AUDIT_BUS)
    boto3.client("logs").create_log_group(logGroupName=AUDIT_LOG_GROUP)
    boto3.client("events").put_rule(
        Name="audit-to-log-group", EventBusName=AUDIT_BUS, EventPattern=json.dumps({"source": ["mlops.audit"]})
    )
    boto3.client("events").put_targets(
        Rule="audit-to-log-group",
        EventBusName=AUDIT_BUS,
        Targets=[{"Id": "log-group", "Arn": f"arn:aws:logs:us-east-1:123456789012:log-group:{AUDIT_LOG_GROUP}"}],
    )
    monkeypatch.setenv("AUDIT_EVENT_BUS_NAME", AUDIT_BUS)


@pytest.fixture
def idempotency_table(aws: None, monkeypatch: pytest.MonkeyPatch) -> str:
    """The stack's idempotency table as template.yaml declares it: partition key `id`, TTL `expiration`."""
    dynamodb = boto3.client("dynamodb")
    dynamodb.create_table(
        TableName=IDEMPOTENCY_TABLE,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.update_time_to_live(
        TableName=IDEMPOTENCY_TABLE, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"}
    )
    monkeypatch.setenv("IDEMPOTENCY_TABLE_NAME", IDEMPOTENCY_TABLE)
    return IDEMPOTENCY_TABLE


@pytest.fixture
def training_state_machine(aws: None, monkeypatch: pytest.MonkeyPatch) -> str:
    """A `training` state machine (one Pass state: moto records executions, the test reads them)."""
    role = boto3.client("iam").create_role(
        RoleName="training-state-machine", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17"})
    )["Role"]["Arn"]
    arn = boto3.client("stepfunctions").create_state_machine(
        name="mlops-training",
        definition=json.dumps({"StartAt": "Train", "States": {"Train": {"Type": "Pass", "End": True}}}),
        roleArn=role,
    )["stateMachineArn"]
    monkeypatch.setenv("TRAINING_STATE_MACHINE_ARN", arn)
    return arn
