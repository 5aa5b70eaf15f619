"""botocore's JSON data files, parsed once: kept pickled in memory and on disk while the twin runs.

botocore reads its service data (service models, `endpoints.json`, ...) with `json.loads(...,
object_pairs_hook=OrderedDict)` every time a new `Loader` or session asks for a file: a twin's import and start read
124 files (ec2's model five times, `endpoints.json` six), about 1.9 s of CPU in the loading threads, on a 2-core
machine where the start, the ASL parse, the Lambda handlers' imports and the jobs all compete. Unpickling the same
tree is faster (measured on this machine: ec2's model 70 ms parsed, 33 ms unpickled from its entry on disk; sagemaker's
48 and 24 ms; `endpoints.json` 27 and 19 ms), but pickling it costs more than the parse (79 ms for ec2's): kept in
memory only, a file read twice per process would cost more than botocore's two parses, so the big files' pickles are
kept on disk and pickled once per botocore version.

While installed (`install_service_data_cache`, by the twin from its start to its close, on the twin's `MotoPatches`),
`botocore.loaders.JSONFileLoader._load_file` (one file, the method botocore's `load_file` calls per extension, so
botocore's own choice of `.json`/`.json.gz` and its `None` for a missing file stay as they are) returns
`pickle.loads` of the file's parsed tree:

- in memory, per path, with the file's size and `mtime_ns` (a changed file is read again), for the process;
- on disk under MLOPS_CACHE_DIR (`asl_verdicts.default_cache_dir`)`/botocore-data/`, one file per source file,
  named by the SHA-256 of the Python and botocore versions and the file's size and origin, so a new process skips
  the parse of the files it reads most. The origin of a file botocore, boto3 or moto ships is the package's release
  and the path inside it (a fresh clone's new virtualenv finds the entries an earlier one wrote); of any other file,
  its path and `mtime_ns`. Written under another name and renamed; each holds the SHA-256 of its pickle, so a
  damaged or unreadable entry is ignored and the JSON is parsed (and the entry written) again. An entry is only
  read when it is this user's own and nobody else can write it (`_trusted_entry`). A
  directory that cannot be written only costs the parse. Files under `MIN_PERSISTED_BYTES` are kept in memory only
  (they parse in a fraction of a millisecond). The twin's entries take about 7.5 MB per botocore version; those of
  another version are never read again and can be deleted.

Every call unpickles a new tree: botocore merges extras into the dicts it loads and moto's loader merges its own, so
no two callers ever share an object. The data is exactly botocore's (tests/emulator/test_service_data_cache.py
compares them).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pickle
import stat
import sys
import tempfile
import threading
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import botocore
from botocore.loaders import JSONFileLoader

from emulator.asl_verdicts import default_cache_dir
from emulator.moto_patches import MotoPatches

# Files smaller than this are parsed faster than their entry is found, read and checked: kept in memory only.
MIN_PERSISTED_BYTES = 64 * 1024
_DIGEST_BYTES = 32

# The packages whose own data files are named by release, not by path (`entry_path`): where each is installed (as
# botocore's loader spells its paths, from the module's own `__file__`) and its version.
_PACKAGES = {
    name: (os.path.dirname(spec.origin) + os.sep, version(name))
    for name in ("botocore", "boto3", "moto")
    if (spec := importlib.util.find_spec(name)) is not None and spec.origin is not None
}
_lock = threading.Lock()
# Path -> (size, mtime_ns, pickled tree), for every twin of the process.
_pickled: dict[str, tuple[int, int, bytes]] = {}


def data_cache_dir(directory: Path | None = None) -> Path:
    return (directory or default_cache_dir()) / "botocore-data"


def entry_path(cache_dir: Path, full_path: str, size: int, mtime_ns: int) -> Path:
    """The disk entry of one version of one botocore data file.

    A file of a package's own data (botocore's, boto3's, moto's) is named by the package's version and its path
    inside the package: one release ships the same file in every virtualenv, so a fresh clone's new venv (new paths,
    new times) finds the entries an earlier one wrote. Any other file (AWS_DATA_PATH) by its path and time.
    """
    origin = [full_path, str(mtime_ns)]
    for package, (root, release) in _PACKAGES.items():
        if full_path.startswith(root):
            origin = [f"{package} {release}", full_path[len(root) :]]
            break
    key = "\n".join([sys.version, f"botocore {botocore.__version__}", *origin, str(size)])
    return cache_dir / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.pickle"


def install_service_data_cache(patches: MotoPatches, directory: Path | None = None) -> None:
    """Patch botocore's JSON file loader into `patches` (see the module doc); `patches.undo()` gives it back."""
    cache_dir = data_cache_dir(directory)
    original: Callable[[JSONFileLoader, str, Any], Any] = JSONFileLoader.__dict__["_load_file"]

    def load_file(self: JSONFileLoader, full_path: str, open_method: Any) -> Any:
        try:
            status = os.stat(full_path)
        except OSError:
            status = None
        if status is None or not stat.S_ISREG(status.st_mode):
            return original(self, full_path, open_method)  # botocore's answer for a missing file: None
        size, mtime_ns = status.st_size, status.st_mtime_ns
        with _lock:
            known = _pickled.get(full_path)
        if known is not None and known[:2] == (size, mtime_ns):
            return pickle.loads(known[2])  # noqa: S301 -- pickled by this process
        entry = entry_path(cache_dir, full_path, size, mtime_ns) if size >= MIN_PERSISTED_BYTES else None
        stored = _read_entry(entry) if entry is not None else None
        if stored is not None:
            pickled, data = stored
        else:
            data = original(self, full_path, open_method)
            if data is None:  # a file holding `null`: botocore goes on to the next extension
                return None
            pickled = pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)
            if entry is not None:
                _write_entry(entry, pickled)
        with _lock:
            _pickled[full_path] = (size, mtime_ns, pickled)
        return data

    patches.replace(JSONFileLoader, "_load_file", load_file)


def _read_entry(entry: Path) -> tuple[bytes, Any] | None:
    """The pickle an entry holds and its tree, if the entry is whole (its digest matches) and the user's own (see
    `_trusted_entry`), else None."""
    try:
        with entry.open("rb") as file:
            if not _trusted_entry(os.fstat(file.fileno())):
                return None
            stored = file.read()
    except OSError:
        return None
    digest, pickled = stored[:_DIGEST_BYTES], stored[_DIGEST_BYTES:]
    if hashlib.sha256(pickled).digest() != digest:
        return None
    try:
        return pickled, pickle.loads(pickled)  # noqa: S301 -- what this module pickled, as its digest says
    except Exception:
        return None


def _write_entry(entry: Path, pickled: bytes) -> None:
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        # Written under another name and renamed: a reader never sees a file another writer has half made.
        handle, partial = tempfile.mkstemp(dir=entry.parent, prefix=".partial-")
        with os.fdopen(handle, "wb") as file:
            file.write(hashlib.sha256(pickled).digest() + pickled)
        os.replace(partial, entry)
    except OSError:
        return


def _trusted_entry(facts: os.stat_result) -> bool:
    """Whether an entry (its `os.fstat`) may be unpickled: a regular file of this user that nobody else can
    write, as Python's own `__pycache__` files are."""
    return (
        stat.S_ISREG(facts.st_mode)
        and facts.st_uid == os.geteuid()
        and not facts.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    )
