"""Readers of policy documents as checkov gives them: statements through `Fn::If`, actions and conditions.

Shared by the policy checks of this folder; it defines no check itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

# checkov's parser adds these to every mapping it reads, for its report's line numbers.
_LINE_MARKERS = frozenset({"__startline__", "__endline__"})


def keys(value: dict[str, Any]) -> set[str]:
    """A mapping's keys less checkov's line markers."""
    return set(value) - _LINE_MARKERS


def if_outcomes(value: Any) -> tuple[Any, Any] | None:
    """(outcome when the condition holds, outcome otherwise) of an `Fn::If`; None for anything else."""
    if isinstance(value, dict) and keys(value) == {"Fn::If"} and len(value["Fn::If"]) == 3:
        return value["Fn::If"][1], value["Fn::If"][2]
    return None


def branches(value: Any) -> Iterator[Any]:
    """Both outcomes of an `Fn::If` (nested ones too), nothing for `AWS::NoValue`, else the value itself."""
    outcomes = if_outcomes(value)
    if outcomes:
        for outcome in outcomes:
            yield from branches(outcome)
    elif isinstance(value, dict) and keys(value) == {"Ref"} and value["Ref"] == "AWS::NoValue":
        return
    else:
        yield value


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statements(document: Any) -> Iterator[dict[str, Any]]:
    """Every statement of a policy document, each outcome of a conditional statement separately."""
    for branch in branches(document):
        if not isinstance(branch, dict):
            continue
        for entry in as_list(branch.get("Statement", [])):
            for statement in branches(entry):
                if isinstance(statement, dict):
                    yield statement


def actions(statement: dict[str, Any]) -> set[str]:
    return {action.lower() for action in as_list(statement.get("Action", [])) if isinstance(action, str)}


def condition_keys(statement: dict[str, Any]) -> dict[str, set[str]]:
    """Condition key (lower case) -> the operators it appears under, for every outcome of a conditional block."""
    found: dict[str, set[str]] = {}
    for condition in branches(statement.get("Condition") or {}):
        if not isinstance(condition, dict):
            continue
        for operator in keys(condition):
            for block in branches(condition[operator]):
                if isinstance(block, dict):
                    for key in keys(block):
                        found.setdefault(key.lower(), set()).add(operator)
    return found


def identity_documents(properties: dict[str, Any]) -> list[Any]:
    """The permission documents of a role (each of its `Policies`) or of a policy resource (`PolicyDocument`)."""
    documents = [properties.get("PolicyDocument")]
    for entry in as_list(properties.get("Policies") or []):
        for policy in branches(entry):
            if isinstance(policy, dict):
                documents.append(policy.get("PolicyDocument"))
    return [document for document in documents if document]
