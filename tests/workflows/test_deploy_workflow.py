"""The `deploy` definition built from workflows/deploy.py: transitions, the endpoint wait loop, settings."""

from __future__ import annotations

from typing import Any

import pytest
from asl_walk import choice_targets, execution_scoped_name, path_from

from contract.pipeline_config import PipelineConfig
from workflows.deploy import build_deploy_definition


def test_deploy_creates_model_and_config_then_chooses_create_or_update(deploy_definition: dict[str, Any]) -> None:
    assert deploy_definition["StartAt"] == "DescribeModelPackage"
    assert path_from(deploy_definition, "DescribeModelPackage") == [
        "DescribeModelPackage",
        "ReadApprovalMode",
        "CheckApproval",
    ]
    assert path_from(deploy_definition, "RecordApproval") == [
        "RecordApproval",
        "CreateModel",
        "CreateEndpointConfig",
        "FindExistingEndpoint",
        "CheckEndpointExists",
        "CreateOrUpdateEndpoint",
    ]
    choice = deploy_definition["States"]["CreateOrUpdateEndpoint"]
    assert choice["Choices"] == [
        {"Variable": "$.deployment.exists", "BooleanEquals": True, "Next": "TrafficShiftingPolicy"}
    ]
    assert choice["Default"] == "CreateEndpoint"
    exists = deploy_definition["States"]["CheckEndpointExists"]["Parameters"]["exists.$"]
    assert exists == "States.ArrayContains($.existing_endpoints.Endpoints[*].EndpointName, '${EndpointName}')"


def test_create_and_update_both_enter_the_wait_loop(deploy_definition: dict[str, Any]) -> None:
    states = deploy_definition["States"]
    assert states["CreateEndpoint"]["Next"] == states["UpdateEndpoint"]["Next"] == "StartEndpointWait"
    assert path_from(deploy_definition, "StartEndpointWait") == [
        "StartEndpointWait",
        "WaitForEndpoint",
        "DescribeEndpoint",
        "CountEndpointPoll",
        "EndpointStatus",
    ]
    assert states["StartEndpointWait"]["Result"] == {"polls": 0}
    assert states["CountEndpointPoll"]["Parameters"] == {"polls.$": "States.MathAdd($.endpoint_wait.polls, 1)"}


def test_endpoint_status_choice_proceeds_fails_times_out_or_polls_again(
    deploy_definition: dict[str, Any], config: PipelineConfig
) -> None:
    status = deploy_definition["States"]["EndpointStatus"]
    assert choice_targets(status) == [
        "RegisterScalableTarget",
        "NotifyEndpointRolledBack",
        "NotifyEndpointFailed",
        "NotifyEndpointWaitTimedOut",
        "WaitForEndpoint",
    ]
    # InService counts only on this execution's config: InService on another means the update rolled back.
    assert {
        "Variable": "$.endpoint.EndpointConfigName",
        "StringEqualsPath": "$.deployment.endpoint_config_name",
    } in status["Choices"][0]["And"]
    assert status["Choices"][2]["StringEquals"] == "Failed"
    assert status["Choices"][3] == {
        "Variable": "$.endpoint_wait.polls",
        "NumericGreaterThanEquals": config.deploy.max_wait_polls,
        "Next": "NotifyEndpointWaitTimedOut",
    }
    for fail in ("EndpointRolledBack", "EndpointFailed", "EndpointWaitTimedOut"):
        assert path_from(deploy_definition, f"Notify{fail}") == [f"Notify{fail}", fail]
        assert deploy_definition["States"][fail]["Type"] == "Fail"


def test_wait_loop_interval_and_limit_come_from_config(config_with: Any) -> None:
    definition = build_deploy_definition(config_with(deploy={"wait_seconds": 7, "max_wait_polls": 11}))
    assert definition["States"]["WaitForEndpoint"]["Seconds"] == 7
    assert definition["States"]["EndpointStatus"]["Choices"][3]["NumericGreaterThanEquals"] == 11


def test_in_service_endpoint_scales_smoke_tests_tags_and_notifies(deploy_definition: dict[str, Any]) -> None:
    assert path_from(deploy_definition, "RegisterScalableTarget") == [
        "RegisterScalableTarget",
        "PutScalingPolicy",
        "SmokeTest",
        "TagEndpoint",
        "NotifyDeployed",
        "Deployed",
    ]
    assert deploy_definition["States"]["Deployed"]["Type"] == "Succeed"


