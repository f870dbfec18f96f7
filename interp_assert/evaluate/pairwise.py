"""``pairs(x)``: the distinct pairs of a square table (a cosine table's off-diagonal entries),
so that quantiles, fractions and ECDFs of "all pairwise cosines" leave out the diagonal."""

from __future__ import annotations

import numpy as np

from interp_assert.errors import QuantityError
from interp_assert.evaluate.quantities.functions import register_function
from interp_assert.labels import Axis, Labelled


@register_function("pairs", (1, 1))
def pairs(x: Labelled) -> Labelled:
    """The entries ``x[i, j]`` with ``i < j`` of a square matrix, row by row (numpy's
    ``triu_indices(n, k=1)`` order), on one axis ``pair`` labelled ``a~b``."""
    if x.ndim != 2 or x.shape[0] != x.shape[1]:
        raise QuantityError(f"pairs() needs a square matrix; '{x.name}' has shape {x.shape}",
                            hint="apply it to a table such as cos(M) (rows against rows)")
    n = x.shape[0]
    if n < 2:
        raise QuantityError(f"pairs() of '{x.name}': a {n}×{n} matrix has no pair of rows")
    rows, cols = np.triu_indices(n, k=1)
    names = x.labels_of(0)
    labels = tuple(f"{names[i]}~{names[j]}" for i, j in zip(rows, cols))
    return Labelled(x.values[rows, cols], (Axis("pair", labels),), x.name)


__all__ = ["pairs"]
