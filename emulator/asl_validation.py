"""CreateStateMachine's and UpdateStateMachine's checks of a definition, with AWS's error code and message format.

moto 5.2.5 only runs its ANTLR parser over a definition: a `Next` naming no state, a `StartAt` naming no state, a
state nothing reaches, a workflow with no terminal state, a `States.ALL` that is not alone and last all pass, and
the execution later fails with a message naming nothing (or loops). Its parser's own errors reach boto3 with an
empty error code. Here the definition is checked first and refused with `InvalidDefinition` and AWS's message:

    Invalid State Machine Definition: 'CODE: message at /path, CODE: message at /path'

Codes and messages confirmed from AWS's answers: `MISSING_TRANSITION_TARGET: Missing 'Next' target: X at
/States/Y/Next` (the word is `Next` for every transition field, as on AWS), `MISSING_TRANSITION_TARGET: State "X"
is not reachable. at /States/X`, `MISSING_END_STATE: Workflow has no terminal state at null`, `SCHEMA_VALIDATION_FAILED:
Field 'TimeoutSeconds' is not supported at /States/X`. The wording of the other SCHEMA_VALIDATION_FAILED messages
here is the twin's, in AWS's format (docs/local-twin.md lists them).

The same pass refuses what the twin cannot run although AWS would (`TwinRefusal`, also `InvalidDefinition`, naming
the state and the feature): a refusal at creation instead of an execution that fails or differs later.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import jsonata
from moto.core.exceptions import AWSError
from moto.stepfunctions.parser.api import InvalidDefinition as MotoParserInvalidDefinition
from moto.stepfunctions.parser.models import StepFunctionsParserBackend

from emulator.asl_verdicts import AcceptedDefinitions
from emulator.moto_patches import MotoPatches

STATE_TYPES = ("Task", "Pass", "Choice", "Wait", "Succeed", "Fail", "Parallel", "Map")
_TERMINAL_TYPES = ("Succeed", "Fail")
# Fields a state of a type may not carry (AWS: "Field 'X' is not supported").
_UNSUPPORTED_FIELDS = {
    "Pass": ("Retry", "Catch", "TimeoutSeconds", "HeartbeatSeconds", "Resource"),
    "Wait": ("Retry", "Catch", "TimeoutSeconds", "HeartbeatSeconds", "Resource"),
    "Choice": ("Retry", "Catch", "TimeoutSeconds", "HeartbeatSeconds", "Resource", "End", "Next"),
    "Succeed": ("Retry", "Catch", "TimeoutSeconds", "HeartbeatSeconds", "Resource", "End", "Next"),
    "Fail": ("Retry", "Catch", "TimeoutSeconds", "HeartbeatSeconds", "Resource", "End", "Next"),
    "Parallel": ("TimeoutSeconds", "HeartbeatSeconds", "Resource"),
    "Map": ("TimeoutSeconds", "HeartbeatSeconds", "Resource"),
}
STATES_ALL = "States.ALL"


class InvalidDefinition(AWSError):
    """Step Functions' InvalidDefinition (moto's parser declares the code where its serializer never reads it)."""

    TYPE = "InvalidDefinition"
    STATUS = 400


@dataclass(frozen=True)
class Diagnostic:
    code: str
    message: str
    location: str | None

    def __str__(self) -> str:
        return f"{self.code}: {self.message} at {self.location if self.location is not None else 'null'}"


def invalid_definition(diagnostics: list[Diagnostic]) -> InvalidDefinition:
    return InvalidDefinition(f"Invalid State Machine Definition: '{', '.join(map(str, diagnostics))}'")


# What the twin refuses in a state although AWS runs it: (state path, state) -> the feature, or None.
RefusalCheck = Callable[[str, str, dict[str, Any]], str | None]


def _schema(message: str, location: str) -> Diagnostic:
    return Diagnostic("SCHEMA_VALIDATION_FAILED", message, location)


def _transitions(state: dict[str, Any], path: str) -> Iterator[tuple[Any, str]]:
    """Each transition target of a state, with where it is written."""
    if "Next" in state:
        yield state["Next"], f"{path}/Next"
    if state.get("Type") == "Choice":
        for index, rule in enumerate(state.get("Choices") or []):
            if isinstance(rule, dict) and "Next" in rule:
                yield rule["Next"], f"{path}/Choices[{index}]/Next"
        if "Default" in state:
            yield state["Default"], f"{path}/Default"
    for index, catcher in enumerate(state.get("Catch") or []):
        if isinstance(catcher, dict) and "Next" in catcher:
            yield catcher["Next"], f"{path}/Catch[{index}]/Next"


def _check_error_lists(state: dict[str, Any], path: str, field_name: str) -> Iterator[Diagnostic]:
    entries = state.get(field_name)
    if entries is None:
        return
    if not isinstance(entries, list):
        yield _schema(f"Field '{field_name}' must be an array", f"{path}/{field_name}")
        return
    for index, entry in enumerate(entries):
        where = f"{path}/{field_name}[{index}]/ErrorEquals"
        errors = entry.get("ErrorEquals") if isinstance(entry, dict) else None
        if not isinstance(errors, list) or not errors:
            yield _schema("These fields are required: [ErrorEquals]", f"{path}/{field_name}[{index}]")
            continue
        if STATES_ALL in errors and len(errors) > 1:
            yield _schema(f"'{STATES_ALL}' must appear alone in 'ErrorEquals'", where)
        if STATES_ALL in errors and index != len(entries) - 1:
            kind = "Retrier" if field_name == "Retry" else "Catcher"
            yield _schema(f"'{STATES_ALL}' must appear in the last {kind} of '{field_name}'", where)


class _Checker:
    def __init__(self, refusals: list[RefusalCheck], language: str) -> None:
        self.diagnostics: list[Diagnostic] = []
        self._refusals = refusals
        # The machine's QueryLanguage: a state may override it for itself; the states of its branches and processors
        # inherit the machine's, not their container's (as AWS reads them).
        self._language = language

    def machine(self, definition: Any, path: str) -> None:
        """One scope: the whole machine, a Parallel branch or a Map's processor (`path` "" is the top)."""
        if not isinstance(definition, dict):
            self.diagnostics.append(_schema("Value must be an object", path or "/"))
            return
        missing = [name for name in ("StartAt", "States") if name not in definition]
        if missing:
            self.diagnostics.append(_schema(f"These fields are required: [{', '.join(missing)}]", path or "/"))
            return
        states = definition["States"]
        if not isinstance(states, dict) or not states:
            self.diagnostics.append(_schema("Field 'States' must be a non-empty object", f"{path}/States"))
            return
        transitions: list[Diagnostic] = []
        start = definition["StartAt"]
        if start not in states:
            transitions.append(
                Diagnostic("MISSING_TRANSITION_TARGET", f"Missing 'Next' target: {start}", f"{path}/StartAt")
            )
        has_terminal = False
        for name, state in states.items():
            state_path = f"{path}/States/{name}"
            if not isinstance(state, dict):
                self.diagnostics.append(_schema("Value must be an object", state_path))
                continue
            has_terminal |= self._state(name, state, state_path, state.get("QueryLanguage", self._language))
            for target, where in _transitions(state, state_path):
                if target not in states:
                    transitions.append(
                        Diagnostic("MISSING_TRANSITION_TARGET", f"Missing 'Next' target: {target}", where)
                    )
        self.diagnostics += transitions
        if not has_terminal:
            self.diagnostics.append(Diagnostic("MISSING_END_STATE", "Workflow has no terminal state", None))
        elif start in states:
            # AWS reports unreachable states only when the workflow can end at all.
            for name in _unreachable(start, states):
                self.diagnostics.append(
                    Diagnostic(
                        "MISSING_TRANSITION_TARGET", f'State "{name}" is not reachable.', f"{path}/States/{name}"
                    )
                )

    def _state(self, name: str, state: dict[str, Any], path: str, language: str) -> bool:
        """Checks one state; whether it can end its scope."""
        state_type = state.get("Type")
        if state_type not in STATE_TYPES:
            if state_type is None:
                self.diagnostics.append(_schema("These fields are required: [Type]", path))
            else:
                self.diagnostics.append(
                    _schema(
                        f"Value {json.dumps(state_type)} is not a state type: {', '.join(STATE_TYPES)}", f"{path}/Type"
                    )
                )
            return True
        for field_name in _UNSUPPORTED_FIELDS.get(state_type, ()):
            if field_name in state:
                self.diagnostics.append(_schema(f"Field '{field_name}' is not supported", path))
        if state_type not in ("Choice", *_TERMINAL_TYPES):
            if state.get("End") is True and "Next" in state:
                self.diagnostics.append(_schema("There should only be one of the following fields: [Next, End]", path))
            elif state.get("End") is not True and "Next" not in state:
                self.diagnostics.append(_schema("These fields are required: [Next | End]", path))
        if state_type == "Task" and "Resource" not in state:
            self.diagnostics.append(_schema("These fields are required: [Resource]", path))
        if state_type == "Choice" and not state.get("Choices"):
            self.diagnostics.append(_schema("These fields are required: [Choices]", path))
        for field_name in ("Retry", "Catch"):
            self.diagnostics += _check_error_lists(state, path, field_name)
        if language == "JSONata":
            self.diagnostics += _jsonata_parse_errors(state, path)
        for check in self._refusals:
            feature = check(name, path, state)
            if feature is not None:
                self.diagnostics.append(_twin_refusal(name, feature, path))
        if state_type == "Parallel":
            for index, branch in enumerate(state.get("Branches") or []):
                self.machine(branch, f"{path}/Branches[{index}]")
        if state_type == "Map":
            processor_field = "ItemProcessor" if "ItemProcessor" in state else "Iterator"
            if processor_field in state:
                self.machine(state[processor_field], f"{path}/{processor_field}")
        return state_type in _TERMINAL_TYPES or state.get("End") is True