def test_model_comes_from_the_package_in_the_vpc_with_isolation(deploy_definition: dict[str, Any]) -> None:
    parameters = deploy_definition["States"]["CreateModel"]["Parameters"]
    assert parameters["PrimaryContainer"] == {"ModelPackageName.$": "$.ModelPackageArn"}
    assert parameters["ExecutionRoleArn"] == "${SageMakerModelRoleArn}"
    assert parameters["EnableNetworkIsolation"] is True
    assert parameters["VpcConfig"] == {
        "Subnets.$": "States.StringSplit('${SubnetIds}', ',')",
        "SecurityGroupIds.$": "States.StringSplit('${SecurityGroupIds}', ',')",
    }


def test_endpoint_config_captures_data_encrypted_and_counts_from_the_stack(
    deploy_definition: dict[str, Any], config: PipelineConfig
) -> None:
    parameters = deploy_definition["States"]["CreateEndpointConfig"]["Parameters"]
    [variant] = parameters["ProductionVariants"]
    assert variant["InstanceType"] == "${EndpointInstanceType}"
    assert variant["InitialInstanceCount.$"] == "States.StringToJson('${EndpointInstanceCount}')"
    assert "InitialInstanceCount" not in variant
    assert variant["ModelName.$"] == deploy_definition["States"]["CreateModel"]["Parameters"]["ModelName.$"]
    capture = parameters["DataCaptureConfig"]
    assert capture["EnableCapture"] is True
    assert capture["InitialSamplingPercentage"] == config.deploy.data_capture_percentage
    assert capture["DestinationS3Uri"] == "s3://${ArtifactBucket}/data-capture/"
    assert capture["KmsKeyId"] == parameters["KmsKeyId"] == "${KmsKeyArn}"


def test_update_is_blue_green_with_canary_and_rollback_alarm_from_config(config_with: Any) -> None:
    definition = build_deploy_definition(
        config_with(deploy={"traffic_shift_canary_percent": 25, "canary_wait_seconds": 120})
    )
    states = definition["States"]
    # The AWS SDK integration: the optimized sagemaker:updateEndpoint documents no DeploymentConfig.
    assert states["UpdateEndpoint"]["Resource"] == "arn:${Partition}:states:::aws-sdk:sagemaker:updateEndpoint"
    parameters = states["UpdateEndpoint"]["Parameters"]
    assert parameters["EndpointName"] == "${EndpointName}"
    policy = parameters["DeploymentConfig"]["BlueGreenUpdatePolicy"]
    assert policy["TrafficRoutingConfiguration.$"] == "$.deployment.traffic_routing"
    assert states["UseCanaryTrafficShifting"]["ResultPath"] == "$.deployment.traffic_routing"
    assert states["UseCanaryTrafficShifting"]["Result"] == {
        "Type": "CANARY",
        "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 25},
        "WaitIntervalInSeconds": 120,
    }
    assert policy["TerminationWaitInSeconds"] == 300
    assert parameters["DeploymentConfig"]["AutoRollbackConfiguration"] == {
        "Alarms": [{"AlarmName": "${RollbackAlarmName}"}]
    }


def test_auto_scaling_tracks_invocations_per_instance_with_config_limits(config_with: Any) -> None:
    definition = build_deploy_definition(
        config_with(deploy={"max_capacity": 6, "target_invocations_per_instance": 250})
    )
    target = definition["States"]["RegisterScalableTarget"]["Parameters"]
    assert target["ResourceId"] == "endpoint/${EndpointName}/variant/AllTraffic"
    assert target["MinCapacity.$"] == "States.StringToJson('${EndpointInstanceCount}')"
    assert target["MaxCapacity"] == 6
    policy = definition["States"]["PutScalingPolicy"]["Parameters"]
    assert policy["ResourceId"] == target["ResourceId"]
    assert policy["TargetTrackingScalingPolicyConfiguration"] == {
        "TargetValue": 250,
        "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
    }


def test_smoke_test_gets_the_endpoint_and_the_packages_sample(deploy_definition: dict[str, Any]) -> None:
    parameters = deploy_definition["States"]["SmokeTest"]["Parameters"]
    assert parameters["FunctionName"] == "${SmokeTestFunctionArn}"
    assert parameters["Payload"] == {
        "endpoint_name": "${EndpointName}",
        "sample_uri.$": "$.model_package.CustomerMetadataProperties.sample_uri",
    }


