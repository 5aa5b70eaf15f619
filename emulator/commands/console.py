"""The console printer of `mlops run`: one line as each state starts and ends, durations as people read them."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence
from typing import TextIO

from emulator.history import RUNNING, SUCCEEDED, StateRun, inside_map, job_metrics, short_cause


def format_duration(seconds: float | None) -> str:
    """Seconds as `4.2s` or `3m07.5s`; `-` for a state that has no end yet."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{rest:04.1f}s"


class ProgressPrinter:
    """Prints one line when a state starts and one when it ends, never repeating itself.

    Plain lines, no cursor tricks, so the output reads the same in a terminal, a pipe or a CI log. Map
    iterations are summarised by their Map state; later visits of a state in a loop (a poll until an endpoint is
    InService) are counted and printed as one line when the execution moves on, unless a visit fails.
    """

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stdout
        self._started: set[int] = set()
        self._finished: set[int] = set()
        self._first_visit: dict[str, int] = {}
        self._repeats: Counter[str] = Counter()

    def update(self, runs: Sequence[StateRun]) -> None:
        """Prints what changed since the last call; `runs` is the latest `state_runs` of the same execution."""
        for index, run in enumerate(runs):
            if inside_map(run):
                continue
            repeat = self._first_visit.setdefault(run.name, index) != index
            if index not in self._started:
                self._started.add(index)
                if run.status == RUNNING and not repeat:
                    self._print(run, f"{run.name} ({run.state_type}) started")
            if run.status != RUNNING and index not in self._finished:
                self._finished.add(index)
                if repeat and run.status == SUCCEEDED:
                    self._repeats[run.name] += 1
                else:
                    self._print(run, self._finish_line(run))

    def finish(self) -> None:
        """Prints what is still held back (repeated visits); call once the execution has stopped."""
        self._flush_repeats()

    def _flush_repeats(self) -> None:
        if self._repeats:
            counts = ", ".join(f"{name} x{count}" for name, count in self._repeats.items())
            print(f"[{self.label}] repeated, all succeeded: {counts}", file=self.stream, flush=True)
            self._repeats.clear()

    def _finish_line(self, run: StateRun) -> str:
        line = f"{run.name} ({run.state_type}) {run.status} in {format_duration(run.duration_seconds)}"
        if run.failed_attempts and run.status == SUCCEEDED:
            line += f" after {run.failed_attempts} failed attempt(s)"
        if run.error is not None:
            line += f": {run.error}" + (f": {short_cause(run.cause)}" if run.cause else "")
        metrics = job_metrics(run.task_output)
        if metrics:
            line += " | " + ", ".join(f"{name}={value:.4f}" for name, value in sorted(metrics.items()))
        return line

    def _print(self, run: StateRun, text: str) -> None:
        self._flush_repeats()
        print(f"[{self.label}] {'  ' * run.depth}{text}", file=self.stream, flush=True)
