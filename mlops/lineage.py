"""`mlops lineage ENDPOINT_OR_PACKAGE [--json] [--training-input]`: a model's complete lineage in one view.

An endpoint leads to its model package by the `mlops:model-package-arn` tag the deploy state machine puts on it
(workflows/deploy.py); a package ARN is taken as it is. The package's `lineage_manifest_uri` (and
`lineage_manifest_version_id`, the very version written) names the manifest in the governance bucket; its
SHA-256 must equal the package's `lineage_manifest_sha256`, else `LineageIntegrityError`, loudly: a manifest that
changed after registration is no lineage. Approval comes from the package itself (`ApprovalDescription`,
`LastModifiedBy`), as on AWS, plus the endpoint's `mlops:approved-by` and `mlops:approval-reason` tags when
the deploy wrote them; the executions from Step Functions (the training that registered the package, and the
deploys whose input names it).

`--training-input` prints the `training` execution input that reproduces the package: the same data location
with `data_versions` pinning every object version and SHA-256 the manifest lists (the snapshot step reads
exactly those versions, refusing any that is gone or differs), the same `tune` and bias facet. Code and
hyperparameters are the stack's: where the stack's `SourceCommit`/`SourceDirUri` or the training state
machine's hyperparameters differ from the manifest's, the differences are listed (on stderr), because that
input would then train other code or parameters.

The same code runs against AWS and `mlops up`: everything goes through `mlops.stack_target`.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any, TextIO

from botocore.exceptions import ClientError

from contract.lineage_manifest import ManifestIntegrityError, ManifestUnavailableError, read_verified_manifest
from mlops.stack_target import StackTarget, StackTargetError, stack_target

MODEL_PACKAGE_ARN_TAG = "mlops:model-package-arn"  # workflows/deploy.py MODEL_PACKAGE_ARN_TAG
APPROVED_BY_TAG = "mlops:approved-by"
APPROVAL_REASON_TAG = "mlops:approval-reason"
# How many of the newest deploy executions are searched for the ones that deployed the package.
DEPLOY_EXECUTIONS_SEARCHED = 25


class LineageError(Exception):
    """The lineage cannot be shown: no such endpoint or package, or a package without a manifest."""


class LineageIntegrityError(LineageError):
    """The manifest's bytes do not have the SHA-256 the model package recorded at registration."""


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def resolve_package(target: StackTarget, name: str) -> tuple[str, dict[str, Any] | None]:
    """(model package ARN, the endpoint with its tags or None) for an endpoint name or a package ARN."""
    if ":model-package/" in name:
        return name, None
    sagemaker = target.client("sagemaker")
    try:
        endpoint = sagemaker.describe_endpoint(EndpointName=name)
    except ClientError as error:
        if _error_code(error) not in ("ValidationException", "ResourceNotFound"):
            raise
        raise LineageError(
            f"{name} is neither a model package ARN nor an endpoint of this account and region ({error})"
        ) from None
    tags = {tag["Key"]: tag["Value"] for tag in sagemaker.list_tags(ResourceArn=endpoint["EndpointArn"])["Tags"]}
    package_arn = tags.get(MODEL_PACKAGE_ARN_TAG)
    if not package_arn:
        raise LineageError(
            f"endpoint {name} has no {MODEL_PACKAGE_ARN_TAG} tag: it was not deployed by this stack's deploy "
            "state machine; give the model package ARN instead"
        )
    return package_arn, {
        "name": name,
        "arn": endpoint["EndpointArn"],
        "status": endpoint["EndpointStatus"],
        "tags": tags,
    }


