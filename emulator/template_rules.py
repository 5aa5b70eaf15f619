"""A template's `Rules`, checked before the twin deploys it, as CloudFormation checks them before it creates a stack.

moto's CloudFormation ignores `Rules`, so a stack CloudFormation refuses (prod with auto approval, prod with one
endpoint instance) deployed on the twin. Here each rule whose `RuleCondition` holds has its `Assertions` evaluated
with the stack's parameter values; the first that fails refuses the deployment with its `AssertDescription`, the
message CloudFormation answers with. The rule functions evaluated: `Ref` (parameters and pseudo parameters),
`Fn::Equals`, `Fn::Not`, `Fn::And`, `Fn::Or`, `Fn::Contains`, `Fn::EachMemberEquals`, `Fn::EachMemberIn`.
`Fn::RefAll`, `Fn::ValueOf` and `Fn::ValueOfAll` read the account's resources of an AWS-specific parameter type; a
rule using one is refused, naming it, rather than passed unchecked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class TemplateRuleError(Exception):
    """A rule refused the parameters (the message is CloudFormation's), or the twin cannot evaluate a rule."""


def parameter_values(template: Mapping[str, Any], overrides: Mapping[str, str]) -> dict[str, Any]:
    """Each declared parameter's value (override, else default), lists for CommaDelimitedList and List<...> types."""
    values: dict[str, Any] = {}
    for name, declaration in (template.get("Parameters") or {}).items():
        if name in overrides:
            value: Any = overrides[name]
        elif "Default" in declaration:
            value = declaration["Default"]
        else:
            continue
        kind = str(declaration.get("Type", "String"))
        if kind == "CommaDelimitedList" or kind.startswith("List<"):
            value = [item.strip() for item in value.split(",")] if isinstance(value, str) else list(value)
        else:
            value = str(value)
        values[name] = value
    return values


def check_rules(template: Mapping[str, Any], parameters: Mapping[str, Any], pseudo: Mapping[str, str]) -> None:
    """Raise `TemplateRuleError` with the failing assertion's description; return when every rule holds."""
    known = {**pseudo, **parameters}
    for rule_name, rule in (template.get("Rules") or {}).items():
        condition = rule.get("RuleCondition")
        if condition is not None and not _truth(_evaluate(condition, known, rule_name), rule_name):
            continue
        for assertion in rule.get("Assertions") or []:
            if not _truth(_evaluate(assertion["Assert"], known, rule_name), rule_name):
                description = assertion.get("AssertDescription") or f"Template rule {rule_name} failed"
                raise TemplateRuleError(" ".join(str(description).split()))


def _truth(value: Any, rule_name: str) -> bool:
    if not isinstance(value, bool):
        raise TemplateRuleError(f"Template rule {rule_name}: a condition or assertion evaluated to {value!r}")
    return value


def _evaluate(node: Any, known: Mapping[str, Any], rule_name: str) -> Any:
    if isinstance(node, list):
        return [_evaluate(item, known, rule_name) for item in node]
    if not isinstance(node, dict):
        return node
    if len(node) != 1:
        raise TemplateRuleError(f"Template rule {rule_name}: {node!r} is not one rule function")
    ((function, argument),) = node.items()
    if function == "Ref":
        if argument not in known:
            raise TemplateRuleError(f"Template rule {rule_name}: Ref {argument} names no parameter with a value")
        return known[argument]
    if function in _UNEVALUATED:
        raise TemplateRuleError(
            f"Template rule {rule_name} uses {function}, which reads the account's resources: the local twin "
            "does not evaluate it (CloudFormation would)"
        )
    operation = _FUNCTIONS.get(function)
    if operation is None:
        raise TemplateRuleError(f"Template rule {rule_name}: {function} is not a rule function")
    return operation(_evaluate(argument, known, rule_name))


def _contains(arguments: list[Any]) -> bool:
    values, value = arguments
    return value in values


def _each_member_equals(arguments: list[Any]) -> bool:
    values, value = arguments
    return all(item == value for item in values)


def _each_member_in(arguments: list[Any]) -> bool:
    values, allowed = arguments
    return all(item in allowed for item in values)


_FUNCTIONS = {
    "Fn::Equals": lambda arguments: arguments[0] == arguments[1],
    "Fn::Not": lambda arguments: not arguments[0],
    "Fn::And": all,
    "Fn::Or": any,
    "Fn::Contains": _contains,
    "Fn::EachMemberEquals": _each_member_equals,
    "Fn::EachMemberIn": _each_member_in,
}
_UNEVALUATED = ("Fn::RefAll", "Fn::ValueOf", "Fn::ValueOfAll")
