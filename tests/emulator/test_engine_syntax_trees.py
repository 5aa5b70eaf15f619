"""The engine parses each ASL definition once, and every execution still gets its own program."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.stepfunctions.parser import models as moto_parser_models
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser, ASLParserException

from emulator.asl_verdicts import AcceptedDefinitions
from emulator.engine import install_local_integrations, uninstall_local_integrations
from emulator.syntax_tree_cache import SyntaxTreeCache

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


def test_a_parse_under_way_is_awaited_not_repeated(monkeypatch: pytest.MonkeyPatch) -> None:
    parses: list[str] = []
    real_parse = SyntaxTreeCache._syntax_tree

    def slow_parse(definition: str) -> Any:
        parses.append(definition)
        time.sleep(0.3)
        return real_parse(definition)

    monkeypatch.setattr(SyntaxTreeCache, "_syntax_tree", staticmethod(slow_parse))
    cache = SyntaxTreeCache(4)

    warming = cache.warm(DEFINITION)
    _program, tree = cache.parse(DEFINITION)
    warming.join()

    assert parses == [DEFINITION]
    assert cache.parse(DEFINITION)[1] is tree


def test_a_warmed_definition_with_errors_still_fails_its_parse() -> None:
    cache = SyntaxTreeCache(4)
    cache.warm('{"StartAt": "Missing", "States": {').join()
    with pytest.raises(ASLParserException):
        cache.parse('{"StartAt": "Missing", "States": {')


def test_an_accepted_definition_is_remembered_by_text_and_a_directory_that_cannot_be_written_costs_nothing(
    tmp_path: Path,
) -> None:
    accepted = AcceptedDefinitions(tmp_path / "verdicts")
    assert not accepted.accepted(DEFINITION)
    accepted.remember(DEFINITION)
    assert accepted.accepted(DEFINITION)
    assert not accepted.accepted(DEFINITION + " ")
    assert AcceptedDefinitions(tmp_path / "verdicts").accepted(DEFINITION)

    (tmp_path / "a-file").write_text("")
    unwritable = AcceptedDefinitions(tmp_path / "a-file" / "verdicts")
    unwritable.remember(DEFINITION)
    assert not unwritable.accepted(DEFINITION)


def test_create_state_machine_parses_a_definition_once_across_starts_and_refuses_a_bad_one_every_time(
    runtime: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_CACHE_DIR", str(tmp_path / "cache"))
    # Installed again so that the checks read the cache directory set above, as a new twin start does.
    uninstall_local_integrations()
    install_local_integrations(sagemaker=runtime.sagemaker, lambdas=runtime.lambdas, clock=runtime.clock)
    validations: list[str] = []
    sfn = boto3.client("stepfunctions", region_name=runtime.region)
    # The first creation parses at create (its acceptance is remembered); the second does not parse again.
    unique = json.dumps({**json.loads(DEFINITION), "Comment": str(tmp_path)})
    for attempt in range(2):
        with monkeypatch.context() as patched:
            patched.setattr(
                moto_parser_models, "AmazonStateLanguageParser", _CountingParser(validations, AmazonStateLanguageParser)
            )
            sfn.create_state_machine(name=f"once-{attempt}", definition=unique, roleArn=runtime.role_arn)
    assert validations == [unique]
    assert runtime.run(json.loads(unique), {"items": [1]}).output == {"seen": 1}

    # Refused by moto's parser alone (the twin's own checks let it through): never remembered as accepted.
    broken = json.dumps({"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": "ten", "End": True}}})
    for attempt in range(2):
        with pytest.raises(sfn.exceptions.InvalidDefinition):
            sfn.create_state_machine(name=f"broken-{attempt}", definition=broken, roleArn=runtime.role_arn)


class _CountingParser:
    """moto's parser as its validation calls it, counting the definitions parsed."""

    def __init__(self, seen: list[str], parser: Any) -> None:
        self._seen, self._parser = seen, parser

    def parse(self, definition: str) -> Any:
        self._seen.append(definition)
        return self._parser.parse(definition)


def test_warmed_definitions_are_parsed_one_at_a_time_in_the_order_they_came(monkeypatch: pytest.MonkeyPatch) -> None:
    real_parse = SyntaxTreeCache._syntax_tree
    started: list[str] = []
    busy = threading.Lock()

    def one_at_a_time(definition: str) -> Any:
        assert busy.acquire(blocking=False), "two parses ran at once"
        try:
            started.append(definition)
            time.sleep(0.05)
            return real_parse(definition)
        finally:
            busy.release()

    monkeypatch.setattr(SyntaxTreeCache, "_syntax_tree", staticmethod(one_at_a_time))
    cache = SyntaxTreeCache(8)
    definitions = [json.dumps({**json.loads(DEFINITION), "Comment": f"copy {index}"}) for index in range(3)]
    warmings = [cache.warm(definition) for definition in definitions]
    for warming in warmings:
        warming.join(timeout=30)

    assert started == definitions
    assert all(warming.done.is_set() for warming in warmings)
    assert cache.parse(definitions[0])[1] is cache.parse(definitions[0])[1]


def test_the_state_machines_a_caller_starts_first_are_created_and_so_parsed_first_and_unknown_names_change_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from emulator import asl_validation
    from emulator.twin import LocalTwin

    checked: list[str] = []
    check = asl_validation.validate_definition

    def recording(definition: str, refusals: Any) -> None:
        checked.append(definition)
        check(definition, refusals)

    monkeypatch.setattr(asl_validation, "validate_definition", recording)
    with LocalTwin(work_dir=tmp_path / "twin", parse_first=("deploy", "no-such-machine", "training")) as twin:
        names = {twin.stack.state_machine(name).definition: name for name in ("deploy", "training", "monitoring")}

    assert [names.get(definition) for definition in checked] == ["deploy", "training", "monitoring"]
