"""The `deploy` state machine: model, endpoint config, create or blue/green update, wait, scale, smoke test, tag."""

from __future__ import annotations

from typing import Any

from sagemaker.model_monitor import DataCaptureConfig

from contract.pipeline_config import PipelineConfig
from contract.placeholders import (
    APPROVAL_MODE,
    APPROVAL_TAGS_FUNCTION_ARN,
    APPROVER_SESSION_ARN_PREFIX,
    ARTIFACT_BUCKET,
    ENDPOINT_INSTANCE_COUNT,
    ENDPOINT_INSTANCE_TYPE,
    ENDPOINT_NAME,
    KMS_KEY_ARN,
    ROLLBACK_ALARM_NAME,
    SAGEMAKER_MODEL_ROLE_ARN,
    SMOKE_TEST_FUNCTION_ARN,
)
from workflows.policies import (
    LAMBDA_TIMEOUT_SECONDS,
    FailurePath,
    aws_sdk_task,
    failure_path,
    guard,
    integration_resource,
    notification_message,
    notify_task,
    with_partition_placeholder,
)
from workflows.sagemaker_params import (
    TAG_VALUES,
    TAGS,
    execution_scoped_name,
    offline_session,
    set_dynamic,
    vpc_config,
)
from workflows.sdk import steps

WORKFLOW = "deploy"
VARIANT_NAME = "AllTraffic"
MODEL_NAME = execution_scoped_name("model")
ENDPOINT_CONFIG_NAME = execution_scoped_name("cfg")
# Application Auto Scaling's id of the endpoint's one production variant.
SCALABLE_RESOURCE_ID = f"endpoint/{ENDPOINT_NAME}/variant/{VARIANT_NAME}"
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
MODEL_PACKAGE_ARN_TAG = "mlops:model-package-arn"
# Who approved the deployed package and why, in SageMaker's tag charset (the full reason stays on the package).
APPROVED_BY_TAG = "mlops:approved-by"
APPROVAL_REASON_TAG = "mlops:approval-reason"
APPROVER_ARN = "$.model_package.LastModifiedBy.IamIdentity.Arn"
APPROVAL_DESCRIPTION = "$.model_package.ApprovalDescription"
# functions/approval_tags.py's error for a manual approval whose reason is only white space.
BLANK_REASON_ERROR = "ApprovalReasonBlank"
# Where the traffic-shifting policy chosen by fleet size waits for UpdateEndpoint's DeploymentConfig.
TRAFFIC_ROUTING = "$.deployment.traffic_routing"