# A state's own fields; what its branches and processors hold is checked with their states.
_NESTED_MACHINES = ("Branches", "ItemProcessor", "Iterator")


def _jsonata_parse_errors(value: Any, path: str, top: bool = True) -> Iterator[Diagnostic]:
    """Each `{% expression %}` of a JSONata state that does not parse (AWS refuses those at creation too)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not (top and key in _NESTED_MACHINES):
                yield from _jsonata_parse_errors(item, f"{path}/{key}", top=False)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _jsonata_parse_errors(item, f"{path}[{index}]", top=False)
    elif isinstance(value, str) and value.startswith("{%") and value.endswith("%}"):
        try:
            jsonata.Jsonata(value[2:-2])
        except Exception as error:
            yield _schema(f"The JSONata expression '{value[2:-2].strip()}' does not parse: {error}", path)


def _unreachable(start: str, states: dict[str, Any]) -> list[str]:
    seen, frontier = {start}, [start]
    while frontier:
        state = states.get(frontier.pop())
        if not isinstance(state, dict):
            continue
        for target, _ in _transitions(state, ""):
            if target in states and target not in seen:
                seen.add(target)
                frontier.append(target)
    return [name for name in states if name not in seen]


TWIN_REFUSAL = "UNSUPPORTED_BY_LOCAL_TWIN"


def _twin_refusal(state_name: str, feature: str, path: str) -> Diagnostic:
    return Diagnostic(
        TWIN_REFUSAL,
        f"State {state_name!r} uses {feature}, which the local twin does not run (AWS would accept it): "
        "change the state machine, or see docs/local-twin.md",
        path,
    )


def definition_diagnostics(definition_text: str, refusals: list[RefusalCheck] | None = None) -> list[Diagnostic]:
    """Every diagnostic for a definition, in AWS's order (schema, then transitions, then reachability)."""
    try:
        definition = json.loads(definition_text)
    except (TypeError, ValueError) as error:
        return [Diagnostic("INVALID_JSON_DESCRIPTION", str(error), None)]
    language = definition.get("QueryLanguage", "JSONPath") if isinstance(definition, dict) else "JSONPath"
    checker = _Checker(refusals or [], language)
    checker.machine(definition, "")
    return checker.diagnostics


