"""Rules the deployed stack must follow, as functions over a (transformed) template that return the violations.

The tests run each rule on template.yaml (no violation) and on mutated copies (the violation is found), so a rule
that cannot fail would show.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

from contract.definition_substitutions import PLACEHOLDER

REQUIRED_TAG_KEYS = frozenset({"Project", "Environment"})
# SAM 1.115 does not pass a function's tags to the EventBridge rules and event source mappings it generates for
# the function's events, even with PropagateTags; samconfig.toml's stack tags reach them on deployment.
SAM_GENERATED_UNTAGGED_TYPES = frozenset({"AWS::Events::Rule", "AWS::Lambda::EventSourceMapping"})


def resources_of_type(template: dict[str, Any], resource_type: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == resource_type:
            yield logical_id, resource.get("Properties", {})


def _supports_tags(resource_type: str) -> bool:
    if resource_type.startswith("Custom::"):
        return False
    schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", resource_type).schema
    return "Tags" in schema.get("properties", {})


def _tag_keys(tags: Any) -> set[str]:
    if isinstance(tags, dict):
        return set(tags)
    return {str(tag.get("Key")) for tag in tags or [] if isinstance(tag, dict)}


def untagged_resources(transformed: dict[str, Any], declared_ids: set[str]) -> list[str]:
    """Taggable resources without the Project and Environment tags (SAM's untaggable generated ones excepted)."""
    problems = []
    for logical_id, resource in transformed["Resources"].items():
        resource_type = resource["Type"]
        if not _supports_tags(resource_type):
            continue
        if logical_id not in declared_ids and resource_type in SAM_GENERATED_UNTAGGED_TYPES:
            continue
        missing = REQUIRED_TAG_KEYS - _tag_keys(resource.get("Properties", {}).get("Tags"))
        if missing:
            problems.append(f"{logical_id} ({resource_type}) lacks tags {sorted(missing)}")
    return problems


def _policies_by_bucket(template: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    statements: dict[str, list[dict[str, Any]]] = {}
    for _, properties in resources_of_type(template, "AWS::S3::BucketPolicy"):
        bucket = properties["Bucket"].get("Ref")
        statements.setdefault(bucket, []).extend(properties["PolicyDocument"]["Statement"])
    return statements


def _denies_insecure_transport(statements: list[dict[str, Any]]) -> bool:
    return any(
        statement["Effect"] == "Deny"
        and statement.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
        for statement in statements
    )


def bucket_problems(template: dict[str, Any], kms_buckets: set[str]) -> list[str]:
    """Buckets not encrypted (with the stack key for `kms_buckets`), unversioned, public or reachable without TLS."""
    policies = _policies_by_bucket(template)
    problems = []
    for logical_id, properties in resources_of_type(template, "AWS::S3::Bucket"):
        rules = properties.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", [])
        if not rules:
            problems.append(f"{logical_id}: no default encryption")
        elif logical_id in kms_buckets:
            default = rules[0].get("ServerSideEncryptionByDefault", {})
            if default.get("SSEAlgorithm") != "aws:kms" or not default.get("KMSMasterKeyID"):
                problems.append(f"{logical_id}: default encryption is not SSE-KMS with the stack key")
            if rules[0].get("BucketKeyEnabled") is not True:
                problems.append(f"{logical_id}: S3 Bucket Key not enabled")
        if properties.get("VersioningConfiguration", {}).get("Status") != "Enabled":
            problems.append(f"{logical_id}: versioning not enabled")
        block = properties.get("PublicAccessBlockConfiguration", {})
        flags = ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")
        if not all(block.get(flag) is True for flag in flags):
            problems.append(f"{logical_id}: public access not fully blocked")
        if not properties.get("LifecycleConfiguration", {}).get("Rules"):
            problems.append(f"{logical_id}: no lifecycle rules")
        if not _denies_insecure_transport(policies.get(logical_id, [])):
            problems.append(f"{logical_id}: no bucket policy denying requests without TLS")
    return problems


def _function_id(arn: Any, template: dict[str, Any] | None = None) -> str | None:
    """The logical id behind `!GetAtt X.Arn` or `!Ref X`; through an alias to its function when `template` is given."""
    if isinstance(arn, dict) and "Fn::GetAtt" in arn:
        return str(arn["Fn::GetAtt"][0])
    if isinstance(arn, dict) and "Ref" in arn:
        target = template["Resources"].get(arn["Ref"]) if template else None
        if target and target["Type"] == "AWS::Lambda::Alias":
            return _function_id(target["Properties"]["FunctionName"])
        return str(arn["Ref"])
    return None


def async_trigger_problems(template: dict[str, Any]) -> list[str]:
    """Async deliveries without a dead-letter queue or an explicit retry policy.

    EventBridge targets need DeadLetterConfig and RetryPolicy; functions invoked asynchronously (by a rule or as a
    custom resource's ServiceToken) need a DLQ and an EventInvokeConfig bounding retries; queues that feed a
    function need a redrive policy.
    """
    problems = []
    functions = {logical_id for logical_id, _ in resources_of_type(template, "AWS::Lambda::Function")}
    async_functions: dict[str, str] = {}
    for rule_id, properties in resources_of_type(template, "AWS::Events::Rule"):
        for target in properties.get("Targets", []):
            where = f"{rule_id} target {target.get('Id')}"
            if not target.get("DeadLetterConfig", {}).get("Arn"):
                problems.append(f"{where}: no DeadLetterConfig")
            if "MaximumRetryAttempts" not in target.get("RetryPolicy", {}):
                problems.append(f"{where}: no RetryPolicy with MaximumRetryAttempts")
            function_id = _function_id(target.get("Arn"))
            if function_id in functions:
                async_functions[function_id] = where
    for resource_id, resource in template["Resources"].items():
        if resource["Type"].startswith("Custom::"):
            function_id = _function_id(resource["Properties"].get("ServiceToken"), template)
            if function_id in functions:
                async_functions[function_id] = f"custom resource {resource_id}"
    invoke_configs = {
        _function_id(properties.get("FunctionName")): properties
        for _, properties in resources_of_type(template, "AWS::Lambda::EventInvokeConfig")
    }
    for function_id, trigger in sorted(async_functions.items()):
        properties = template["Resources"][function_id]["Properties"]
        if not properties.get("DeadLetterConfig", {}).get("TargetArn"):
            problems.append(f"{function_id} (invoked by {trigger}): no DeadLetterConfig")
        if "MaximumRetryAttempts" not in invoke_configs.get(function_id, {}):
            problems.append(f"{function_id} (invoked by {trigger}): no EventInvokeConfig with MaximumRetryAttempts")
    queues = dict(resources_of_type(template, "AWS::SQS::Queue"))
    for mapping_id, properties in resources_of_type(template, "AWS::Lambda::EventSourceMapping"):
        queue_id = _function_id(properties.get("EventSourceArn"))
        if queue_id in queues and not queues[queue_id].get("RedrivePolicy", {}).get("deadLetterTargetArn"):
            problems.append(f"{mapping_id}: source queue {queue_id} has no redrive policy")
    return problems


def placeholders_in(definition_text: str) -> set[str]:
    return set(PLACEHOLDER.findall(definition_text))


def missing_substitutions(template: dict[str, Any], project_root: Path) -> dict[str, list[str]]:
    """State machine logical id -> `${...}` names its ASL file uses but its DefinitionSubstitutions lacks."""
    missing = {}
    for logical_id, properties in resources_of_type(template, "AWS::Serverless::StateMachine"):
        text = (project_root / properties["DefinitionUri"]).read_text(encoding="utf-8")
        absent = sorted(placeholders_in(text) - set(properties.get("DefinitionSubstitutions", {})))
        if absent:
            missing[logical_id] = absent
    return missing


_IAM_SERVICE_NAMES = {"applicationautoscaling": "application-autoscaling"}
_SYNC_RULE_ACTIONS = ("events:DescribeRule", "events:PutRule", "events:PutTargets")


def _task_resources(states: dict[str, Any]) -> Iterator[str]:
    for state in states.values():
        if state.get("Type") == "Task":
            yield state["Resource"]
        for branch in state.get("Branches", []):
            yield from _task_resources(branch["States"])
        for key in ("ItemProcessor", "Iterator"):
            if key in state:
                yield from _task_resources(state[key]["States"])


def actions_for_task(resource: str) -> set[str]:
    """IAM actions a Task's `arn:...:states:::<integration>` needs from the state machine's role."""
    integration = resource.partition(":states:::")[2]
    parts = integration.split(":")
    if parts[0] == "aws-sdk":
        service, action = parts[1], parts[2]
        return {f"{_IAM_SERVICE_NAMES.get(service, service)}:{action[0].upper()}{action[1:]}"}
    service, action = parts[0], parts[1]
    if service == "lambda" and action == "invoke":
        return {"lambda:InvokeFunction"}
    api, _, pattern = action.partition(".")
    api = api[0].upper() + api[1:]
    actions = {f"{service}:{api}"}
    if pattern == "sync" and api.startswith("Create"):
        noun = api.removeprefix("Create")
        actions |= {f"{service}:Describe{noun}", f"{service}:Stop{noun}", *_SYNC_RULE_ACTIONS}
    return actions


def _allowed_actions(role: dict[str, Any]) -> set[str]:
    allowed = set()
    for policy in role["Properties"].get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            if statement["Effect"] == "Allow":
                actions = statement["Action"]
                allowed.update(actions if isinstance(actions, list) else [actions])
    return allowed


def missing_state_machine_actions(template: dict[str, Any], project_root: Path) -> dict[str, list[str]]:
    """State machine logical id -> IAM actions its ASL's tasks need that its role does not allow."""
    missing = {}
    for logical_id, properties in resources_of_type(template, "AWS::Serverless::StateMachine"):
        definition = json.loads((project_root / properties["DefinitionUri"]).read_text(encoding="utf-8"))
        needed = set().union(*(actions_for_task(resource) for resource in _task_resources(definition["States"])))
        role = template["Resources"][properties["Role"]["Fn::GetAtt"][0]]
        absent = sorted(needed - _allowed_actions(role))
        if absent:
            missing[logical_id] = absent
    return missing


# ---------------------------------------------------------------- least privilege

# Concrete stand-ins for what the policies name through intrinsics, so IAM's `*` patterns can be matched.
STAND_IN_VALUES = {
    "AWS::Partition": "aws",
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::StackName": "mlops-dev",
    "AWS::URLSuffix": "amazonaws.com",
}
STAND_IN_BUCKETS = {
    "ArtifactBucket": "artifacts",
    "DataBucket": "data",
    "AccessLogBucket": "access-logs",
    "GovernanceBucket": "governance",
}
_SUB_VARIABLE = re.compile(r"\$\{([^}]+)\}")


def _pipeline_mapping() -> dict[str, Any]:
    from contract.project import PROJECT_ROOT
    from contract.template import read_template

    return dict(read_template(PROJECT_ROOT / "template.yaml")["Mappings"]["Pipeline"])


def _sub_variable_values(variables: Any) -> dict[str, str] | None:
    """The values of a list-form `Fn::Sub`'s variables: strings, or `Fn::FindInMap` into the Pipeline mapping."""
    if not isinstance(variables, dict):
        return None
    values = {}
    for name, value in variables.items():
        if isinstance(value, str):
            values[name] = value
        elif isinstance(value, dict) and isinstance(value.get("Fn::FindInMap"), list):
            mapping, section, key = value["Fn::FindInMap"]
            if mapping != "Pipeline":
                return None
            values[name] = str(_pipeline_mapping()[section][key])
        else:
            return None
    return values


def resolve_arn(value: Any) -> str | None:
    """A policy Resource (string, `Fn::Sub`, `Fn::GetAtt X.Arn` of a bucket) as an ARN pattern; None if unknown.

    A list-form `Fn::Sub` resolves when its variables are strings or values of the template's Pipeline mapping.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        logical_id, attribute = value["Fn::GetAtt"] if isinstance(value["Fn::GetAtt"], list) else (None, None)
        if attribute == "Arn" and logical_id in STAND_IN_BUCKETS:
            return f"arn:aws:s3:::{STAND_IN_BUCKETS[logical_id]}"
        return f"<{logical_id}.{attribute}>"
    if isinstance(value, dict) and "Fn::Sub" in value:
        text = value["Fn::Sub"]
        variables: dict[str, str] = {}
        if isinstance(text, list):
            resolved_variables = _sub_variable_values(text[1]) if len(text) == 2 else None
            if resolved_variables is None:
                return None
            text, variables = text[0], resolved_variables
        unresolved = []

        def stand_in(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return variables[name]
            if name in STAND_IN_VALUES:
                return STAND_IN_VALUES[name]
            bucket = name.removesuffix(".Arn")
            if name.endswith(".Arn") and bucket in STAND_IN_BUCKETS:
                return f"arn:aws:s3:::{STAND_IN_BUCKETS[bucket]}"
            unresolved.append(name)
            return match.group(0)

        resolved = _SUB_VARIABLE.sub(stand_in, text)
        return None if unresolved else resolved
    return None


def role_policy_statements(role: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every statement of a role's inline policies, each outcome of a conditional statement separately."""
    from mlops.checkov_checks.policy_documents import branches, statements

    for entry in role.get("Properties", {}).get("Policies", []):
        for policy in branches(entry):
            if isinstance(policy, dict):
                yield from statements(policy["PolicyDocument"])


def _grants(statement: dict[str, Any], action: str) -> bool:
    actions = statement.get("Action", [])
    granted = actions if isinstance(actions, list) else [actions]
    return any(fnmatch.fnmatchcase(action.lower(), g.lower()) for g in granted if isinstance(g, str))


def allowed_arn_patterns(role: dict[str, Any], action: str) -> list[str]:
    """The resource patterns on which a role's Allow statements grant `action` ("<unresolved>" for unknown ones)."""
    patterns = []
    for statement in role_policy_statements(role):
        if statement.get("Effect") != "Allow" or not _grants(statement, action):
            continue
        resources = statement.get("Resource", [])
        for resource in resources if isinstance(resources, list) else [resources]:
            patterns.append(resolve_arn(resource) or "<unresolved>")
    return patterns


def may(role: dict[str, Any], action: str, arn: str) -> bool:
    return any(fnmatch.fnmatchcase(arn, pattern) for pattern in allowed_arn_patterns(role, action))


def s3_access_problems(
    role_id: str,
    role: dict[str, Any],
    *,
    reads: list[str],
    writes: list[str],
    forbidden_reads: list[str],
    forbidden_writes: list[str],
) -> list[str]:
    """What `role` cannot read or write that it needs, and what it can read or write that it must not."""
    problems = []
    for arn in reads:
        if not may(role, "s3:GetObject", arn):
            problems.append(f"{role_id} cannot read {arn}")
    for arn in writes:
        if not may(role, "s3:PutObject", arn):
            problems.append(f"{role_id} cannot write {arn}")
    for arn in forbidden_reads:
        if may(role, "s3:GetObject", arn):
            problems.append(f"{role_id} may read {arn}")
    for arn in forbidden_writes:
        for action in ("s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"):
            if may(role, action, arn):
                problems.append(f"{role_id} may {action} {arn}")
    return problems
