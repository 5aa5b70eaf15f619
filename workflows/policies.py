"""Retry, Catch and notification wiring shared by every Task of the state machines."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from contract.pipeline_config import RetryConfig
from contract.placeholders import NOTIFICATION_TOPIC_ARN, PARTITION
from workflows.sdk import steps

# AWS SDK, Lambda and SNS calls get a deadline, so a hung call surfaces as States.Timeout, which they retry.
# SageMaker's own integrations get none: its .sync jobs end by their stopping conditions, and retrying a
# timed-out create would collide with the job name it may already have taken.
API_CALL_TIMEOUT_SECONDS = 60
LAMBDA_TIMEOUT_SECONDS = 300

# Transient and throttling errors per integration, by the error names Step Functions reports for them.
# A job that ran and failed (States.TaskFailed) is not among them: rerunning it would fail the same way.
_RETRYABLE_ERRORS: dict[str, list[str]] = {
    "sagemaker": ["SageMaker.AmazonSageMakerException", "SageMaker.ThrottlingException"],
    "aws-sdk:sagemaker": ["SageMaker.SageMakerException", "SageMaker.ThrottlingException", "States.Timeout"],
    "aws-sdk:applicationautoscaling": [
        "ApplicationAutoScaling.ConcurrentUpdateException",
        "ApplicationAutoScaling.InternalServiceException",
        # Raised while the endpoint's variant is still settling right after InService.
        "ApplicationAutoScaling.FailedResourceAccessException",
        "States.Timeout",
    ],
    "lambda": [
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
        "Lambda.TooManyRequestsException",
        "States.Timeout",
    ],
    "sns": ["SNS.ThrottledException", "SNS.InternalErrorException", "SNS.KMSThrottlingException", "States.Timeout"],
}


def integration_resource(service_action: str) -> str:
    """`arn:${Partition}:states:::<service_action>`: the same definition runs in every partition."""
    return f"arn:{PARTITION}:states:::{service_action}"


def with_partition_placeholder(task: steps.Task) -> steps.Task:
    """Rewrites an SDK step's Resource, which the SDK builds for the exporting machine's partition."""
    resource = task.fields["resource"]
    _, separator, service_action = resource.partition(":states:::")
    if not separator:
        raise ValueError(f"state {task.state_id}: Resource {resource!r} is not a Step Functions integration ARN")
    task.fields["resource"] = integration_resource(service_action)
    return task


def retryable_errors(resource: str) -> list[str]:
    """The retryable error names for a Task's Resource, picked by its integration."""
    service_action = resource.partition(":states:::")[2]
    service = service_action.split(":")[0]
    key = ":".join(service_action.split(":")[:2]) if service == "aws-sdk" else service
    if key not in _RETRYABLE_ERRORS:
        raise ValueError(f"no retry policy for integration {key!r} (Resource {resource!r}): add one to policies.py")
    return list(_RETRYABLE_ERRORS[key])


def retry_for(task: steps.Task, config: RetryConfig) -> steps.Retry:
    """One Retry with the [retry] settings of pipeline.toml for the task's integration."""
    return steps.Retry(
        error_equals=retryable_errors(task.fields["resource"]),
        interval_seconds=config.interval_seconds,
        max_attempts=config.max_attempts,
        backoff_rate=config.backoff_rate,
    )


@dataclass(frozen=True)
class FailurePath:
    """A notify-failure Task followed by the named Fail it reports; caught errors enter at `entry`."""

    notify: steps.Task
    fail: steps.Fail
    entry: steps.State


# Where a caught error's name is (Catch ResultPath); its Cause can be a job's whole Describe* output, with ARNs,
# subnet ids and the KMS key, so it stays in the execution history and out of the message.
CAUGHT_ERROR_NAME = "$.error.Error"
# Where a failure path of SageMaker jobs writes its one-line reason for the notification.
FAILURE_RESULT = "$.failure"


def format_literal(text: str) -> str:
    """`text` as a string literal inside an intrinsic function call: `'`, `{`, `}` and `\\` escaped as ASL requires."""
    for special in ("\\", "'", "{", "}"):
        text = text.replace(special, "\\" + special)
    return text


def notification_message(template: str, *paths: str) -> str:
    """A `States.Format` call: `template` with one `{}` per path (or quoted literal), then the execution's ARN.

    The execution's ARN is what the console and `DescribeExecution` take: its history holds every input,
    result and error in full, so the message itself stays short and free of infrastructure identifiers.
    """
    parts = template.split("{}")
    if len(parts) != len(paths) + 1:
        raise ValueError(f"template {template!r} has {len(parts) - 1} placeholders for {len(paths)} paths")
    escaped = "{}".join(format_literal(part) for part in parts)
    arguments = ", ".join([*paths, "$$.Execution.Id"])
    return f"States.Format('{escaped} Execution (details in its history): {{}}', {arguments})"


def notify_task(
    state_id: str,
    workflow: str,
    outcome: str,
    config: RetryConfig,
    on_error: steps.Fail,
    message: str,
) -> steps.SnsPublishStep:
    """Publishes the workflow's outcome to the stack's topic: `message` (see `notification_message`).

    A notification that cannot be sent goes straight to `on_error`: there is nobody left to notify.
    """
    task = steps.SnsPublishStep(
        state_id,
        parameters={
            "TopicArn": NOTIFICATION_TOPIC_ARN,
            "Subject": f"{workflow}: {outcome}",
            "Message.$": message,
        },
        result_path="$.notification",
        timeout_seconds=API_CALL_TIMEOUT_SECONDS,
    )
    with_partition_placeholder(task)
    task.add_retry(retry_for(task, config))
    task.add_catch(steps.Catch(error_equals=["States.ALL"], result_path="$.error", next_step=on_error))
    return task


