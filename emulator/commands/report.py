"""Writes the self-contained HTML report of a lifecycle run: state graphs, timelines, metrics, lineage, predictions.

A drift run (`mlops run --drift`) adds the monitoring section of `emulator.commands.report_monitoring`.
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from emulator.commands.console import format_duration
from emulator.commands.report_bias import render_bias_section
from emulator.commands.report_lineage import render_lineage_manifest_section
from emulator.commands.report_model_card import render_model_card_section
from emulator.commands.report_monitoring import MonitoringView, render_monitoring_section
from emulator.history import CAUGHT, FAILED, NOT_RUN, RUNNING, SUCCEEDED, StateRun

STATUS_COLOURS = {
    SUCCEEDED: ("#d9f2e0", "#2e7d4f"),
    FAILED: ("#fbdada", "#b3261e"),
    CAUGHT: ("#ffe9c7", "#b26a00"),
    RUNNING: ("#dbe8fb", "#1f5fbf"),
    NOT_RUN: ("#f1f1f1", "#9e9e9e"),
}
# Graph geometry, in SVG user units.
_NODE_WIDTH, _NODE_HEIGHT = 190, 44
_COLUMN_GAP, _ROW_GAP, _MARGIN = 28, 46, 24
_LOOP_OFFSET = 36
# Timeline geometry.
_LABEL_WIDTH, _BAR_AREA_WIDTH, _ROW_HEIGHT = 250, 640, 20
_TIMELINE_MAX_ROWS = 150
_TOP_ATTRIBUTIONS = 10


@dataclass
class ExecutionView:
    """One execution as the report shows it: its ASL, its state runs and how it ended."""

    label: str
    execution_arn: str
    status: str
    definition: Mapping[str, Any]
    runs: Sequence[StateRun]
    started: datetime | None = None
    stopped: datetime | None = None
    error: str | None = None
    cause: str | None = None
    # How long it ran in real seconds (its dates are on the twin's fast clock).
    seconds: float | None = None


@dataclass
class Prediction:
    """One sample row sent to the endpoint: what it answered and the held-out label."""

    score: float | None
    predicted: Any
    actual: Any


@dataclass
class LifecycleReport:
    """Everything a lifecycle run produced that the report shows."""

    title: str
    executions: list[ExecutionView]
    evaluation: Mapping[str, Any] | None = None
    model_package: Mapping[str, Any] | None = None
    model_card: Mapping[str, Any] | None = None
    endpoint_url: str | None = None
    predictions: list[Prediction] = field(default_factory=list)
    failure: str | None = None
    monitoring: MonitoringView | None = None
    lineage: Mapping[str, Any] | None = None


def write_report(report: LifecycleReport, path: Path) -> Path:
    """Writes `report` as one HTML file with inline SVG and CSS: no scripts, no external assets."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(report), encoding="utf-8")
    return path


def render_report(report: LifecycleReport) -> str:
    """The report as an HTML document."""
    sections = [f"<h1>{_e(report.title)}</h1>", _legend()]
    if report.failure:
        sections.append(f'<p class="failure">{_e(report.failure)}</p>')
    for execution in report.executions:
        sections.append(_execution_section(execution))
    if report.evaluation:
        sections.append(_evaluation_section(report.evaluation))
        if "bias" in report.evaluation:
            sections.append(render_bias_section(report.evaluation["bias"]))
    if report.model_package:
        sections.append(_lineage_section(report.model_package))
    if report.model_card:
        sections.append(render_model_card_section(report.model_card))
    if report.lineage:
        sections.append(render_lineage_manifest_section(report.lineage))
    if report.endpoint_url or report.predictions:
        sections.append(_endpoint_section(report.endpoint_url, report.predictions))
    if report.monitoring is not None:
        sections.append(render_monitoring_section(report.monitoring))
    return _PAGE.format(title=_e(report.title), body="\n".join(sections))