def build_deploy_definition(config: PipelineConfig) -> dict[str, Any]:
    """The `deploy` state machine as an ASL dict; its input is `{"ModelPackageArn": ...}`."""
    retry = config.retry
    deployment_failed = failure_path(
        WORKFLOW, "DeploymentFailed", "creating the model, endpoint config or endpoint failed", retry
    )
    endpoint_failed = failure_path(
        WORKFLOW,
        "EndpointFailed",
        "the endpoint went to status Failed",
        retry,
        reason=("SageMaker says {}", "$.endpoint.FailureReason"),
    )
    wait_timed_out = failure_path(
        WORKFLOW,
        "EndpointWaitTimedOut",
        "the endpoint did not reach InService within the polls allowed",
        retry,
        reason=("it is still {}", "$.endpoint.EndpointStatus"),
    )
    rolled_back = failure_path(
        WORKFLOW,
        "EndpointRolledBack",
        "the blue/green update rolled back to the previous endpoint config",
        retry,
        reason=("the endpoint serves endpoint config {} (a rollback alarm fired)", "$.endpoint.EndpointConfigName"),
    )
    scaling_failed = failure_path(WORKFLOW, "AutoScalingFailed", "registering endpoint auto scaling failed", retry)
    smoke_test_failed = failure_path(WORKFLOW, "SmokeTestFailed", "the endpoint failed its smoke test", retry)
    notification_failed = steps.Fail(
        "NotificationFailed", error="NotificationFailed", cause="the model was deployed but the notification failed"
    )

    describe_package = guard(
        aws_sdk_task(
            "DescribeModelPackage",
            "sagemaker:describeModelPackage",
            {"ModelPackageName.$": "$.ModelPackageArn"},
            result_path="$.model_package",
        ),
        deployment_failed,
        retry,
    )
    check_approval = _approval_check(config, record=_approval_tags_step(), failed=deployment_failed)
    create_model = guard(_create_model_step(), deployment_failed, retry)
    create_config = guard(_endpoint_config_step(config), deployment_failed, retry)
    find_endpoint = guard(
        aws_sdk_task(
            "FindExistingEndpoint",
            "sagemaker:listEndpoints",
            {"NameContains": ENDPOINT_NAME, "MaxResults": 100},
            result_path="$.existing_endpoints",
        ),
        deployment_failed,
        retry,
    )
    # Choice rules cannot search a list; this Pass turns the listing into a boolean the next Choice can test,
    # and keeps the config name this execution deploys so the wait loop can tell a rollback from success.
    check_endpoint = steps.Pass(
        "CheckEndpointExists",
        parameters={
            "exists.$": f"States.ArrayContains($.existing_endpoints.Endpoints[*].EndpointName, '{ENDPOINT_NAME}')",
            "endpoint_config_name.$": ENDPOINT_CONFIG_NAME,
            # Copied into the state: Choice rules cannot compare context paths on the local engine.
            "instance_count.$": f"States.StringToJson('{ENDPOINT_INSTANCE_COUNT}')",
        },
        result_path="$.deployment",
    )
    create_endpoint = guard(_create_endpoint_step(), deployment_failed, retry)
    update_endpoint = guard(_update_endpoint_step(config), deployment_failed, retry)
    create_or_update = steps.Choice("CreateOrUpdateEndpoint")
    create_or_update.add_choice(
        steps.ChoiceRule.BooleanEquals("$.deployment.exists", True), _traffic_shifting_policy(config, update_endpoint)
    )
    create_or_update.default_choice(create_endpoint)

    register_target = guard(_register_scalable_target_step(config), scaling_failed, retry)
    wait_loop_start = _endpoint_wait_loop(
        config,
        deployment_failed=deployment_failed,
        endpoint_failed=endpoint_failed,
        wait_timed_out=wait_timed_out,
        rolled_back=rolled_back,
        in_service=register_target,
    )
    create_endpoint.next(wait_loop_start)
    update_endpoint.next(wait_loop_start)

    put_policy = guard(_scaling_policy_step(config), scaling_failed, retry)
    smoke_test = guard(_smoke_test_step(), smoke_test_failed, retry)
    tag_endpoint = guard(
        aws_sdk_task(
            "TagEndpoint",
            "sagemaker:addTags",
            {
                "ResourceArn.$": "$.endpoint.EndpointArn",
                "Tags": [
                    {"Key": MODEL_PACKAGE_ARN_TAG, "Value.$": "$.ModelPackageArn"},
                    {"Key": APPROVED_BY_TAG, "Value.$": "$.approval_tags.Payload.approved_by"},
                    {"Key": APPROVAL_REASON_TAG, "Value.$": "$.approval_tags.Payload.reason"},
                ],
            },
            result_path="$.tagging",
        ),
        deployment_failed,
        retry,
    )
    notify_deployed = notify_task(
        "NotifyDeployed",
        WORKFLOW,
        "Deployed",
        retry,
        notification_failed,
        message=notification_message(
            "deploy put model package {} on endpoint {}.", "$.ModelPackageArn", f"'{ENDPOINT_NAME}'"
        ),
    )

    steps.Chain([describe_package, check_approval.start])
    steps.Chain([check_approval.then, create_model, create_config, find_endpoint, check_endpoint, create_or_update])
    steps.Chain([register_target, put_policy, smoke_test, tag_endpoint, notify_deployed, steps.Succeed("Deployed")])
    comment = (
        "Deploys an approved model package to the stack's endpoint; generated by `mlops export` "
        "from workflows/deploy.py."
    )
    return steps.Graph(describe_package, comment=comment).to_dict()


class _ApprovalCheck:
    """The approval states between DescribeModelPackage (`start` follows it) and CreateModel (`then` precedes it)."""

    def __init__(self, start: steps.State, then: steps.State) -> None:
        self.start = start
        self.then = then


