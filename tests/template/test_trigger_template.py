"""template.yaml's triggers: rules matching only the stack's own events, the re-check, a queue sized for waiting."""

from __future__ import annotations

import copy
import json
import tomllib
from typing import Any

import pytest
from moto.events.models import EventPattern
from samtranslator.yaml_helper import yaml_parse

from contract.pipeline_config import PipelineConfigError, load_pipeline_config, parse_pipeline_config
from contract.project import PROJECT_ROOT

TEMPLATE_PATH = PROJECT_ROOT / "template.yaml"
STACK_PREFIX = {"Fn::Sub": "${AWS::StackName}-drift-"}
ACCOUNT = "123456789012"


@pytest.fixture(scope="module")
def declared() -> dict[str, Any]:
    return yaml_parse(TEMPLATE_PATH.read_text(encoding="utf-8"))


def _resolved(value: Any, stack: str, bucket: str = "data-bucket") -> Any:
    """The pattern as CloudFormation deploys it for `stack` in us-east-1 of ACCOUNT."""
    if isinstance(value, list):
        return [_resolved(item, stack, bucket) for item in value]
    if isinstance(value, dict):
        if value == STACK_PREFIX:
            return f"{stack}-drift-"
        if value == {"Ref": "AWS::AccountId"}:
            return ACCOUNT
        if value == {"Ref": "AWS::Region"}:
            return "us-east-1"
        if value == {"Ref": "DataBucket"}:
            return bucket
        if value == {"Fn::FindInMap": ["Pipeline", "Data", "Prefix"]}:
            return "incoming/"
        return {key: _resolved(item, stack, bucket) for key, item in value.items()}
    return value


def _alarm_event(name: str, account: str = ACCOUNT, region: str = "us-east-1") -> dict[str, Any]:
    return {
        "source": "aws.cloudwatch",
        "detail-type": "CloudWatch Alarm State Change",
        "account": account,
        "region": region,
        "resources": [f"arn:aws:cloudwatch:{region}:{account}:alarm:{name}"],
        "detail": {"alarmName": name, "state": {"value": "ALARM"}},
    }


def test_drift_function_and_its_rule_use_one_stack_scoped_prefix_with_its_separator(declared):
    function = declared["Resources"]["RetrainOnDriftFunction"]["Properties"]
    pattern = function["Events"]["DriftAlarm"]["Properties"]["Pattern"]

    assert function["Environment"]["Variables"]["DRIFT_ALARM_PREFIX"] == STACK_PREFIX
    assert pattern["detail"]["alarmName"] == [{"prefix": STACK_PREFIX}]
    assert pattern["account"] == [{"Ref": "AWS::AccountId"}]
    assert pattern["region"] == [{"Ref": "AWS::Region"}]


@pytest.mark.parametrize(
    ("event", "matches"),
    [
        (_alarm_event("mlops-dev-drift-feature-baseline"), True),
        # prod's alarm, and the alarm of a stack whose name merely starts like dev's
        (_alarm_event("mlops-prod-drift-feature-baseline"), False),
        (_alarm_event("mlops-dev2-drift-feature-baseline"), False),
        (_alarm_event("mlops-dev-drifty-feature-baseline"), False),
        (_alarm_event("mlops-dev-drift-feature-baseline", account="210987654321"), False),
        (_alarm_event("mlops-dev-drift-feature-baseline", region="eu-west-1"), False),
    ],
)
def test_dev_drift_rule_matches_only_dev_alarms_of_its_account_and_region(declared, event, matches):
    pattern = declared["Resources"]["RetrainOnDriftFunction"]["Properties"]["Events"]["DriftAlarm"]["Properties"]
    deployed = EventPattern.load(json.dumps(_resolved(pattern["Pattern"], "mlops-dev")))

    assert deployed.matches_event(event) is matches


@pytest.mark.parametrize(
    ("change", "matches"),
    [
        ({}, True),
        ({"account": "210987654321"}, False),
        ({"region": "eu-west-1"}, False),
        ({"bucket": "someone-elses-bucket"}, False),
    ],
)
def test_new_data_rule_matches_only_its_bucket_in_its_account_and_region(declared, change, matches):
    pattern = declared["Resources"]["NewDataRule"]["Properties"]["EventPattern"]
    deployed = EventPattern.load(json.dumps(_resolved(pattern, "mlops-dev")))
    event = {
        "source": "aws.s3",
        "detail-type": "Object Created",
        "account": change.get("account", ACCOUNT),
        "region": change.get("region", "us-east-1"),
        "detail": {"bucket": {"name": change.get("bucket", "data-bucket")}, "object": {"key": "incoming/a.csv"}},
    }

    assert deployed.matches_event(event) is matches


