"""Intrinsic functions' string literals as the States Language escapes them, and `States.Format` as AWS runs it.

The spec reserves `'`, `{`, `}` and `\\` inside an intrinsic's string literal: each is written with a backslash
before it to stand for itself (`'it\\'s'`, `'\\{literal\\}'`, `'a\\\\b'`). moto 5.2.5 keeps those backslashes in the
value, and formats `States.Format` with Python's `str.format`, so an escaped brace fails the execution with
"unexpected '{' in field name" or a KeyError, and `{0}` or `{{` mean what they mean to Python, not to AWS.

Here a string literal loses its escapes (`\\'` `\\{` `\\}` `\\\\` each become the character; moto's `\\n`, `\\t`,
`\\r` and `\\"` stay as it reads them) and remembers where its unescaped `{}` placeholders are, so
`States.Format` fills exactly those, and nothing else in its template is special. A template read from a path has
no escapes: its `{}` are the placeholders. A count of placeholders other than the number of values fails the state
with `States.IntrinsicFailure`, naming both.
"""

from __future__ import annotations

import json
from typing import Any, cast

from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
    FailureEvent,
    FailureEventException,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import StatesErrorNameType
from moto.stepfunctions.parser.asl.component.common.string.string_expression import StringIntrinsicFunction
from moto.stepfunctions.parser.asl.component.intrinsic.argument.argument import ArgumentLiteral
from moto.stepfunctions.parser.asl.component.intrinsic.function.statesfunction.generic.string_format import (
    StringFormat,
)
from moto.stepfunctions.parser.asl.eval.environment import Environment
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.stepfunctions.parser.asl.parse.intrinsic.intrinsic_parser import IntrinsicParser
from moto.stepfunctions.parser.asl.parse.intrinsic.preprocessor import Preprocessor
from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor as AslPreprocessor

from emulator.moto_patches import MotoPatches

# The spec's reserved characters, each standing for itself after a backslash.
_SPEC_ESCAPES = {"'": "'", "{": "{", "}": "}", "\\": "\\"}
# What moto's intrinsic preprocessor already read after a backslash; kept so that nothing it ran changes meaning.
_MOTO_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"'}
_CONTROL_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


class EscapedStringLiteral(ArgumentLiteral):
    """An intrinsic's string literal: its value with the escapes resolved, and the text between its placeholders."""

    def __init__(self, value: str, format_segments: list[str]) -> None:
        super().__init__(definition_value=value)
        self.format_segments = format_segments


def _escaped(following: str) -> str | None:
    """What a backslash and `following` stand for, or None when the backslash stands for itself (as moto reads it)."""
    if following in _SPEC_ESCAPES:
        return _SPEC_ESCAPES[following]
    if following in _MOTO_ESCAPES:
        return _MOTO_ESCAPES[following]
    return following if following.isalpha() else None


def read_string_literal(body: str) -> EscapedStringLiteral:
    """The literal between the quotes of `'...'`, read as the States Language escapes it."""
    value: list[str] = []
    segments: list[str] = []
    current: list[str] = []
    index = 0
    while index < len(body):
        char = body[index]
        following = body[index + 1] if index + 1 < len(body) else ""
        escaped = _escaped(following) if char == "\\" else None
        if escaped is not None:
            value.append(escaped)
            current.append(escaped)
            index += 2
        elif char == "{" and following == "}":
            value.append("{}")
            segments.append("".join(current))
            current = []
            index += 2
        else:
            value.append(char)
            current.append(char)
            index += 1
    segments.append("".join(current))
    return EscapedStringLiteral("".join(value), segments)


def state_failure(env: Environment, error: StatesErrorNameType, cause: str) -> FailureEventException:
    """What fails the current state with one of the spec's `States.*` errors and `cause`, as moto raises it."""
    return FailureEventException(
        failure_event=FailureEvent(
            env=env,
            error_name=StatesErrorName(typ=error),
            event_type=HistoryEventType.TaskFailed,
            event_details=cast(
                EventDetails, {"taskFailedEventDetails": TaskFailedEventDetails(error=error.to_name(), cause=cause)}
            ),
        )
    )


def _intrinsic_failure(env: Environment, cause: str) -> FailureEventException:
    return state_failure(env, StatesErrorNameType.StatesIntrinsicFailure, cause)


def _format_as_on_aws(self: StringFormat, env: Environment) -> None:
    self.argument_list.eval(env=env)
    arguments: list[Any] = env.stack.pop()
    template, values = arguments[0], arguments[1:]
    first = self.argument_list.arguments[0]
    if isinstance(first, EscapedStringLiteral):
        segments = first.format_segments
    elif isinstance(template, str):
        segments = template.split("{}")
    else:
        raise _intrinsic_failure(env, f"States.Format's first argument must be a string, got {template!r}")
    if len(segments) - 1 != len(values):
        raise _intrinsic_failure(
            env,
            f"States.Format's template {template!r} has {len(segments) - 1} placeholder(s) '{{}}' "
            f"but {len(values)} value(s) were given",
        )
    parts = [segments[0]]
    for value, segment in zip(values, segments[1:], strict=True):
        parts += [StringFormat._to_str_repr(value), segment]
    env.stack.append("".join(parts))


def _intrinsic_of_decoded_json_string(self: AslPreprocessor, ctx: Any) -> StringIntrinsicFunction:
    # moto hands the intrinsic parser the JSON token's raw text, escapes and all; AWS parses the decoded string.
    # Its intrinsic lexer takes no raw control characters: those go back as the escapes it reads (`\n` ...).
    derivation = json.loads(ctx.STRINGINTRINSICFUNC().getText())
    for control, escape in _CONTROL_ESCAPES.items():
        derivation = derivation.replace(control, escape)
    function, _ = IntrinsicParser.parse(derivation)
    return StringIntrinsicFunction(intrinsic_function_derivation=derivation, function=function)


def install_intrinsic_escapes(patches: MotoPatches) -> None:
    """String literals of every intrinsic read with the spec's escapes; `States.Format` fills only real placeholders."""

    def string_argument(self: Preprocessor, ctx: Any) -> EscapedStringLiteral:
        # The token is the quoted literal, quotes included.
        return read_string_literal(ctx.STRING().getText()[1:-1])

    patches.replace(AslPreprocessor, "visitString_intrinsic_function", _intrinsic_of_decoded_json_string)
    patches.replace(Preprocessor, "visitFunc_arg_string", string_argument)
    patches.replace(StringFormat, "_eval_body", _format_as_on_aws)
