"""ASL syntax trees cached by definition text, so that a definition is lexed and parsed once, not per execution.

moto parses a definition when the state machine is created and again at every StartExecution (about 0.1 s for
`training`). Only the tree is shared; each execution still builds its own state objects from it, so no
per-execution state can leak between runs.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from antlr4 import CommonTokenStream, InputStream
from moto.stepfunctions.parser.asl.antlr.runtime.ASLLexer import ASLLexer
from moto.stepfunctions.parser.asl.antlr.runtime.ASLParser import ASLParser
from moto.stepfunctions.parser.asl.parse import preprocessor
from moto.stepfunctions.parser.asl.parse.asl_parser import ASLParserException, SyntaxErrorListener


class SyntaxTreeCache:
    """ASL syntax trees by definition text, so that a definition is lexed and parsed once, not per execution.

    The ANTLR tree is read-only once built (the preprocessor and the static analyser only visit it); the
    evaluation components, which do hold execution state, are still built afresh for every caller.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._trees: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def parse(self, definition: str) -> tuple[Any, Any]:
        """What `AmazonStateLanguageParser.parse` returns: a new program and the (shared) syntax tree."""
        with self._lock:
            tree = self._trees.get(definition)
            if tree is not None:
                self._trees.move_to_end(definition)
        if tree is None:
            tree = self._syntax_tree(definition)
            with self._lock:
                self._trees[definition] = tree
                if len(self._trees) > self._size:
                    self._trees.popitem(last=False)
        return preprocessor.Preprocessor().visit(tree), tree

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
