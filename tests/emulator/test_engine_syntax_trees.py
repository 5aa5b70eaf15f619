"""The engine parses each ASL definition once, and every execution still gets its own program."""

from __future__ import annotations

import json
from typing import Any

import pytest
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser, ASLParserException

DEFINITION = json.dumps(
    {
        "StartAt": "Count",
        "States": {
            # A Parallel, so that the state carries a retrier (per-execution state) where AWS allows one.
            "Count": {
                "Type": "Parallel",
                "Branches": [
                    {
                        "StartAt": "Length",
                        "States": {
                            "Length": {
                                "Type": "Pass",
                                "Parameters": {"seen.$": "States.ArrayLength($.items)"},
                                "End": True,
                            }
                        },
                    }
                ],
                "OutputPath": "$[0]",
                "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 2}],
                "End": True,
            }
        },
    }
)


def test_a_definition_is_parsed_once_and_each_caller_gets_its_own_program(runtime: Any) -> None:
    first_program, first_tree = AmazonStateLanguageParser.parse(DEFINITION)
    second_program, second_tree = AmazonStateLanguageParser.parse(DEFINITION)

    assert second_tree is first_tree
    assert second_program is not first_program
    assert second_program.states.states["Count"] is not first_program.states.states["Count"]


def test_a_definition_with_syntax_errors_fails_every_time(runtime: Any) -> None:
    for _ in range(2):
        with pytest.raises(ASLParserException):
            AmazonStateLanguageParser.parse('{"StartAt": "Missing", "States": {')


def test_executions_of_one_definition_run_independently(runtime: Any) -> None:
    first = runtime.run(json.loads(DEFINITION), {"items": [1, 2]}, name="count-two")
    second = runtime.run(json.loads(DEFINITION), {"items": [1, 2, 3]}, name="count-three")

    assert (first.status, first.output) == ("SUCCEEDED", {"seen": 2})
    assert (second.status, second.output) == ("SUCCEEDED", {"seen": 3})
