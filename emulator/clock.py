"""A clock that can run faster than the wall clock, for everything in the twin that only waits.

Wait states, Retry intervals, `.sync` polling, endpoint creation delays, schedules and idle windows all
go through one `Clock`. Work does not: a training job takes the real time it takes, and task timeouts
stay in real seconds, so a fast clock can never kill a job that would have finished on AWS.
"""

from __future__ import annotations

import datetime as datetime_module
import logging
import threading
import time
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from emulator.moto_patches import MotoPatches

MinuteListener = Callable[[datetime], object]
logger = logging.getLogger(__name__)


class Clock:
    """Virtual UTC time that advances `speed` times faster than the wall clock.

    `now()` starts at the real time of construction; `sleep(s)` really sleeps `s / speed` seconds,
    which is also how much virtual time passes meanwhile, so the two stay consistent across threads.
    `advance(s)` jumps virtual time forward without sleeping (for schedules and idle windows in tests).

    A sleeper wakes at its virtual deadline however the clock got there: `advance` wakes those it jumps past.
    `skipping_idle_time(busy)` jumps the clock to the first sleeper's deadline whenever `busy()` says nothing works.

    `on_minute(listener)` calls `listener(boundary)` once for every whole minute of virtual time that passes while
    something waits on the clock (`sleep`, `wait`, `advance`), in order, with the boundary's time: CloudWatch
    evaluates alarms every minute, and the twin evaluates them at the same instants of its own time. `advance`
    returns only once the listeners have caught up with it, so a test that advances the clock sees the result.
    """

    def __init__(self, speed: float = 1.0) -> None:
        if not speed > 0:
            raise ValueError(f"Clock speed must be a positive number of virtual seconds per real second, got {speed!r}")
        self.speed = float(speed)
        self._origin_virtual = datetime.now(UTC)
        self._origin_monotonic = time.monotonic()
        self._jumped = timedelta(0)
        self._lock = threading.Lock()
        self._listeners: list[MinuteListener] = []
        self._notified_minute: datetime | None = None
        # One thread calls the listeners at a time; a listener that waits on the clock itself is not re-entered.
        self._notify_lock = threading.Lock()
        self._notifying = threading.local()
        # Sleepers' virtual deadlines, by sleeper; `advance` notifies the condition so that each looks again.
        self._deadlines: dict[object, datetime] = {}
        self._deadline_changed = threading.Condition(threading.Lock())
        # Set when someone starts to sleep: the idle skipper looks at once instead of at its next check.
        self._sleeper_came = threading.Event()

    def now(self) -> datetime:
        """The current virtual time (timezone-aware, UTC)."""
        elapsed_real = time.monotonic() - self._origin_monotonic
        with self._lock:
            jumped = self._jumped
        return self._origin_virtual + timedelta(seconds=elapsed_real * self.speed) + jumped

    def real_seconds(self, virtual_seconds: float) -> float:
        """How long, in real seconds, `virtual_seconds` of virtual time take."""
        return max(0.0, virtual_seconds) / self.speed

    def sleep(self, seconds: float) -> None:
        """Let `seconds` of virtual time pass (a real sleep of `seconds / speed`, shorter if the clock jumps)."""
        if seconds > 0:
            deadline, sleeper = self.now() + timedelta(seconds=seconds), object()
            with self._deadline_changed:
                self._deadlines[sleeper] = deadline
                self._sleeper_came.set()
                try:
                    while (remaining := self._seconds_until(deadline)) > 0:
                        self._deadline_changed.wait(self.real_seconds(remaining))
                finally:
                    del self._deadlines[sleeper]
        self._notify(wait_for_others=False)

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """Wait for `event` at most `seconds` of virtual time; True when it was set.

        The event is waited on in slices of `_WAIT_SLICE_SECONDS` at most (an `Event` cannot also be woken by the
        clock), so a jump past the deadline ends the wait within one slice.
        """
        deadline, sleeper = self.now() + timedelta(seconds=max(0.0, seconds)), object()
        with self._deadline_changed:
            self._deadlines[sleeper] = deadline
        self._sleeper_came.set()
        try:
            was_set = event.is_set()
            while not was_set and (remaining := self._seconds_until(deadline)) > 0:
                was_set = event.wait(min(self.real_seconds(remaining), _WAIT_SLICE_SECONDS))
        finally:
            with self._deadline_changed:
                del self._deadlines[sleeper]
        self._notify(wait_for_others=False)
        return was_set

    def advance(self, seconds: float) -> None:
        """Jump virtual time forward by `seconds` without sleeping; sleepers whose deadline it passes wake after the
        minute listeners have caught up with it."""
        if seconds < 0:
            raise ValueError(f"A clock only moves forward; cannot advance by {seconds!r} seconds")
        with self._lock:
            self._jumped += timedelta(seconds=seconds)
        self._notify(wait_for_others=True)
        with self._deadline_changed:
            self._deadline_changed.notify_all()

    def next_deadline(self) -> datetime | None:
        """The earliest virtual deadline anyone sleeps or waits for on this clock, if anyone does."""
        with self._deadline_changed:
            return min(self._deadlines.values(), default=None)

    @contextmanager
    def skipping_idle_time(self, busy: Callable[[], bool]) -> Iterator[None]:
        """While the block runs, whenever someone sleeps on the clock and `busy()` is False, the clock jumps to the
        earliest deadline: waits that nothing works through (an endpoint's transition, a baking period, a Wait
        state) take no real time. `busy()` must be True whenever work runs whose virtual duration matters (a job, a
        model server starting, a Lambda invocation): that work still takes its real time at the clock's speed.
        """
        stop = threading.Event()

        def skip() -> None:
            while not stop.is_set():
                # With nobody asleep there is nothing to skip to: wait for a sleeper (or the end) without polling.
                asleep = self.next_deadline() is not None
                self._sleeper_came.wait(_IDLE_CHECK_SECONDS if asleep else None)
                self._sleeper_came.clear()
                deadline = self.next_deadline()
                if deadline is None or busy():
                    continue
                if (ahead := self._seconds_until(deadline)) > 0:
                    self.advance(ahead)

        skipper = threading.Thread(target=skip, name="clock-idle-skip", daemon=True)
        skipper.start()
        try:
            yield
        finally:
            stop.set()
            self._sleeper_came.set()
            skipper.join()

    def _seconds_until(self, moment: datetime) -> float:
        return (moment - self.now()).total_seconds()

    def on_minute(self, listener: MinuteListener) -> Callable[[], None]:
        """Call `listener(boundary)` for each minute boundary passed from now on; returns what unsubscribes it."""
        with self._lock:
            if self._notified_minute is None:
                self._notified_minute = _minute_floor(self._origin_virtual + self._elapsed() + self._jumped)
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def _elapsed(self) -> timedelta:
        return timedelta(seconds=(time.monotonic() - self._origin_monotonic) * self.speed)

    def _next_boundary(self) -> tuple[datetime, list[MinuteListener]] | None:
        """The next minute boundary not yet announced, if the clock has passed it, and the listeners to tell."""
        with self._lock:
            if self._notified_minute is None or not self._listeners:
                return None
            now = self._origin_virtual + self._elapsed() + self._jumped
            if self._notified_minute + _MINUTE > now:
                return None
            self._notified_minute += _MINUTE
            return self._notified_minute, list(self._listeners)

    def _notify(self, *, wait_for_others: bool) -> None:
        if getattr(self._notifying, "active", False) or not self._listeners:
            return
        while True:
            if not self._notify_lock.acquire(blocking=wait_for_others):
                return  # the thread announcing boundaries checks again after it lets go, so this one is not lost
            try:
                self._notifying.active = True
                while (boundary := self._next_boundary()) is not None:
                    for listener in boundary[1]:
                        try:
                            listener(boundary[0])
                        except Exception:
                            # The thread that happened to wait must not fail for a listener's error (a Wait state).
                            logger.exception("A minute listener of the clock failed at %s", boundary[0].isoformat())
            finally:
                self._notifying.active = False
                self._notify_lock.release()
            with self._lock:
                # With no listener left (unsubscribed while behind) there is nothing to catch up with.
                caught_up = (
                    not self._listeners
                    or self._notified_minute is None
                    or self._notified_minute + _MINUTE > (self._origin_virtual + self._elapsed() + self._jumped)
                )
            if caught_up:
                return


