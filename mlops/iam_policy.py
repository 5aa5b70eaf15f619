"""Finds policy statements that allow every action (`*` or `service:*`) in template.yaml as CloudFormation gets it.

The SAM transform generates roles (one per function, with the policies of its `Policies` and of its event
sources), so the walk runs on the transformed template, made offline by `sam_transformed_template`. It covers
identity policies (roles, policies, managed policies) and resource policies (key, bucket, topic and queue
policies). Only `Allow` statements count: a `Deny` on `s3:*` is a guard, not a grant. `NotAction` in an
`Allow` grants everything but the listed actions, so it counts as a wildcard too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contract.project import PROJECT_ROOT
from contract.sam_offline import StaticManagedPolicyLoader

TEMPLATE_PATH = PROJECT_ROOT / "template.yaml"

# Where each resource type keeps its policy documents: (property, list of named policies or a single document).
_POLICY_LISTS = {"AWS::IAM::Role": "Policies", "AWS::IAM::User": "Policies", "AWS::IAM::Group": "Policies"}
_POLICY_DOCUMENTS = {
    "AWS::IAM::Role": "AssumeRolePolicyDocument",
    "AWS::IAM::Policy": "PolicyDocument",
    "AWS::IAM::ManagedPolicy": "PolicyDocument",
    "AWS::KMS::Key": "KeyPolicy",
    "AWS::S3::BucketPolicy": "PolicyDocument",
    "AWS::SNS::TopicPolicy": "PolicyDocument",
    "AWS::SQS::QueuePolicy": "PolicyDocument",
}

# `sam package` replaces local code paths with S3 URIs before the transform; offline, any S3 URI does.
_PLACEHOLDER_CODE_URI = "s3://offline-transform/code.zip"


@dataclass(frozen=True)
class WildcardGrant:
    """One Allow statement granting every action of a service (or of all services)."""

    resource: str
    document: str
    statement: str
    actions: tuple[str, ...]

    def __str__(self) -> str:
        return (
            f"{self.resource} {self.document} statement {self.statement}: allows {', '.join(self.actions)}; "
            "list the actions the resource needs instead"
        )


def _inline_local_paths(template: dict[str, Any], project_root: Path) -> None:
    """Stands in S3 URIs for code paths and inlines each state machine's ASL file as its Definition."""
    function_globals = template.get("Globals", {}).get("Function", {})
    if isinstance(function_globals.get("CodeUri"), str):
        function_globals["CodeUri"] = _PLACEHOLDER_CODE_URI
    for resource in template.get("Resources", {}).values():
        properties = resource.get("Properties", {})
        if isinstance(properties.get("CodeUri"), str):
            properties["CodeUri"] = _PLACEHOLDER_CODE_URI
        if isinstance(properties.get("ContentUri"), str):
            properties["ContentUri"] = _PLACEHOLDER_CODE_URI
        definition_uri = properties.get("DefinitionUri")
        if isinstance(definition_uri, str) and not definition_uri.startswith("s3://"):
            properties["Definition"] = json.loads((project_root / definition_uri).read_text(encoding="utf-8"))
            del properties["DefinitionUri"]


def sam_transformed_template(
    template_path: Path = TEMPLATE_PATH,
    *,
    parameter_values: dict[str, Any] | None = None,
    passthrough_metadata: bool = True,
) -> dict[str, Any]:
    """template.yaml after the SAM transform, offline: no credentials, no network, ASL files inlined."""
    from samtranslator.translator.transform import transform
    from samtranslator.yaml_helper import yaml_parse

    # The transform reads the region for ARNs it builds; any region gives the same structure.
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    template = yaml_parse(template_path.read_text(encoding="utf-8"))
    _inline_local_paths(template, template_path.parent)
    return transform(
        template,
        parameter_values or {},
        StaticManagedPolicyLoader(),
        passthrough_metadata=passthrough_metadata,
    )


def _branches(value: Any) -> Iterator[Any]:
    """Both outcomes of an `Fn::If` (a statement or document may be conditional), else the value itself."""
    if isinstance(value, dict) and set(value) == {"Fn::If"}:
        _, when_true, when_false = value["Fn::If"]
        yield from _branches(when_true)
        yield from _branches(when_false)
    elif isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] == "AWS::NoValue":
        return
    else:
        yield value


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _wildcards_in_document(resource: str, document_name: str, document: Any) -> Iterator[WildcardGrant]:
    for branch in _branches(document):
        if not isinstance(branch, dict):
            continue
        for index, statement in enumerate(_as_list(branch.get("Statement", []))):
            for stmt in _branches(statement):
                if not isinstance(stmt, dict) or stmt.get("Effect") != "Allow":
                    continue
                label = str(stmt.get("Sid") or f"#{index}")
                if "NotAction" in stmt:
                    yield WildcardGrant(resource, document_name, label, ("NotAction (everything but the list)",))
                actions = tuple(
                    action
                    for action in _as_list(stmt.get("Action", []))
                    if isinstance(action, str) and (action == "*" or action.endswith(":*"))
                )
                if actions:
                    yield WildcardGrant(resource, document_name, label, actions)


def wildcard_grants(template: dict[str, Any]) -> list[WildcardGrant]:
    """Every Allow statement of the (transformed) template that grants a whole service or everything."""
    grants: list[WildcardGrant] = []
    for logical_id, resource in template.get("Resources", {}).items():
        resource_type = resource.get("Type", "")
        properties = resource.get("Properties", {})
        document_property = _POLICY_DOCUMENTS.get(resource_type)
        if document_property and document_property in properties:
            grants.extend(_wildcards_in_document(logical_id, document_property, properties[document_property]))
        list_property = _POLICY_LISTS.get(resource_type)
        for entry in _as_list(properties.get(list_property, [])) if list_property else []:
            for policy in _branches(entry):
                if isinstance(policy, dict):
                    name = f"{list_property}[{policy.get('PolicyName', '?')}]"
                    grants.extend(_wildcards_in_document(logical_id, name, policy.get("PolicyDocument")))
    return grants


def check_template(template_path: Path = TEMPLATE_PATH) -> list[str]:
    """One line per wildcard grant in the deployed form of `template_path`; empty when there is none."""
    template = sam_transformed_template(template_path)
    return [str(grant) for grant in wildcard_grants(template)]
