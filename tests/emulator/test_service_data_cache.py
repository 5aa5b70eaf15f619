"""emulator.service_data_cache: botocore's JSON data, kept pickled, is exactly what botocore's loader parses."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore
import pytest
from botocore.loaders import JSONFileLoader

from emulator import service_data_cache
from emulator.moto_patches import MotoPatches
from emulator.twin import LocalTwin

DATA = Path(botocore.__file__).parent / "data"
# Without the extension, as botocore's Loader asks: a gzipped model, the biggest plain file, a small one.
REAL_FILES = ("ec2/2016-11-15/service-2", "endpoints", "sdk-default-configuration")
OWN_LOAD_FILE = JSONFileLoader.__dict__["_load_file"]


@pytest.fixture(autouse=True)
def fresh_process_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in a new process: nothing kept in memory."""
    monkeypatch.setattr(service_data_cache, "_pickled", {})


@pytest.fixture
def installed(tmp_path: Path) -> Iterator[Path]:
    """The cache installed with its entries under the returned directory (the MLOPS_CACHE_DIR it is given)."""
    patches = MotoPatches()
    service_data_cache.install_service_data_cache(patches, tmp_path / "cache")
    try:
        yield tmp_path / "cache"
    finally:
        patches.undo()


def _botocores_own(file_path: str) -> Any:
    assert JSONFileLoader.__dict__["_load_file"] is OWN_LOAD_FILE
    return JSONFileLoader().load_file(file_path)


def _same_types(left: Any, right: Any) -> bool:
    """`==` does not tell an OrderedDict from a dict, nor a list from a tuple: compare the types all the way down."""
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return list(left) == list(right) and all(_same_types(left[key], right[key]) for key in left)
    if isinstance(left, list):
        return all(_same_types(a, b) for a, b in zip(left, right, strict=True))
    return True


def _big_json_file(path: Path, marker: str) -> None:
    """A file large enough to be kept on disk, whose content says which version of it was read."""
    path.write_text(json.dumps({"marker": marker, "padding": ["x" * 100] * 1000}), encoding="utf-8")


def test_real_files_are_botocores_own_from_the_parse_from_memory_and_from_disk(installed: Path) -> None:
    patches = MotoPatches()
    patches.replace(JSONFileLoader, "_load_file", OWN_LOAD_FILE)
    try:
        expected = {name: _botocores_own(str(DATA / name)) for name in REAL_FILES}
    finally:
        patches.undo()
    assert JSONFileLoader.__dict__["_load_file"] is not OWN_LOAD_FILE

    for source in ("the parse", "memory", "disk"):
        if source == "disk":
            service_data_cache._pickled.clear()  # a new process: only the entries written before
        for name, data in expected.items():
            loaded = JSONFileLoader().load_file(str(DATA / name))
            assert loaded == data, (name, source)
            assert _same_types(loaded, data), (name, source)
    # The two big files are kept on disk, the small one only in memory.
    assert len(list(installed.glob("botocore-data/*.pickle"))) == 2


def test_every_load_is_a_new_tree(installed: Path) -> None:
    path = str(DATA / "ec2/2016-11-15/service-2")
    first = JSONFileLoader().load_file(path)
    first["metadata"]["endpointPrefix"] = "changed by one loader"
    first["operations"].clear()
    second = JSONFileLoader().load_file(path)
    assert second["metadata"]["endpointPrefix"] == "ec2"
    assert second["operations"]
    assert second is not JSONFileLoader().load_file(path)


@pytest.mark.usefixtures("installed")
def test_a_missing_file_is_none_as_botocore_says(tmp_path: Path) -> None:
    assert JSONFileLoader().load_file(str(tmp_path / "no-such-model")) is None
    assert JSONFileLoader().load_file(str(DATA / "ec2/2016-11-15/no-such-model")) is None
    (tmp_path / "a-directory.json").mkdir()
    assert JSONFileLoader().load_file(str(tmp_path / "a-directory")) is None


@pytest.mark.usefixtures("installed")
def test_a_changed_file_is_read_again(tmp_path: Path) -> None:
    source = tmp_path / "model.json"
    _big_json_file(source, "first")
    assert JSONFileLoader().load_file(str(tmp_path / "model"))["marker"] == "first"

    # Same size, other time: read again, from memory and from disk alike.
    status = source.stat()
    _big_json_file(source, "other")
    os.utime(source, ns=(status.st_atime_ns, status.st_mtime_ns + 1_000_000))
    assert source.stat().st_size == status.st_size
    assert JSONFileLoader().load_file(str(tmp_path / "model"))["marker"] == "other"
    service_data_cache._pickled.clear()
    assert JSONFileLoader().load_file(str(tmp_path / "model"))["marker"] == "other"

    # Same time, other size.
    status = source.stat()
    _big_json_file(source, "a longer one")
    os.utime(source, ns=(status.st_atime_ns, status.st_mtime_ns))
    assert JSONFileLoader().load_file(str(tmp_path / "model"))["marker"] == "a longer one"


