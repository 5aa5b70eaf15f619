"""Preprocessed ASL programs kept on disk, so that a twin's first execution of a definition skips the parse.

moto turns a definition into a program in two steps: ANTLR lexes and parses the text (about 0.5 s for `training`
here, in Python), then its preprocessor builds the program's components from the tree (about 0.2 s). Both depend
only on the definition's text and on the code that runs them: moto's parser and preprocessor, ANTLR's runtime,
and the twin's own patches of them (its task factory, intrinsic escapes). So a program is kept, pickled before any
execution has touched it, in one file per definition, named by the SHA-256 of the definition and of that code:
the Python, moto and ANTLR versions and the source of every module of the `emulator` package. Any change to one of
them names another file, and the old one is simply never read again.

A file is only read when it is a regular file owned by this user and writable by nobody else (unpickling runs
code: the cache must be the user's own, as Python's `__pycache__` is). The directory is the twin's cache
directory (`asl_verdicts.default_cache_dir`); one that cannot be written only costs the parse.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import stat
import sys
import tempfile
import threading
from importlib.metadata import version
from pathlib import Path

from emulator.asl_verdicts import default_cache_dir

_EMULATOR_DIR = Path(__file__).resolve().parent
_code_digest: str | None = None
_digest_lock = threading.Lock()


def default_programs_dir() -> Path:
    return default_cache_dir() / "asl-programs"


def code_digest() -> str:
    """The SHA-256 of what a program's pickle depends on besides its definition (computed once per process)."""
    global _code_digest
    with _digest_lock:
        if _code_digest is None:
            digest = hashlib.sha256()
            digest.update(sys.version.encode())
            for package in ("moto", "antlr4-python3-runtime"):
                digest.update(f"\n{package} {version(package)}".encode())
            for source in sorted(_EMULATOR_DIR.rglob("*.py")):
                digest.update(f"\n{source.relative_to(_EMULATOR_DIR)}\n".encode())
                digest.update(source.read_bytes())
            _code_digest = digest.hexdigest()
        return _code_digest


class ProgramStore:
    """Pickled programs on disk, one file per definition (see the module doc)."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or default_programs_dir()

    def path(self, definition: str) -> Path:
        key = hashlib.sha256(f"{code_digest()}\n{definition}".encode()).hexdigest()
        return self.directory / f"{key}.pickle"

    def read(self, definition: str) -> bytes | None:
        """The pickled program of `definition`, or None when there is none this process may trust."""
        path = self.path(definition)
        try:
            with path.open("rb") as file:
                facts = os.fstat(file.fileno())
                if not trusted_cache_file(facts):
                    return None
                return file.read()
        except OSError:
            return None

    def write(self, definition: str, pickled: bytes) -> None:
        path = self.path(definition)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            # Written under another name and renamed: a reader never sees a file another writer has half made.
            handle, partial = tempfile.mkstemp(dir=self.directory, prefix=".partial-")
            with os.fdopen(handle, "wb") as file:
                file.write(pickled)
            os.replace(partial, path)
        except OSError:
            return


def pickled_program(program: object) -> bytes | None:
    """`program` pickled, or None when it cannot be (then every execution builds its own from the tree)."""
    try:
        return pickle.dumps(program, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError, RecursionError):
        return None


def trusted_cache_file(facts: os.stat_result) -> bool:
    """Whether a cache file (its `os.fstat`) may be unpickled: a regular file of this user that nobody else can
    write, as Python's own `__pycache__` files are."""
    return (
        stat.S_ISREG(facts.st_mode)
        and facts.st_uid == os.geteuid()
        and not facts.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    )