def state_statuses(definition: Mapping[str, Any], runs: Sequence[StateRun]) -> dict[str, str]:
    """The outcome of each top-level state of `definition`: a failed visit outweighs a caught one, then a success."""
    precedence = (FAILED, CAUGHT, RUNNING, SUCCEEDED)
    statuses = {}
    for name in definition.get("States", {}):
        seen = {run.status for run in runs if run.name == name and run.depth == 0}
        statuses[name] = next((s for s in precedence if s in seen), NOT_RUN)
    return statuses


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    kind: str  # next | choice | default | catch


def state_edges(definition: Mapping[str, Any]) -> list[Edge]:
    """Transitions between the top-level states: Next, Choice rules, Default and Catch."""
    edges = []
    for name, state in definition.get("States", {}).items():
        if "Next" in state:
            edges.append(Edge(name, state["Next"], "next"))
        for rule in state.get("Choices", []):
            edges.append(Edge(name, rule["Next"], "choice"))
        if "Default" in state:
            edges.append(Edge(name, state["Default"], "default"))
        for catcher in state.get("Catch", []):
            edges.append(Edge(name, catcher["Next"], "catch"))
    return list(dict.fromkeys(edges))


def layout_layers(definition: Mapping[str, Any]) -> list[list[str]]:
    """Rows of states for drawing top to bottom: each state one row below its furthest predecessor.

    Loops (a Wait/describe/Choice poll) are cut at the edge that closes them, found by depth-first search
    from StartAt, so the rest is a DAG; states nothing reaches go in a last row.
    """
    states = definition.get("States", {})
    successors: dict[str, list[str]] = {name: [] for name in states}
    for edge in state_edges(definition):
        if edge.target in states and edge.target not in successors[edge.source]:
            successors[edge.source].append(edge.target)
    start = definition.get("StartAt")
    loop_edges = _loop_closing_edges(start, successors) if start in successors else set()
    order = _reachable_in_topological_order(start, successors, loop_edges) if start in successors else []
    layer = {name: 0 for name in order}
    for name in order:
        for target in successors[name]:
            if (name, target) not in loop_edges:
                layer[target] = max(layer[target], layer[name] + 1)
    rows: list[list[str]] = [[] for _ in range(max(layer.values(), default=-1) + 1)]
    for name in order:
        rows[layer[name]].append(name)
    unreachable = [name for name in states if name not in layer]
    if unreachable:
        rows.append(unreachable)
    return rows


def _loop_closing_edges(start: str, successors: Mapping[str, list[str]]) -> set[tuple[str, str]]:
    closing: set[tuple[str, str]] = set()
    on_path: set[str] = set()
    done: set[str] = set()
    # Iterative DFS: a generated state machine can be deeper than Python's recursion limit.
    stack: list[tuple[str, int]] = [(start, 0)]
    on_path.add(start)
    while stack:
        node, index = stack[-1]
        if index < len(successors[node]):
            stack[-1] = (node, index + 1)
            target = successors[node][index]
            if target in on_path:
                closing.add((node, target))
            elif target not in done:
                on_path.add(target)
                stack.append((target, 0))
        else:
            stack.pop()
            on_path.discard(node)
            done.add(node)
    return closing


def _reachable_in_topological_order(
    start: str, successors: Mapping[str, list[str]], loop_edges: set[tuple[str, str]]
) -> list[str]:
    reachable = {start}
    frontier = [start]
    while frontier:
        node = frontier.pop()
        for target in successors[node]:
            if target not in reachable:
                reachable.add(target)
                frontier.append(target)
    incoming = {name: 0 for name in reachable}
    for name in reachable:
        for target in successors[name]:
            if (name, target) not in loop_edges:
                incoming[target] += 1
    # Kahn's algorithm in definition order, so siblings keep the order the author wrote them in.
    ready = [name for name in successors if name in reachable and incoming[name] == 0]
    order = []
    while ready:
        node = ready.pop(0)
        order.append(node)
        for target in successors[node]:
            if (node, target) in loop_edges:
                continue
            incoming[target] -= 1
            if incoming[target] == 0:
                ready.append(target)
    return order