def _one_entry(installed: Path, tmp_path: Path) -> tuple[Path, Path, bytes]:
    """A big data file loaded once through the cache: the file, its disk entry and the entry's bytes."""
    source = tmp_path / "model.json"
    _big_json_file(source, "from the JSON")
    JSONFileLoader().load_file(str(tmp_path / "model"))
    (entry,) = installed.glob("botocore-data/*.pickle")
    return source, entry, entry.read_bytes()


def test_a_damaged_entry_is_ignored_and_written_again(installed: Path, tmp_path: Path) -> None:
    source, entry, whole = _one_entry(installed, tmp_path)

    for damaged in (whole[: len(whole) // 2], whole[:-1] + b"\x00", b"", b"not a pickle at all" * 10):
        entry.write_bytes(damaged)
        service_data_cache._pickled.clear()
        loaded = JSONFileLoader().load_file(str(tmp_path / "model"))
        assert loaded == json.loads(source.read_text(encoding="utf-8"))
        assert entry.read_bytes() == whole


def test_a_cache_directory_that_cannot_be_written_only_costs_the_parse(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("", encoding="utf-8")
    patches = MotoPatches()
    service_data_cache.install_service_data_cache(patches, blocker / "cache")  # under a file: mkdir fails
    try:
        path = str(DATA / "ec2/2016-11-15/service-2")
        first = JSONFileLoader().load_file(path)
        assert first["metadata"]["endpointPrefix"] == "ec2"
        assert JSONFileLoader().load_file(path) == first
    finally:
        patches.undo()
    assert JSONFileLoader.__dict__["_load_file"] is OWN_LOAD_FILE


def test_the_twin_loads_through_the_cache_and_gives_botocore_its_loader_back_at_close(tmp_path: Path) -> None:
    twin = LocalTwin(work_dir=tmp_path / "twin")
    twin.start()
    try:
        assert JSONFileLoader.__dict__["_load_file"] is not OWN_LOAD_FILE
        assert any(path.endswith("service-2.json.gz") for path in service_data_cache._pickled)
    finally:
        twin.close()
    assert JSONFileLoader.__dict__["_load_file"] is OWN_LOAD_FILE


def test_a_packaged_file_has_one_entry_in_every_virtualenv_and_any_other_file_one_per_version(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    names = []
    for venv in ("first-venv", "fresh-clone-venv"):
        root = tmp_path / venv / "botocore"
        monkeypatch.setattr(service_data_cache, "_PACKAGES", {"botocore": (f"{root}{os.sep}", "1.2.3")})
        # Another install of the same release: another path and another time, the same file.
        names.append(service_data_cache.entry_path(cache, f"{root}/data/ec2/service-2.json", 1000, hash(venv)))
    assert names[0] == names[1]

    monkeypatch.setattr(service_data_cache, "_PACKAGES", {"botocore": (f"{tmp_path}/botocore{os.sep}", "1.2.4")})
    assert service_data_cache.entry_path(cache, f"{tmp_path}/botocore/data/ec2/service-2.json", 1000, 1) != names[0]
    elsewhere = f"{tmp_path}/aws-data-path/ec2/service-2.json"
    assert service_data_cache.entry_path(cache, elsewhere, 1000, 1) != service_data_cache.entry_path(
        cache, elsewhere, 1000, 2
    )


def test_an_entry_another_user_could_write_is_not_read(installed: Path, tmp_path: Path) -> None:
    _source, entry, whole = _one_entry(installed, tmp_path)
    # An entry with the right digest but another tree, left writable by others: never unpickled.
    forged = service_data_cache.pickle.dumps({"marker": "forged"})
    entry.write_bytes(service_data_cache.hashlib.sha256(forged).digest() + forged)
    os.chmod(entry, 0o666)  # noqa: S103  (the permissive mode is what is tested)
    service_data_cache._pickled.clear()

    assert JSONFileLoader().load_file(str(tmp_path / "model"))["marker"] == "from the JSON"
    assert entry.read_bytes() == whole
