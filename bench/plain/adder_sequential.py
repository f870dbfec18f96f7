"""Plain mirror of ``specs/adder_sequential.claims.yaml`` (claims judged sequentially).

The 2000 fresh sums are a budget: the pass reads them in order in batches of 50, 100, 200,
400, then 500 (the stop rule of ``docs/definitions.md``), and after each batch updates both
claims' betting confidence sequences (Waudby-Smith & Ramdas 2024, hedged capital, predictable
plug-in bets, the grid ``j/1000``); it stops once both are decided. Each claim's value is the
mean of the samples read, its interval the sequence then.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from bench.plain.common import checkpoint

ANSWER = list(range(22, 33))  # A0..A10 after X0..X9, +, Y0..Y9, =
ALPHA = 0.05
#: claim -> its bound (both claims are "≥ bound with 95% confidence, sequentially")
BOUNDS = {"exact-match": 0.99, "token-accuracy": 0.9}

#: (claim id, label or None) -> key of :func:`numbers`
SAME = {
    ("exact-match-sequential", None): "exact-match",
    ("token-accuracy-sequential", None): "token-accuracy",
}


def _bets(z: np.ndarray) -> np.ndarray:
    """The predictable bets lam_t of the stream ``z`` (each uses samples before t only)."""
    t = np.arange(1, len(z) + 1)
    mu = (0.5 + np.cumsum(z)) / (t + 1)
    var = (0.25 + np.cumsum((z - mu) ** 2)) / (t + 1)
    var_before = np.concatenate(([0.25], var[:-1]))
    return np.sqrt(2 * math.log(2 / ALPHA) / (var_before * t * np.log(1 + t)))


def sequence(z: np.ndarray) -> tuple[float, float]:
    """The confidence sequence after every sample of ``z`` (values in [0, 1]), widened to
    the excluded grid neighbours: a candidate m is out once max(K+/2, K-/2) reached 1/alpha."""
    m = np.arange(1, 1000) / 1000
    lam = _bets(z)[:, None]
    step = z[:, None] - m[None, :]
    plus = np.cumsum(np.log1p(np.minimum(lam, 0.5 / m) * step), axis=0)
    minus = np.cumsum(np.log1p(-np.minimum(lam, 0.5 / (1 - m)) * step), axis=0)
    hedged = np.maximum(plus, minus) + math.log(0.5)
    inside = np.flatnonzero(~(hedged >= math.log(1 / ALPHA)).any(0))
    low = 0.0 if inside[0] == 0 else m[inside[0] - 1]
    high = 1.0 if inside[-1] == len(m) - 1 else m[inside[-1] + 1]
    return float(low), float(high)


def p_value(z: np.ndarray, bound: float) -> float:
    """min(1, 1 / max_t K+_t(bound)): the one-sided capital at the bound."""
    capital = np.cumsum(np.log1p(np.minimum(_bets(z), 0.5 / bound) * (z - bound)))
    return min(1.0, math.exp(-max(0.0, float(capital.max()))))


def numbers() -> dict[str, float]:
    from examples.adder.data import generate

    model = checkpoint("examples/adder/checkpoints/adder.pt")
    tokens = generate(2000, 4321)["tokens"]
    per_sample: dict[str, list[np.ndarray]] = {name: [] for name in BOUNDS}
    start, size, seen = 0, 50, 0
    with torch.inference_mode():
        while start < len(tokens):
            batch = tokens[start:start + size]
            right = (model(batch)[:, [a - 1 for a in ANSWER]].argmax(-1) == batch[:, ANSWER])
            per_sample["exact-match"].append(right.all(1).double().numpy())
            per_sample["token-accuracy"].append(right.double().mean(1).numpy())
            start, size, seen = start + size, min(2 * size, 500), start + len(batch)
            bounds = {name: sequence(np.concatenate(parts))
                      for name, parts in per_sample.items()}
            if all(low >= BOUNDS[name] or high < BOUNDS[name]
                   for name, (low, high) in bounds.items()):
                break
    out: dict[str, float] = {"samples read": float(seen)}
    for name, parts in per_sample.items():
        values = np.concatenate(parts)
        out[name] = float(values.mean())
        out[f"{name} [low]"], out[f"{name} [high]"] = bounds[name]
        out[f"{name} p-value"] = p_value(values, BOUNDS[name])
    return out
