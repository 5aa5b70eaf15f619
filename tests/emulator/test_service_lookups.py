"""emulator.service_lookups: moto's region lists and service models, looked up once, are what moto's code gives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from moto.core import utils as moto_utils
from moto.core.base_backend import AccountSpecificBackend

from emulator import service_lookups
from emulator.moto_patches import MotoPatches

SERVICES = ("sagemaker", "stepfunctions", "s3", "ec2")


@pytest.fixture
def fresh_process_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in a new process: nothing learnt, no file read yet."""
    monkeypatch.setattr(service_lookups, "_regions", {})
    monkeypatch.setattr(service_lookups, "_regions_read_from", None)


def _moto_regions(service: str) -> list[str]:
    backend = AccountSpecificBackend.__new__(AccountSpecificBackend)
    backend._id = f"test-{service}"
    return list(AccountSpecificBackend.__dict__["_generate_regions"](backend, service))


def _patched_regions(service: str) -> list[str]:
    backend = AccountSpecificBackend.__new__(AccountSpecificBackend)
    backend._id = f"patched-{service}"
    return list(backend._generate_regions(service))


@pytest.mark.usefixtures("fresh_process_state")
def test_region_lists_are_moto_s_own_then_written_and_read_back(tmp_path: Path) -> None:
    expected = {service: _moto_regions(service) for service in SERVICES}
    assert all("us-east-1" in regions for regions in expected.values())

    patches = MotoPatches()
    save = service_lookups.install_service_lookups(patches, tmp_path)
    try:
        assert {service: _patched_regions(service) for service in SERVICES} == expected
        save()
    finally:
        patches.undo()
    stored = json.loads(service_lookups.regions_file(tmp_path).read_text(encoding="utf-8"))
    assert {service: stored[service] for service in SERVICES} == expected

    # A new process reads them back and does not look them up again.
    service_lookups._regions.clear()
    service_lookups._regions_read_from = None
    patches = MotoPatches()
    service_lookups.install_service_lookups(patches, tmp_path)
    try:
        service_lookups._regions["sagemaker"].append("marker-from-the-file")
        assert _patched_regions("sagemaker")[-1] == "marker-from-the-file"
    finally:
        patches.undo()


@pytest.mark.usefixtures("fresh_process_state")
def test_each_backend_gets_its_own_list(tmp_path: Path) -> None:
    patches = MotoPatches()
    service_lookups.install_service_lookups(patches, tmp_path)
    try:
        first = _patched_regions("sqs")
        first.append("changed by one backend")
        assert "changed by one backend" not in _patched_regions("sqs")
    finally:
        patches.undo()


@pytest.mark.usefixtures("fresh_process_state")
def test_an_unreadable_regions_file_is_looked_up_again(tmp_path: Path) -> None:
    path = service_lookups.regions_file(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text("{not json", encoding="utf-8")
    patches = MotoPatches()
    save = service_lookups.install_service_lookups(patches, tmp_path)
    try:
        assert _patched_regions("sns") == _moto_regions("sns")
        save()
    finally:
        patches.undo()
    assert json.loads(path.read_text(encoding="utf-8"))["sns"] == _moto_regions("sns")


def test_moto_s_models_come_from_one_loader_and_undo_restores_moto_s_factory(tmp_path: Path) -> None:
    own_factory = moto_utils.create_loader
    patches = MotoPatches()
    service_lookups.install_service_lookups(patches, tmp_path)
    try:
        assert moto_utils.create_loader() is moto_utils.create_loader()
        model = moto_utils._load_service_model("sqs", "service-2")
        assert model == own_factory().load_service_model("sqs", "service-2")
    finally:
        patches.undo()
    assert moto_utils.create_loader is own_factory
    assert AccountSpecificBackend.__dict__["_generate_regions"].__class__.__name__ == "_lru_cache_wrapper"
