"""The numbers computed from circuit weights: composition scores, head→neuron scores, singular
spectra and congruence (plain numpy on TransformerLens-layout arrays)."""

from __future__ import annotations

import math

import numpy as np

from interp_assert.errors import QuantityError
from interp_assert.labels import Axis, Labelled


def composition_scores(w_q: np.ndarray, w_k: np.ndarray, w_v: np.ndarray, w_o: np.ndarray,
                       layers: np.ndarray, mode: str) -> np.ndarray:
    """``[writer, reader]`` Q-, K- or V-composition ‖A B‖_F / (‖A‖_F ‖B‖_F) (Elhage et al.
    2021) in row-vector convention, as TransformerLens's ``all_composition_scores``: A is the
    writer's W_OV = W_V W_O; B is the reader's W_QK = W_Q W_Kᵀ (Q), its transpose (K) or its
    W_OV (V). Pairs whose writer is not in an earlier layer score 0.

    Computed from the factors (d_head × d_head matrices): for A = A₁B₁ and B = A₂B₂,
    ‖A B‖²_F = tr(A₁ᵀA₁ · (B₁A₂) · B₂B₂ᵀ · (B₁A₂)ᵀ).
    """
    left_a, left_b = w_v, w_o  # [N, m, d], [N, d, m]
    if mode == "Q":
        right_a, right_b = w_q, np.swapaxes(w_k, -1, -2)
    elif mode == "K":
        right_a, right_b = w_k, np.swapaxes(w_q, -1, -2)
    elif mode == "V":
        right_a, right_b = w_v, w_o
    else:
        raise QuantityError(f"composition must be Q, K or V, not '{mode}'")
    # contiguous float64 copies: numpy's matmul reaches BLAS only for contiguous operands
    left_a, left_b, right_a, right_b = (np.ascontiguousarray(x, dtype=np.float64)
                                        for x in (left_a, left_b, right_a, right_b))
    n, m, d = right_a.shape
    gram_left = np.swapaxes(left_a, -1, -2) @ left_a  # [N, d, d]
    gram_right = np.ascontiguousarray(right_b @ np.swapaxes(right_b, -1, -2))  # [N, d, d]
    readers = np.ascontiguousarray(np.moveaxis(right_a, 0, 1).reshape(m, n * d))  # [m, N·d]
    squared = np.empty((left_a.shape[0], n))
    for i in range(left_a.shape[0]):  # one writer at a time: memory N·d², not N²·d²
        middle = (left_b[i] @ readers).reshape(d, n, d)  # B₁A₂ for every reader: one GEMM
        left = (gram_left[i] @ middle.reshape(d, n * d)).reshape(d, n, d)
        product = np.ascontiguousarray(np.moveaxis(left, 1, 0)) @ gram_right  # [N, d, d]
        squared[i] = np.einsum("rab,arb->r", product, middle)
    left_norm = np.sqrt(np.einsum("iab,iba->i", gram_left,
                                  left_b @ np.swapaxes(left_b, -1, -2)))
    right_norm = np.sqrt(np.einsum("iab,iba->i", np.swapaxes(right_a, -1, -2) @ right_a,
                                   gram_right))
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = np.sqrt(np.clip(squared, 0.0, None)) / left_norm[:, None] / right_norm[None, :]
    return np.where(layers[:, None] < layers[None, :], scores, 0.0)


def head_neuron_scores(w_ov: np.ndarray, w_in: np.ndarray, head_layers: np.ndarray,
                       neuron_layers: np.ndarray, k: int) -> np.ndarray:
    """``[head, direction, neuron]``: |cos| between each of a head's top ``k`` output directions
    (right singular vectors of W_OV) and each MLP neuron's input direction (W_in column).
    Neurons in layers before the head's are NaN (the head cannot write to them)."""
    _, _, vh = np.linalg.svd(w_ov, full_matrices=False)
    top = vh[:, :k, :]  # [head, k, d_model], unit rows
    with np.errstate(invalid="ignore", divide="ignore"):
        unit_in = w_in / np.linalg.norm(w_in, axis=0, keepdims=True)
    scores = np.abs(top @ unit_in)
    reachable = head_layers[:, None] <= neuron_layers[None, :]
    return np.where(reachable[:, None, :], scores, np.nan)


def quantiles(values: np.ndarray, levels: tuple[float, ...] = (0.5, 0.9, 0.99, 0.999)
              ) -> dict[str, float]:
    """Named quantiles of the finite values (``np.quantile``, method linear)."""
    finite = values[np.isfinite(values)]
    return {f"{level:.1%}".replace(".0%", "%"): float(np.quantile(finite, level))
            for level in levels}


def spectrum(matrix: np.ndarray) -> np.ndarray:
    """Singular values, descending (NaN when the matrix holds NaN or inf)."""
    if not np.all(np.isfinite(matrix)):
        return np.full(min(matrix.shape[-2:]), np.nan)
    return np.linalg.svd(matrix, compute_uv=False)