def render_state_graph(definition: Mapping[str, Any], runs: Sequence[StateRun]) -> str:
    """An inline SVG of the top-level states, laid out top to bottom, filled by outcome, transitions taken in bold."""
    rows = layout_layers(definition)
    statuses = state_statuses(definition, runs)
    widest = max((len(row) for row in rows), default=1)
    width = 2 * _MARGIN + widest * _NODE_WIDTH + (widest - 1) * _COLUMN_GAP + _LOOP_OFFSET
    height = 2 * _MARGIN + len(rows) * _NODE_HEIGHT + max(len(rows) - 1, 0) * _ROW_GAP
    position: dict[str, tuple[float, float]] = {}
    for row_index, row in enumerate(rows):
        row_width = len(row) * _NODE_WIDTH + (len(row) - 1) * _COLUMN_GAP
        left = (width - _LOOP_OFFSET - row_width) / 2
        for column, name in enumerate(row):
            position[name] = (
                left + column * (_NODE_WIDTH + _COLUMN_GAP),
                _MARGIN + row_index * (_NODE_HEIGHT + _ROW_GAP),
            )
    row_of = {name: index for index, row in enumerate(rows) for name in row}
    top_level = [run.name for run in runs if run.depth == 0]
    taken = set(itertools.pairwise(top_level))
    parts = [
        f'<svg class="graph" xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img">',
        _ARROW_MARKERS,
    ]
    for edge in state_edges(definition):
        if edge.source in position and edge.target in position:
            parts.append(_edge_path(edge, position, row_of, (edge.source, edge.target) in taken))
    states = definition.get("States", {})
    for name, (x, y) in position.items():
        parts.append(_node(name, states[name], x, y, statuses[name], [r for r in runs if r.name == name]))
    parts.append("</svg>")
    return "\n".join(parts)


def _edge_path(edge: Edge, position: Mapping[str, tuple[float, float]], row_of: Mapping[str, int], taken: bool) -> str:
    (sx, sy), (tx, ty) = position[edge.source], position[edge.target]
    css = f"edge {edge.kind}" + (" taken" if taken else "")
    if row_of[edge.target] > row_of[edge.source]:
        x1, y1 = sx + _NODE_WIDTH / 2, sy + _NODE_HEIGHT
        x2, y2 = tx + _NODE_WIDTH / 2, ty
        bend = (y2 - y1) / 2
        d = f"M{x1:.1f},{y1:.1f} C{x1:.1f},{y1 + bend:.1f} {x2:.1f},{y2 - bend:.1f} {x2:.1f},{y2:.1f}"
    else:
        # A loop back up (or sideways): route it round the right-hand side so it does not cross the nodes.
        x1, y1 = sx + _NODE_WIDTH, sy + _NODE_HEIGHT / 2
        x2, y2 = tx + _NODE_WIDTH, ty + _NODE_HEIGHT / 2
        out = max(x1, x2) + _LOOP_OFFSET
        d = f"M{x1:.1f},{y1:.1f} C{out:.1f},{y1:.1f} {out:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
    title = _e(f"{edge.source} -> {edge.target} ({edge.kind})")
    return f'<path class="{css}" d="{d}" marker-end="url(#arrow-{edge.kind})"><title>{title}</title></path>'


