"""Conditions inside expressions: masks, ``where`` filters, ``count``/``fraction``, vectors.

``count(norm(neurons) > 0.8)`` counts the elements for which a condition holds,
``fraction(abs(x) > 0.3)`` gives their share, and ``mean(gate where logit >= 0)`` reduces only
the elements of ``gate`` whose ``logit`` is at least 0 (a per-group condition on a table).
A condition is 1 where it holds and 0 where it does not; an element with a NaN on either side is
NaN, so a count or fraction over it is NaN, which never passes a claim.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence

import numpy as np

from interp_assert.errors import QuantityError
from interp_assert.evaluate.quantities.functions import register_function
from interp_assert.labels import Axis, Labelled

_COMPARE: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
    "==": operator.eq, "!=": operator.ne,
}


def mask(op: str, left: Labelled, right: Labelled, name: str) -> Labelled:
    """``left op right`` element by element: 1.0, 0.0, or NaN where either side is NaN."""
    try:
        shape = np.broadcast_shapes(left.shape, right.shape)
    except ValueError:
        raise QuantityError(f"cannot compare shapes {left.shape} and {right.shape} in "
                            f"'{name}'") from None
    a, b = np.broadcast_to(left.values, shape), np.broadcast_to(right.values, shape)
    with np.errstate(invalid="ignore"):
        values = _COMPARE[op](a, b).astype(float)
    values[np.isnan(a) | np.isnan(b)] = np.nan
    axes = left.axes if left.ndim >= right.ndim else right.axes
    return Labelled(values, axes, name)


def where(value: Labelled, condition: Labelled, name: str) -> Labelled:
    """The elements of ``value`` for which ``condition`` (a mask) holds.

    A condition of the same shape keeps the matching elements (one axis: with their labels;
    several: flattened in C order to one axis ``element``). A 1-D condition over one of the
    value's axes (the axis of the same name, else the only axis of that length) keeps the
    matching slices along it. A NaN in the condition is an error: it cannot say whether the
    element counts.
    """
    keep = condition.values
    if np.isnan(keep).any():
        at = condition.labels_of(0)[int(np.argwhere(np.isnan(keep))[0][0])] \
            if condition.ndim == 1 and condition.axes[0].labels else "some positions"
        raise QuantityError(f"the condition of '{name}' is NaN at {at}, so it cannot decide "
                            "which elements count", hint="fill or drop the NaN values first")
    chosen = keep.astype(bool)
    if condition.shape == value.shape:
        if value.ndim == 1:
            return value.take(0, np.flatnonzero(chosen).tolist()).with_name(name)
        return Labelled(value.values[chosen], (Axis("element"),), name)
    if condition.ndim == 1:
        axis = _matching_axis(value, condition, name)
        return value.take(axis, np.flatnonzero(chosen).tolist()).with_name(name)
    raise QuantityError(f"the condition of '{name}' has shape {condition.shape}, which matches "
                        f"neither the shape {value.shape} nor one axis of it",
                        hint="write a condition of the same shape, or over one of its axes")


def _matching_axis(value: Labelled, condition: Labelled, name: str) -> int:
    """The axis of ``value`` a 1-D condition runs along."""
    own = condition.axes[0]
    size = condition.shape[0]
    named = [i for i, axis in enumerate(value.axes)
             if axis.name == own.name and value.shape[i] == size]
    sized = [i for i, n in enumerate(value.shape) if n == size]
    if named:
        return named[0]
    if len(sized) == 1:
        return sized[0]
    axes = ", ".join(f"{a.name} ({n})" for a, n in zip(value.axes, value.shape))
    raise QuantityError(f"the condition of '{name}' runs along an axis of {size} positions; "
                        f"'{value.name}' has {'several' if sized else 'no'} such axis ({axes})",
                        hint="name the condition's axis like the value's")


def vector(items: Sequence[Labelled], name: str) -> Labelled:
    """A literal vector of numbers, on axis ``element``."""
    values = [item.scalar() for item in items]
    return Labelled(np.asarray(values, dtype=float), (Axis("element"),), name)


@register_function("count", (1, 2), axis_params=(1,))
def count(x: Labelled, axis: str | None = None) -> Labelled:
    """How many elements are nonzero (a condition: how many hold), over every element or along
    the named axis; NaN when any element counted is NaN."""
    return _share(x, axis, np.sum)


@register_function("fraction", (1, 2), axis_params=(1,))
def fraction(x: Labelled, axis: str | None = None) -> Labelled:
    """The share of nonzero elements (of a condition: the fraction that hold); NaN when any is
    NaN, or when there is no element."""
    return _share(x, axis, np.mean)


def _share(x: Labelled, axis: str | None, reduce: Callable[..., np.ndarray]) -> Labelled:
    nonzero = np.where(np.isnan(x.values), np.nan, (x.values != 0).astype(float))
    if axis is None:
        with np.errstate(invalid="ignore"):
            total = reduce(nonzero) if nonzero.size else (0.0 if reduce is np.sum else np.nan)
        return Labelled(np.asarray(float(total)), (), x.name)
    i = x.axis(axis)
    with np.errstate(invalid="ignore"):
        values = reduce(nonzero, axis=i)
    return Labelled(values, x.axes[:i] + x.axes[i + 1:], x.name)


@register_function("top", (2, 3), axis_params=(2,))
def top(x: Labelled, k: Labelled, axis: str | None = None) -> Labelled:
    """1 where an element is among the ``k`` largest along the last (or named) axis, else 0;
    ties go to the lower position; a line holding a NaN is NaN throughout."""
    return _extremes(x, k, axis, largest=True)


@register_function("bottom", (2, 3), axis_params=(2,))
def bottom(x: Labelled, k: Labelled, axis: str | None = None) -> Labelled:
    """1 where an element is among the ``k`` smallest along the last (or named) axis."""
    return _extremes(x, k, axis, largest=False)


def _extremes(x: Labelled, k: Labelled, axis: str | None, largest: bool) -> Labelled:
    count_ = k.scalar()
    if not count_ >= 1 or count_ != int(count_):
        raise QuantityError(f"top/bottom k must be a whole number >= 1, not {count_:g}")
    i = x.ndim - 1 if axis is None else x.axis(axis)
    if x.ndim == 0:
        raise QuantityError("top/bottom need at least one axis to rank along")
    moved = np.moveaxis(x.values.astype(float), i, -1)
    order = np.argsort(-moved if largest else moved, axis=-1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(moved.shape[-1]), axis=-1)
    chosen = (ranks < int(count_)).astype(float)
    chosen[np.isnan(moved).any(axis=-1)] = np.nan
    return Labelled(np.moveaxis(chosen, -1, i), x.axes, x.name)
