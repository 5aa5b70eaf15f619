"""The fast clock: virtual time runs `speed` times faster than the wall clock, and only moves forward."""

from __future__ import annotations

import datetime as datetime_module
import threading
import time
import types
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from emulator.clock import Clock, clock_datetime_class, read_time_from
from emulator.moto_patches import MotoPatches


def test_sleep_takes_one_speedth_of_the_virtual_time_in_real_time() -> None:
    clock = Clock(speed=100)
    virtual_start, real_start = clock.now(), time.monotonic()

    clock.sleep(20)

    real_elapsed = time.monotonic() - real_start
    assert 0.2 <= real_elapsed < 1.0
    assert clock.now() - virtual_start >= timedelta(seconds=20)


def test_now_is_timezone_aware_utc_and_starts_at_the_real_time() -> None:
    now = Clock(speed=50).now()

    assert now.tzinfo is UTC
    assert abs((now - datetime.now(UTC)).total_seconds()) < 1


def test_advance_jumps_forward_without_sleeping() -> None:
    clock = Clock(speed=1)
    before = clock.now()

    clock.advance(3600)

    assert clock.now() - before >= timedelta(hours=1)


def test_wait_returns_early_when_the_event_is_set() -> None:
    clock = Clock(speed=1)
    event = threading.Event()
    threading.Timer(0.05, event.set).start()
    started = time.monotonic()

    assert clock.wait(event, 3600) is True
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("speed", [0, -1])
def test_a_non_positive_speed_is_refused_naming_the_value(speed: float) -> None:
    with pytest.raises(ValueError, match=str(speed)):
        Clock(speed=speed)


def test_the_clock_cannot_go_backwards() -> None:
    with pytest.raises(ValueError, match="-5"):
        Clock().advance(-5)


def test_the_clock_datetime_class_reads_the_clock_and_still_knows_real_datetimes() -> None:
    clock = Clock(speed=1)
    clock.advance(3600)
    clock_datetime = clock_datetime_class(clock)

    assert abs((clock_datetime.now(UTC) - clock.now()).total_seconds()) < 1
    assert abs((clock_datetime.utcnow() - clock.now().replace(tzinfo=None)).total_seconds()) < 1
    assert isinstance(datetime.now(UTC), clock_datetime)
    assert clock_datetime.fromisoformat("2026-01-02T03:04:05+00:00") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_a_module_reads_the_clock_however_it_imported_datetime_until_undone() -> None:
    clock = Clock(speed=1)
    clock.advance(3600)
    as_module = types.ModuleType("as_module")
    as_module.datetime = datetime_module  # type: ignore[attr-defined]
    as_class = types.ModuleType("as_class")
    as_class.datetime = datetime  # type: ignore[attr-defined]
    patches = MotoPatches()

    for module in (as_module, as_class):
        read_time_from(clock, module, patches)
    reading = (as_module.datetime.datetime.now(UTC), as_class.datetime.now(UTC))  # type: ignore[attr-defined]
    patches.undo()

    assert all(abs((seen - clock.now()).total_seconds()) < 1 for seen in reading)
    assert as_module.datetime is datetime_module  # type: ignore[attr-defined]
    assert as_class.datetime is datetime  # type: ignore[attr-defined]


def test_a_wait_returns_when_the_listeners_leave_while_the_clock_is_behind() -> None:
    # A listener slower than the clock unsubscribes (the twin closing) in the middle of catching up: the thread
    # announcing the minutes must return instead of waiting for minutes nobody listens to any more.
    clock = Clock(speed=1.0)
    calls: list[datetime] = []
    unsubscribe: list[Callable[[], None]] = []

    def slow_listener(boundary: datetime) -> None:
        calls.append(boundary)
        if len(calls) == 3:
            unsubscribe[0]()

    unsubscribe.append(clock.on_minute(slow_listener))
    with clock._lock:
        clock._jumped += timedelta(hours=2)  # two hours behind, without advance() announcing them
    finished = threading.Event()
    waiter = threading.Thread(target=lambda: (clock.sleep(0), finished.set()), daemon=True)
    waiter.start()
    assert finished.wait(5), "clock.sleep(0) kept spinning after the last listener left"
    assert len(calls) == 3
