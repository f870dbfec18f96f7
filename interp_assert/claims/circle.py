"""``pca(digit_ov, 2) lies on a circle within 0.35 in order``: points in a plane on one circle.

The points are a value of shape ``[point, 2]`` (two coordinates per row: ``pca(x, 2)`` of
embeddings, or two chosen columns). A circle is fitted by least squares (Kåsa's algebraic fit,
:mod:`interp_assert.evaluate.geometry`); every point's radial deviation ``| |p − c| − r | / r``
must be at most the tolerance. ``in order``: the points' angles about the centre, unwrapped
along the rows, also move one way (strictly increasing or strictly decreasing), as digit
embeddings placed around an arc. The value is the largest deviation; NaN never holds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from interp_assert.claims.base import Claim, Context, register_claim
from interp_assert.claims.outcome import Outcome, fmt
from interp_assert.errors import QuantityError
from interp_assert.evaluate.geometry import circle_angles, circle_deviation, circle_parts
from interp_assert.language import ast

if TYPE_CHECKING:
    from matplotlib.axes import Axes


@register_claim
@dataclass
class OnCircle(Claim):
    """Every point lies within a relative tolerance of the circle fitted to them all."""

    kind = "circle"
    grammar = r"""circle: expr CIRCLE_LIE "on" "a" "circle" "within" expr [CIRCLE_ORDER]
CIRCLE_LIE: /lies?\b/
CIRCLE_ORDER: /in\s+order\b/"""

    points: ast.Node
    tolerance: ast.Node
    ordered: bool = False

    @classmethod
    def build(cls, children: list[Any]) -> OnCircle:
        points, _verb, tolerance, order = children
        return cls(points, tolerance, order is not None)

    def __str__(self) -> str:
        return (f"{self.points} lies on a circle within {self.tolerance}"
                + (" in order" if self.ordered else ""))

    def evaluate(self, ctx: Context) -> Outcome:
        value = ctx.value(self.points)
        tolerance = ctx.scalar(self.tolerance)
        if not math.isfinite(tolerance) or tolerance < 0:
            raise QuantityError(f"the tolerance must be a number >= 0, not {fmt(tolerance)}")
        points, a, b, r = circle_parts(value, "lies on a circle")
        labels = value.labels_of(0)
        finite = math.isfinite(r)
        deviation = (circle_deviation(points, a, b, r) if finite
                     else np.full(len(points), np.nan))
        angles = circle_angles(points, a, b) if finite else np.full(len(points), np.nan)
        steps = np.diff(angles)
        direction = 1.0 if np.nansum(steps) >= 0 else -1.0
        out_of_order = ([i + 1 for i, s in enumerate(steps) if not s * direction > 0]
                        if self.ordered else [])
        far = [i for i, d in enumerate(deviation) if not d <= tolerance]
        worst = float(np.max(deviation)) if finite else math.nan
        rows = [{"point": labels[i], "x": float(points[i, 0]), "y": float(points[i, 1]),
                 "angle": float(angles[i]), "deviation": float(deviation[i]),
                 "holds": i not in far and i not in out_of_order} for i in range(len(labels))]
        measured = (f"largest radial deviation {fmt(worst)} (radius {fmt(r)}); "
                    f"{len(far)} of {len(labels)} points off the circle")
        if self.ordered:
            measured += (f"; angle steps {fmt(float(np.nanmin(np.abs(steps))))}° to "
                         f"{fmt(float(np.nanmax(np.abs(steps))))}°, "
                         f"{len(out_of_order)} out of order")
        expected = (f"every point within {fmt(tolerance)} × radius of the circle"
                    + (", angles moving one way" if self.ordered else ""))
        failing = sorted(set(far) | set(out_of_order))
        return Outcome(finite and not failing, measured, expected, value=worst, rows=rows,
                       plot_data={"labels": labels, "points": points.tolist(),
                                  "circle": [a, b, r], "failing": failing,
                                  "ordered": self.ordered, "tolerance": tolerance})

    def plot(self, outcome: Outcome, ax: Axes) -> None:
        """The points with their labels, the fitted circle and its tolerance band; failing
        points circled in red."""
        from matplotlib.patches import Circle

        from interp_assert.claims.plots import FAIL, HOLD, nan_notice

        data = outcome.plot_data
        points = np.asarray(data["points"], dtype=float)
        a, b, r = data["circle"]
        tolerance = data["tolerance"]
        ax.plot(points[:, 0], points[:, 1], "-", color="C0", alpha=0.4, label="points in order")
        failing = set(data["failing"])
        ok = [i for i in range(len(points)) if i not in failing]
        ax.scatter(points[ok, 0], points[ok, 1], color=HOLD, s=30, zorder=3,
                   label="point holds")
        if failing:
            bad = sorted(failing)
            ax.scatter(points[bad, 0], points[bad, 1], facecolors="none", edgecolors=FAIL,
                       s=160, linewidths=2, zorder=4, label="failing point (off the circle "
                       "or out of order)")
        for label, (x, y) in zip(data["labels"], points):
            ax.annotate(label, (x, y), xytext=(0, 7), textcoords="offset points", fontsize=8,
                        ha="center", va="bottom")
        if math.isfinite(r):
            ax.add_patch(Circle((a, b), r, fill=False, color="k", linestyle="--",
                                label=f"fitted circle (r {fmt(r)})"))
            ax.add_patch(Circle((a, b), r * (1 + tolerance), fill=False, color="0.6",
                                linestyle=":", label=f"tolerance ± {fmt(tolerance)} × r"))
            if tolerance < 1:
                ax.add_patch(Circle((a, b), r * (1 - tolerance), fill=False, color="0.6",
                                    linestyle=":"))
            ax.plot([a], [b], "k+", markersize=8)
        else:
            nan_notice(ax, "NaN coordinates: no circle, never passes")
        ax.set_aspect("equal", adjustable="datalim")
        ax.legend(loc="best", fontsize=7)
        ax.grid(alpha=0.3)
        ax.set_title(f"points on a circle: every radial deviation <= {fmt(tolerance)} × r"
                     + (", angles moving one way" if data["ordered"] else ""), fontsize=9)


__all__ = ["OnCircle"]