_MINUTE = timedelta(minutes=1)
# Real seconds: how soon a jump ends a `wait` (an Event is polled in slices this long), and how often the idle skipper
# looks for a wait to end.
_WAIT_SLICE_SECONDS = 0.01
_IDLE_CHECK_SECONDS = 0.01


def _minute_floor(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


class _RealDatetimeInstances(type):
    # A stand-in class is what `datetime.datetime` names in a patched module: `isinstance(value, datetime.datetime)`
    # there must still hold for every real datetime, which the stand-in's own `now()` returns too.
    def __instancecheck__(cls, instance: object) -> bool:
        return isinstance(instance, datetime)

    def __subclasscheck__(cls, subclass: type) -> bool:
        return issubclass(subclass, datetime)


def clock_datetime_class(clock: Clock) -> type[datetime]:
    """A `datetime` class whose `now()`/`utcnow()` read `clock`; everything else is the real class's."""

    class ClockDatetime(datetime, metaclass=_RealDatetimeInstances):
        @classmethod
        def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
            current = clock.now()
            return current.astimezone(tz) if tz is not None else current.astimezone().replace(tzinfo=None)

        @classmethod
        def utcnow(cls) -> datetime:  # type: ignore[override]
            return clock.now().replace(tzinfo=None)

    return ClockDatetime


def clock_datetime_module(clock: Clock) -> types.ModuleType:
    """The `datetime` module with its `datetime` class reading `clock` (for code that does `import datetime`)."""
    module = types.ModuleType("datetime", "The datetime module, its `datetime.now()` on the twin's clock.")
    module.__dict__.update({name: value for name, value in vars(datetime_module).items() if not name.startswith("__")})
    module.datetime = clock_datetime_class(clock)  # type: ignore[attr-defined]
    return module


def read_time_from(clock: Clock, module: types.ModuleType, patches: MotoPatches) -> None:
    """Make every name of `module` bound to the `datetime` module or class (however imported) read `clock`.

    The twin runs everything that stamps or compares times (Step Functions dates, in-process Lambdas) on its one
    clock, which runs ahead of the wall clock: a Lambda comparing the wall clock with an execution's stopDate would
    see a different timeline than on AWS, where both are the same real time.
    """
    for name, bound in list(module.__dict__.items()):
        if bound is datetime_module:
            patches.replace(module, name, clock_datetime_module(clock))
        elif bound is datetime:
            patches.replace(module, name, clock_datetime_class(clock))
