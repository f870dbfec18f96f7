"""Run-level error control in the outputs: the terminal lines, the report card's block and
the diagnostic plot of the family's p-values against the correction's thresholds."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from interp_assert.judge.error_control import DEMOTED, ErrorControl, claims
from interp_assert.output.files import save_figure
from interp_assert.output.renderers import Block, ReportContext, register_renderer


def family_of(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The records the correction judged, smallest adjusted p-value first."""
    family = [item for item in records if item.get("error_control")]
    return sorted(family, key=lambda r: (r["error_control"]["p_value"], r["file"], r["name"]))


def mark(entry: Mapping[str, Any]) -> str:
    """``survives``, ``does not survive`` or ``fails alone``."""
    if entry["verdict_alone"] not in DEMOTED:
        return "fails alone"
    return "survives" if entry["survives"] else "does not survive"


def control_text(records: Iterable[Mapping[str, Any]]) -> str:
    """What the correction decided, as lines for a terminal (empty without one)."""
    family = family_of(records)
    if not family:
        return ""
    first = family[0]["error_control"]
    described = ErrorControl(first["alpha"], first["method"]).describe()
    holding = [item for item in family if item["error_control"]["verdict_alone"] in DEMOTED]
    kept = sum(1 for item in holding if item["error_control"]["survives"])
    lines = [f"run-level error control ({described}, {claims(len(family))}): "
             f"{kept} of {len(holding)} that hold alone survive"]
    for item in family:
        entry = item["error_control"]
        lines.append(f"  {item['file']}::{item['name']}: p = {entry['p_value']:.3g}, "
                     f"adjusted p = {entry['adjusted_p']:.3g}: {mark(entry)}")
    return "\n".join(lines)


def control_line(record: Mapping[str, Any]) -> str:
    """One line: the method, α, the family, the p-values and whether the claim survives."""
    entry = record["error_control"]
    described = ErrorControl(entry["alpha"], entry["method"]).describe()
    return (f"run-level error control ({described}, {claims(entry['family'])}): p = "
            f"{entry['p_value']:.3g}, adjusted p = {entry['adjusted_p']:.3g}: {mark(entry)}")


@register_renderer("error-control")
def control_block(record: Mapping[str, Any], report: ReportContext) -> Block | None:
    """A confidence claim's p-value, adjusted p-value and whether it survives."""
    entry = record.get("error_control")
    if not entry:
        return None
    control = ErrorControl(entry["alpha"], entry["method"])
    return Block("error_control.html.j2", {
        "method": control.name, "alpha": f"{control.alpha:g}", "family": entry["family"],
        "p": f"{entry['p_value']:.3g}", "adjusted": f"{entry['adjusted_p']:.3g}",
        "mark": mark(entry), "survives": bool(entry["survives"])})


def thresholds(method: str, alpha: float, m: int) -> list[float]:
    """The per-rank thresholds of the sorted p-values: Holm α/(m − i + 1), BH iα/m."""
    if method == "holm":
        return [alpha / (m - i) for i in range(m)]
    return [alpha * (i + 1) / m for i in range(m)]


def draw_control(records: Iterable[Mapping[str, Any]], path: Path) -> Path | None:
    """The family's sorted p-values against the correction's thresholds (log scale), each
    point coloured by what the correction decided; None without a family."""
    family = family_of(records)
    if not family:
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    first = family[0]["error_control"]
    control = ErrorControl(first["alpha"], first["method"])
    ranks = range(1, len(family) + 1)
    p_values = [max(item["error_control"]["p_value"], 1e-300) for item in family]
    figure = Figure(figsize=(7.5, 5.0), dpi=100, layout="constrained")
    ax = figure.add_subplot()
    ax.step(ranks, thresholds(control.method, control.alpha, len(family)), where="mid",
            color="#57606a", label=f"{control.name} threshold")
    colours = {"survives": "#1a7f37", "does not survive": "#cf222e", "fails alone": "#8c959f"}
    for item, rank, p in zip(family, ranks, p_values):
        what = mark(item["error_control"])
        ax.scatter([rank], [p], color=colours[what], zorder=3)
        if len(family) <= 25:
            ax.annotate(item["name"], (rank, p), fontsize=7, xytext=(4, 2),
                        textcoords="offset points", color=colours[what])
    for what, colour in colours.items():
        ax.scatter([], [], color=colour, label=what)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_yscale("log")
    ax.set_xlabel("rank of the p-value")
    ax.set_ylabel("p-value")
    ax.legend(fontsize=8)
    figure.suptitle(f"run-level error control: {control.describe()}, {claims(len(family))}",
                    fontsize=9)
    return save_figure(figure, path)
