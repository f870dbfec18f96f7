"""Plain mirror of ``specs/gates.claims.yaml`` (the CSV and JSON-lines tables)."""

from __future__ import annotations

import csv
import json
from collections import defaultdict

import numpy as np

from bench.plain.common import ROOT

SAME = {
    ("sum-head-high", None): "quantile 0.1 L0H0",
    ("operand-heads-aligned", None): "aligned L0H1",  # the lower of two
    ("layer-1-not-aligned", None): "aligned L1H2",  # the highest of four
    ("gates-open", None): "ov_logit sigmoid L0H0",
    ("sharp-operand-heads", None): "entropy L0H0",
    ("spread-heads", None): "entropy L1H0",
}


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
    for head, cells in groups.items():
        out[f"aligned {head}"] = float(np.mean([np.mean(c) for c in cells]))
        (logit,) = ov_logit[head]
        out[f"ov_logit sigmoid {head}"] = float(1 / (1 + np.exp(-logit)))
        out[f"entropy {head}"] = float(np.mean(entropy[head]))
        values = np.array([np.mean(c) for c in cells])
        centred = values - values.mean()
        out[f"kurtosis {head}"] = float(np.mean(centred ** 4) / np.mean(centred ** 2) ** 2 - 3)
    out["quantile 0.1 L0H0"] = float(np.quantile([np.mean(c) for c in groups["L0H0"]], 0.1))
    return out
