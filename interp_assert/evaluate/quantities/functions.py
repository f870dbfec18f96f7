"""Functions usable in expressions (``norm``, ``cos``, ``softmax``, ``svd_s`` ...).

Each takes and returns :class:`Labelled` values and works along the last axis unless told
otherwise; add one with :func:`register_function`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from interp_assert.errors import QuantityError, UnknownNameError, did_you_mean
from interp_assert.labels import Axis, Labelled
from interp_assert.resources import array_bytes, check_size


@dataclass(frozen=True)
class Function:
    """A function of labelled values; ``axis_params`` are positions taking an axis name."""

    impl: Callable[..., Labelled]
    arity: tuple[int, int]
    axis_params: frozenset[int] = frozenset()
    doc: str = ""


FUNCTIONS: dict[str, Function] = {}


def register_function(name: str, arity: tuple[int, int] = (1, 1),
                      axis_params: tuple[int, ...] = ()) -> Callable:
    """Decorator registering ``impl`` as expression function ``name``."""

    def decorate(impl: Callable[..., Labelled]) -> Callable[..., Labelled]:
        FUNCTIONS[name] = Function(impl, arity, frozenset(axis_params),
                                   (impl.__doc__ or "").strip())
        return impl

    return decorate


def lookup(name: str) -> Function:
    if name not in FUNCTIONS:
        raise UnknownNameError(f"unknown function '{name}'" + did_you_mean(name, FUNCTIONS))
    return FUNCTIONS[name]


def apply_function(name: str, args: list[Labelled | str]) -> Labelled:
    """Call function ``name``; axis parameters are passed as axis-name strings."""
    function = lookup(name)
    low, high = function.arity
    if not low <= len(args) <= high:
        count = str(low) if low == high else f"{low} to {high}"
        raise QuantityError(f"{name}() takes {count} argument(s), got {len(args)}")
    try:
        return function.impl(*args)
    except (ValueError, IndexError) as exc:  # numpy's AxisError is both
        raise _shape_error(name, args, exc) from None


def _shape_error(name: str, args: list[Labelled | str], exc: Exception) -> QuantityError:
    """A function numpy refused for the shape of its input: a single number (0-d) where an
    axis is needed, or an empty value where a reduction has nothing to reduce."""
    values = [a for a in args if isinstance(a, Labelled)]
    scalar = next((a for a in values if a.ndim == 0), None)
    empty = next((a for a in values if a.values.size == 0), None)
    if scalar is not None:
        return QuantityError(f"{name}() of a single number ('{scalar.name or 'expression'}' "
                             "has shape ()): it needs a value with an axis",
                             hint=f"apply {name}() to a vector or matrix, or drop it")
    if empty is not None:
        return QuantityError(f"{name}() of an empty value ('{empty.name or 'expression'}' has "
                             f"shape {empty.shape}): there is nothing to reduce",
                             hint="check the slice or selection that made it empty")
    shapes = ", ".join(str(a.shape) for a in values)
    return QuantityError(f"{name}() cannot be applied to shape {shapes}: {exc}")


def _reduce_last(x: Labelled, values: np.ndarray) -> Labelled:
    return Labelled(values, x.axes[:-1], x.name)


def _elementwise(x: Labelled, values: np.ndarray) -> Labelled:
    return Labelled(values, x.axes, x.name)


def _axis_index(x: Labelled, axis: str | None) -> int:
    return x.ndim - 1 if axis is None else x.axis(axis)


@register_function("norm", (1, 2), axis_params=(1,))
def norm(x: Labelled, axis: str | None = None) -> Labelled:
    """Euclidean norm along the last axis (or the named axis)."""
    i = _axis_index(x, axis)
    values = x.values
    if i == values.ndim - 1 >= 1 and values.nbytes > _NORM_BLOCK:  # rows in blocks: the
        # squares of one block at a time, each row's sum as in one call
        step = max(1, _NORM_BLOCK // max(values.shape[-1] * values.itemsize, 1))
        flat = values.reshape(-1, values.shape[-1])
        norms = np.concatenate([np.linalg.norm(flat[start:start + step], axis=-1)
                                for start in range(0, len(flat), step)])
        return Labelled(norms.reshape(values.shape[:-1]), x.axes[:i], x.name)
    return Labelled(np.linalg.norm(values, axis=i), x.axes[:i] + x.axes[i + 1:], x.name)


_NORM_BLOCK = 16 * 2**20
"""Bytes of rows whose squares norm() holds at once."""


def _unit_rows(values: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return values / np.linalg.norm(values, axis=-1, keepdims=True)


@register_function("cos", (1, 2))
def cos(a: Labelled, b: Labelled | None = None) -> Labelled:
    """Cosine similarity: two vectors give a number, rows of matrices give a pairwise table,
    and one matrix gives its rows' pairwise table."""
    if b is None:
        b = a
    ua, ub = _unit_rows(a.values), _unit_rows(b.values)
    if a.ndim == 1 and b.ndim == 1:
        return Labelled(np.dot(ua, ub), (), "cos")
    if a.ndim == 1:
        return Labelled(ub @ ua, b.axes[:-1], "cos")
    if b.ndim == 1:
        return Labelled(ua @ ub, a.axes[:-1], "cos")
    if a.ndim == 2 and b.ndim == 2:
        check_size(array_bytes((a.shape[0], b.shape[0])),
                   f"cos() of {a.shape[0]} x {b.shape[0]} rows (a pairwise table)",
                   hint="select the rows you need first (index the quantity by their labels)")
        second = b.axes[0]
        if second.name == a.axes[0].name:
            second = Axis(second.name + "_2", second.labels)
        return Labelled(ua @ ub.T, (a.axes[0], second), "cos")
    raise QuantityError(f"cos() takes vectors or matrices, got shapes {a.shape} and {b.shape}")