def failure_path(
    workflow: str,
    fail_name: str,
    cause: str,
    config: RetryConfig,
    reason: tuple[str, str] = ("error {}", CAUGHT_ERROR_NAME),
    sagemaker_jobs: bool = False,
) -> FailurePath:
    """`Notify<fail_name>` → Fail `<fail_name>`, the end of every caught error of one phase.

    The message says what failed (`fail_name`, `cause`), why (`reason`: a template with one `{}` and the path
    filling it; by default the caught error's name) and which execution. With `sagemaker_jobs` (a phase of
    `.sync` jobs) the reason is the job's own FailureReason where the error carries one (`job_failure_reason`).
    """
    fail = steps.Fail(fail_name, error=fail_name, cause=cause)
    if sagemaker_jobs:
        reason = ("{}", f"{FAILURE_RESULT}.reason")
    template, reason_path = reason
    message = notification_message(f"{workflow} failed at {fail_name}: {cause}. Why: {template}.", reason_path)
    notify = notify_task(f"Notify{fail_name}", workflow, fail_name, config, on_error=fail, message=message)
    notify.next(fail)
    entry = job_failure_reason(fail_name, then=notify) if sagemaker_jobs else notify
    return FailurePath(notify=notify, fail=fail, entry=entry)


def job_failure_reason(fail_name: str, then: steps.State) -> steps.Choice:
    """States writing at FAILURE_RESULT.reason the caught error's name and, for a failed `.sync` job, its FailureReason.

    A `.sync` job that ends Failed raises States.TaskFailed with the job's Describe* output as a JSON Cause:
    its FailureReason (the script's own one-line error) is picked out, and the rest (ARNs, subnets, the KMS key)
    stays in the history. Any other error (throttling after retries, a timeout) has a text Cause: only its name
    is used. A Describe* without FailureReason (a stopped job) reads "no FailureReason".
    """
    job_failed = steps.ChoiceRule.And(
        [
            steps.ChoiceRule.StringEquals(CAUGHT_ERROR_NAME, "States.TaskFailed"),
            steps.ChoiceRule.StringMatches("$.error.Cause", "{*}"),
        ]
    )
    described = steps.Pass(
        f"Describe{fail_name}Job",
        parameters={"defaults": {"FailureReason": "no FailureReason"}, "job.$": "States.StringToJson($.error.Cause)"},
        result_path=FAILURE_RESULT,
    )
    # The default sits in the state rather than in a literal: the local engine keeps the `\\{` escapes of one.
    merged = steps.Pass(
        f"Merge{fail_name}JobDefaults",
        parameters={"job.$": f"States.JsonMerge({FAILURE_RESULT}.defaults, {FAILURE_RESULT}.job, false)"},
        result_path=FAILURE_RESULT,
    )
    from_job = steps.Pass(
        f"Explain{fail_name}FromJob",
        parameters={
            "reason.$": f"States.Format('{{}}: {{}}', {CAUGHT_ERROR_NAME}, {FAILURE_RESULT}.job.FailureReason)"
        },
        result_path=FAILURE_RESULT,
    )
    from_error = steps.Pass(
        f"Explain{fail_name}FromError",
        parameters={"reason.$": f"States.Format('error {{}}', {CAUGHT_ERROR_NAME})"},
        result_path=FAILURE_RESULT,
    )
    steps.Chain([described, merged, from_job, then])
    from_error.next(then)
    choose = steps.Choice(f"Explain{fail_name}")
    choose.add_choice(job_failed, described)
    choose.default_choice(from_error)
    return choose


def guard(task: steps.Task, failure: FailurePath, config: RetryConfig) -> steps.Task:
    """Retries the task's transient errors, then sends any error, kept at `$.error`, down `failure`."""
    task.add_retry(retry_for(task, config))
    task.add_catch(steps.Catch(error_equals=["States.ALL"], result_path="$.error", next_step=failure.entry))
    return task


def aws_sdk_task(state_id: str, service_action: str, parameters: dict[str, Any], result_path: str) -> steps.Task:
    """A Task on an AWS SDK integration (`aws-sdk:<service>:<action>`), for APIs the SDK has no step for."""
    return steps.Task(
        state_id,
        resource=integration_resource(f"aws-sdk:{service_action}"),
        parameters=parameters,
        result_path=result_path,
        timeout_seconds=API_CALL_TIMEOUT_SECONDS,
    )


def input_defaults(defaults: dict[str, Any]) -> tuple[steps.Pass, steps.Pass]:
    """Two Pass states that merge the execution input over `defaults` (a `.$` key takes a path's value).

    The merged input lands in `$`, not in a context path, because Choice rules on `$$` paths do not run on the
    local engine. The first state is the machine's StartAt; chain the second after it.
    """
    apply_defaults = steps.Pass("ApplyInputDefaults", parameters={"defaults": defaults, "request.$": "$"})
    merge_defaults = steps.Pass(
        "MergeInputDefaults",
        parameters={"request.$": "States.JsonMerge($.defaults, $.request, false)"},
        output_path="$.request",
    )
    return apply_defaults, merge_defaults
