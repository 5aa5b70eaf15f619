"""moto's look-ups in botocore's service data, made once: one model loader, region lists remembered on disk.

The first two look-ups below cost most of the twin's start (measured, scripts in the twin-path report: about 1.7 s of
the 5.4 s of CPU a start took), the third about 1.1 s of the twin's import; all give the same answer at every start:

- Each time moto needs a service's model (`moto.core.utils.get_service_model`, `get_pagination_model`), it makes
  a new botocore `Loader`, which first lists every service botocore knows (a `stat` of each of ~400 folders'
  versions) before reading the one model. One loader, kept for the process, lists them once.
- Each service's first backend of an account lists the regions the service exists in (`AccountSpecificBackend.
  _generate_regions`): botocore's whole service model is parsed (seconds for `ec2` and `sagemaker` together) only
  to read its endpoint prefix. The lists depend only on botocore's data, so they are kept per service for the
  process and, between processes, in one file per botocore, boto3 and moto version (and `AWS_DATA_PATH`) under
  MLOPS_CACHE_DIR (`asl_verdicts.default_cache_dir`). A directory that cannot be written only costs the look-up.
- When `moto.ec2` is imported (moto's Step Functions engine imports it through its Batch integration), its
  `RegionsAndZonesBackend` asks boto3 for ec2's regions in three partitions (`boto3.Session().get_available_regions`),
  each time building a new session that parses ec2's whole model and `endpoints.json` (about 1.1 s of CPU).
  `remembered_available_regions()`, around that import only (`emulator/engine.py`), answers from the same file, per
  service, partition and `allow_non_regional`; boto3 is its own again once the import is done.

All answer exactly what moto's and boto3's own code answer (tests/emulator/test_service_lookups.py compares them). A
file that cannot be read or holds something else is ignored and written afresh. What is still parsed, botocore parses
faster while the twin runs (`emulator/service_data_cache.py`).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

from boto3.session import Session as Boto3Session
from moto.core import loaders as moto_loaders
from moto.core import utils as moto_utils
from moto.core.base_backend import AccountSpecificBackend

from emulator.asl_verdicts import default_cache_dir
from emulator.moto_patches import MotoPatches

_lock = threading.Lock()
_shared_loader: moto_loaders.Loader | None = None
# Service name -> the regions moto's own look-up gives, for every twin of the process.
_regions: dict[str, list[str]] = {}
# (service name, partition name, allow_non_regional) -> boto3's `Session.get_available_regions` answer.
_available_regions: dict[tuple[str, str, bool], list[str]] = {}
_regions_read_from: Path | None = None
# Named in the file's name: a file of another layout (an older checkout sharing the cache) is never read as this one.
_REGIONS_FILE_LAYOUT = "layout 2: backend_regions, available_regions"


def regions_file(directory: Path | None = None) -> Path:
    """The file of region lists for the installed botocore, boto3 and moto (and AWS_DATA_PATH, which can add data)."""
    packages = [f"{package} {version(package)}" for package in ("botocore", "boto3", "moto")]
    versions = "\n".join([_REGIONS_FILE_LAYOUT, *packages, os.environ.get("AWS_DATA_PATH", "")])
    name = hashlib.sha256(versions.encode()).hexdigest()[:32]
    return (directory or default_cache_dir()) / "service-regions" / f"{name}.json"


def install_service_lookups(patches: MotoPatches, directory: Path | None = None) -> Callable[[], None]:
    """Patch moto's two look-ups into `patches`; returns what writes the region lists learnt since (call it before
    undoing the patches, or at any time)."""
    path = regions_file(directory)
    _read_regions(path)
    learnt_at_start = _learnt_count()
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

    return lambda: _write_learnt(path, learnt_at_start)


@contextmanager
def remembered_available_regions(directory: Path | None = None) -> Iterator[None]:
    """Within the block, boto3's `Session.get_available_regions` answers from the regions file, looking up (with
    boto3's own code) only what the file lacks; what it learnt is written when the block ends.

    Meant for the import of `moto.ec2` only (see the module doc): boto3 is patched process-wide while the block
    runs, so keep it short. If nothing in the block asks (moto.ec2 was imported already), nothing is read or written.
    """
    path = regions_file(directory)
    original = Boto3Session.__dict__["get_available_regions"]
    learnt_at_start: int | None = None

    def get_available_regions(
        self: Boto3Session, service_name: str, partition_name: str = "aws", allow_non_regional: bool = False
    ) -> list[str]:
        nonlocal learnt_at_start
        if learnt_at_start is None:
            _read_regions(path)
            learnt_at_start = _learnt_count()
        key = (service_name, partition_name, allow_non_regional)
        with _lock:
            known = _available_regions.get(key)
        if known is None:
            known = list(original(self, service_name, partition_name, allow_non_regional))
            with _lock:
                _available_regions[key] = known
        # A caller may change the list it gets (moto's does not today): never hand out the remembered one.
        return list(known)

    patches = MotoPatches()
    patches.replace(Boto3Session, "get_available_regions", get_available_regions)
    try:
        yield
    finally:
        patches.undo()
        if learnt_at_start is not None:
            _write_learnt(path, learnt_at_start)


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
    backend_regions = stored.get("backend_regions")
    valid = {
        service: list(regions)
        for service, regions in (backend_regions.items() if isinstance(backend_regions, dict) else ())
        if _is_region_list(regions)
    }
    available_regions = stored.get("available_regions")
    valid_available = {
        (entry[0], entry[1], entry[2]): list(entry[3])
        for entry in (available_regions if isinstance(available_regions, list) else ())
        if isinstance(entry, list)
        and len(entry) == 4
        and isinstance(entry[0], str)
        and isinstance(entry[1], str)
        and isinstance(entry[2], bool)
        and _is_region_list(entry[3])
    }
    with _lock:
        for service, regions in valid.items():
            _regions.setdefault(service, regions)
        for key, regions in valid_available.items():
            _available_regions.setdefault(key, regions)


def _is_region_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(region, str) for region in value)


def _learnt_count() -> int:
    with _lock:
        return len(_regions) + len(_available_regions)


def _write_learnt(path: Path, learnt_at_start: int) -> None:
    """Write everything known (all of the file read, and what was learnt since) if something was learnt."""
    with _lock:
        if len(_regions) + len(_available_regions) == learnt_at_start:
            return
        stored = {
            "backend_regions": dict(_regions),
            "available_regions": [[*key, regions] for key, regions in sorted(_available_regions.items())],
        }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written under another name and renamed: a reader never sees a file another writer has half made.
        handle, partial = tempfile.mkstemp(dir=path.parent, prefix=".partial-")
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(stored, file, sort_keys=True)
        os.replace(partial, path)
    except OSError:
        return
