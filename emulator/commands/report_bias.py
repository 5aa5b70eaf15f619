"""The HTML report's bias section: the facet, its pre- and post-training metrics (evaluation.json's `bias`)."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

# Clarify's names for the metrics ml/bias.py computes, in the report's order.
METRIC_NAMES = {
    "CI": "class imbalance",
    "DPL": "difference in proportions of labels",
    "DPPL": "difference in positive proportions in predicted labels",
    "DI": "disparate impact",
    "RD": "recall difference",
    "AD": "accuracy difference",
}


def bias_summary_line(bias: Mapping[str, Any]) -> str:
    """One line for the run's summary: the facet and each metric, or why no facet was assessed."""
    facet = bias.get("facet")
    if not facet:
        return f"bias: not assessed, {bias.get('reason', 'no facet configured')}"
    values = {**_metrics(bias, "pretraining"), **_metrics(bias, "posttraining")}
    shown = ", ".join(f"{name}={_number(values.get(name))}" for name in METRIC_NAMES if name in values)
    return f"bias ({facet['facet_column']} in {facet['sensitive_values']} vs the rest): {shown}"


def render_bias_section(bias: Mapping[str, Any]) -> str:
    facet = bias.get("facet")
    if not facet:
        reason = bias.get("reason", "no facet configured")
        return f"<section><h2>Bias</h2><p class='muted'>Not assessed: {_e(reason)}.</p></section>"
    rows = []
    for stage in ("pretraining", "posttraining"):
        undefined = (bias.get(stage) or {}).get("undefined", {})
        for name, value in _metrics(bias, stage).items():
            shown = _number(value) if value is not None else f"undefined ({undefined.get(name, 'no value')})"
            rows.append(
                f"<tr><td>{_e(stage.replace('training', '-training'))}</td><td>{_e(name)}</td>"
                f"<td>{_e(METRIC_NAMES.get(name, ''))}</td><td>{_e(shown)}</td></tr>"
            )
    groups = "".join(
        f"<tr><td>facet {side}</td><td>{_e((bias.get('posttraining') or {}).get(f'facet_{side}', {}).get('rows', ''))}"
        "</td></tr>"
        for side in ("a", "d")
    )
    return (
        f"<section><h2>Bias <span class='muted'>(facet d: {_e(facet['facet_column'])} in "
        f"{_e(facet['sensitive_values'])}; facet a: every other row)</span></h2>"
        "<div class='pair'><table><tr><th>stage</th><th>metric</th><th>Clarify name</th><th>value</th></tr>"
        f"{''.join(rows)}</table><table><tr><th>test split</th><th>rows</th></tr>{groups}</table></div></section>"
    )


def _metrics(bias: Mapping[str, Any], stage: str) -> dict[str, Any]:
    return dict((bias.get(stage) or {}).get("metrics", {}))


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else ("undefined" if value is None else str(value))


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)
