"""ASL syntax trees cached by definition text, so that a definition is lexed and parsed once, not per execution.

moto parses a definition when the state machine is created and again at every StartExecution (about 0.1 s for
`training`). Only the tree is shared; each execution still builds its own state objects from it, so no
per-execution state can leak between runs.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict, deque
from typing import Any

from antlr4 import CommonTokenStream, InputStream
from moto.stepfunctions.parser.asl.antlr.runtime.ASLLexer import ASLLexer
from moto.stepfunctions.parser.asl.antlr.runtime.ASLParser import ASLParser
from moto.stepfunctions.parser.asl.parse import preprocessor
from moto.stepfunctions.parser.asl.parse.asl_parser import ASLParserException, SyntaxErrorListener


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

    def __init__(self, size: int) -> None:
        self._size = size
        self._trees: OrderedDict[str, Any] = OrderedDict()
        # Parses under way, by definition: a second caller (an execution starting while `warm` parses on its
        # thread) waits for that parse instead of parsing the same text again beside it.
        self._parsing: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._to_warm: deque[tuple[str, Warming]] = deque()
        self._warmer: threading.Thread | None = None

    def parse(self, definition: str) -> tuple[Any, Any]:
        """What `AmazonStateLanguageParser.parse` returns: a new program and the (shared) syntax tree."""
        tree = self._tree(definition)
        return preprocessor.Preprocessor().visit(tree), tree

    def warm(self, definition: str) -> Warming:
        """Parse `definition` in the background, so that its first execution finds the tree (errors: dropped, the
        caller that parses next raises them).

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
                self._tree(definition)
            warming.done.set()

    def _tree(self, definition: str) -> Any:
        while True:
            with self._lock:
                tree = self._trees.get(definition)
                if tree is not None:
                    self._trees.move_to_end(definition)
                    return tree
                under_way = self._parsing.get(definition)
                if under_way is None:
                    done = self._parsing[definition] = threading.Event()
                    break
            # Another thread parses it: its tree, or (a definition with errors, never cached) a parse of our own.
            under_way.wait()
        try:
            tree = self._syntax_tree(definition)
            with self._lock:
                self._trees[definition] = tree
                if len(self._trees) > self._size:
                    self._trees.popitem(last=False)
            return tree
        finally:
            with self._lock:
                del self._parsing[definition]
            done.set()

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
