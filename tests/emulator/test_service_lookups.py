"""emulator.service_lookups: moto's region lists, boto3's available regions and moto's service models, looked up once,
are what moto's and boto3's code gives."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import boto3
import botocore.session
import pytest
from boto3.session import Session as Boto3Session
from moto.core import utils as moto_utils
from moto.core.base_backend import AccountSpecificBackend

from emulator import service_lookups
from emulator.moto_patches import MotoPatches

SERVICES = ("sagemaker", "stepfunctions", "s3", "ec2")
# The look-ups moto.ec2 makes when imported (`RegionsAndZonesBackend`), as (service, partition).
MOTO_EC2_LOOKUPS = (("ec2", "aws"), ("ec2", "aws-us-gov"), ("ec2", "aws-cn"))


@pytest.fixture
def fresh_process_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in a new process: nothing learnt, no file read yet."""
    monkeypatch.setattr(service_lookups, "_regions", {})
    monkeypatch.setattr(service_lookups, "_available_regions", {})
    monkeypatch.setattr(service_lookups, "_regions_read_from", None)


def _new_process() -> None:
    service_lookups._regions.clear()
    service_lookups._available_regions.clear()
    service_lookups._regions_read_from = None


def _boto3_available_regions() -> list[list[str]]:
    return [
        boto3.Session().get_available_regions(service, partition_name=partition)
        for service, partition in MOTO_EC2_LOOKUPS
    ]


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
    assert {service: stored["backend_regions"][service] for service in SERVICES} == expected

    # A new process reads them back and does not look them up again.
    _new_process()
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
    assert json.loads(path.read_text(encoding="utf-8"))["backend_regions"]["sns"] == _moto_regions("sns")


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


@pytest.mark.usefixtures("fresh_process_state")
def test_available_regions_are_boto3_s_own_from_an_empty_file_then_from_the_filled_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = _boto3_available_regions()
    assert "us-east-1" in expected[0]
    assert "us-gov-west-1" in expected[1]
    assert "cn-north-1" in expected[2]
    own = Boto3Session.__dict__["get_available_regions"]

    with service_lookups.remembered_available_regions(tmp_path):
        assert Boto3Session.__dict__["get_available_regions"] is not own
        assert _boto3_available_regions() == expected
    assert Boto3Session.__dict__["get_available_regions"] is own
    stored = json.loads(service_lookups.regions_file(tmp_path).read_text(encoding="utf-8"))
    assert {(service, partition) for service, partition, _, _ in stored["available_regions"]} == set(MOTO_EC2_LOOKUPS)

    # A new process answers from the file alone: botocore's look-up would fail.
    _new_process()

    def no_look_up(*args: object, **kwargs: object) -> list[str]:
        raise AssertionError("looked up again")

    monkeypatch.setattr(botocore.session.Session, "get_available_regions", no_look_up)
    with service_lookups.remembered_available_regions(tmp_path):
        answers = _boto3_available_regions()
        answers[0].append("changed by one caller")
        assert _boto3_available_regions() == expected
    assert answers[1:] == expected[1:]


@pytest.mark.usefixtures("fresh_process_state")
def test_a_damaged_regions_file_is_ignored_by_the_available_regions(tmp_path: Path) -> None:
    expected = _boto3_available_regions()
    path = service_lookups.regions_file(tmp_path)
    path.parent.mkdir(parents=True)
    # Valid JSON, wrong shapes: a region list that is not one, an entry with a missing field.
    path.write_text(
        json.dumps({"available_regions": [["ec2", "aws", False, "us-east-1"], ["ec2", "aws-cn", ["cn-north-1"]]]}),
        encoding="utf-8",
    )
    with service_lookups.remembered_available_regions(tmp_path):
        assert _boto3_available_regions() == expected
    stored = json.loads(path.read_text(encoding="utf-8"))
    assert [entry[3] for entry in stored["available_regions"]] == [
        regions for _, regions in sorted(zip(MOTO_EC2_LOOKUPS, expected, strict=True))
    ]


@pytest.mark.usefixtures("fresh_process_state")
def test_a_block_that_asks_nothing_reads_and_writes_nothing(tmp_path: Path) -> None:
    importlib.import_module("moto.ec2.models.availability_zones_and_regions")
    # As in a twin started after something imported moto.ec2: the import in the block is a no-op.
    with service_lookups.remembered_available_regions(tmp_path):
        importlib.import_module("moto.ec2.models.availability_zones_and_regions")
    assert not service_lookups.regions_file(tmp_path).exists()
    assert service_lookups._regions_read_from is None


def test_moto_ec2_s_regions_imported_by_the_engine_are_boto3_s_own() -> None:
    # The twin's first import of moto.ec2, under the remembered answers (unless something imported moto.ec2 before).
    importlib.import_module("emulator.engine")
    regions_module = importlib.import_module("moto.ec2.models.availability_zones_and_regions")

    assert [region.name for region in regions_module.RegionsAndZonesBackend.regions] == [
        region for regions in _boto3_available_regions() for region in regions
    ]
