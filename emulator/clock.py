"""A clock that can run faster than the wall clock, for everything in the twin that only waits.

Wait states, Retry intervals, `.sync` polling, endpoint creation delays, schedules and idle windows all
go through one `Clock`. Work does not: a training job takes the real time it takes, and task timeouts
stay in real seconds, so a fast clock can never kill a job that would have finished on AWS.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta


class Clock:
    """Virtual UTC time that advances `speed` times faster than the wall clock.

    `now()` starts at the real time of construction; `sleep(s)` really sleeps `s / speed` seconds,
    which is also how much virtual time passes meanwhile, so the two stay consistent across threads.
    `advance(s)` jumps virtual time forward without sleeping (for schedules and idle windows in tests).
    """

    def __init__(self, speed: float = 1.0) -> None:
        if not speed > 0:
            raise ValueError(f"Clock speed must be a positive number of virtual seconds per real second, got {speed!r}")
        self.speed = float(speed)
        self._origin_virtual = datetime.now(UTC)
        self._origin_monotonic = time.monotonic()
        self._jumped = timedelta(0)
        self._lock = threading.Lock()

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
        """Let `seconds` of virtual time pass (a real sleep of `seconds / speed`)."""
        real = self.real_seconds(seconds)
        if real > 0:
            time.sleep(real)

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """Wait for `event` at most `seconds` of virtual time; True when it was set."""
        return event.wait(self.real_seconds(seconds))

    def advance(self, seconds: float) -> None:
        """Jump virtual time forward by `seconds` without sleeping."""
        if seconds < 0:
            raise ValueError(f"A clock only moves forward; cannot advance by {seconds!r} seconds")
        with self._lock:
            self._jumped += timedelta(seconds=seconds)
