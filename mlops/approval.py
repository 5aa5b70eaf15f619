"""`mlops approve PACKAGE --reason TEXT` and `mlops reject PACKAGE --reason TEXT`: a person's approval decision.

Separation of duties: the decision is made as the stack's ApproverRole (output `ApproverRoleArn`), which the
user's own credentials assume (with `--mfa-serial`/`--mfa-token` when the stack requires MFA). SageMaker then
records the approver role's session as the package's `LastModifiedBy` and the reason as its
`ApprovalDescription`; the deploy state machine deploys a manual approval only with both. The same code runs
against AWS (the default boto3 session) and against `mlops up` (AWS_ENDPOINT_URL, AWS_SAM_STACK_NAME).

PACKAGE is a model package ARN, `<group>/<version>` or a version number, always of the stack's model package
group (output `ModelPackageGroupName`). Refused, with a message naming what is wrong: an empty reason, a package
of another group, approving a package already Approved or Rejected, rejecting one already Rejected. Rejecting an
Approved package is allowed: it revokes the approval (the endpoint keeps serving until a new model deploys).
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from typing import Any, TextIO

from mlops.stack_target import StackTarget, StackTargetError, add_stack_name_argument, stack_target

APPROVED = "Approved"
REJECTED = "Rejected"
# UpdateModelPackage's ApprovalDescription: at most 1024 characters (the SageMaker API reference).
MAX_REASON_LENGTH = 1024
# sts:AssumeRole's RoleSessionName: [\w+=,.@-]{2,64}. Commas are left out: the session name ends up in the
# endpoint's mlops:approved-by tag, whose character set has none.
_SESSION_NAME_CHARACTERS = re.compile(r"[^\w+=.@-]")
_PACKAGE_ARN = re.compile(
    r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:[0-9]{12}:model-package/(?P<group>[^/]+)/(?P<version>[0-9]+)$"
)


class ApprovalError(Exception):
    """The decision cannot be made; the message says what is wrong and what to do."""


@dataclass(frozen=True)
class Decision:
    package_arn: str
    status: str
    previous_status: str
    approver_arn: str
    reason: str


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments `approve` and `reject` share."""
    parser.add_argument("package", help="model package ARN, <group>/<version>, or a version of the stack's group")
    parser.add_argument("--reason", required=True, help="why (recorded as the package's ApprovalDescription)")
    add_stack_name_argument(parser)
    parser.add_argument("--mfa-serial", default=None, help="your MFA device's serial number or ARN, when required")
    parser.add_argument("--mfa-token", default=None, help="the current code of that MFA device")


def _session_name(caller_arn: str) -> str:
    """The caller's own name (user name or session name) as the approver role's session name: who approved."""
    name = _SESSION_NAME_CHARACTERS.sub("-", caller_arn.rsplit("/", 1)[-1])[:64]
    return name if len(name) >= 2 else "mlops-approver"