def test_drift_recheck_schedule_invokes_the_drift_function_with_a_bounded_retry(declared):
    events = declared["Resources"]["RetrainOnDriftFunction"]["Properties"]["Events"]
    recheck = events["DriftRecheck"]

    assert recheck["Type"] == "Schedule"
    assert recheck["Properties"]["Schedule"] == {"Fn::FindInMap": ["Pipeline", "Drift", "RecheckExpression"]}
    assert recheck["Properties"]["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["EventDeliveryDeadLetterQueue", "Arn"]}}
    assert recheck["Properties"]["RetryPolicy"]["MaximumRetryAttempts"] >= 1


def test_recheck_may_describe_only_the_stacks_drift_alarms(declared):
    statements = declared["Resources"]["RetrainOnDriftFunction"]["Properties"]["Policies"][0]["Statement"]
    [describe] = [statement for statement in statements if statement["Action"] == "cloudwatch:DescribeAlarms"]

    assert describe["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:${AWS::StackName}-drift-*"
    }


def test_new_data_queue_keeps_a_deferred_record_through_the_longest_training(declared):
    config = load_pipeline_config()
    mapping = declared["Mappings"]["Pipeline"]["NewData"]
    queue = declared["Resources"]["NewDataQueue"]["Properties"]
    variables = declared["Resources"]["RetrainOnNewDataFunction"]["Properties"]["Environment"]["Variables"]

    assert queue["RedrivePolicy"]["maxReceiveCount"] == {"Fn::FindInMap": ["Pipeline", "NewData", "MaxReceiveCount"]}
    assert variables["NEW_DATA_DEFER_SECONDS"] == {"Fn::FindInMap": ["Pipeline", "NewData", "DeferSeconds"]}
    waiting_receives = int(mapping["MaxReceiveCount"]) - 5
    assert waiting_receives * int(mapping["DeferSeconds"]) >= config.longest_training_seconds
    assert int(queue["MessageRetentionPeriod"]) > config.longest_training_seconds


def test_pipeline_config_refuses_a_receive_count_too_small_to_wait_out_the_longest_training():
    raw = tomllib.loads((PROJECT_ROOT / "pipeline.toml").read_text(encoding="utf-8"))
    too_few = copy.deepcopy(raw)
    too_few["new_data"]["max_receive_count"] = 5

    with pytest.raises(PipelineConfigError, match=r"\[new_data\] max_receive_count must be at least 45"):
        parse_pipeline_config(too_few)


def test_scheduled_retraining_rule_targets_the_drift_function_not_the_state_machine(declared):
    rule = declared["Resources"]["ScheduledRetrainingRule"]["Properties"]
    [target] = rule["Targets"]

    # Through the function, which starts training only under the per-model lease; no role, no fixed input.
    assert target["Arn"] == {"Fn::GetAtt": ["RetrainOnDriftFunction", "Arn"]}
    assert "RoleArn" not in target
    assert "Input" not in target
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["EventDeliveryDeadLetterQueue", "Arn"]}}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    assert rule["State"] == {"Fn::If": ["IsRetrainingScheduleEnabled", "ENABLED", "DISABLED"]}


def test_no_rule_starts_the_training_state_machine_and_no_rule_role_may(declared):
    resources = declared["Resources"]
    training = {"Ref": "TrainingStateMachine"}
    rule_targets = [
        (logical_id, target["Arn"])
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::Events::Rule"
        for target in resource["Properties"].get("Targets", [])
    ]
    events_roles = [
        logical_id
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::IAM::Role"
        and any(
            statement.get("Principal", {}).get("Service") == "events.amazonaws.com"
            for statement in resource["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        )
        and json.dumps(training) in json.dumps(resource["Properties"].get("Policies", []))
    ]

    assert [(logical_id, arn) for logical_id, arn in rule_targets if arn == training] == []
    assert events_roles == []
    assert "ScheduledRetrainingRuleRole" not in resources


def test_only_the_enabled_retraining_rule_of_this_account_may_invoke_the_drift_function(declared):
    permission = declared["Resources"]["ScheduledRetrainingInvokePermission"]

    assert permission["Condition"] == "IsRetrainingScheduleEnabled"
    assert permission["Properties"] == {
        "Action": "lambda:InvokeFunction",
        "FunctionName": {"Ref": "RetrainOnDriftFunction"},
        "Principal": "events.amazonaws.com",
        "SourceAccount": {"Ref": "AWS::AccountId"},
        "SourceArn": {"Fn::GetAtt": ["ScheduledRetrainingRule", "Arn"]},
    }


def test_drift_function_recognises_the_retraining_rule_by_the_arn_it_is_deployed_with(declared):
    rule_name = declared["Resources"]["ScheduledRetrainingRule"]["Properties"]["Name"]
    variables = declared["Resources"]["RetrainOnDriftFunction"]["Properties"]["Environment"]["Variables"]

    assert rule_name == {"Fn::Sub": "${AWS::StackName}-scheduled-retraining"}
    assert variables["RETRAINING_SCHEDULE_RULE_ARN"] == {
        "Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:rule/" + rule_name["Fn::Sub"]
    }
