"""Definitions moto's ASL parser accepted before, remembered on disk from one twin start to the next.

CreateStateMachine parses the whole definition (seconds for the stack's three state machines, on every start of the
twin). The parser's verdict depends only on the definition's text and on moto's version, so an accepted definition
is remembered by the SHA-256 of both; its next CreateStateMachine skips the parse, and the syntax tree is parsed on
a thread instead, ready for the first execution. Only acceptance is remembered: every refusal is parsed, and its
message made, afresh. The twin's own checks (`asl_validation.validate_definition`) always run.

The directory is MLOPS_CACHE_DIR, else `$XDG_CACHE_HOME/mlops` (`~/.cache/mlops`); a directory that cannot be
written only costs the parse.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from importlib.metadata import version
from pathlib import Path

CACHE_DIR_VARIABLE = "MLOPS_CACHE_DIR"


def default_cache_dir() -> Path:
    """Where the twin keeps what is the same at every start: MLOPS_CACHE_DIR, else `$XDG_CACHE_HOME/mlops`."""
    configured = os.environ.get(CACHE_DIR_VARIABLE)
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mlops"


def default_verdicts_dir() -> Path:
    return default_cache_dir() / "asl-accepted"


class AcceptedDefinitions:
    """The definitions moto's parser accepted, one empty file per definition, named by its key."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or default_verdicts_dir()
        self._parser_version = f"moto {version('moto')}"

    def key(self, definition: str) -> str:
        return hashlib.sha256(f"{self._parser_version}\n{definition}".encode()).hexdigest()

    def accepted(self, definition: str) -> bool:
        return (self.directory / self.key(definition)).is_file()

    def remember(self, definition: str) -> None:
        target = self.directory / self.key(definition)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            # Written under another name and renamed: a reader never sees a file another writer has half made.
            handle, partial = tempfile.mkstemp(dir=self.directory, prefix=".partial-")
            os.close(handle)
            os.replace(partial, target)
        except OSError:
            return