def read_manifest(target: StackTarget, package: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(manifest, where it is) of a described package, its SHA-256 checked against the package's property."""
    try:
        return read_verified_manifest(target.client("s3"), package)
    except ManifestIntegrityError as error:
        raise LineageIntegrityError(str(error)) from None
    except ManifestUnavailableError as error:
        raise LineageError(str(error)) from None


def _approval(package: dict[str, Any], endpoint: dict[str, Any] | None) -> dict[str, Any]:
    modified_by = package.get("LastModifiedBy") or {}
    approval = {
        "status": package.get("ModelApprovalStatus"),
        "reason": package.get("ApprovalDescription"),
        "by": (modified_by.get("IamIdentity") or {}).get("Arn") or modified_by.get("UserProfileName"),
        "at": str(package["LastModifiedTime"]) if package.get("LastModifiedTime") else None,
    }
    if endpoint:
        tags = endpoint["tags"]
        approval["endpoint_tags"] = {
            "approved_by": tags.get(APPROVED_BY_TAG),
            "approval_reason": tags.get(APPROVAL_REASON_TAG),
        }
    return approval


def _executions(target: StackTarget, manifest: dict[str, Any], package_arn: str) -> list[dict[str, Any]]:
    """The training execution that registered the package and the deploy executions whose input names it."""
    sfn = target.client("stepfunctions")
    found = []
    training_arn = (manifest.get("execution") or {}).get("arn")
    if training_arn:
        try:
            described = sfn.describe_execution(executionArn=training_arn)
            found.append(_execution("training", described))
        except ClientError as error:
            found.append({"kind": "training", "arn": training_arn, "status": f"not found ({_error_code(error)})"})
    deploy_machine = target.outputs.get("DeployStateMachineArn")
    if deploy_machine:
        listed = sfn.list_executions(stateMachineArn=deploy_machine, maxResults=DEPLOY_EXECUTIONS_SEARCHED)
        for summary in listed["executions"]:
            described = sfn.describe_execution(executionArn=summary["executionArn"])
            if package_arn in (described.get("input") or ""):
                found.append(_execution("deploy", described))
    return found


def _execution(kind: str, described: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": kind,
        "arn": described["executionArn"],
        "status": described["status"],
        "started": str(described.get("startDate")) if described.get("startDate") else None,
        "stopped": str(described.get("stopDate")) if described.get("stopDate") else None,
    }


def lineage_view(target: StackTarget, name: str) -> dict[str, Any]:
    """Everything `mlops lineage` shows, as one JSON-ready document."""
    package_arn, endpoint = resolve_package(target, name)
    try:
        package = target.client("sagemaker").describe_model_package(ModelPackageName=package_arn)
    except ClientError as error:
        raise LineageError(f"model package {package_arn} cannot be described: {error}") from None
    manifest, location = read_manifest(target, package)
    return {
        "model_package": {
            "arn": package_arn,
            "group": package.get("ModelPackageGroupName"),
            "version": package.get("ModelPackageVersion"),
            "created": str(package["CreationTime"]) if package.get("CreationTime") else None,
        },
        "endpoint": {key: endpoint[key] for key in ("name", "arn", "status")} if endpoint else None,
        "manifest": location,
        "lineage": manifest,
        "approval": _approval(package, endpoint),
        "executions": _executions(target, manifest, package_arn),
    }


def training_input(target: StackTarget, view: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """(the training input that reproduces the package, what differs between the stack now and the manifest)."""
    lineage = view["lineage"]
    data = lineage["data"]
    training = lineage["training"]
    execution_input: dict[str, Any] = {
        "data_uri": data["data_uri"],
        "data_versions": [
            {"key": item["key"], "version_id": item["version_id"], "sha256": item["sha256"]} for item in data["objects"]
        ],
        "tune": bool(training.get("tuned")),
        "bias": lineage["preprocessing"].get("bias_facet") or {},
        "trigger": {"type": "manual", "detail": {"reproduces": lineage["execution"]["arn"]}},
    }
    if training.get("warm_start_tuning_job"):
        execution_input["warm_start_tuning_job"] = training["warm_start_tuning_job"]
    differences = []
    code = lineage["code"]
    for output, recorded in (("SourceDirUri", code.get("source_dir_uri")), ("SourceCommit", code.get("source_commit"))):
        current = target.outputs.get(output)
        if current != recorded:
            differences.append(f"the stack's {output} is {current}, the manifest's {recorded}")
    current_parameters = _current_hyperparameters(target)
    if current_parameters is not None and current_parameters != training.get("hyperparameters"):
        differences.append(
            f"the training state machine's hyperparameters are {current_parameters}, "
            f"the manifest's {training.get('hyperparameters')}"
        )
    if training.get("tuned"):
        differences.append("the model was tuned: the input tunes again, whose search may pick another best trial")
    return execution_input, differences


def _current_hyperparameters(target: StackTarget) -> dict[str, str] | None:
    """The Train state's static hyperparameters in the deployed training state machine, without script mode's."""
    arn = target.outputs.get("TrainingStateMachineArn")
    if not arn:
        return None
    definition = json.loads(target.client("stepfunctions").describe_state_machine(stateMachineArn=arn)["definition"])
    train = definition.get("States", {}).get("Train", {})
    parameters = train.get("Parameters", {}).get("HyperParameters")
    if not isinstance(parameters, dict):
        return None
    return {
        name: value
        for name, value in parameters.items()
        if name not in ("sagemaker_program", "sagemaker_submit_directory")
    }


def print_view(view: dict[str, Any], out: TextIO) -> None:
    """The readable view: one section per part of the lineage."""
    lineage = view["lineage"]
    package = view["model_package"]
    write = out.write
    write(f"model package  {package['arn']} (version {package['version']}, created {package['created']})\n")
    if view["endpoint"]:
        write(f"endpoint       {view['endpoint']['name']} ({view['endpoint']['status']})\n")
    manifest = view["manifest"]
    version = f" version {manifest['version_id']}" if manifest["version_id"] else ""
    write(f"manifest       {manifest['uri']}{version}\n               sha256 {manifest['sha256']} (verified)\n")
    data = lineage["data"]
    pinned = ", pinned from an earlier run" if data.get("pinned") else ""
    count = len(data["objects"])
    objects = f"{count} object{'' if count == 1 else 's'}{pinned}"
    write(f"data           {data['data_uri']} -> {data['snapshot_uri']} ({objects})\n")
    for item in data["objects"]:
        write(f"  {item['key']}  version {item['version_id']}  sha256 {item['sha256']}  {item['size']} bytes\n")
    code = lineage["code"]
    write(f"code           sourcedir sha256 {code['sourcedir_sha256']}  commit {code['source_commit']}\n")
    write(f"               {code['source_dir_uri']}\n")
    image = lineage["image"]
    digest = image.get("digest") or f"no digest ({image.get('digest_unavailable')})"
    write(f"image          {image['uri']}  {digest}\n")
    preprocessing = lineage["preprocessing"]
    parameters = " ".join(f"{name}={value}" for name, value in sorted(preprocessing["parameters"].items()))
    write(f"preprocessing  {preprocessing['job_name']}  seed {preprocessing['seed']}  {parameters}\n")
    training = lineage["training"]
    tuned = f"  tuning job {training['tuning_job_arn']}" if training.get("tuning_job_arn") else ""
    write(f"training       {training['job_name']}{tuned}\n")
    hyperparameters = " ".join(f"{name}={value}" for name, value in sorted(training["hyperparameters"].items()))
    write(f"               hyperparameters {hyperparameters}\n")
    evaluation = lineage["evaluation"]
    write(
        f"evaluation     {evaluation['metric_name']} = {evaluation['metric_value']}  "
        f"report sha256 {evaluation['report_sha256']}\n               {evaluation['report_uri']}\n"
        f"               copy {evaluation['governance_copy_uri']}\n"
    )
    gate = evaluation.get("bias_gate") or {}
    write(f"bias gate      {'passed' if gate.get('passed') else 'failed'}: {gate.get('reason')}\n")
    for name, uri in sorted(lineage["drift_baseline"].items()):
        write(f"baseline       {name} {uri}\n")
    trigger = dict(lineage["trigger"])
    kind = trigger.pop("type", "manual")
    write(f"trigger        {kind} {json.dumps(trigger, sort_keys=True)}\n")
    for execution in view["executions"]:
        write(f"execution      {execution['kind']} {execution['status']} {execution['arn']}\n")
    approval = view["approval"]
    who = approval["by"] or "(no LastModifiedBy on the package)"
    write(f"approval       {approval['status']} by {who}: {approval['reason'] or 'no reason'}\n")
    tags = approval.get("endpoint_tags")
    if tags and (tags["approved_by"] or tags["approval_reason"]):
        write(f"               endpoint tags: approved by {tags['approved_by']}: {tags['approval_reason']}\n")


def lineage_command(
    name: str,
    stack_name: str | None = None,
    as_json: bool = False,
    rebuild_input: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    # The CLI logs at INFO; botocore's credential and endpoint notes are not part of the view.
    logging.getLogger("botocore").setLevel(logging.WARNING)
    try:
        target = stack_target(stack_name)
        view = lineage_view(target, name)
        if rebuild_input:
            execution_input, differences = training_input(target, view)
            for difference in differences:
                err.write(f"mlops lineage: not a faithful reproduction: {difference}\n")
            out.write(json.dumps(execution_input, indent=2, sort_keys=True) + "\n")
            return 0
    except (LineageError, StackTargetError) as error:
        err.write(f"mlops lineage: {error}\n")
        return 1
    if as_json:
        out.write(json.dumps(view, indent=2, sort_keys=True, default=str) + "\n")
    else:
        print_view(view, out)
    return 0
