"""ASL syntax trees and programs cached by definition text, so that a definition is parsed once, not per execution.

moto parses a definition when the state machine is created and again at every StartExecution (about 0.5 s for
`training`), then its preprocessor builds the program (about 0.2 s more). Here the tree is parsed once and shared
(it is read-only once built), and the program built from it is kept pickled, before any execution has touched it:
each execution gets its own by unpickling (milliseconds), so it still starts from fresh state objects and nothing
of one run can leak into the next. The pickles are also kept on disk (`emulator/program_store.py`), so a twin's
first execution of a definition it has run before needs no parse at all.
"""

from __future__ import annotations

import contextlib
import pickle
import threading
from collections import OrderedDict, deque
from typing import Any

from antlr4 import CommonTokenStream, InputStream
from moto.stepfunctions.parser.asl.antlr.runtime.ASLLexer import ASLLexer
from moto.stepfunctions.parser.asl.antlr.runtime.ASLParser import ASLParser
from moto.stepfunctions.parser.asl.parse import preprocessor
from moto.stepfunctions.parser.asl.parse.asl_parser import (
    AmazonStateLanguageParser,
    ASLParserException,
    SyntaxErrorListener,
)
from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

from emulator.moto_patches import MotoPatches
from emulator.program_store import ProgramStore, pickled_program

# A program that cannot be pickled: each execution builds its own from the cached tree.
_UNPICKLABLE = b""


class Warming:
    """A definition waiting for, or done with, its background parse (`SyntaxTreeCache.warm`)."""

    def __init__(self) -> None:
        self.done = threading.Event()

    def join(self, timeout: float | None = None) -> None:
        """Wait until the definition's parse has finished (or failed)."""
        self.done.wait(timeout)


class SyntaxTreeCache:
    """ASL syntax trees by definition text, so that a definition is lexed and parsed once, not per execution.

    The ANTLR tree is read-only once built (the preprocessor and the static analyser only visit it); the
    evaluation components, which do hold execution state, are still built afresh for every caller.
    """

    def __init__(self, size: int, store: ProgramStore | None = None) -> None:
        self._size = size
        self._store = store
        self._trees: OrderedDict[str, Any] = OrderedDict()
        self._programs: OrderedDict[str, bytes] = OrderedDict()
        # Parses under way, by definition: a second caller (an execution starting while `warm` parses on its
        # thread) waits for that parse instead of parsing the same text again beside it.
        self._parsing: dict[str, threading.Event] = {}
        self._building: dict[str, threading.Event] = {}
        self._closed = False
        self._lock = threading.Lock()
        self._to_warm: deque[tuple[str, Warming]] = deque()
        self._warmer: threading.Thread | None = None

    def install(self, patches: MotoPatches) -> None:
        """moto's parser answers from this cache, and each execution starts from `program` (undone with `patches`)."""
        patches.replace(AmazonStateLanguageParser, "parse", staticmethod(self.parse))

        def evaluation_entrypoint(worker: ExecutionWorker) -> Any:
            return self.program(worker._evaluation_details.state_machine_details.definition)

        patches.replace(ExecutionWorker, "_get_evaluation_entrypoint", evaluation_entrypoint)

    def close(self) -> None:
        """Keep no program from now on: call it before any patch the preprocessor runs with comes off. A program
        built meanwhile may mix patched and unpatched parts, and one on disk would serve every later twin."""
        with self._lock:
            self._closed = True
            dropped = [warming for _definition, warming in self._to_warm]
            self._to_warm.clear()
        for warming in dropped:
            warming.done.set()

    def parse(self, definition: str) -> tuple[Any, Any]:
        """What `AmazonStateLanguageParser.parse` returns: a new program and the (shared) syntax tree."""
        tree = self._tree(definition)
        return preprocessor.Preprocessor().visit(tree), tree

    def program(self, definition: str) -> Any:
        """A new program for one execution of `definition` (what `parse` returns first), built once and unpickled."""
        pickled = self._pickled_program(definition)
        if pickled == _UNPICKLABLE:
            return preprocessor.Preprocessor().visit(self._tree(definition))
        # Made by this process, or read from a file only this user can write (program_store.trusted_cache_file).
        return pickle.loads(pickled)  # noqa: S301

    def warm(self, definition: str) -> Warming:
        """Make `definition`'s program in the background (read from disk, or parsed), so that its first execution
        finds it (errors: dropped, the caller that parses next raises them).

        One thread parses the warmed definitions in the order they came: the parser holds the GIL, so parsing the
        stack's three at once made the first one (`training`, created first and started first) wait for all of them.
        """
        warming = Warming()
        with self._lock:
            self._to_warm.append((definition, warming))
            if self._warmer is None:
                self._warmer = threading.Thread(target=self._warm_queued, name="asl-parse", daemon=True)
                self._warmer.start()
        return warming

    def _warm_queued(self) -> None:
        while True:
            with self._lock:
                if not self._to_warm:
                    self._warmer = None
                    return
                definition, warming = self._to_warm.popleft()
            # A definition with errors is never cached: the next caller's parse raises them.
            with contextlib.suppress(Exception):
                self._pickled_program(definition)
            warming.done.set()

    def _pickled_program(self, definition: str) -> bytes:
        return self._made_once(self._programs, self._building, definition, self._make_program)

    def _tree(self, definition: str) -> Any:
        return self._made_once(self._trees, self._parsing, definition, self._syntax_tree)

    def _made_once(
        self, made: OrderedDict[str, Any], under_way: dict[str, threading.Event], definition: str, make: Any
    ) -> Any:
        """`made[definition]`, made by `make(definition)` if missing; a caller that finds another thread making it
        waits for that thread, then takes its result or (when making failed: a definition with errors is never
        cached) makes it itself."""
        while True:
            with self._lock:
                value = made.get(definition)
                if value is not None:
                    made.move_to_end(definition)
                    return value
                other = under_way.get(definition)
                if other is None:
                    done = under_way[definition] = threading.Event()
                    break
            other.wait()
        try:
            value = make(definition)
            with self._lock:
                # Once closed, nothing more is kept (see close).
                if not self._closed:
                    made[definition] = value
                    if len(made) > self._size:
                        made.popitem(last=False)
            return value
        finally:
            with self._lock:
                del under_way[definition]
            done.set()

    def _make_program(self, definition: str) -> bytes:
        pickled = self._store.read(definition) if self._store is not None else None
        if pickled is not None and not _loads(pickled):
            pickled = None  # damaged on disk: made again, and written over
        if pickled is None:
            pickled = pickled_program(preprocessor.Preprocessor().visit(self._tree(definition))) or _UNPICKLABLE
            with self._lock:
                # Checked after the build: not closed then means no patch came off while it ran.
                keep = not self._closed
            if keep and pickled != _UNPICKLABLE and self._store is not None:
                self._store.write(definition, pickled)
        return pickled

    @staticmethod
    def _syntax_tree(definition: str) -> Any:
        # As moto's AmazonStateLanguageParser.parse does it; a definition with syntax errors is never cached.
        errors = SyntaxErrorListener()
        parser = ASLParser(CommonTokenStream(ASLLexer(InputStream(definition))))
        parser.removeErrorListeners()
        parser.addErrorListener(errors)
        tree = parser.state_machine()
        if errors.errors:
            raise ASLParserException(errors=errors.errors)
        return tree


def _loads(pickled: bytes) -> bool:
    """Whether `pickled` unpickles (a file read from disk may be cut short or from other code)."""
    try:
        pickle.loads(pickled)  # noqa: S301  (read from a file only this user can write: program_store.trusted_cache_file)
    except Exception:
        return False
    return True
