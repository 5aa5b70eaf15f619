"""The twin's imports are set aside from the garbage collector once per process, never what later twins leave."""

from __future__ import annotations

import pytest

from emulator.commands import imported_objects


def test_only_the_first_call_freezes(monkeypatch: pytest.MonkeyPatch) -> None:
    freezes: list[int] = []
    monkeypatch.setattr(imported_objects, "_frozen", False)
    monkeypatch.setattr(imported_objects.gc, "freeze", lambda: freezes.append(1))

    imported_objects.set_aside_imported_objects()
    imported_objects.set_aside_imported_objects()

    assert freezes == [1]


def test_a_frozen_object_is_out_of_the_collectors_sight(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imported_objects, "_frozen", False)
    before = imported_objects.gc.get_freeze_count()
    kept = [[] for _ in range(1000)]  # lists: objects the collector tracks
    try:
        imported_objects.set_aside_imported_objects()
        assert imported_objects.gc.get_freeze_count() >= before + len(kept)
    finally:
        imported_objects.gc.unfreeze()
