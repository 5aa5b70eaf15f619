"""Small readers of ASL dicts for the workflow tests: tasks, transitions, placeholders."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from mlops.asl_policy import strings_in

PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9]+)\}")


def tasks(definition: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in definition["States"].items():
        if state["Type"] == "Task":
            yield name, state


def path_from(definition: dict[str, Any], start: str, stop_at_type: str = "Choice") -> list[str]:
    """State names from `start` following `Next` until a state of `stop_at_type` or an end."""
    names = [start]
    state = definition["States"][start]
    while "Next" in state and state["Type"] != stop_at_type:
        names.append(state["Next"])
        state = definition["States"][state["Next"]]
    return names


def choice_targets(state: dict[str, Any]) -> list[str]:
    return [rule["Next"] for rule in state["Choices"]] + [state["Default"]]


def placeholders(definition: dict[str, Any]) -> set[str]:
    return {name for text in strings_in(definition) for name in PLACEHOLDER.findall(text)}


def execution_scoped_name(expression: str, execution_name: str) -> str:
    """Evaluates `States.Format('{}-<suffix>', $$.Execution.Name)` for a given execution name."""
    match = re.fullmatch(r"States\.Format\('\{\}-([A-Za-z0-9-]+)', \$\$\.Execution\.Name\)", expression)
    assert match, f"not an execution-scoped name: {expression}"
    return f"{execution_name}-{match[1]}"
