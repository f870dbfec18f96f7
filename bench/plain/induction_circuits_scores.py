"""What the plain mirrors of the induction circuit tests share: each sample's repeated-token
advantage, the circuit scores, their paired bootstrap intervals and seeded random circuits
(docs/definitions.md, "Circuit hypothesis tests" and "Confidence on steering, path patching,
attribution patching and circuit tests")."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import torch

from bench.plain.common import token_losses

RESAMPLES, BLOCK, LEVEL = 2000, 250, 0.95


def advantage_samples(logits: torch.Tensor, data: dict[str, torch.Tensor]) -> np.ndarray:
    """Each sample's advantage (loss on first occurrences − loss on repeated tokens) with
    ``average: tokens``: its summed token losses over the mean token count, so that the mean
    over samples is the pooled advantage."""
    losses = token_losses(logits, data["tokens"])
    repeated = data["repeated"][:, 1:].bool()

    def per_sample(mask: torch.Tensor) -> torch.Tensor:
        return (losses * mask).sum(1) / mask.sum(1).double().mean()

    return (per_sample(~repeated) - per_sample(repeated)).numpy()


def share(before: np.ndarray, after: np.ndarray, high: np.ndarray, low: np.ndarray) -> float:
    """(mean(after) − mean(before)) / (mean(high) − mean(low))."""
    return float((after.mean() - before.mean()) / (high.mean() - low.mean()))


def share_draws(before: np.ndarray, after: np.ndarray, high: np.ndarray, low: np.ndarray
                ) -> np.ndarray:
    """The share over 2000 paired resamples of the samples: ``default_rng(0)`` draws
    ``integers(0, n, size=(250, n))`` per block, every array indexed by the same draw."""
    rng = np.random.default_rng(0)
    n = before.size
    out = []
    for _ in range(RESAMPLES // BLOCK):
        idx = rng.integers(0, n, size=(BLOCK, n))
        out.append((after[idx].mean(1) - before[idx].mean(1))
                   / (high[idx].mean(1) - low[idx].mean(1)))
    return np.concatenate(out)


def interval(draws: np.ndarray) -> tuple[float, float]:
    """The 95% percentile interval (linear quantiles) of the resampled statistic."""
    alpha = (1 - LEVEL) / 2
    return float(np.quantile(draws, alpha)), float(np.quantile(draws, 1 - alpha))


def p_at_least(draws: np.ndarray, bound: float) -> float:
    """The one-sided level at which the linear quantile of the draws first reaches the
    bound: the p-value of ``≥ bound`` that the percentile interval inverts."""
    ordered = np.sort(draws)
    k = int(np.searchsorted(ordered, bound, side="left"))
    if k == 0:
        return 0.0
    if k == ordered.size:
        return 1.0
    below, above = ordered[k - 1], ordered[k]
    return float(((k - 1) + (bound - below) / (above - below)) / (ordered.size - 1))


def random_sets(pool: Sequence[str], size: int, exclude: frozenset[str], draws: int,
                seed: int = 0) -> list[tuple[str, ...]]:
    """``draws`` distinct random sets of ``size`` members of ``pool``, each drawn uniformly
    without replacement with ``default_rng(seed)`` (duplicates and ``exclude`` redrawn);
    every set other than ``exclude`` when there are at most ``draws`` of them."""
    if math.comb(len(pool), size) - 1 <= draws:
        return [c for c in itertools.combinations(pool, size) if frozenset(c) != exclude]
    rng = np.random.default_rng(seed)
    chosen: list[tuple[str, ...]] = []
    seen = {exclude}
    while len(chosen) < draws:
        pick = tuple(pool[i] for i in sorted(rng.choice(len(pool), size=size, replace=False)))
        if frozenset(pick) not in seen:
            seen.add(frozenset(pick))
            chosen.append(pick)
    return chosen


def circuit_numbers(name: str, runs: dict[frozenset[str], np.ndarray], universe: Sequence[str],
                    circuit: Sequence[str], randoms: Sequence[tuple[str, ...]],
                    minimal_bound: float | None) -> dict[str, float]:
    """Faithfulness, completeness, minimality and the random circuits' faithfulness from each
    run's per-sample metric, keyed by the members kept. With ``minimal_bound`` (the bound of a
    minimality claim ``with 95% confidence``), also each score's paired 95% interval under
    ``"<key> 95% [low]"`` / ``"<key> 95% [high]"``, the minimality's being the weakest
    member's (largest p-value, then lower end nearest the bound)."""
    full, none = runs[frozenset(universe)], runs[frozenset()]
    whole = frozenset(circuit)
    alone, rest = runs[whole], runs[frozenset(universe) - whole]
    out: dict[str, float] = {}
    scores = {"faithfulness": (none, alone, full, none), "completeness": (rest, full, full, none)}
    for what, arrays in scores.items():
        out[f"{name} {what}"] = share(*arrays)
        if minimal_bound is not None:
            out[f"{name} {what} 95%"] = out[f"{name} {what}"]
            low, high = interval(share_draws(*arrays))
            out[f"{name} {what} 95% [low]"], out[f"{name} {what} 95% [high]"] = low, high
    members: dict[str, tuple[float, ...]] = {}
    for member in circuit:
        arrays = (runs[whole - {member}], alone, full, none)
        out[f"{name} effect of {member}"] = share(*arrays)
        if minimal_bound is not None:
            draws = share_draws(*arrays)
            members[member] = (*interval(draws), p_at_least(draws, minimal_bound))
    out[f"{name} minimality"] = min(out[f"{name} effect of {m}"] for m in circuit)
    if members:
        weakest = max(members, key=lambda m: (members[m][2], -members[m][0]))
        out[f"{name} minimality 95%"] = out[f"{name} minimality"]
        out[f"{name} minimality 95% [low]"] = members[weakest][0]
        out[f"{name} minimality 95% [high]"] = members[weakest][1]
    for i, kept in enumerate(randoms):
        out[f"{name} random {i} ({', '.join(kept)}) faithfulness"] = share(
            none, runs[frozenset(kept)], full, none)
    return out
