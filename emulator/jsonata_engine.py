"""JSONata (`QueryLanguage: JSONata`) and `Assign` variables on moto's engine, evaluated by `jsonata-python`.

moto 5.2.5 carries LocalStack's JSONata support but not its evaluator (LocalStack runs the Java implementation in a
JVM): `eval_jsonata_expression` calls a function that is never set, so every JSONata field and every `Assign`
failed with `TypeError('NoneType' object is not callable)`. `jsonata-python` (pinned in pyproject.toml) is a port of
that same Java implementation (dashjoin's jsonata-java), so it reads expressions as AWS's engine does.

Also corrected on the way:
- moto writes a string variable into the expression as `"<value>"` without escaping it, so a value holding a quote,
  a backslash or a newline broke the expression or changed it; here every value is written as JSON, which is a
  valid JSONata literal.
- `Assign`'s string literals reached the variables with their JSON escapes still in them (`"a\\"b"` gave
  `a\\"b`): they are decoded as JSON, as every other literal of the definition is.
- an expression that fails to parse or evaluate fails the state with `States.QueryEvaluationError` and the
  evaluator's message, as on AWS, instead of a `States.Runtime` with a Python exception.
- `$now()` and `$millis()` read the twin's clock (the evaluator read the wall clock), so they agree with
  `$states.context.State.EnteredTime` and with Wait states on a fast clock.
"""

from __future__ import annotations

import json
import types
from typing import Any

import jsonata
from jsonata import jsonata as jsonata_module
from jsonata import timebox as jsonata_timebox
from moto.stepfunctions.parser.asl.component.common.assign.assign_template_value_terminal import (
    AssignTemplateValueTerminalLit,
)
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
    FailureEventException,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import StatesErrorNameType
from moto.stepfunctions.parser.asl.component.common.string.string_expression import (
    StringJSONata,
    StringVariableSample,
)
from moto.stepfunctions.parser.asl.eval import states as states_module
from moto.stepfunctions.parser.asl.eval import variable_store as variable_store_module
from moto.stepfunctions.parser.asl.eval.environment import Environment
from moto.stepfunctions.parser.asl.jsonata import jsonata as moto_jsonata
from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor
from moto.stepfunctions.parser.asl.utils.encoding import to_json_str

from emulator.clock import Clock
from emulator.intrinsics import state_failure
from emulator.moto_patches import MotoPatches


class _JsonataFailed(Exception):
    """The evaluator refused an expression: its message, for the state's States.QueryEvaluationError."""


def _evaluate(expression: str) -> Any:
    try:
        return jsonata.Jsonata(expression).evaluate(None)
    except Exception as error:
        raise _JsonataFailed(str(error)) from error


def _variable_declarations(bindings: dict[str, Any]) -> str:
    # `$name:=<JSON>;` for each binding; JSON (dates as ISO strings) is a JSONata literal, quotes escaped.
    return "".join(f"{name}:={to_json_str(value, separators=(',', ':'))};" for name, value in bindings.items())


def _query_evaluation_error(env: Environment, expression: str, message: str) -> FailureEventException:
    cause = f"The JSONata expression '{expression}' could not be evaluated: {message}"
    return state_failure(env, StatesErrorNameType.StatesQueryEvaluationError, cause)


def _assign_string_literal(self: Preprocessor, ctx: Any) -> AssignTemplateValueTerminalLit:
    return AssignTemplateValueTerminalLit(value=json.loads(ctx.string_literal().getText()))


def _evaluation_time_from(clock: Clock) -> types.SimpleNamespace:
    """jsonata-python's `timebox` module as its evaluator sees it, with the evaluation's time read from `clock`.

    `Jsonata.evaluate` takes `timebox.Timebox.current_milli_time()` as the time `$now()` and `$millis()` return; the
    subclass answers with the twin's clock. Evaluation time limits stay on the wall clock: `Timebox` itself (in its
    own module) still reads the real time.
    """

    class ClockTimebox(jsonata_timebox.Timebox):
        @staticmethod
        def current_milli_time() -> int:
            return round(clock.now().timestamp() * 1000)

    return types.SimpleNamespace(Timebox=ClockTimebox)


def install_jsonata(patches: MotoPatches, clock: Clock | None = None) -> None:
    """Give moto's engine a JSONata evaluator, JSON-encoded variables and AWS's error for a failing expression.

    With `clock`, `$now()` and `$millis()` read it, as every other time of the engine does.
    """
    patches.replace(moto_jsonata, "_eval_jsonata", _evaluate)
    if clock is not None:
        patches.replace(jsonata_module, "timebox", _evaluation_time_from(clock))
    # Each module imported the encoder by name.
    for module in (moto_jsonata, states_module, variable_store_module):
        patches.replace(module, "encode_jsonata_variable_declarations", _variable_declarations)
    for expression_class in (StringJSONata, StringVariableSample):
        original = expression_class.__dict__["_eval_body"]

        def eval_failing_as_on_aws(self: Any, env: Environment, _original: Any = original) -> None:
            try:
                _original(self, env)
            except _JsonataFailed as failure:
                raise _query_evaluation_error(env, self.expression, str(failure)) from failure

        patches.replace(expression_class, "_eval_body", eval_failing_as_on_aws)
    patches.replace(Preprocessor, "visitAssign_template_value_terminal_string_literal", _assign_string_literal)
