"""Plain mirror of ``specs/gates.claims.yaml`` (the CSV and JSON-lines tables)."""

from __future__ import annotations

import csv
import json
from collections import defaultdict

import numpy as np

from bench.plain.common import ROOT
from bench.plain.gates_peaks import count_peaks

SAME = {
    ("sum-head-high", None): "quantile 0.1 L0H0",
    ("sum-head-high-surely", None): "quantile 0.1 L0H0 with its interval",
    ("operand-heads-aligned", None): "aligned L0H1",  # the lower of two
    ("layer-1-not-aligned", None): "aligned L1H2",  # the highest of four
    ("gates-open", None): "ov_logit sigmoid L0H0",
    ("sharp-operand-heads", None): "entropy L0H0",
    ("spread-heads", None): "entropy L1H0",
    ("light-tails", None): "fraction of heads with kurtosis in [-1, 3]",
    ("sum-head-unimodal", None): "peaks L0H0",
}


def quantile_draws(values: np.ndarray, q: float) -> np.ndarray:
    """The bootstrap of the q-quantile itself (linear), resampling each value:
    ``default_rng(0)``, ``integers(0, n, (250, n))`` per block, 2000 resamples; sorted."""
    rng = np.random.default_rng(0)
    return np.sort(np.concatenate([np.quantile(
        values[rng.integers(0, len(values), size=(250, len(values)))], q, axis=-1)
        for _ in range(8)]))


def p_above(draws: np.ndarray, bound: float) -> float:
    """p of "> bound": the bound's linearly interpolated position among the sorted draws."""
    k = int(np.sum(draws <= bound))
    if k in (0, draws.size):
        return float(k > 0)
    return ((k - 1) + (bound - draws[k - 1]) / (draws[k] - draws[k - 1])) / (draws.size - 1)


def numbers() -> dict[str, float]:
    groups: dict[str, list[list[float]]] = defaultdict(list)
    ov_logit: dict[str, set[float]] = defaultdict(set)
    with open(ROOT / "examples/gates/gates.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            groups[row["head"]].append(json.loads(row["aligned_attn"]))
            ov_logit[row["head"]].add(float(row["ov_logit"]))
    entropy: dict[str, list[float]] = defaultdict(list)
    with open(ROOT / "examples/gates/gates.jsonl") as handle:
        for line in handle:
            record = json.loads(line)
            entropy[record["head"]].append(record["entropy"])
    out = {}
    kurtoses = []
    for head, cells in groups.items():
        out[f"aligned {head}"] = float(np.mean([np.mean(c) for c in cells]))
        (logit,) = ov_logit[head]
        out[f"ov_logit sigmoid {head}"] = float(1 / (1 + np.exp(-logit)))
        out[f"entropy {head}"] = float(np.mean(entropy[head]))
        values = np.array([np.mean(c) for c in cells])
        centred = values - values.mean()
        kurtoses.append(np.mean(centred ** 4) / np.mean(centred ** 2) ** 2 - 3)
        out[f"kurtosis {head}"] = float(kurtoses[-1])
    out["fraction of heads with kurtosis in [-1, 3]"] = float(np.mean(
        [-1 <= k <= 3 for k in kurtoses]))
    l0h0 = np.array([np.mean(c) for c in groups["L0H0"]])
    out["quantile 0.1 L0H0"] = float(np.quantile(l0h0, 0.1))
    surely = "quantile 0.1 L0H0 with its interval"
    out[surely] = out["quantile 0.1 L0H0"]
    draws = quantile_draws(l0h0, 0.1)
    out[f"{surely} [low]"], out[f"{surely} [high]"] = np.quantile(draws, [0.025, 0.975])
    out[f"{surely} p-value of > 0.9"] = p_above(draws, 0.9)
    peaks = count_peaks(l0h0)
    out["peaks L0H0"], out["highest peak L0H0"] = float(len(peaks)), float(peaks[0])
    return out