@register_function("unit")
def unit(x: Labelled) -> Labelled:
    """Rows scaled to unit norm."""
    return _elementwise(x, _unit_rows(x.values))


@register_function("dot", (2, 2))
def dot(a: Labelled, b: Labelled) -> Labelled:
    """Inner product along the last axis (broadcast over the others)."""
    return _reduce_last(a if a.ndim >= b.ndim else b, np.sum(a.values * b.values, axis=-1))


@register_function("orthogonalize", (2, 2))
def orthogonalize(a: Labelled, b: Labelled) -> Labelled:
    """``a`` minus its projection onto ``b`` (row by row): the part of a that is not b."""
    ub = _unit_rows(b.values)
    projection = np.sum(a.values * ub, axis=-1, keepdims=True) * ub
    return _elementwise(a, a.values - projection)


@register_function("softmax")
def softmax(x: Labelled) -> Labelled:
    """Softmax along the last axis."""
    shifted = x.values - np.max(x.values, axis=-1, keepdims=True)
    e = np.exp(shifted)
    return _elementwise(x, e / np.sum(e, axis=-1, keepdims=True))


@register_function("sigmoid")
def sigmoid(x: Labelled) -> Labelled:
    """Logistic sigmoid, element-wise."""
    return _elementwise(x, 1.0 / (1.0 + np.exp(-x.values)))


@register_function("layer_norm")
def layer_norm(x: Labelled) -> Labelled:
    """Parameter-free layer norm along the last axis (centre, scale to unit variance, eps 1e-5)."""
    centred = x.values - np.mean(x.values, axis=-1, keepdims=True)
    scale = np.sqrt(np.mean(centred**2, axis=-1, keepdims=True) + 1e-5)
    return _elementwise(x, centred / scale)


FUNCTIONS["ln"] = FUNCTIONS["layer_norm"]

def _ieee(function: Callable[[np.ndarray], np.ndarray]) -> Callable[[Labelled], Labelled]:
    """An element-wise function with IEEE results and no warnings: exp(1000) is inf, log(-1)
    NaN (which no claim lets pass)."""

    def apply(x: Labelled) -> Labelled:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return _elementwise(x, function(x.values))

    return apply


for _name, _ufunc in {"abs": np.abs, "exp": np.exp, "log": np.log, "sqrt": np.sqrt,
                      "relu": lambda v: np.maximum(v, 0.0)}.items():
    register_function(_name)(_ieee(_ufunc))


