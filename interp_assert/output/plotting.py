"""Diagnostic plots, drawn with matplotlib's Agg backend only when a report needs one."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

from interp_assert.output.files import save_figure

if TYPE_CHECKING:
    from interp_assert.claims.base import Claim
    from interp_assert.claims.outcome import Outcome


def save_plot(claim: Claim, outcome: Outcome, path: Path, title: str, verdict: str) -> Path:
    """Draw ``claim``'s plot for ``outcome`` into a PNG at ``path`` (written atomically);
    ``verdict`` is the judge's word for it (``holds``, ``FAILS``, ``xfail`` ...)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.5, 5.0), dpi=100, layout="constrained")
    ax = figure.add_subplot()
    claim.plot(outcome, ax)
    text = "\n".join(textwrap.wrap(title, 110) + textwrap.wrap(
        f"[{verdict}] measured {outcome.measured}; expected {outcome.expected}", 110)
        + textwrap.wrap(_failing_instances(outcome), 110))
    figure.suptitle(text, fontsize=8)
    return save_figure(figure, path)


def _failing_instances(outcome: Outcome) -> str:
    """'failing instances: i=2, i=5' for a template with failures (else nothing)."""
    instances = outcome.plot_data.get("instances") or []
    failing = [str(i["tag"]) for i in instances if not i["holds"]]
    if not failing:
        return ""
    shown = ", ".join(failing[:12]) + (f" and {len(failing) - 12} more" if len(failing) > 12
                                       else "")
    return f"failing instances: {shown}"
