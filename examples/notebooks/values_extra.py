"""Independent values of the notebook claims added for centred distributions, ECDFs, 2-D
embedding geometry and the head→neuron graph (numpy/scipy only, nothing from interp_assert).
``values.py`` merges :data:`INDEPENDENT` into its own table."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def _v():  # the shared helpers of values.py, imported late (it imports this module)
    from examples.notebooks import values

    return values


# --- 001: pairwise cosines without the diagonal -------------------------------------------

def upper(m: np.ndarray) -> np.ndarray:
    """The entries above the diagonal of a square matrix."""
    return m[np.triu_indices(m.shape[0], k=1)]


def _001_pairs_quantile() -> float:
    return float(np.quantile(np.abs(upper(_v().cos_table(_v().w("blocks.1.mlp.W_in").T))), 0.9))


def _001_congruence_ecdf() -> float:
    return float(np.mean(np.abs(upper(_v().cos_table(_v().congruence()))) <= 0.5))


# --- 003: centred distributions -----------------------------------------------------------

def histogram_mode(c: np.ndarray, bins: int = 50) -> float:
    """The middle of the fullest of 50 equal bins over [min, max] (the notebook's histogram)."""
    counts, edges = np.histogram(c, bins=bins)
    k = int(np.argmax(counts))
    return float((edges[k] + edges[k + 1]) / 2)


def centred(name: str, how: str) -> np.ndarray:
    """The notebook's std_layer · (x − centre) / std_neuron, per channel (rows)."""
    c = _v().channels(name)
    std = c.std(axis=1)
    centre = (np.array([histogram_mode(row) for row in c]) if how == "peak"
              else c.mean(axis=1))
    return std.mean() * (c - centre[:, None]) / std[:, None]


def _003_share(name: str, how: str, test: Callable[[np.ndarray], bool]) -> float:
    return float(np.mean([test(row) for row in centred(name, how)]))


def _003_max_abs_mode() -> float:
    return float(max(abs(histogram_mode(row)) for row in _v().channels("blocks.0.attn.hook_z")))


def _near(row: np.ndarray) -> bool:
    return bool(np.mean(np.abs(row) < 0.5 * row.std()) >= 0.4)


# --- 002: digits on a circle --------------------------------------------------------------

def kasa(points: np.ndarray) -> tuple[np.ndarray, float]:
    """The algebraic circle x² + y² + D x + E y + F = 0 by its normal equations."""
    m = np.column_stack([points, np.ones(len(points))])
    rhs = -(points ** 2).sum(axis=1)
    d, e, f = np.linalg.solve(m.T @ m, m.T @ rhs)
    centre = np.array([-d / 2, -e / 2])
    return centre, float(np.sqrt(centre @ centre - f))


def plane(rows: np.ndarray) -> np.ndarray:
    from sklearn.decomposition import PCA

    return PCA(n_components=2).fit_transform(rows)


def sum_head_digits() -> np.ndarray:
    v = _v()
    return plane(v.layer_norm(v.w("embed.W_E")[:10]) @ v.ov(0, 1))


def _002_circle(points: np.ndarray) -> float:
    centre, r = kasa(points)
    return float(np.max(np.abs(np.linalg.norm(points - centre, axis=1) - r) / r))


def _002_stride() -> float:
    points = sum_head_digits()
    centre, _ = kasa(points)
    turns = np.unwrap(np.arctan2(*(points - centre).T[::-1]))
    return float(np.min(np.abs(np.degrees(np.diff(turns)))))


# --- 004: the head→neuron graph -----------------------------------------------------------

def _004_weakest(heads: list[int], neurons: list[int], only: bool) -> float:
    """The weakest listed edge; NaN unless every listed edge passes 0.4 (and, ``only``, no
    other head passes it into a listed neuron)."""
    scores = _v().head_neuron()  # [head, neuron], NaN where a head cannot reach a neuron
    listed = scores[np.ix_(heads, neurons)]
    others = np.delete(scores[:, neurons], heads, axis=0)
    ok = (listed > 0.4).all() and not (only and (np.nan_to_num(others) > 0.4).any())
    return float(listed.min()) if ok else float("nan")


INDEPENDENT: dict[tuple[str, str], tuple[str, Callable[[], float]]] = {
    ("001", "pairwise-cos-quantile"): ("describe() of pairwise |cos| of W_in (90th percentile)",
                                       _001_pairs_quantile),
    ("001", "congruence-cos-ecdf"): ("ECDF of pairwise |cos| of congruence at 0.5",
                                     _001_congruence_ecdf),
    ("002", "sum-head-digits-on-circle"): ("2-D digits through the sum head: on a circle, in "
                                           "order (max radial deviation)",
                                           lambda: _002_circle(sum_head_digits())),
    ("002", "sum-head-digit-stride"): ("angular stride between digits (smallest step, °)",
                                       _002_stride),
    ("002", "embeddings-on-circle"): ("2-D token embeddings on an arc (open; max deviation)",
                                      lambda: _002_circle(plane(_v().w("embed.W_E")[:10]))),
    ("004", "head-neuron-graph"): ("head→neuron graph: edges > 0.4 from L0H0 (weakest)",
                                   lambda: _004_weakest([0], [90, 102, 166], False)),
    ("004", "neuron-90-inputs"): ("heads by neuron: only L0H0, L0H1 reach L0N90 (weakest)",
                                  lambda: _004_weakest([0, 1], [90], True)),
    ("003", "attn-peak-centred"): ("peak-centred attention neurons: mean near 0 (share)",
                                   lambda: _003_share("blocks.0.attn.hook_z", "peak", lambda r: (
                                       -0.3 <= r.mean() <= 0.2))),
    ("003", "attn-peak-location"): ("the peaks centred on (max |peak|)", _003_max_abs_mode),
    ("003", "mlp-peak-centred"): ("peak-centred MLP neurons concentrated at 0 (share)",
                                  lambda: _003_share("blocks.0.mlp.hook_post", "peak", _near)),
    ("003", "mlp-mean-centred"): ("mean-centred MLP neurons concentrated at 0 (share)",
                                  lambda: _003_share("blocks.0.mlp.hook_post", "mean", _near)),
}
