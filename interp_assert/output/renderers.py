"""The blocks of a claim's card in the HTML report, each drawn by a registered renderer.

A renderer is a function of one claim record (and the report it is drawn into) that returns a
:class:`Block` (a template under ``templates/blocks/`` and its data) or None when it has nothing
to show. Renderers are registered by name, apart from the templates and from each other, so a
new block (or a replacement for a built-in one) is one decorated function::

    @register_renderer("my-block", column="evidence")
    def my_block(record, report):
        return Block("my_block.html.j2", {...}) if record.get("rows") else None

``column`` places the block: ``main`` (under the sentence), ``evidence`` (the evidence column)
or ``figure`` (beside it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from interp_assert.claims.outcome import fmt
from interp_assert.output.text import MAX_ROWS, evidence_cells

COLUMNS = ("main", "evidence", "figure")


@dataclass(frozen=True)
class Block:
    """One block of a card: a template under ``templates/blocks/`` and its data."""

    template: str
    data: Mapping[str, Any] = field(default_factory=dict)


class ReportContext:
    """What a renderer may ask of the report being drawn (see :mod:`.dashboard`)."""

    def shown(self, text: str) -> str:  # pragma: no cover - the dashboard overrides both
        """``text`` with local folders written relative to the report."""
        return text

    def image(self, plot: str | None) -> tuple[str | None, str | None]:  # pragma: no cover
        """(embedded data URI, link relative to the report) of a plot path from a record."""
        return None, None


Renderer = Callable[[Mapping[str, Any], ReportContext], "Block | None"]


@dataclass(frozen=True)
class _Entry:
    name: str
    column: str
    render: Renderer


_RENDERERS: dict[str, _Entry] = {}


def register_renderer(name: str, column: str = "main") -> Callable[[Renderer], Renderer]:
    """Register (or replace, by name) the renderer of one card block."""
    if column not in COLUMNS:
        raise ValueError(f"column must be one of {', '.join(COLUMNS)}, not {column!r}")

    def decorate(render: Renderer) -> Renderer:
        _RENDERERS[name] = _Entry(name, column, render)
        return render

    return decorate


def render_card(record: Mapping[str, Any], report: ReportContext) -> dict[str, list[Block]]:
    """The card's blocks per column, in registration order."""
    out: dict[str, list[Block]] = {column: [] for column in COLUMNS}
    for entry in _RENDERERS.values():
        block = entry.render(record, report)
        if block is not None:
            out[entry.column].append(block)
    return out


# -- the built-in blocks ------------------------------------------------------------------------


def value_text(record: Mapping[str, Any]) -> str:
    """The measured text, with its interval when the text does not give one."""
    text = str(record.get("measured") or "")
    interval = record.get("interval")
    if interval and "CI" not in text:
        text += f" (interval [{fmt(interval[0])}, {fmt(interval[1])}])"
    return text


def change_text(record: Mapping[str, Any]) -> str:
    """The change from the baseline (``+0.012``), ``missing``, or empty without a baseline."""
    base = record.get("baseline") or {}
    if base.get("missing"):
        return "no recorded value"
    change = base.get("change")
    if isinstance(change, int | float) and math.isfinite(change):
        return f"{change:+.4g}"
    return ""


@register_renderer("outcome")
def outcome_block(record: Mapping[str, Any], report: ReportContext) -> Block | None:
    """Measured against expected, the judge's reason and the baseline."""
    if record.get("measured") is None and not record.get("reason"):
        return None
    base = record.get("baseline") or {}
    return Block("outcome.html.j2", {
        "measured": value_text(record) if record.get("measured") is not None else None,
        "expected": record.get("expected"), "reason": report.shown(record.get("reason") or ""),
        "baseline": None if base.get("missing") else base.get("value"),
        "baseline_missing": bool(base.get("missing")), "change": change_text(record)})


@register_renderer("details")
def details_block(record: Mapping[str, Any], report: ReportContext) -> Block | None:
    """The outcome's context lines (pooling, counts, datasets) and notes."""
    context = [(str(k), report.shown(str(v))) for k, v in (record.get("context") or {}).items()]
    notes = [report.shown(str(n)) for n in record.get("notes") or []]
    return Block("details.html.j2", {"context": context, "notes": notes}) \
        if context or notes else None


@register_renderer("error")
def error_block(record: Mapping[str, Any], report: ReportContext) -> Block | None:
    """The error of a claim that could not be evaluated."""
    error = record.get("error")
    return Block("error.html.j2", {"text": report.shown(str(error))}) if error else None


@register_renderer("evidence", column="evidence")
def evidence_block(record: Mapping[str, Any], report: ReportContext) -> Block | None:
    """The evidence table the terminal prints: failing rows first, marked ✗."""
    rows = [r for r in record.get("rows") or [] if isinstance(r, Mapping)]
    if not rows:
        return None
    columns, shown, cells = evidence_cells(rows, MAX_ROWS)
    body = [{"cells": row, "fails": source.get("holds") is False}
            for row, source in zip(cells, shown)]
    return Block("evidence.html.j2", {
        "columns": columns, "rows": body, "total": len(rows),
        "failing": sum(1 for r in rows if r.get("holds") is False),
        "more": max(0, len(rows) - MAX_ROWS)})


@register_renderer("plot", column="figure")
def plot_block(record: Mapping[str, Any], report: ReportContext) -> Block | None:
    """The claim's plot, embedded, with a link to the full-size file."""
    source, link = report.image(record.get("plot"))
    if source is None:
        return None
    return Block("plot.html.j2", {"src": source, "link": link,
                                  "alt": f"plot of {record.get('name', '')}"})