def _approval_check(config: PipelineConfig, record: steps.LambdaStep, failed: FailurePath) -> _ApprovalCheck:
    """Deploys only an approved package and, in manual mode, only one an independent reviewer approved with a reason.

    Separation of duties: in manual mode the package's `LastModifiedBy` (who last changed its approval) must be
    a session of the stack's ApproverRole, positive evidence rather than "not a pipeline role", and its
    `ApprovalDescription` must not be empty. Auto mode (dev) registers packages `Approved` itself, so there is no
    reviewer to check; `record` (the tags Lambda) still records who and why, and refuses, as `ApprovalReasonBlank`,
    a manual approval whose reason is only white space (no Choice rule can tell). Each refusal notifies and ends in
    its own named Fail. The rules run in order and the first match wins, so a member is compared only after an
    earlier rule has found it present.
    """
    retry = config.retry
    not_approved = failure_path(
        WORKFLOW,
        "PackageNotApproved",
        "only an Approved model package is deployed",
        retry,
        reason=("the package is {}", "$.model_package.ModelApprovalStatus"),
    )
    approver_not_recorded = failure_path(
        WORKFLOW,
        "ApproverNotRecorded",
        "the model package records no approver (LastModifiedBy); approve it with mlops approve",
        retry,
        reason=("its ModelApprovalStatus is {} with no LastModifiedBy", "$.model_package.ModelApprovalStatus"),
    )
    not_independent = failure_path(
        WORKFLOW,
        "ApproverNotIndependent",
        "the model package was approved by an identity other than the stack ApproverRole",
        retry,
        reason=("approved by {}, which is not a session of ApproverRole", APPROVER_ARN),
    )
    without_reason = failure_path(
        WORKFLOW,
        "ApprovalWithoutReason",
        "the model package was approved without a reason (ApprovalDescription)",
        retry,
        reason=("approved by {} with no ApprovalDescription", APPROVER_ARN),
    )
    # Before guard's States.ALL: a blank reason is refused by name, not as a deployment error.
    record.add_catch(
        steps.Catch(error_equals=[BLANK_REASON_ERROR], result_path="$.error", next_step=without_reason.notify)
    )
    then = guard(record, failed, retry)
    read_mode = steps.Pass("ReadApprovalMode", result={"mode": APPROVAL_MODE}, result_path="$.approval")
    check = steps.Choice("CheckApproval")
    rule = steps.ChoiceRule
    check.add_choice(
        rule.Not(rule.StringEquals("$.model_package.ModelApprovalStatus", "Approved")), not_approved.notify
    )
    check.add_choice(rule.StringEquals("$.approval.mode", "auto"), then)
    check.add_choice(rule.IsPresent(APPROVER_ARN, False), approver_not_recorded.notify)
    check.add_choice(
        rule.Not(rule.StringMatches(APPROVER_ARN, f"{APPROVER_SESSION_ARN_PREFIX}*")), not_independent.notify
    )
    check.add_choice(rule.IsPresent(APPROVAL_DESCRIPTION, False), without_reason.notify)
    check.add_choice(rule.StringEquals(APPROVAL_DESCRIPTION, ""), without_reason.notify)
    check.default_choice(then)
    read_mode.next(check)
    return _ApprovalCheck(start=read_mode, then=then)


def _approval_tags_step() -> steps.LambdaStep:
    """The approver and reason as tag values: the intrinsics cannot replace characters (functions/approval_tags.py)."""
    step = steps.LambdaStep(
        "RecordApproval",
        parameters={
            "FunctionName": APPROVAL_TAGS_FUNCTION_ARN,
            "Payload": {"approval_mode.$": "$.approval.mode", "model_package.$": "$.model_package"},
        },
        result_path="$.approval_tags",
        timeout_seconds=LAMBDA_TIMEOUT_SECONDS,
    )
    return with_partition_placeholder(step)


def _create_model_step() -> steps.Task:
    """CreateModel from the package: the SDK's ModelStep needs an image and artifact, a package has both."""
    return steps.Task(
        "CreateModel",
        resource=integration_resource("sagemaker:createModel"),
        parameters={
            "ModelName.$": MODEL_NAME,
            "PrimaryContainer": {"ModelPackageName.$": "$.ModelPackageArn"},
            "ExecutionRoleArn": SAGEMAKER_MODEL_ROLE_ARN,
            "VpcConfig": vpc_config(),
            "EnableNetworkIsolation": True,
            "Tags": TAGS,
        },
        result_path="$.model",
    )


