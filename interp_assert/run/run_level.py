"""The run-level step of ``Runner.finish``: error control across the run's confidence claims
(decided by :mod:`interp_assert.judge.error_control`) and its diagnostic plot."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

from interp_assert.errors import InterpAssertError
from interp_assert.judge.error_control import ErrorControl, control
from interp_assert.output.error_control import draw_control
from interp_assert.output.files import relative

if TYPE_CHECKING:
    from interp_assert.run.runner import RunOptions

__all__ = ["ErrorControl", "settle"]
PLOT_NAME = "error-control.png"


def settle(records: list[MutableMapping[str, Any]], options: RunOptions) -> list[str]:
    """Apply the run's error control to ``records`` in place; draw the family's plot when a
    claim did not survive (or always, with plots ``all``) and give it to the claims that did
    not survive and have no plot of their own. Returns the lines to show."""
    control(records, options.error_control)
    if options.error_control is None or options.plots == "never":
        return []
    demoted = [item for item in records if item.get("error_control") and item["verdict"]
               != item["error_control"]["verdict_alone"]]
    if not demoted and options.plots != "all":
        return []
    path = options.artifacts / PLOT_NAME
    try:
        drawn = draw_control(records, path)
    except (InterpAssertError, OSError, ValueError) as exc:
        return [f"the error-control plot could not be drawn: {exc}"]
    if drawn is None:
        return []
    for item in demoted:
        item["plot"] = item.get("plot") or relative(drawn, options.root)
    return [f"error control plotted in {path}"]
