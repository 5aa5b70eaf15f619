"""The monitoring section of the HTML report: drift scores against thresholds, distributions, the alarm timeline.

Drawn from what `mlops run --drift` gathered: each monitoring run's report (`ml/monitor.py`, docs/interfaces.md),
the baseline sample and the rows the run sent in the window, and the twin's alarm state changes. Inline SVG and
CSS only, like the rest of the report.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

# The features drawn as histograms per run: the ones that drifted most.
DISTRIBUTIONS_PER_RUN = 3
HISTOGRAM_BINS = 20
# A score bar is drawn up to this many times the threshold's strength; the threshold sits at 1.
_STRENGTH_SHOWN = 4.0
_BAR_WIDTH = 160
_HIST_WIDTH, _HIST_HEIGHT = 300, 110
_TIMELINE_WIDTH, _TIMELINE_ROW, _TIMELINE_LABEL = 520, 22, 260
ALARM_STATE_COLOURS = {"OK": "#2e7d4f", "ALARM": "#b3261e", "INSUFFICIENT_DATA": "#9e9e9e"}
# The report's p-value tests: drifted at small scores; the others are distances, drifted at large ones.
P_VALUE_TESTS = ("ks", "chisquare", "z")


@dataclass(frozen=True)
class FeatureDistribution:
    """One feature's values in the baseline sample and in the window's traffic."""

    name: str
    baseline: Sequence[float]
    current: Sequence[float]


@dataclass
class MonitoringRunView:
    """One monitoring run: its window, its report and the distributions of the features that drifted most."""

    title: str
    window_start: str
    window_end: str
    report: Mapping[str, Any]
    distributions: list[FeatureDistribution] = field(default_factory=list)


@dataclass(frozen=True)
class AlarmChangeView:
    alarm: str
    previous: str
    state: str
    time: datetime


@dataclass
class MonitoringView:
    """The monitoring section's content."""

    runs: list[MonitoringRunView]
    alarm_changes: list[AlarmChangeView] = field(default_factory=list)


def drift_strength(feature: Mapping[str, Any]) -> float | None:
    """How far a tested feature is into drift, as a multiple of its threshold: 1 at the threshold, above 1 drifted.

    p-value tests drift as the score falls (threshold / score); distances as it rises (score / threshold). None for a
    feature that was not tested.
    """
    score, threshold, test = feature.get("score"), feature.get("threshold"), feature.get("test")
    if score is None or not threshold or test is None:
        return None
    if test in P_VALUE_TESTS:
        return math.inf if score <= 0 else float(threshold) / float(score)
    return float(score) / float(threshold)


def most_drifted(report: Mapping[str, Any], count: int = DISTRIBUTIONS_PER_RUN) -> list[str]:
    """The names of the `count` tested features with the greatest drift strength, strongest first."""
    tested = [(drift_strength(f), f["name"]) for f in report.get("features", [])]
    ranked = sorted(((s, n) for s, n in tested if s is not None), key=lambda item: -item[0])
    return [name for _, name in ranked[:count]]


def render_monitoring_section(view: MonitoringView) -> str:
    """The report's monitoring section as HTML."""
    parts = ["<section><h2>Monitoring</h2>"]
    for run in view.runs:
        parts.append(_run_block(run))
    parts.append(_alarm_block(view.alarm_changes))
    parts.append("</section>")
    return "".join(parts)


def _run_block(run: MonitoringRunView) -> str:
    report = run.report
    drift = bool(report.get("dataset_drift"))
    badge = '<span class="badge bad">dataset drift</span>' if drift else '<span class="badge ok">no drift</span>'
    share = report.get("drifted_share")
    records = (report.get("records") or {}).get("read", 0)
    heading = (
        f"<h3>{_e(run.title)} {badge}</h3><p class='muted'>window {_e(run.window_start)} to {_e(run.window_end)}; "
        f"{_e(records)} capture records; drifted share {_share(share)} "
        f"(threshold {_e(report.get('drift_share_threshold'))}); critical drifted: "
        f"{_e(', '.join(report.get('critical_features_drifted', [])) or 'none')}</p>"
    )
    rows = "".join(_feature_row(feature) for feature in report.get("features", []))
    # A drifted run shows its scores at once; a calm one keeps them folded.
    table = (
        f"<details{' open' if drift else ''}><summary>Each feature's drift score against its threshold</summary>"
        "<table><tr><th>feature</th>"
        "<th>test</th><th>score</th><th>threshold</th><th>against the threshold (line = threshold)</th>"
        f"<th>drifted</th></tr>{rows}</table></details>"
    )
    histograms = "".join(histogram_svg(distribution) for distribution in run.distributions)
    pictures = f"<div class='pair'>{histograms}</div>" if histograms else ""
    return heading + table + pictures


def _feature_row(feature: Mapping[str, Any]) -> str:
    strength = drift_strength(feature)
    if strength is None:
        bar = f"<span class='muted'>{_e(feature.get('status', 'not tested'))}</span>"
    else:
        shown = min(strength, _STRENGTH_SHOWN) / _STRENGTH_SHOWN * _BAR_WIDTH
        threshold_x = _BAR_WIDTH / _STRENGTH_SHOWN
        colour = "#b3261e" if feature.get("drifted") else "#1f5fbf"
        bar = (
            f'<svg width="{_BAR_WIDTH + 2}" height="12" role="img" aria-label="drift strength {strength:.2f}">'
            f'<rect x="0" y="2" width="{shown:.1f}" height="8" fill="{colour}"/>'
            f'<line x1="{threshold_x:.1f}" x2="{threshold_x:.1f}" y1="0" y2="12" stroke="#222"/></svg>'
        )
    return (
        f"<tr><td>{_e(feature.get('name'))}</td><td>{_e(feature.get('test') or '')}</td>"
        f"<td>{_number(feature.get('score'))}</td><td>{_number(feature.get('threshold'))}</td><td>{bar}</td>"
        f"<td>{'yes' if feature.get('drifted') else 'no'}</td></tr>"
    )