def _reduction(np_func: Callable[..., np.ndarray], accumulates: bool) -> Callable[..., Labelled]:
    def reduce(x: Labelled, axis: str | None = None) -> Labelled:
        # sums of float32 activations accumulate in float64
        options = {"dtype": np.float64} if accumulates else {}
        i = None if axis is None else x.axis(axis)
        if (x.values.size if i is None else x.values.shape[i]) == 0:  # nothing selected
            import warnings

            with warnings.catch_warnings():  # the mean of nothing is NaN, which never passes
                warnings.simplefilter("ignore", RuntimeWarning)
                return _reduced(np_func, x, i, options)
        return _reduced(np_func, x, i, options)

    return reduce


def _reduced(np_func: Callable[..., np.ndarray], x: Labelled, i: int | None,
             options: dict[str, Any]) -> Labelled:
    if i is None:
        return Labelled(np_func(x.values, **options), (), x.name)
    return Labelled(np_func(x.values, axis=i, **options), x.axes[:i] + x.axes[i + 1:], x.name)


for _name, (_np, _accumulates) in {"mean": (np.mean, True), "sum": (np.sum, True),
                                   "max": (np.max, False), "min": (np.min, False)}.items():
    register_function(_name, (1, 2), axis_params=(1,))(_reduction(_np, _accumulates))

ALL_AXES = "all"
"""The axis word that reduces over every element (``std(x, all, 1)``)."""


def _reduced_axes(x: Labelled, axis: str | None, default_all: bool
                  ) -> tuple[int | None, tuple[Axis, ...]]:
    """The numpy axis (None: every element) and the axes left after reducing ``axis``
    (``all``, or no axis when ``default_all``: every element; no axis otherwise: the last)."""
    every = axis == ALL_AXES and ALL_AXES not in [a.name for a in x.axes]
    if every or (axis is None and (default_all or x.ndim <= 1)):
        return None, ()
    i = _axis_index(x, axis)
    return i, x.axes[:i] + x.axes[i + 1:]


def _ddof(value: Labelled | None, name: str) -> int:
    if value is None:
        return 0
    ddof = float(value.scalar())
    if not (ddof >= 0 and ddof == int(ddof)):
        raise QuantityError(f"{name}(): ddof must be a whole number >= 0, not {ddof:g}",
                            hint=f"{name}(x, axis, 1) is the sample (pandas) {name}")
    return int(ddof)


