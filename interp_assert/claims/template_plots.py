"""What a template's plot marks: every instance's claimed labels on one drawing.

A template (``L1N{i} in top 3 of Q for i in 0..9``) is evaluated once per instance; its plot
draws the first failing instance's data, and marks on it the claimed labels of every instance
drawn over the same values (red where any instance claiming the label fails)."""

from __future__ import annotations

from typing import Any

import numpy as np


def merged_claims(plot_data: dict[str, Any], own: dict[str, bool]
                  ) -> tuple[dict[str, bool], list[str], list[str]]:
    """``(claimed, failing, elsewhere)``: each claimed label of every instance whose
    ``labels`` and ``values`` equal the drawn ones (a label holds only where every instance
    claiming it holds), the tags of the failing instances, and the failing instances drawn
    over other values (not marked). Without instances, ``own`` as it is."""
    instances = plot_data.get("instances")
    if not instances:
        return own, [], []
    labels, values = plot_data.get("labels"), np.asarray(plot_data.get("values", []), float)
    claimed: dict[str, bool] = {}
    failing, elsewhere = [], []
    for instance in instances:
        data, tag, holds = instance["data"], str(instance["tag"]), bool(instance["holds"])
        if not holds:
            failing.append(tag)
        same = (data.get("labels") == labels
                and np.array_equal(np.asarray(data.get("values", []), float), values,
                                   equal_nan=True))
        if not same:
            if not holds:
                elsewhere.append(tag)
            continue
        for label, ok in data.get("claimed", {}).items():
            claimed[label] = claimed.get(label, True) and bool(ok)
    return claimed or own, failing, elsewhere


def instances_note(failing: list[str], elsewhere: list[str], limit: int = 8) -> str:
    """A title suffix naming the failing instances (and those not drawn)."""
    if not failing:
        return ""
    shown = ", ".join(failing[:limit]) + (", ..." if len(failing) > limit else "")
    text = f"\nfailing instances: {shown}"
    if elsewhere:
        text += f" ({len(elsewhere)} over other values, not drawn)"
    return text


__all__ = ["instances_note", "merged_claims"]