def assume_approver(target: StackTarget, mfa_serial: str | None, mfa_token: str | None) -> tuple[Any, str]:
    """A boto3 session of the stack's ApproverRole, assumed with the user's own credentials, and the caller's ARN."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    if (mfa_serial is None) != (mfa_token is None):
        raise ApprovalError("--mfa-serial and --mfa-token go together: give both or neither")
    role_arn = target.output("ApproverRoleArn")
    sts = target.client("sts")
    try:
        caller_arn = str(sts.get_caller_identity()["Arn"])
        request: dict[str, Any] = {"RoleArn": role_arn, "RoleSessionName": _session_name(caller_arn)}
        if mfa_serial is not None:
            request.update(SerialNumber=mfa_serial, TokenCode=mfa_token)
        credentials = sts.assume_role(**request)["Credentials"]
    except ClientError as exc:
        raise ApprovalError(
            f"cannot assume the stack's ApproverRole {role_arn}: {exc.response['Error'].get('Message', exc)}. "
            "Only the principal of the stack's ApproverPrincipalArn parameter may (with MFA when "
            "ApproverRequiresMfa is true: --mfa-serial and --mfa-token)"
        ) from None
    except BotoCoreError as exc:
        raise ApprovalError(f"cannot assume the stack's ApproverRole {role_arn}: {exc}") from None
    session = boto3.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=target.session.region_name,
    )
    return session, caller_arn


def find_package(sagemaker: Any, package: str, group: str) -> dict[str, Any]:
    """DescribeModelPackage of PACKAGE (an ARN, `<group>/<version>` or a version), which must be in `group`."""
    text = package.strip()
    matched = _PACKAGE_ARN.match(text)
    if matched:
        # SageMaker lower-cases the group in a package ARN.
        if matched["group"] != group.lower():
            raise ApprovalError(f"model package {text} is not in the stack's model package group {group}")
        return _describe(sagemaker, text, group)
    named_group, slash, version = text.rpartition("/")
    if slash and named_group != group:
        raise ApprovalError(f"model package {text} is not in the stack's model package group {group}")
    if not version.isdigit() or int(version) < 1:
        raise ApprovalError(
            f"{text!r} is not a model package: give its ARN, {group}/<version> or a version number of {group}"
        )
    for summary in _summaries(sagemaker, group):
        if summary.get("ModelPackageVersion") == int(version):
            return _describe(sagemaker, summary["ModelPackageArn"], group)
    raise ApprovalError(f"the stack's model package group {group} has no version {version}")


def _summaries(sagemaker: Any, group: str) -> list[dict[str, Any]]:
    from botocore.exceptions import ClientError

    try:
        pages = sagemaker.get_paginator("list_model_packages").paginate(ModelPackageGroupName=group)
        return [summary for page in pages for summary in page["ModelPackageSummaryList"]]
    except ClientError as exc:
        raise ApprovalError(f"cannot list the packages of {group}: {exc.response['Error'].get('Message')}") from None


def _describe(sagemaker: Any, name: str, group: str) -> dict[str, Any]:
    from botocore.exceptions import ClientError

    try:
        described: dict[str, Any] = sagemaker.describe_model_package(ModelPackageName=name)
    except ClientError as exc:
        raise ApprovalError(f"model package {name}: {exc.response['Error'].get('Message', exc)}") from None
    if described.get("ModelPackageGroupName") != group:
        raise ApprovalError(f"model package {name} is not in the stack's model package group {group}")
    return described


def _refusal(package: dict[str, Any], status: str) -> str | None:
    """Why `status` cannot be set on the package as it is, or None."""
    current = package.get("ModelApprovalStatus")
    if current != status and not (status == APPROVED and current == REJECTED):
        return None
    by = ((package.get("LastModifiedBy") or {}).get("IamIdentity") or {}).get("Arn", "an unrecorded identity")
    reason = package.get("ApprovalDescription") or "no reason recorded"
    advice = "register a new model to decide again" if current == REJECTED else "nothing to do"
    return f"model package {package['ModelPackageArn']} is already {current} (by {by}: {reason!r}); {advice}"


def decide(
    target: StackTarget,
    package: str,
    status: str,
    reason: str,
    *,
    mfa_serial: str | None = None,
    mfa_token: str | None = None,
) -> Decision:
    """Sets the package's approval `status` with `reason`, as the stack's ApproverRole."""
    from botocore.exceptions import ClientError

    reason = reason.strip()
    if not reason:
        raise ApprovalError("--reason is empty: say why (it is recorded on the package and tags the endpoint)")
    if len(reason) > MAX_REASON_LENGTH:
        raise ApprovalError(f"--reason has {len(reason)} characters; SageMaker keeps at most {MAX_REASON_LENGTH}")
    group = target.output("ModelPackageGroupName")
    approver, _caller = assume_approver(target, mfa_serial, mfa_token)
    sagemaker = approver.client("sagemaker")
    described = find_package(sagemaker, package, group)
    refusal = _refusal(described, status)
    if refusal:
        raise ApprovalError(refusal)
    arn = described["ModelPackageArn"]
    try:
        sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus=status, ApprovalDescription=reason)
        approver_arn = str(approver.client("sts").get_caller_identity()["Arn"])
    except ClientError as exc:
        raise ApprovalError(f"model package {arn}: {exc.response['Error'].get('Message', exc)}") from None
    return Decision(arn, status, str(described.get("ModelApprovalStatus")), approver_arn, reason)


def approval_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`mlops approve` / `mlops reject`: prints what it did to `out`; errors name what is wrong on `err` (exit 1)."""
    status = APPROVED if args.command == "approve" else REJECTED
    try:
        target = stack_target(args.stack_name)
        decision = decide(
            target, args.package, status, args.reason, mfa_serial=args.mfa_serial, mfa_token=args.mfa_token
        )
    except (ApprovalError, StackTargetError) as exc:
        print(f"mlops {args.command}: {exc}", file=err)
        return 1
    print(
        f"{decision.status} model package {decision.package_arn} (was {decision.previous_status})\n"
        f"  as {decision.approver_arn}\n"
        f"  reason: {decision.reason}",
        file=out,
    )
    if status == APPROVED:
        print(f"  the approval event starts stack {target.stack_name}'s deploy state machine", file=out)
    return 0