def histogram_svg(distribution: FeatureDistribution, bins: int = HISTOGRAM_BINS) -> str:
    """Baseline (grey) against current (blue) value frequencies of one feature, over shared bins."""
    baseline = np.asarray(distribution.baseline, dtype=float)
    current = np.asarray(distribution.current, dtype=float)
    baseline, current = baseline[np.isfinite(baseline)], current[np.isfinite(current)]
    both = np.concatenate([baseline, current])
    if not len(both):
        return ""
    low, high = float(both.min()), float(both.max())
    if high <= low:
        high = low + 1.0
    edges = np.linspace(low, high, bins + 1)
    shares = [np.histogram(values, bins=edges)[0] / max(len(values), 1) for values in (baseline, current)]
    tallest = max(float(max(share.max(), 0.0)) for share in shares) or 1.0
    width = _HIST_WIDTH / bins
    bars = []
    for share, colour, offset in ((shares[0], "#9e9e9e", 0.0), (shares[1], "#1f5fbf", width / 2)):
        for index, value in enumerate(share):
            height = value / tallest * (_HIST_HEIGHT - 20)
            bars.append(
                f'<rect x="{index * width + offset:.1f}" y="{_HIST_HEIGHT - 14 - height:.1f}" '
                f'width="{width / 2:.1f}" height="{height:.1f}" fill="{colour}" opacity=".85"/>'
            )
    axis = (
        f'<text class="axis" x="0" y="{_HIST_HEIGHT - 2}" style="text-anchor:start">{_e(_short(low))}</text>'
        f'<text class="axis" x="{_HIST_WIDTH}" y="{_HIST_HEIGHT - 2}" style="text-anchor:end">{_e(_short(high))}</text>'
    )
    return (
        f"<figure><figcaption>{_e(distribution.name)}: <span style='color:#777'>baseline (n={len(baseline)})"
        f"</span> vs <span style='color:#1f5fbf'>current (n={len(current)})</span></figcaption>"
        f'<svg width="{_HIST_WIDTH}" height="{_HIST_HEIGHT}" role="img" '
        f'aria-label="{_e(distribution.name)} baseline against current">{"".join(bars)}{axis}</svg></figure>'
    )


def _alarm_block(changes: Sequence[AlarmChangeView]) -> str:
    if not changes:
        return "<h3>Alarm timeline</h3><p class='muted'>no alarm changed state</p>"
    ordered = sorted(changes, key=lambda change: change.time)
    rows = "".join(
        f"<tr><td>{_e(c.time.isoformat(timespec='seconds'))}</td><td>{_e(c.alarm)}</td><td>{_e(c.previous)}</td>"
        f"<td>{_state(c.state)}</td></tr>"
        for c in ordered
    )
    table = f"<table><tr><th>time (twin clock)</th><th>alarm</th><th>from</th><th>to</th></tr>{rows}</table>"
    return f"<h3>Alarm timeline</h3>{alarm_timeline_svg(ordered)}{table}"


def alarm_timeline_svg(changes: Sequence[AlarmChangeView]) -> str:
    """One row per alarm, coloured by its state from each change to the next (the last one to the end)."""
    ordered = sorted(changes, key=lambda change: change.time)
    start, end = ordered[0].time, ordered[-1].time
    span = max((end - start).total_seconds(), 1.0)
    # The last state is drawn a tenth of the span past the last change, so it shows.
    scale = _TIMELINE_WIDTH / (span * 1.1)
    alarms = list(dict.fromkeys(change.alarm for change in ordered))
    shapes = []
    for row, alarm in enumerate(alarms):
        own = [change for change in ordered if change.alarm == alarm]
        y = row * _TIMELINE_ROW
        shapes.append(f'<text class="row" x="0" y="{y + 15}">{_e(_shorten(alarm, 40))}</text>')
        for index, change in enumerate(own):
            x0 = _TIMELINE_LABEL + (change.time - start).total_seconds() * scale
            following = own[index + 1].time if index + 1 < len(own) else None
            x1 = _TIMELINE_LABEL + (
                (following - start).total_seconds() * scale if following is not None else _TIMELINE_WIDTH
            )
            colour = ALARM_STATE_COLOURS.get(change.state, "#555")
            shapes.append(
                f'<rect x="{x0:.1f}" y="{y + 4}" width="{max(x1 - x0, 2):.1f}" height="14" fill="{colour}">'
                f"<title>{_e(change.state)} from {_e(change.time.isoformat(timespec='seconds'))}</title></rect>"
            )
    height = len(alarms) * _TIMELINE_ROW + 4
    return (
        f'<svg width="{_TIMELINE_LABEL + _TIMELINE_WIDTH + 4}" height="{height}" role="img" '
        f'aria-label="alarm states over time">{"".join(shapes)}</svg>'
    )


def _state(state: str) -> str:
    return f"<b style='color:{ALARM_STATE_COLOURS.get(state, '#555')}'>{_e(state)}</b>"


def _share(value: Any) -> str:
    return "-" if value is None else f"{float(value):.3f}"


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return _e("" if value is None else value)


def _short(value: float) -> str:
    return f"{value:.4g}"


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)