def validate_definition(definition_text: str, refusals: list[RefusalCheck] | None = None) -> None:
    """Raise `InvalidDefinition` with AWS's message when the definition has any diagnostic."""
    diagnostics = definition_diagnostics(definition_text, refusals)
    if diagnostics:
        raise invalid_definition(diagnostics)


def map_refusal(state_name: str, path: str, state: dict[str, Any]) -> str | None:
    """The distributed Map features moto's engine does not run as AWS does.

    `ItemBatcher` and EXPRESS child executions do not run at all; `ResultWriter` writes a manifest that lists no result
    files and drops the results (moto's "TODO: results"), where AWS writes them to S3.
    """
    if state.get("Type") != "Map":
        return None
    if "ItemBatcher" in state:
        return "the distributed Map's 'ItemBatcher'"
    if "ResultWriter" in state:
        return "the distributed Map's 'ResultWriter' (the engine writes a manifest without the results)"
    processor = state.get("ItemProcessor")
    config = processor.get("ProcessorConfig") if isinstance(processor, dict) else None
    if isinstance(config, dict) and config.get("ExecutionType") == "EXPRESS":
        return "a distributed Map with 'ExecutionType': 'EXPRESS' child workflows"
    return None


def install_definition_checks(
    patches: MotoPatches,
    refusals: list[RefusalCheck],
    accepted: AcceptedDefinitions | None = None,
    parse_later: Callable[[str], Any] | None = None,
) -> None:
    """CreateStateMachine and UpdateStateMachine check definitions as AWS does, then refuse what the twin cannot run.

    `refusals` are the twin's own checks (the engine's integrations, `map_refusal`), each given every state. With
    `accepted`, a definition moto's parser accepted before is not parsed again here but handed to `parse_later`.
    """
    original = StepFunctionsParserBackend.__dict__["_validate_definition"].__func__

    def validate(definition: str) -> None:
        validate_definition(definition, refusals)
        if accepted is not None and parse_later is not None and accepted.accepted(definition):
            parse_later(definition)
            return
        try:
            original(definition)
        except MotoParserInvalidDefinition as error:
            # moto's exception carries its code where its serializer never reads it: the client saw an empty code.
            parser_message = " ".join(str(error.message).split())
            raise invalid_definition([Diagnostic("SCHEMA_VALIDATION_FAILED", parser_message, None)]) from error
        if accepted is not None:
            accepted.remember(definition)

    patches.replace(StepFunctionsParserBackend, "_validate_definition", staticmethod(validate))
