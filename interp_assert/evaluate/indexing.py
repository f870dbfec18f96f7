"""Indexing expressions: ``W[N3]``, ``W[:, 0:7]``, ``A[L0H1, X3]``."""

from __future__ import annotations

import numpy as np

from interp_assert.errors import QuantityError
from interp_assert.labels import Labelled
from interp_assert.language import ast


def take_index(target: Labelled, node: ast.Index) -> Labelled:
    """``target[items]``: labels, positions and slices (label slices include their end), one
    per axis; a bound or position outside the axis is an error naming it."""
    result = target
    dropped = 0
    if len(node.items) > target.ndim:
        raise QuantityError(f"'{node}' has {len(node.items)} indices, but "
                            f"'{node.target}' has {target.ndim} axes (shape {target.shape})")
    for position, item in enumerate(node.items):
        if isinstance(item, ast.Slice):
            axis = position - dropped
            start = _bound(item.start, item, node)
            stop = _bound(item.stop, item, node)
            size = result.shape[axis]
            lo = _position(result, axis, start, node) if start is not None else 0
            hi = _position(result, axis, stop, node) if stop is not None else size - 1
            lo, hi = (lo + size if lo < 0 else lo), (hi + size if hi < 0 else hi)
            if size and not (0 <= lo < size and 0 <= hi < size):
                raise QuantityError(f"slice '{item}' in '{node}' is outside the axis "
                                    f"({size} positions)")
            if hi < lo and size:
                raise QuantityError(f"slice '{item}' in '{node}' runs backwards (its end "
                                    "comes before its start)",
                                    hint="write the slice from its first to its last label")
            result = result.take(axis, list(range(lo, hi + 1)))
            continue
        label = _label_text(item)
        if label is None:
            raise QuantityError(f"index '{item}' must be a label, a position or a slice")
        axis = result.find_label(label) if len(node.items) == 1 else position - dropped
        result = result.take(axis, [_position(result, axis, label, node)], keep=False)
        dropped += 1
    return result.with_name(str(node))


def _label_text(node: ast.Node | None) -> str | None:
    if isinstance(node, ast.Ref):
        return node.name
    if isinstance(node, ast.Number):
        if not np.isfinite(node.value):
            raise QuantityError(f"index '{node}' is not a finite number",
                                hint="index with a label or a whole-number position")
        return str(int(node.value)) if node.value == int(node.value) else str(node.value)
    return None


def _bound(bound: ast.Node | None, item: ast.Slice, node: ast.Index) -> str | None:
    """A slice bound as a label (None: open); an expression is refused, never ignored."""
    if bound is None:
        return None
    label = _label_text(bound)
    if label is None:
        raise QuantityError(f"slice '{item}' in '{node}': '{bound}' is not a label or a "
                            "position", hint="write the bounds as labels (N0:N7) or whole "
                                             "numbers (0:7)")
    return label


def _position(value: Labelled, axis: int, label: str, node: ast.Index) -> int:
    """The position of ``label`` on ``axis``; a position outside the axis is an error."""
    index = value.axes[axis].index_of(label)
    size = value.shape[axis]
    if value.axes[axis].labels is None and not -size <= index < size:
        raise QuantityError(f"position {label} in '{node}' is outside axis "
                            f"'{value.axes[axis].name}' ({size} positions: 0..{size - 1})")
    return index
