"""The fast clock: virtual time runs `speed` times faster than the wall clock, and only moves forward."""

from __future__ import annotations

import datetime as datetime_module
import itertools
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


def _in_thread(action: Callable[[], object]) -> tuple[threading.Thread, list[float]]:
    """Runs `action` on a thread; the list gets the real seconds it took once it returns."""
    took: list[float] = []

    def run() -> None:
        started = time.monotonic()
        action()
        took.append(time.monotonic() - started)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, took


def _until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "the condition never came true"
        time.sleep(0.005)


def test_advancing_past_a_sleepers_deadline_wakes_it_and_a_shorter_jump_does_not() -> None:
    clock = Clock(speed=1)  # unwoken, the sleeps below would take an hour of real time
    sleeper, took = _in_thread(lambda: clock.sleep(3600))
    _until(lambda: clock.next_deadline() is not None)

    clock.advance(1800)
    time.sleep(0.1)
    assert sleeper.is_alive()
    clock.advance(1800)
    sleeper.join(5)

    assert not sleeper.is_alive()
    assert took[0] < 5
    assert clock.next_deadline() is None


def test_advancing_past_a_waiters_deadline_ends_its_wait_unset() -> None:
    clock, event = Clock(speed=1), threading.Event()
    results: list[bool] = []
    waiter, _ = _in_thread(lambda: results.append(clock.wait(event, 3600)))
    _until(lambda: clock.next_deadline() is not None)

    clock.advance(3600)
    waiter.join(5)

    assert results == [False]


def test_the_next_deadline_is_the_earliest_of_everyone_waiting() -> None:
    clock = Clock(speed=1)
    start = clock.now()
    long_sleep, _ = _in_thread(lambda: clock.sleep(7200))
    short_sleep, _ = _in_thread(lambda: clock.sleep(600))
    _until(lambda: len(clock._deadlines) == 2)

    deadline = clock.next_deadline()

    assert deadline is not None
    assert timedelta(seconds=600) <= deadline - start < timedelta(seconds=610)
    clock.advance(7200)
    long_sleep.join(5)
    short_sleep.join(5)


def test_idle_time_passes_at_once_and_busy_time_at_the_clocks_speed() -> None:
    clock = Clock(speed=1)
    busy = threading.Event()
    with clock.skipping_idle_time(busy.is_set):
        idle, idle_took = _in_thread(lambda: clock.sleep(3600))
        idle.join(5)
        assert idle_took
        assert idle_took[0] < 1

        busy.set()
        waiting, waiting_took = _in_thread(lambda: clock.sleep(0.3))
        waiting.join(5)
        assert waiting_took
        assert waiting_took[0] >= 0.3

        held, held_took = _in_thread(lambda: clock.sleep(3600))
        time.sleep(0.2)
        assert held.is_alive()
        busy.clear()  # the work is done: the rest of the wait passes at once
        held.join(5)
        assert held_took
        assert held_took[0] < 2


def test_minute_listeners_hear_every_minute_an_idle_skip_passes_in_order() -> None:
    clock = Clock(speed=1)
    heard: list[datetime] = []
    clock.on_minute(heard.append)
    with clock.skipping_idle_time(lambda: False):
        clock.sleep(10 * 60)

    assert len(heard) >= 10
    assert heard == sorted(heard)
    assert all(later - earlier == timedelta(minutes=1) for earlier, later in itertools.pairwise(heard))


def test_without_an_idle_skipper_a_sleep_takes_its_real_time() -> None:
    clock = Clock(speed=100)
    sleeper, took = _in_thread(lambda: clock.sleep(30))
    sleeper.join(5)
    assert took
    assert took[0] >= 0.3
