"""The commit a build of the stack comes from, as lineage records it (`SourceCommit`, docs/interfaces.md).

One reader of it for both builds: `sam build` (the Makefile's `build-MlCodePublisherFunction` runs
`python -m contract.source_commit` and puts what it prints into the publisher's bundle as `build-info.json`)
and the twin's deploy (the emulated `Custom::MlCode` calls `source_commit`). A tree with uncommitted changes
is `<sha>-dirty`: its commit alone would not reproduce the code (the sourcedir's sha256 still does). Outside
a git checkout, or without git, the value says `unknown: <why>` instead of guessing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

DIRTY_SUFFIX = "-dirty"
UNKNOWN_PREFIX = "unknown: "


def _git(root: Path, *arguments: str) -> str:
    completed = subprocess.run(
        ["git", "-C", str(root), *arguments],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(completed.stderr.strip() or f"git {' '.join(arguments)} exited {completed.returncode}")
    return completed.stdout.strip()


def source_commit(root: Path) -> str:
    """`<sha>` of HEAD in `root`, `<sha>-dirty` with uncommitted changes, `unknown: <why>` without a commit."""
    try:
        commit = _git(root, "rev-parse", "--verify", "HEAD")
        changes = _git(root, "status", "--porcelain", "--untracked-files=no")
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as error:
        return f"{UNKNOWN_PREFIX}{root} is not a git checkout with a commit ({error})"
    return commit + (DIRTY_SUFFIX if changes else "")


def build_info(root: Path) -> dict[str, str]:
    """The `build-info.json` document the publisher's bundle carries."""
    return {"source_commit": source_commit(root)}


if __name__ == "__main__":
    print(json.dumps(build_info(Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd()), sort_keys=True))