@register_function("std", (1, 3), axis_params=(1,))
def std(x: Labelled, axis: str | None = None, ddof: Labelled | None = None) -> Labelled:
    """Standard deviation √(Σ(x - mean)² / (n - ddof)) over every element, or along the named
    axis (``all``: every element); ``ddof`` 0 (numpy's default) unless given: 1 is
    pandas' sample std (``std(x, all, 1)``)."""
    i, axes = _reduced_axes(x, axis, default_all=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.std(x.values, axis=i, ddof=_ddof(ddof, "std"), dtype=np.float64)
    return Labelled(values, axes, x.name)


@register_function("var", (1, 3), axis_params=(1,))
def var(x: Labelled, axis: str | None = None, ddof: Labelled | None = None) -> Labelled:
    """Variance Σ(x - mean)² / (n - ddof), as ``std`` (``ddof`` 0 unless given)."""
    i, axes = _reduced_axes(x, axis, default_all=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.var(x.values, axis=i, ddof=_ddof(ddof, "var"), dtype=np.float64)
    return Labelled(values, axes, x.name)


@register_function("transpose")
def transpose(x: Labelled) -> Labelled:
    """Swap the last two axes."""
    if x.ndim < 2:
        return x
    return Labelled(np.swapaxes(x.values, -1, -2), (*x.axes[:-2], x.axes[-1], x.axes[-2]), x.name)


def _svd(x: Labelled) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if x.ndim < 2:
        raise QuantityError(f"svd needs a matrix, got shape {x.shape}")
    return np.linalg.svd(x.values, full_matrices=False)


@register_function("svd_s")
def svd_s(x: Labelled) -> Labelled:
    """Singular values (descending) of the last two axes, labelled S0, S1, ..."""
    s = _svd(x)[1]
    labels = tuple(f"S{i}" for i in range(s.shape[-1]))
    return Labelled(s, (*x.axes[:-2], Axis("singular", labels)), x.name)


FUNCTIONS["singular_values"] = FUNCTIONS["svd_s"]


@register_function("svd_u")
def svd_u(x: Labelled) -> Labelled:
    """Left singular vectors as rows: [..., S_i, rows-space]."""
    u = np.swapaxes(_svd(x)[0], -1, -2)
    labels = tuple(f"S{i}" for i in range(u.shape[-2]))
    return Labelled(u, (*x.axes[:-2], Axis("singular", labels), x.axes[-2]), x.name)


@register_function("svd_v")
def svd_v(x: Labelled) -> Labelled:
    """Right singular vectors as rows: [..., S_i, column-space]."""
    vh = _svd(x)[2]
    labels = tuple(f"S{i}" for i in range(vh.shape[-2]))
    return Labelled(vh, (*x.axes[:-2], Axis("singular", labels), x.axes[-1]), x.name)


@register_function("effective_rank", (2, 2))
def effective_rank(x: Labelled, energy: Labelled) -> Labelled:
    """Smallest k whose top-k singular values hold ``energy`` (a fraction in (0, 1]) of the
    squared total Σs². NaN for a matrix with no energy (all zeros) or non-finite entries."""
    fraction = float(energy.scalar())
    if not 0 < fraction <= 1:  # NaN too
        raise QuantityError(f"effective_rank(): the energy {fraction:g} is not a fraction in "
                            "(0, 1]", hint="write e.g. effective_rank(W, 0.9)")
    if x.ndim < 2:
        raise QuantityError(f"svd needs a matrix, got shape {x.shape}")
    finite = np.isfinite(x.values).all(axis=(-2, -1))
    safe = np.where(finite[..., None, None], x.values, 0.0)
    s = np.linalg.svd(safe, compute_uv=False)
    squares = s**2
    total = np.sum(squares, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        cumulative = np.cumsum(squares, axis=-1) / total
    ranks = (1 + np.sum(cumulative < fraction - 1e-12, axis=-1)).astype(np.float64)
    ranks = np.where(finite & (total[..., 0] > 0), ranks, np.nan)
    return Labelled(ranks, x.axes[:-2], x.name)


def _shape_statistic(name: str, x: Labelled, axis: str | None, unbiased: str | None
                     ) -> Labelled:
    from scipy import stats as scipy_stats

    if unbiased not in (None, "biased", "unbiased"):
        raise QuantityError(f"{name}(): the third argument is 'biased' (scipy's default) or "
                            f"'unbiased' (pandas'), not '{unbiased}'")
    i, axes = _reduced_axes(x, axis, default_all=False)
    values = x.values.reshape(-1) if i is None else x.values
    function = scipy_stats.kurtosis if name == "kurtosis" else scipy_stats.skew
    with np.errstate(invalid="ignore", divide="ignore"):
        out = function(values, axis=-1 if i is None else i, bias=unbiased != "unbiased")
    return Labelled(np.asarray(out, dtype=np.float64), axes, x.name)


@register_function("kurtosis", (1, 3), axis_params=(1, 2))
def kurtosis(x: Labelled, axis: str | None = None, unbiased: str | None = None) -> Labelled:
    """Excess (Fisher) kurtosis along the last (or named, or ``all``) axis: biased g2
    (``scipy.stats.kurtosis``'s default) or, with ``unbiased`` as third argument, pandas'
    G2 (``kurtosis(x, all, unbiased)`` is ``pandas.Series.kurt``)."""
    return _shape_statistic("kurtosis", x, axis, unbiased)


@register_function("skew", (1, 3), axis_params=(1, 2))
def skew(x: Labelled, axis: str | None = None, unbiased: str | None = None) -> Labelled:
    """Skewness along the last (or named, or ``all``) axis: biased g1 (``scipy.stats.skew``'s
    default) or, with ``unbiased``, pandas' G1 (``pandas.Series.skew``)."""
    return _shape_statistic("skew", x, axis, unbiased)
