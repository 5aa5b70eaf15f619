"""The served twin's `ServicePump`: queue deliveries keep the batching window and never wait on a schedule."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from emulator.clock import Clock
from emulator.serve.pump import ServicePump

CLOCK_SPEED = 100.0
BATCHING_WINDOW_SECONDS = 60  # the template's CoalesceWindowSeconds: 0.6 real seconds at 100x


@dataclass
class _Source:
    batching_window_seconds: int
    enabled: bool = True


@dataclass
class _Function:
    timeout: int = 1


@dataclass
class _Stack:
    queue_sources: dict[str, _Source]
    functions: dict[str, _Function] = field(default_factory=lambda: {"Consumer": _Function()})
    outputs: dict[str, str] = field(default_factory=dict)


@dataclass
class _Router:
    deliveries: list[Any] = field(default_factory=list)


class _Twin:
    """What the pump reads of a twin: a clock, the stack's queue sources, and the two services it drives."""

    def __init__(self, window: int, schedule_blocks: threading.Event | None = None) -> None:
        self.clock = Clock(CLOCK_SPEED)
        self.stack = _Stack({"ConsumerNewData": _Source(window)})
        self.router = _Router()
        self.drains: list[float] = []
        self.schedule_started = threading.Event()
        self._schedule_blocks = schedule_blocks

    def fire_schedules(self) -> list[Any]:
        # A scheduled rule's function that takes its time (the drift re-check under load): until the test ends.
        self.schedule_started.set()
        if self._schedule_blocks is not None:
            self._schedule_blocks.wait(10)
        return []

    def drain_queues(self) -> list[Any]:
        self.drains.append(time.monotonic())
        return []


class _SageMaker:
    def call(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        assert action == "DescribeEndpoint"
        return {"EndpointName": params["EndpointName"], "EndpointStatus": "InService"}


def _run(pump: ServicePump, seconds: float) -> None:
    pump.start()
    try:
        time.sleep(seconds)
    finally:
        pump.stop()
        pump.join()


def test_a_schedule_whose_function_is_still_running_does_not_hold_back_queue_deliveries() -> None:
    # GIVEN a scheduled rule's function that runs for the whole test
    release = threading.Event()
    twin = _Twin(BATCHING_WINDOW_SECONDS, schedule_blocks=release)
    pump = ServicePump(twin, announce=lambda line: None)  # type: ignore[arg-type]
    pump.start()
    try:
        # WHEN two batching windows pass
        assert twin.schedule_started.wait(5)
        time.sleep(2 * BATCHING_WINDOW_SECONDS / CLOCK_SPEED + 0.5)
        # THEN the queue was polled each window all the same, as AWS's pollers run apart from its scheduler
        assert len(twin.drains) >= 2
    finally:
        release.set()
        pump.stop()
        pump.join()


def test_queue_deliveries_are_a_batching_window_of_the_clock_apart() -> None:
    # GIVEN the template's batching window of 60 s on a clock at 100x
    twin = _Twin(BATCHING_WINDOW_SECONDS)
    # WHEN the pump runs for a few windows
    _run(ServicePump(twin, announce=lambda line: None), 2.2)  # type: ignore[arg-type]
    # THEN each delivery round comes a window after the one before, no sooner
    window_real = BATCHING_WINDOW_SECONDS / CLOCK_SPEED
    assert 3 <= len(twin.drains) <= 4
    gaps = [later - earlier for earlier, later in zip(twin.drains, twin.drains[1:], strict=False)]
    assert all(gap >= window_real - 0.02 for gap in gaps), gaps


def test_without_a_batching_window_the_queue_is_polled_every_round() -> None:
    twin = _Twin(0)
    _run(ServicePump(twin, announce=lambda line: None, round_seconds=0.1), 1.0)  # type: ignore[arg-type]
    # about ten rounds in a second: polled each round, never in a busy loop
    assert 6 <= len(twin.drains) <= 11


def test_the_endpoints_status_reaches_the_terminal_while_a_schedules_function_runs() -> None:
    # GIVEN an endpoint InService and a scheduled rule's function that runs for the whole test
    release = threading.Event()
    twin = _Twin(BATCHING_WINDOW_SECONDS, schedule_blocks=release)
    twin.stack.outputs["EndpointName"] = "mlops-local-endpoint"
    twin.sagemaker = _SageMaker()  # type: ignore[attr-defined]
    said: list[str] = []
    pump = ServicePump(twin, announce=said.append)  # type: ignore[arg-type]
    pump.start()
    try:
        # WHEN a second passes
        assert twin.schedule_started.wait(5)
        time.sleep(1.0)
        # THEN the terminal was told, as a person at it (and bench/served_twin.py) waits for that line
        assert "endpoint mlops-local-endpoint: InService" in said
    finally:
        release.set()
        pump.stop()
        pump.join()
