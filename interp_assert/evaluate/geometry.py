"""2-D geometry of points (token embeddings, what a head writes per token): ``pca(x, k)``,
a least-squares circle through points in a plane (:func:`fit_circle`), and the expression
functions ``circle_angle(p)``, ``circle_radius(p)``, ``circle_residual(p)``.

Conventions (``docs/definitions.md``, "2-D geometry"):

* ``pca(x, k)``: the rows of a matrix ``x [row, feature]`` minus their mean row, projected on
  the top ``k`` right singular vectors of that centred matrix; each vector's sign is chosen so
  that its entry of largest magnitude is positive. Axes ``[row, pc]``, labels ``PC0..``.
* The circle is Kåsa's algebraic fit: ``(a, b, k)`` minimise ``Σ (x² + y² − 2ax − 2by − k)²``
  (least squares), centre ``(a, b)``, radius ``r = √(k + a² + b²)``.
* ``circle_angle``: each point's angle about the centre in degrees, ``atan2``, unwrapped along
  the rows (``np.unwrap``: no step larger than 180°), the first in (−180, 180].
* ``circle_residual``: per point ``| |p − c| − r | / r``, the radial deviation relative to the
  radius. A point with a NaN coordinate makes every result NaN.
"""

from __future__ import annotations

import numpy as np

from interp_assert.errors import QuantityError
from interp_assert.evaluate.quantities.functions import register_function
from interp_assert.labels import Axis, Labelled


@register_function("pca", (2, 2))
def pca(x: Labelled, k: Labelled) -> Labelled:
    """The rows of ``x``, centred, projected on their top ``k`` principal directions."""
    count = k.scalar()
    if x.ndim != 2:
        raise QuantityError(f"pca() needs a matrix [row, feature]; '{x.name}' has shape "
                            f"{x.shape}", hint="select the rows first, e.g. embed[0:9]")
    if not 1 <= count <= min(x.shape) or count != int(count):
        raise QuantityError(f"pca(): k must be a whole number from 1 to {min(x.shape)}, not "
                            f"{count:g}")
    values = np.asarray(x.values, dtype=np.float64)
    if not np.isfinite(values).all():
        out = np.full((x.shape[0], int(count)), np.nan)
    else:
        centred = values - values.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        directions = vt[:int(count)]
        signs = np.sign(directions[np.arange(len(directions)),
                                   np.argmax(np.abs(directions), axis=1)])
        out = centred @ (directions * np.where(signs == 0, 1.0, signs)[:, None]).T
    labels = tuple(f"PC{i}" for i in range(int(count)))
    return Labelled(out, (x.axes[0], Axis("pc", labels)), x.name)


def fit_circle(points: np.ndarray) -> tuple[float, float, float]:
    """Kåsa's least-squares circle ``(centre x, centre y, radius)`` through 2-D points."""
    design = np.column_stack([2 * points[:, 0], 2 * points[:, 1], np.ones(len(points))])
    target = (points ** 2).sum(axis=1)
    (a, b, k), *_ = np.linalg.lstsq(design, target, rcond=None)
    return float(a), float(b), float(np.sqrt(max(k + a * a + b * b, 0.0)))


def circle_parts(p: Labelled, what: str) -> tuple[np.ndarray, float, float, float]:
    """The points ``[n, 2]`` of ``p`` and their circle, checked (NaN when any is NaN)."""
    if p.ndim != 2 or p.shape[1] != 2 or p.shape[0] < 3:
        raise QuantityError(f"{what}() needs three or more points in a plane, a value of shape "
                            f"[point, 2]; '{p.name}' has shape {p.shape}",
                            hint="project them first, e.g. pca(embed[0:9], 2)")
    points = np.asarray(p.values, dtype=np.float64)
    if not np.isfinite(points).all():
        return points, np.nan, np.nan, np.nan
    return (points, *fit_circle(points))


def circle_angles(points: np.ndarray, a: float, b: float) -> np.ndarray:
    """Angles (degrees) of the points about ``(a, b)``, unwrapped along the rows."""
    return np.degrees(np.unwrap(np.arctan2(points[:, 1] - b, points[:, 0] - a)))


def circle_deviation(points: np.ndarray, a: float, b: float, r: float) -> np.ndarray:
    """Each point's radial deviation from the circle, relative to its radius."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.abs(np.hypot(points[:, 0] - a, points[:, 1] - b) - r) / r


@register_function("circle_angle", (1, 1))
def circle_angle(p: Labelled) -> Labelled:
    """Each point's angle (degrees, unwrapped) about the centre of its fitted circle."""
    points, a, b, _ = circle_parts(p, "circle_angle")
    return Labelled(circle_angles(points, a, b), (p.axes[0],), p.name)


@register_function("circle_radius", (1, 1))
def circle_radius(p: Labelled) -> Labelled:
    """The radius of the circle fitted to the points."""
    return Labelled(np.asarray(circle_parts(p, "circle_radius")[3]), (), p.name)


@register_function("circle_residual", (1, 1))
def circle_residual(p: Labelled) -> Labelled:
    """Each point's radial deviation from the fitted circle, relative to its radius."""
    points, a, b, r = circle_parts(p, "circle_residual")
    return Labelled(circle_deviation(points, a, b, r), (p.axes[0],), p.name)


__all__ = ["circle_angle", "circle_angles", "circle_deviation", "circle_parts",
           "circle_radius", "circle_residual", "fit_circle", "pca"]