def nonzero_count(singular: np.ndarray, shape: tuple[int, ...]) -> int:
    """How many singular values are nonzero: above ``max(s) · max(m, n) · eps`` (float64 eps;
    ``numpy.linalg.matrix_rank``'s tolerance), i.e. the matrix's numerical rank."""
    finite = singular[np.isfinite(singular)]
    if not finite.size:
        return 0
    tolerance = float(finite.max()) * max(shape[-2:]) * np.finfo(np.float64).eps
    return int(np.sum(finite > tolerance))


def energy_rank(singular: np.ndarray, fraction: float) -> int:
    """Smallest k whose top-k singular values hold ``fraction`` of the squared total (the same
    rule as the expression function ``effective_rank``). A spectrum with no energy (all zeros)
    or non-finite values, or a fraction outside (0, 1], has no effective rank: an error."""
    if not 0 < fraction <= 1:
        raise QuantityError(f"the energy fraction {fraction:g} is not in (0, 1]",
                            hint="write e.g. 'at 90% energy'")
    total = float(np.sum(singular**2))
    if not np.all(np.isfinite(singular)) or not math.isfinite(total):
        raise QuantityError("the matrix holds NaN or inf values: its effective rank is undefined")
    if total == 0:
        raise QuantityError("the matrix is all zeros: with no energy, its effective rank is "
                            "undefined", hint="check that the weights were loaded")
    cumulative = np.cumsum(singular**2) / total
    return int(1 + np.sum(cumulative < fraction - 1e-12))


# -- congruence ---------------------------------------------------------------------------------
def _residual_axis(x: Labelled, size: int, prefer_last: bool) -> int:
    named = [i for i, a in enumerate(x.axes) if a.name.startswith("d_model")]
    if named:
        return named[-1] if prefer_last else named[0]
    order = range(x.ndim - 1, -1, -1) if prefer_last else range(x.ndim)
    for i in order:
        if x.shape[i] == size:
            return i
    raise QuantityError(f"'{x.name}' (shape {x.shape}) has no axis of the residual width {size}")


def _width(directions: Labelled, target: Labelled) -> int:
    """The residual width: the target vector's length, else an axis named d_model*, else the
    one size both share."""
    if target.ndim == 1:
        return target.shape[0]
    for x in (directions, target):
        for axis, size in zip(x.axes, x.shape):
            if axis.name.startswith("d_model"):
                return size
    common = set(directions.shape) & set(target.shape)
    if len(common) != 1:
        raise QuantityError(f"cannot tell the residual axis of '{directions.name}' "
                            f"{directions.shape} and '{target.name}' {target.shape}",
                            hint="pass a single target direction, or name the axes d_model")
    return common.pop()


def congruence(directions: Labelled, target: Labelled, cosine: bool = True) -> Labelled:
    """Cosine (or, with ``cosine=False``, projection onto the unit target) between each
    direction (a row or column of width d_model) and a target direction or matrix of them.

    ``directions`` [neuron, d_model] or [d_model, neuron]; ``target`` [d_model] gives
    [neuron], ``target`` [d_model, token] (or [token, d_model]) gives [neuron, token]."""
    if directions.ndim not in (1, 2) or target.ndim not in (1, 2):
        raise QuantityError("congruence takes vectors or matrices of directions")
    width = _width(directions, target)
    d_axis = _residual_axis(directions, width, prefer_last=True)
    rows = np.moveaxis(directions.values, d_axis, -1)
    row_axes = tuple(a for i, a in enumerate(directions.axes) if i != d_axis)
    t_axis = _residual_axis(target, width, prefer_last=False)
    cols = np.moveaxis(target.values, t_axis, 0)
    col_axes = tuple(a for i, a in enumerate(target.axes) if i != t_axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        cols = cols / np.linalg.norm(cols, axis=0, keepdims=True)
        if cosine:
            rows = rows / np.linalg.norm(rows, axis=-1, keepdims=True)
    values = rows @ cols
    if row_axes and col_axes and row_axes[0].name == col_axes[0].name:
        col_axes = (Axis(col_axes[0].name + "_2", col_axes[0].labels),)
    return Labelled(values, row_axes + col_axes, "congruence" if cosine else "projection")


def layer_norm_rows(x: Labelled, axis: int) -> Labelled:
    """Parameter-free layer norm (centre, unit variance) along ``axis``."""
    values = np.moveaxis(x.values, axis, -1)
    centred = values - values.mean(axis=-1, keepdims=True)
    scaled = centred / np.sqrt(np.mean(centred**2, axis=-1, keepdims=True) + 1e-5)
    return Labelled(np.moveaxis(scaled, -1, axis), x.axes, x.name, x.meta)