def _endpoint_config_step(config: PipelineConfig) -> steps.EndpointConfigStep:
    capture = DataCaptureConfig(
        enable_capture=True,
        sampling_percentage=config.deploy.data_capture_percentage,
        destination_s3_uri=f"s3://{ARTIFACT_BUCKET}/data-capture/",
        kms_key_id=KMS_KEY_ARN,
        csv_content_types=["text/csv"],
        json_content_types=["application/json"],
        sagemaker_session=offline_session(),
    )
    step = steps.EndpointConfigStep(
        "CreateEndpointConfig",
        endpoint_config_name="stand-in-cfg",
        model_name="stand-in-model",
        initial_instance_count=config.deploy.initial_instance_count,
        instance_type=ENDPOINT_INSTANCE_TYPE,
        variant_name=VARIANT_NAME,
        data_capture_config=capture,
        tags=TAG_VALUES,
        result_path="$.endpoint_config",
    )
    # EndpointConfigStep takes no `parameters=`; names and the count come from the execution and the stack.
    parameters = step.fields["parameters"]
    set_dynamic(parameters, "EndpointConfigName", ENDPOINT_CONFIG_NAME)
    [variant] = parameters["ProductionVariants"]
    set_dynamic(variant, "ModelName", MODEL_NAME)
    set_dynamic(variant, "InitialInstanceCount", f"States.StringToJson('{ENDPOINT_INSTANCE_COUNT}')")
    variant["InitialVariantWeight"] = 1
    parameters["KmsKeyId"] = KMS_KEY_ARN
    return with_partition_placeholder(step)


def _create_endpoint_step() -> steps.EndpointStep:
    step = steps.EndpointStep(
        "CreateEndpoint",
        endpoint_name=ENDPOINT_NAME,
        endpoint_config_name="stand-in-cfg",
        tags=TAG_VALUES,
        result_path="$.endpoint_request",
    )
    parameters = step.fields["parameters"]
    set_dynamic(parameters, "EndpointConfigName", ENDPOINT_CONFIG_NAME)
    # The management tag from the start, not only from TagEndpoint: a deploy that fails between the two still
    # leaves an endpoint the reaper's `managed` scope recognises as this stack's.
    parameters["Tags"].append({"Key": MODEL_PACKAGE_ARN_TAG, "Value.$": "$.ModelPackageArn"})
    return with_partition_placeholder(step)


def _traffic_shifting_policy(config: PipelineConfig, then: steps.State) -> steps.Choice:
    """Canary on a fleet of two or more; all at once on one instance, where SageMaker refuses any canary.

    A canary must be at most half the new fleet (SageMaker's TrafficRoutingConfig), which one instance cannot
    split. Both policies keep the rollback alarm and the baking periods. Each Pass writes the routing at
    `$.deployment.traffic_routing` for UpdateEndpoint.
    """
    deploy = config.deploy
    canary = steps.Pass(
        "UseCanaryTrafficShifting",
        result={
            "Type": "CANARY",
            "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": deploy.traffic_shift_canary_percent},
            "WaitIntervalInSeconds": deploy.canary_wait_seconds,
        },
        result_path=TRAFFIC_ROUTING,
    )
    all_at_once = steps.Pass(
        "UseAllAtOnceTrafficShifting",
        result={"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": deploy.canary_wait_seconds},
        result_path=TRAFFIC_ROUTING,
    )
    canary.next(then)
    all_at_once.next(then)
    choose = steps.Choice("TrafficShiftingPolicy")
    choose.add_choice(steps.ChoiceRule.NumericGreaterThan("$.deployment.instance_count", 1), canary)
    choose.default_choice(all_at_once)
    return choose


def _update_endpoint_step(config: PipelineConfig) -> steps.Task:
    """UpdateEndpoint through the AWS SDK integration: the optimized `sagemaker:updateEndpoint` is documented
    with EndpointName and EndpointConfigName only, and Step Functions rejects fields an optimized integration
    does not support, so DeploymentConfig goes through the SDK integration, which takes the whole API.

    SageMaker lets an auto-scaled variant change its model in place; a change of EndpointInstanceType would need
    the variant deregistered from Application Auto Scaling first, which this workflow does not do. UpdateEndpoint
    takes no tags: the endpoint keeps those it was created with.
    """
    return aws_sdk_task(
        "UpdateEndpoint",
        "sagemaker:updateEndpoint",
        {
            "EndpointName": ENDPOINT_NAME,
            "EndpointConfigName.$": ENDPOINT_CONFIG_NAME,
            "DeploymentConfig": {
                "BlueGreenUpdatePolicy": {
                    "TrafficRoutingConfiguration.$": TRAFFIC_ROUTING,
                    "TerminationWaitInSeconds": config.deploy.termination_wait_seconds,
                },
                "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": ROLLBACK_ALARM_NAME}]},
            },
        },
        result_path="$.endpoint_request",
    )


