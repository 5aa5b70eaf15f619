"""Each execution's program is unpickled from one built before any run, and kept on disk from one twin to the next."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from moto.stepfunctions.parser.asl.parse import preprocessor

# The engine's own syntax-tree tests' definition: a Parallel with a retrier, per-execution state.
from test_engine_syntax_trees import DEFINITION

from emulator import program_store, syntax_tree_cache
from emulator.program_store import ProgramStore
from emulator.syntax_tree_cache import SyntaxTreeCache


class _Counts:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.parses = 0
        self.builds = 0
        real_parse = SyntaxTreeCache._syntax_tree
        real_build = preprocessor.Preprocessor.visitState_machine

        def counting_parse(definition: str) -> Any:
            self.parses += 1
            return real_parse(definition)

        # The tree's root: one call per program built (branches are visited as program declarations).
        def counting_build(visitor: Any, tree: Any) -> Any:
            self.builds += 1
            return real_build(visitor, tree)

        monkeypatch.setattr(SyntaxTreeCache, "_syntax_tree", staticmethod(counting_parse))
        monkeypatch.setattr(preprocessor.Preprocessor, "visitState_machine", counting_build)


def _states(program: Any) -> Any:
    return program.states.states


def test_each_execution_gets_its_own_program_built_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    counts = _Counts(monkeypatch)
    cache = SyntaxTreeCache(4, ProgramStore(tmp_path))

    first, second = cache.program(DEFINITION), cache.program(DEFINITION)

    assert (counts.parses, counts.builds) == (1, 1)
    assert first is not second
    assert _states(first)["Count"] is not _states(second)["Count"]
    assert type(_states(first)["Count"]) is type(_states(second)["Count"])
    assert list(_states(first)) == list(_states(second)) == ["Count"]


def test_a_program_on_disk_serves_a_new_twin_without_a_parse(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    SyntaxTreeCache(4, ProgramStore(tmp_path)).warm(DEFINITION).join(timeout=30)
    counts = _Counts(monkeypatch)

    program = SyntaxTreeCache(4, ProgramStore(tmp_path)).program(DEFINITION)

    assert (counts.parses, counts.builds) == (0, 0)
    assert list(_states(program)) == ["Count"]
    written = ProgramStore(tmp_path).path(DEFINITION)
    assert written.is_file()
    assert written.stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("damage", ["cut short", "writable by others"])
def test_a_program_file_that_is_damaged_or_not_the_users_own_is_made_again(
    damage: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    store = ProgramStore(tmp_path)
    SyntaxTreeCache(4, store).warm(DEFINITION).join(timeout=30)
    path = store.path(DEFINITION)
    if damage == "cut short":
        path.write_bytes(path.read_bytes()[:100])
    else:
        os.chmod(path, 0o666)  # noqa: S103  (the permissive mode is what is tested)
    counts = _Counts(monkeypatch)

    program = SyntaxTreeCache(4, store).program(DEFINITION)

    assert (counts.parses, counts.builds) == (1, 1)
    assert list(_states(program)) == ["Count"]
    assert path.stat().st_mode & 0o077 == 0, "the file made again replaces the one that was not trusted"


def test_another_definition_or_other_code_names_another_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    store = ProgramStore(tmp_path)
    path = store.path(DEFINITION)

    assert store.path(DEFINITION + " ") != path
    monkeypatch.setattr(program_store, "_code_digest", "another emulator")
    assert store.path(DEFINITION) != path


def test_the_code_digest_follows_the_emulator_sources(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "engine.py").write_text("one\n")
    monkeypatch.setattr(program_store, "_EMULATOR_DIR", tmp_path)
    monkeypatch.setattr(program_store, "_code_digest", None)
    before = program_store.code_digest()
    (tmp_path / "engine.py").write_text("two\n")
    monkeypatch.setattr(program_store, "_code_digest", None)

    assert program_store.code_digest() != before


def test_a_program_that_cannot_be_pickled_is_built_for_each_execution(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(syntax_tree_cache, "pickled_program", lambda _program: None)
    counts = _Counts(monkeypatch)
    cache = SyntaxTreeCache(4, ProgramStore(tmp_path))

    first, second = cache.program(DEFINITION), cache.program(DEFINITION)

    assert (counts.parses, counts.builds) == (1, 3), "one build to try the pickle, then one per execution"
    assert first is not second
    assert list(tmp_path.iterdir()) == []


def test_a_directory_that_cannot_be_written_costs_only_the_parse(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    store = ProgramStore(tmp_path / "a-file" / "programs")
    cache = SyntaxTreeCache(4, store)

    assert list(_states(cache.program(DEFINITION))) == ["Count"]
    assert store.read(DEFINITION) is None


def test_a_program_built_while_the_cache_closes_is_not_kept(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    store = ProgramStore(tmp_path)
    cache = SyntaxTreeCache(4, store)
    real_build = preprocessor.Preprocessor.visitState_machine

    def closing_midway(visitor: Any, tree: Any) -> Any:
        # The engine's uninstall closes the cache before it takes the preprocessor's patches off.
        cache.close()
        return real_build(visitor, tree)

    monkeypatch.setattr(preprocessor.Preprocessor, "visitState_machine", closing_midway)
    program = cache.program(DEFINITION)

    assert list(_states(program)) == ["Count"]
    assert store.read(DEFINITION) is None
    assert list(tmp_path.iterdir()) == []


def test_the_engine_closes_its_cache_before_it_takes_any_patch_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from emulator import engine

    closes: list[Any] = []
    monkeypatch.setattr(SyntaxTreeCache, "close", lambda cache: closes.append(preprocessor.state_task_for))
    engine.install_local_integrations(sagemaker=object(), lambdas=object(), clock=object())  # type: ignore[arg-type]
    patched = preprocessor.state_task_for
    engine.uninstall_local_integrations()

    assert closes == [patched], "closed once, while the task factory was still the twin's"
    assert preprocessor.state_task_for is not patched