def test_endpoint_is_tagged_with_the_model_package(deploy_definition: dict[str, Any]) -> None:
    parameters = deploy_definition["States"]["TagEndpoint"]["Parameters"]
    assert parameters == {
        "ResourceArn.$": "$.endpoint.EndpointArn",
        "Tags": [
            {"Key": "mlops:model-package-arn", "Value.$": "$.ModelPackageArn"},
            {"Key": "mlops:approved-by", "Value.$": "$.approval_tags.Payload.approved_by"},
            {"Key": "mlops:approval-reason", "Value.$": "$.approval_tags.Payload.reason"},
        ],
    }


def test_a_new_endpoint_carries_the_management_tag_from_its_creation(deploy_definition: dict[str, Any]) -> None:
    # A deploy that fails between CreateEndpoint and TagEndpoint must still leave an endpoint the reaper's
    # managed scope knows as this stack's.
    tags = deploy_definition["States"]["CreateEndpoint"]["Parameters"]["Tags"]
    assert {"Key": "mlops:model-package-arn", "Value.$": "$.ModelPackageArn"} in tags
    assert {"Key": "Project", "Value": "${ProjectTag}"} in tags


@pytest.mark.parametrize(
    ("state", "key", "suffix"),
    [("CreateModel", "ModelName.$", "model"), ("CreateEndpointConfig", "EndpointConfigName.$", "cfg")],
)
def test_model_and_config_names_are_execution_scoped_and_fit(
    deploy_definition: dict[str, Any], state: str, key: str, suffix: str
) -> None:
    name = execution_scoped_name(deploy_definition["States"][state]["Parameters"][key], "x" * 56)
    assert name == "x" * 56 + f"-{suffix}"
    assert len(name) <= 63


@pytest.mark.parametrize(
    ("task", "fail"),
    [
        ("DescribeModelPackage", "DeploymentFailed"),
        ("CreateModel", "DeploymentFailed"),
        ("CreateEndpointConfig", "DeploymentFailed"),
        ("FindExistingEndpoint", "DeploymentFailed"),
        ("CreateEndpoint", "DeploymentFailed"),
        ("UpdateEndpoint", "DeploymentFailed"),
        ("DescribeEndpoint", "DeploymentFailed"),
        ("RegisterScalableTarget", "AutoScalingFailed"),
        ("PutScalingPolicy", "AutoScalingFailed"),
        ("SmokeTest", "SmokeTestFailed"),
        ("TagEndpoint", "DeploymentFailed"),
        ("NotifyDeployed", "NotificationFailed"),
    ],
)
def test_each_deploy_task_error_ends_in_its_named_fail(deploy_definition: dict[str, Any], task: str, fail: str) -> None:
    [catcher] = deploy_definition["States"][task]["Catch"]
    assert catcher["ErrorEquals"] == ["States.ALL"]
    assert catcher["ResultPath"] == "$.error"
    target = catcher["Next"]
    assert path_from(deploy_definition, target)[-1] == fail


def test_one_instance_updates_all_at_once_with_the_same_alarm_and_baking_periods(
    deploy_definition: dict[str, Any], config: PipelineConfig
) -> None:
    # SageMaker refuses a canary larger than half the fleet, and one instance cannot be split.
    states = deploy_definition["States"]
    count = states["CheckEndpointExists"]["Parameters"]["instance_count.$"]
    assert count == "States.StringToJson('${EndpointInstanceCount}')"
    policy = states["TrafficShiftingPolicy"]
    assert policy["Choices"] == [
        {"Variable": "$.deployment.instance_count", "NumericGreaterThan": 1, "Next": "UseCanaryTrafficShifting"}
    ]
    assert policy["Default"] == "UseAllAtOnceTrafficShifting"
    assert states["UseAllAtOnceTrafficShifting"]["Result"] == {
        "Type": "ALL_AT_ONCE",
        "WaitIntervalInSeconds": config.deploy.canary_wait_seconds,
    }
    assert states["UseAllAtOnceTrafficShifting"]["ResultPath"] == "$.deployment.traffic_routing"
    assert states["UseAllAtOnceTrafficShifting"]["Next"] == states["UseCanaryTrafficShifting"]["Next"]
    assert states["UseCanaryTrafficShifting"]["Next"] == "UpdateEndpoint"
