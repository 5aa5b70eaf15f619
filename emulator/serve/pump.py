"""`ServicePump`: what AWS's managed services do on their own while the served twin waits for clients.

In `mlops run` the command drives the twin: it starts executions and waits on the clock. Served, nobody does,
so its threads do what EventBridge, Lambda's event source mappings and CloudWatch do by themselves:

- fires the stack's schedule rules (the idle endpoint reaper, monitoring, drift re-checks) as the twin's clock
  passes their periods;
- delivers the queues' messages to their functions once a batching window of the clock has passed (S3 upload →
  EventBridge → queue → `retrain_on_new_data`), as an event source mapping polls: in a thread of its own, as AWS's
  pollers run apart from EventBridge's scheduler, so a scheduled rule's function (the drift re-check every 15
  minutes of the clock, 9 real seconds at 100x, took 0.3 to 2.4 s on a loaded 2-core machine) never holds back a
  delivery; it wakes when the window closes, not at the next round;
- lets the clock's minute listeners run (CloudWatch's evaluation of every alarm each minute), in a thread of their
  own: on a fast clock the evaluations can fall behind, and then they must delay neither the schedules and
  deliveries nor an execution's Wait state (a thread that waits on the clock announces the minutes only when no
  other thread is announcing them, and this thread nearly always is);
- tells the terminal what happened: an execution a rule started, a delivery that failed, the endpoint's status;
  in a thread of its own too, so `endpoint ...: InService` shows within a round, not after a schedule's function.

Each round's failure is logged and the next round runs: a failing target never stops EventBridge on AWS.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

from emulator.sagemaker_local.errors import SageMakerError
from emulator.twin import LocalTwin

logger = logging.getLogger(__name__)

# Real seconds between rounds: short enough that an upload starts its training within a second.
ROUND_SECONDS = 0.2
# Real seconds stop() waits for a round in progress (a Lambda runs in it) beyond the longest function timeout.
_STOP_MARGIN_SECONDS = 5.0

_PUMP_THREAD = "served-twin-pump"
_QUEUES_THREAD = "served-twin-queues"
_TERMINAL_THREAD = "served-twin-terminal"
_ALARMS_THREAD = "served-twin-alarms"
# What stop() waits for before the twin closes: the threads that run functions (a schedule's target, a queue's
# batch) and the one that reads the endpoint's status (a closing twin's SageMaker would read as "deleted").
_STOPPED_BEFORE_CLOSE = (_PUMP_THREAD, _QUEUES_THREAD, _TERMINAL_THREAD)

Announce = Callable[[str], None]


class ServicePump:
    """See the module docstring. `start()` runs the rounds in a thread; `stop()` ends and joins it."""

    def __init__(self, twin: LocalTwin, announce: Announce, round_seconds: float = ROUND_SECONDS) -> None:
        self._twin = twin
        self._announce = announce
        self._round_seconds = round_seconds
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._deliveries_seen = 0
        self._endpoint_status: str | None = None
        windows = [source.batching_window_seconds for source in twin.stack.queue_sources.values() if source.enabled]
        self._batching_window = min(windows, default=0)
        self._last_drain: datetime = twin.clock.now()

    def start(self) -> None:
        self._threads = [
            threading.Thread(target=self._repeat, args=(self.run_round,), name=_PUMP_THREAD, daemon=True),
            threading.Thread(target=self._poll_queues, name=_QUEUES_THREAD, daemon=True),
            threading.Thread(target=self._repeat, args=(self.announce,), name=_TERMINAL_THREAD, daemon=True),
            threading.Thread(target=self._repeat, args=(self.announce_minutes,), name=_ALARMS_THREAD, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Ends the rounds: waits for the rounds in progress (the Lambdas they run), not for the alarms' evaluation.

        That one may have fallen behind the clock; it ends once the twin's close() unsubscribes the alarms from the
        clock, so `join()` waits for it after the twin closed. Raises RuntimeError when the round outlives the
        longest function timeout.
        """
        self._stopping.set()
        deadline = time.monotonic() + self._join_seconds()
        running = [thread for thread in self._threads if thread.name in _STOPPED_BEFORE_CLOSE]
        for thread in running:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        still = [thread.name for thread in running if thread.is_alive()]
        if still:
            raise RuntimeError(f"The served twin's threads {still} were still in a round after stop()")

    def join(self) -> None:
        """After the twin closed: waits for both threads; RuntimeError naming any still running."""
        self._stopping.set()
        threads, self._threads = self._threads, []
        deadline = time.monotonic() + self._join_seconds()
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        still = [thread.name for thread in threads if thread.is_alive()]
        if still:
            raise RuntimeError(f"The served twin's threads {still} were still running after the twin closed")

    def _join_seconds(self) -> float:
        return max((f.timeout for f in self._twin.stack.functions.values()), default=0) + _STOP_MARGIN_SECONDS

    def announce_minutes(self) -> None:
        """A wait of no virtual time: the clock's listeners (the alarms' evaluation) hear of each minute it passed."""
        self._twin.clock.sleep(0)

    def run_round(self) -> None:
        """One round of the schedules: each rule whose period passed on the clock fires."""
        self._twin.fire_schedules()

    def announce(self) -> None:
        """What to tell the terminal: executions rules started, failed deliveries, the endpoint's status."""
        self._announce_deliveries()
        self._announce_endpoint()

    def deliver_queues(self) -> float:
        """Delivers the queues' messages when a batching window has passed since the last delivery round.

        Returns the real seconds until the next window closes (0 when the stack sets none: poll again a round later).
        """
        clock = self._twin.clock
        waited = (clock.now() - self._last_drain).total_seconds()
        if waited >= self._batching_window:
            self._last_drain = clock.now()
            self._twin.drain_queues()
            waited = 0.0
        return max(0.0, self._batching_window - waited) / clock.speed

    def _poll_queues(self) -> None:
        pause = self._round_seconds
        while not self._stopping.wait(pause):
            pause = self._round_seconds
            try:
                pause = min(self._round_seconds, self.deliver_queues() or self._round_seconds)
            except Exception:
                logger.exception("A round of the served twin's queue deliveries failed; the next round runs")

    def _repeat(self, action: Callable[[], None]) -> None:
        while not self._stopping.wait(self._round_seconds):
            try:
                action()
            except Exception:
                logger.exception("A round of the served twin's %s failed; the next round runs", action.__name__)

    def _announce_deliveries(self) -> None:
        deliveries = self._twin.router.deliveries
        for delivery in deliveries[self._deliveries_seen :]:
            if delivery.error is not None:
                self._announce(f"rule {delivery.rule}: could not deliver to {delivery.target_arn}: {delivery.error}")
            elif delivery.service == "states":
                self._announce(f"rule {delivery.rule} started execution {delivery.result}")
        self._deliveries_seen = len(deliveries)

    def _announce_endpoint(self) -> None:
        name = self._twin.stack.outputs.get("EndpointName")
        if not name:
            return
        try:
            status = str(self._twin.sagemaker.call("DescribeEndpoint", {"EndpointName": name})["EndpointStatus"])
        except SageMakerError:
            status = "absent"
        if status != self._endpoint_status:
            if status == "absent":
                if self._endpoint_status is not None:
                    self._announce(f"endpoint {name} deleted")
            else:
                self._announce(f"endpoint {name}: {status}")
            self._endpoint_status = status