def _node(name: str, state: Mapping[str, Any], x: float, y: float, status: str, runs: Sequence[StateRun]) -> str:
    fill, stroke = STATUS_COLOURS[status]
    state_type = state.get("Type", "?")
    detail = state_type
    if state_type == "Parallel":
        detail += f" · {len(state.get('Branches', []))} branches"
    top_runs = [r for r in runs if r.depth == 0]
    durations = [r.duration_seconds for r in top_runs if r.duration_seconds is not None]
    if durations:
        detail += f" · {format_duration(sum(durations))}"
    if len(top_runs) > 1:
        detail += f" · {len(top_runs)}x"
    tooltip = [f"{name} ({state_type}): {status}"]
    tooltip += [f"{r.error}: {r.cause or ''}" for r in top_runs if r.error]
    if any(r.failed_attempts and r.status == SUCCEEDED for r in top_runs):
        tooltip.append("succeeded after retries")
    shape = 'rx="22"' if state_type in ("Succeed", "Fail") else 'rx="6"'
    return (
        f'<g class="node {status.replace(" ", "-")}"><title>{_e(chr(10).join(tooltip))}</title>'
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{_NODE_WIDTH}" height="{_NODE_HEIGHT}" {shape} '
        f'fill="{fill}" stroke="{stroke}"/>'
        f'<text x="{x + _NODE_WIDTH / 2:.1f}" y="{y + 18:.1f}" class="name">{_e(_shorten(name, 26))}</text>'
        f'<text x="{x + _NODE_WIDTH / 2:.1f}" y="{y + 34:.1f}" class="detail">{_e(detail)}</text></g>'
    )


def render_timeline(runs: Sequence[StateRun], started: datetime | None, stopped: datetime | None) -> str:
    """An inline SVG Gantt chart: one bar per state run, nested runs indented under their Parallel or Map."""
    shown = list(runs[:_TIMELINE_MAX_ROWS])
    if not shown:
        return '<p class="muted">No state ran.</p>'
    origin = started or min(r.entered for r in shown)
    end = stopped or max((r.exited or r.entered) for r in shown)
    total = max((end - origin).total_seconds(), 1e-3)
    scale = _BAR_AREA_WIDTH / total
    axis_height = 22
    height = axis_height + len(shown) * _ROW_HEIGHT + 8
    width = _LABEL_WIDTH + _BAR_AREA_WIDTH + 80
    parts = [
        f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img">'
    ]
    for tick in _ticks(total):
        tx = _LABEL_WIDTH + tick * scale
        parts.append(
            f'<line class="tick" x1="{tx:.1f}" y1="{axis_height - 4}" x2="{tx:.1f}" y2="{height}"/>'
            f'<text class="axis" x="{tx:.1f}" y="{axis_height - 8}">{_e(format_duration(tick))}</text>'
        )
    for index, run in enumerate(shown):
        y = axis_height + index * _ROW_HEIGHT
        fill, stroke = STATUS_COLOURS[run.status]
        offset = (run.entered - origin).total_seconds()
        length = ((run.exited or end) - run.entered).total_seconds()
        bar_x, bar_width = _LABEL_WIDTH + offset * scale, max(length * scale, 1.5)
        label = "  " * run.depth + run.name
        parts.append(
            f"<g><title>{_e(f'{run.name} ({run.state_type}) {run.status}, {format_duration(run.duration_seconds)}')}"
            f'</title><text class="row" x="4" y="{y + 14}" xml:space="preserve">{_e(_shorten(label, 34))}</text>'
            f'<rect x="{bar_x:.1f}" y="{y + 3}" width="{bar_width:.1f}" height="{_ROW_HEIGHT - 6}" rx="2" '
            f'fill="{fill}" stroke="{stroke}"/>'
            f'<text class="dur" x="{bar_x + bar_width + 4:.1f}" y="{y + 14}">'
            f"{_e(format_duration(run.duration_seconds))}</text></g>"
        )
    parts.append("</svg>")
    hidden = len(runs) - len(shown)
    note = f'<p class="muted">{hidden} more state runs not drawn.</p>' if hidden > 0 else ""
    return "\n".join(parts) + note