def _endpoint_wait_loop(
    config: PipelineConfig,
    *,
    deployment_failed: FailurePath,
    endpoint_failed: FailurePath,
    wait_timed_out: FailurePath,
    rolled_back: FailurePath,
    in_service: steps.State,
) -> steps.State:
    """Wait → DescribeEndpoint → count → Choice, until InService: the SDK has no step that waits for endpoints.

    Returns the loop's first state.
    """
    deploy = config.deploy
    start = steps.Pass("StartEndpointWait", result={"polls": 0}, result_path="$.endpoint_wait")
    wait = steps.Wait("WaitForEndpoint", seconds=deploy.wait_seconds)
    describe = guard(
        aws_sdk_task(
            "DescribeEndpoint", "sagemaker:describeEndpoint", {"EndpointName": ENDPOINT_NAME}, result_path="$.endpoint"
        ),
        deployment_failed,
        config.retry,
    )
    count = steps.Pass(
        "CountEndpointPoll",
        parameters={"polls.$": "States.MathAdd($.endpoint_wait.polls, 1)"},
        result_path="$.endpoint_wait",
    )
    status = steps.Choice("EndpointStatus")
    in_service_rule = steps.ChoiceRule.StringEquals("$.endpoint.EndpointStatus", "InService")
    status.add_choice(
        steps.ChoiceRule.And(
            [
                in_service_rule,
                steps.ChoiceRule.StringEqualsPath("$.endpoint.EndpointConfigName", "$.deployment.endpoint_config_name"),
            ]
        ),
        in_service,
    )
    # InService on another config: the update's alarm fired and SageMaker rolled back.
    status.add_choice(in_service_rule, rolled_back.notify)
    status.add_choice(steps.ChoiceRule.StringEquals("$.endpoint.EndpointStatus", "Failed"), endpoint_failed.notify)
    status.add_choice(
        steps.ChoiceRule.NumericGreaterThanEquals("$.endpoint_wait.polls", deploy.max_wait_polls),
        wait_timed_out.notify,
    )
    status.default_choice(wait)
    steps.Chain([start, wait, describe, count, status])
    return start


def _register_scalable_target_step(config: PipelineConfig) -> steps.Task:
    return aws_sdk_task(
        "RegisterScalableTarget",
        "applicationautoscaling:registerScalableTarget",
        {
            "ServiceNamespace": "sagemaker",
            "ResourceId": SCALABLE_RESOURCE_ID,
            "ScalableDimension": SCALABLE_DIMENSION,
            # The initial count is the floor: prod's two instances in two AZs must never scale in to one.
            "MinCapacity.$": "States.StringToJson('${EndpointInstanceCount}')",
            "MaxCapacity": config.deploy.max_capacity,
        },
        result_path="$.scalable_target",
    )


def _scaling_policy_step(config: PipelineConfig) -> steps.Task:
    return aws_sdk_task(
        "PutScalingPolicy",
        "applicationautoscaling:putScalingPolicy",
        {
            "PolicyName": "invocations-per-instance",
            "ServiceNamespace": "sagemaker",
            "ResourceId": SCALABLE_RESOURCE_ID,
            "ScalableDimension": SCALABLE_DIMENSION,
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": {
                "TargetValue": config.deploy.target_invocations_per_instance,
                "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
            },
        },
        result_path="$.scaling_policy",
    )


def _smoke_test_step() -> steps.LambdaStep:
    step = steps.LambdaStep(
        "SmokeTest",
        parameters={
            "FunctionName": SMOKE_TEST_FUNCTION_ARN,
            "Payload": {
                "endpoint_name": ENDPOINT_NAME,
                "sample_uri.$": "$.model_package.CustomerMetadataProperties.sample_uri",
            },
        },
        result_path="$.smoke_test",
        timeout_seconds=LAMBDA_TIMEOUT_SECONDS,
    )
    return with_partition_placeholder(step)
