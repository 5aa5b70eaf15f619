"""moto's look-ups in botocore's service data, made once: one model loader, region lists remembered on disk.

Two look-ups cost most of the twin's start (measured, scripts in the twin-path report: about 1.7 s of the 5.4 s of
CPU a start took), and both give the same answer at every start:

- Each time moto needs a service's model (`moto.core.utils.get_service_model`, `get_pagination_model`), it makes
  a new botocore `Loader`, which first lists every service botocore knows (a `stat` of each of ~400 folders'
  versions) before reading the one model. One loader, kept for the process, lists them once.
- Each service's first backend of an account lists the regions the service exists in (`AccountSpecificBackend.
  _generate_regions`): botocore's whole service model is parsed (seconds for `ec2` and `sagemaker` together) only
  to read its endpoint prefix. The lists depend only on botocore's data, so they are kept per service for the
  process and, between processes, in one file per botocore, boto3 and moto version (and `AWS_DATA_PATH`) under
  MLOPS_CACHE_DIR (`asl_verdicts.default_cache_dir`). A directory that cannot be written only costs the look-up.

Both answer exactly what moto's own code answers (tests/emulator/test_service_lookups.py compares them).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

from moto.core import loaders as moto_loaders
from moto.core import utils as moto_utils
from moto.core.base_backend import AccountSpecificBackend

from emulator.asl_verdicts import default_cache_dir
from emulator.moto_patches import MotoPatches

_lock = threading.Lock()
_shared_loader: moto_loaders.Loader | None = None
# Service name -> the regions moto's own look-up gives, for every twin of the process.
_regions: dict[str, list[str]] = {}
_regions_read_from: Path | None = None


def regions_file(directory: Path | None = None) -> Path:
    """The file of region lists for the installed botocore, boto3 and moto (and AWS_DATA_PATH, which can add data)."""
    packages = [f"{package} {version(package)}" for package in ("botocore", "boto3", "moto")]
    versions = "\n".join([*packages, os.environ.get("AWS_DATA_PATH", "")])
    name = hashlib.sha256(versions.encode()).hexdigest()[:32]
    return (directory or default_cache_dir()) / "service-regions" / f"{name}.json"


def install_service_lookups(patches: MotoPatches, directory: Path | None = None) -> Callable[[], None]:
    """Patch moto's two look-ups into `patches`; returns what writes the region lists learnt since (call it before
    undoing the patches, or at any time)."""
    path = regions_file(directory)
    _read_regions(path)
    learnt_at_start = len(_regions)
    original_regions = AccountSpecificBackend.__dict__["_generate_regions"]

    def generate_regions(self: AccountSpecificBackend[Any], service_name: str) -> list[str]:
        with _lock:
            known = _regions.get(service_name)
        if known is None:
            known = list(original_regions(self, service_name))
            with _lock:
                _regions[service_name] = known
        # moto extends each backend's own list with it: never hand out the shared one.
        return list(known)

    patches.replace(AccountSpecificBackend, "_generate_regions", generate_regions)
    patches.replace(moto_utils, "create_loader", _loader)

    def write_learnt() -> None:
        with _lock:
            if len(_regions) == learnt_at_start:
                return
            regions = dict(_regions)
        _write_regions(path, regions)

    return write_learnt


def shared_loader() -> moto_loaders.Loader:
    """The one model loader of the process (what moto's look-ups use once installed): a model it has read is not
    read again."""
    return _loader()


def _loader() -> moto_loaders.Loader:
    global _shared_loader
    with _lock:
        if _shared_loader is None:
            _shared_loader = moto_loaders.create_loader()
        return _shared_loader


def _read_regions(path: Path) -> None:
    global _regions_read_from
    with _lock:
        if _regions_read_from == path:
            return
        _regions_read_from = path
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if not isinstance(stored, dict):
        return
    valid = {
        service: list(regions)
        for service, regions in stored.items()
        if isinstance(regions, list) and all(isinstance(region, str) for region in regions)
    }
    with _lock:
        for service, regions in valid.items():
            _regions.setdefault(service, regions)


def _write_regions(path: Path, regions: dict[str, list[str]]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written under another name and renamed: a reader never sees a file another writer has half made.
        handle, partial = tempfile.mkstemp(dir=path.parent, prefix=".partial-")
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(regions, file, sort_keys=True)
        os.replace(partial, path)
    except OSError:
        return