def _ticks(total_seconds: float) -> list[float]:
    for step in (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600):
        if total_seconds / step <= 8:
            break
    count = int(total_seconds // step)
    return [i * step for i in range(count + 1)]


def _execution_section(execution: ExecutionView) -> str:
    status_class = "ok" if execution.status == "SUCCEEDED" else "bad"
    header = (
        f'<h2>{_e(execution.label)} <span class="badge {status_class}">{_e(execution.status)}</span></h2>'
        f'<p class="muted">{_e(execution.execution_arn)}'
    )
    if execution.seconds is not None:
        header += f" · {_e(format_duration(execution.seconds))}"
    header += "</p>"
    if execution.error:
        header += f'<p class="failure">{_e(execution.error)}: {_e(execution.cause or "")}</p>'
    return (
        f"<section>{header}<div class='pair'><div><h3>State graph</h3>"
        f"{render_state_graph(execution.definition, execution.runs)}</div>"
        f"<div><h3>Timeline</h3>{render_timeline(execution.runs, execution.started, execution.stopped)}</div>"
        f"</div>{_state_table(execution.runs)}</section>"
    )


def _state_table(runs: Sequence[StateRun]) -> str:
    rows = "".join(
        f'<tr><td class="name">{"&nbsp;&nbsp;" * r.depth}{_e(r.name)}</td><td>{_e(r.state_type)}</td>'
        f'<td><span class="dot {r.status.replace(" ", "-")}"></span>{_e(r.status)}</td>'
        f"<td>{_e(format_duration(r.duration_seconds))}</td><td>{_e(r.error or '')}</td></tr>"
        for r in runs[:_TIMELINE_MAX_ROWS]
    )
    return (
        "<details><summary>States</summary><table><tr><th>state</th><th>type</th><th>status</th>"
        f"<th>duration</th><th>error</th></tr>{rows}</table></details>"
    )


def _evaluation_section(evaluation: Mapping[str, Any]) -> str:
    metrics = evaluation.get("metrics", {})
    metric_rows = "".join(f"<tr><td>{_e(k)}</td><td>{_number(v)}</td></tr>" for k, v in metrics.items())
    per_class = evaluation.get("per_class", {})
    class_rows = "".join(
        f"<tr><td>{_e(label)}</td><td>{_number(v.get('precision'))}</td><td>{_number(v.get('recall'))}</td>"
        f"<td>{_number(v.get('f1'))}</td><td>{_e(v.get('support', ''))}</td></tr>"
        for label, v in per_class.items()
    )
    attributions = sorted(evaluation.get("feature_attributions", {}).items(), key=lambda kv: -abs(kv[1]))
    attributions = attributions[:_TOP_ATTRIBUTIONS]
    largest = max((abs(v) for _, v in attributions), default=1.0) or 1.0
    attribution_rows = "".join(
        f'<tr><td>{_e(name)}</td><td><span class="bar" style="width:{160 * abs(value) / largest:.0f}px"></span>'
        f" {_number(value)}</td></tr>"
        for name, value in attributions
    )
    return (
        f"<section><h2>Evaluation <span class='muted'>(test split, n={_e(evaluation.get('n_test', '?'))})</span></h2>"
        f"<div class='pair'><table><tr><th>metric</th><th>value</th></tr>{metric_rows}</table>"
        "<table><tr><th>class</th><th>precision</th><th>recall</th><th>f1</th><th>support</th></tr>"
        f"{class_rows}</table>"
        "<table><tr><th>feature (mean |SHAP|)</th><th></th></tr>"
        f"{attribution_rows}</table></div></section>"
    )


def _lineage_section(model_package: Mapping[str, Any]) -> str:
    rows = [
        ("model package", model_package.get("ModelPackageArn")),
        ("approval", model_package.get("ModelApprovalStatus")),
    ]
    rows += sorted((model_package.get("CustomerMetadataProperties") or {}).items())
    body = "".join(f"<tr><td>{_e(k)}</td><td><code>{_e(v)}</code></td></tr>" for k, v in rows)
    return f"<section><h2>Lineage</h2><table>{body}</table></section>"


def _endpoint_section(endpoint_url: str | None, predictions: Sequence[Prediction]) -> str:
    url = f"<p>Endpoint: <code>{_e(endpoint_url)}</code></p>" if endpoint_url else ""
    rows = "".join(
        f"<tr><td>{i}</td><td>{_number(p.score)}</td><td>{_e(p.predicted)}</td><td>{_e(p.actual)}</td>"
        f"<td>{'✔' if str(p.predicted) == str(p.actual) else '✘'}</td></tr>"
        for i, p in enumerate(predictions, start=1)
    )
    table = (
        "<table><tr><th>row</th><th>score</th><th>predicted</th><th>label</th><th></th></tr>" + rows + "</table>"
        if predictions
        else ""
    )
    return f"<section><h2>Live endpoint</h2>{url}{table}</section>"


def _legend() -> str:
    items = "".join(
        f'<span class="legend"><span class="dot {status.replace(" ", "-")}"></span>{_e(status)}</span>'
        for status in (SUCCEEDED, CAUGHT, FAILED, NOT_RUN)
    )
    return f'<p>{items}<span class="legend">bold arrow: transition taken; dashed: Catch</span></p>'


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return _e("" if value is None else value)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


_ARROW_MARKERS = (
    "<defs>"
    + "".join(
        f'<marker id="arrow-{kind}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="9" markerHeight="9" '
        f'markerUnits="userSpaceOnUse" orient="auto-start-reverse">'
        f'<path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>'
        for kind, colour in (("next", "#555"), ("choice", "#1f5fbf"), ("default", "#1f5fbf"), ("catch", "#b26a00"))
    )
    + "</defs>"
)

_DOT_CSS = "".join(
    f".dot.{status.replace(' ', '-')}{{background:{fill};border-color:{stroke}}}"
    for status, (fill, stroke) in STATUS_COLOURS.items()
)

_PAGE = (
    """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body{{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;}}
h1{{font-size:1.5em}} h2{{font-size:1.2em;margin-top:2em}} h3{{font-size:1em;color:#555}}
section{{border-top:1px solid #ddd;padding-top:4px}}
.pair{{display:flex;flex-wrap:wrap;gap:32px;align-items:flex-start}}
.muted{{color:#777;font-size:.9em}} .failure{{color:#b3261e;font-weight:600;white-space:pre-wrap}}
.badge{{font-size:.75em;padding:2px 8px;border-radius:10px;color:#fff}}
.badge.ok{{background:#2e7d4f}} .badge.bad{{background:#b3261e}}
table{{border-collapse:collapse;font-size:.9em;margin:8px 0}}
td,th{{border-bottom:1px solid #eee;padding:3px 10px;text-align:left;vertical-align:top}}
code{{font-size:.85em;word-break:break-all}}
.bar{{display:inline-block;height:10px;background:#1f5fbf;border-radius:2px}}
.dot{{display:inline-block;width:10px;height:10px;border-radius:5px;border:1px solid;margin-right:5px}}
.legend{{margin-right:18px;font-size:.9em}}
svg text{{font-size:12px;fill:#222}}
svg text.name{{text-anchor:middle;font-weight:600}} svg text.detail{{text-anchor:middle;font-size:10.5px;fill:#555}}
svg text.axis{{text-anchor:middle;font-size:10px;fill:#777}} svg text.dur{{font-size:10px;fill:#555}}
svg text.row{{font-size:11px}}
svg line.tick{{stroke:#eee}}
.edge{{fill:none;stroke:#555;stroke-width:1.2;opacity:.45}} .edge.choice,.edge.default{{stroke:#1f5fbf}}
.edge.taken{{opacity:1;stroke-width:2.2}}
.edge.catch{{stroke:#b26a00;stroke-dasharray:5 4}}
"""
    + _DOT_CSS.replace("{", "{{").replace("}", "}}")
    + """
</style></head><body>
{body}
</body></html>
"""
)
