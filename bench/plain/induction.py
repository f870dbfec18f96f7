"""Plain mirror of ``specs/induction.claims.yaml``."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch

from bench.plain import induction_paths
from bench.plain import induction_stats as stats
from bench.plain.common import checkpoint, keep, passes, replace
from bench.plain.induction_stats import loss_samples

#: (claim id, label or None) -> key of :func:`numbers`
SAME = {
    ("previous-token-head", None): "previous-token L0H1",
    ("previous-token-head-surely", None): "previous-token L0H1 (95%)",
    ("induction-heads", None): "induction L1H{0..3} >= 0.85: share",
    ("repeated-tokens-predictable", None): "loss-repeated",
    ("advantage", None): "advantage",
    ("k-composition-top-pair", None): "K-composition rank L0H1->L1H2",
    ("k-composition-beats-random-pairs", None): "K-composition L0H1->L1H2",
    ("induction-heads-needed", None): "ablate L1: advantage drop",
    ("induction-heads-needed-surely", None): "ablate L1: advantage drop (95%)",
    ("first-occurrences-unaffected", None): "ablate L1: loss-first change",
    ("patching-restores-induction", None): "patch L1: recovery",
    ("patching-restores-induction-surely", None): "patch L1: recovery (95%)",
    ("patching-layer-0-alone-does-not", None): "patch L0: recovery",
    ("path-keys-alone-hurt", None): "path L0 -> L1 keys: recovery",
    ("path-layer-0-direct", None): "path L0 -> logits: change",
    ("path-induction-direct", None): "path L1 -> logits: recovery",
    ("path-induction-direct-surely", None): "path L1 -> logits: recovery (95%)",
    ("attribution-l1h3", None): "attribution L1H3: drop",
    ("attribution-l1h3-surely", None): "attribution L1H3: drop (95%)",
    ("attribution-agrees", None): "attribution against patching: top 3 shared",
}


def induction_scores(pattern: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Per head: weight on the successors of every earlier occurrence of the query's token,
    pooled over the (sample, query) pairs that have one."""
    length = tokens.shape[1]
    same = tokens[:, :, None] == tokens[:, None, :]  # [b, q, j]
    earlier = torch.ones(length, length, dtype=torch.bool).tril(-2)  # j <= q - 2
    occurrence = same & earlier
    keys = torch.zeros_like(occurrence)
    keys[:, :, 1:] = occurrence[:, :, :-1]  # k = j + 1
    counted = keys.any(-1)
    weight = (pattern.double() * keys[:, None]).sum(-1)  # [b, h, q]
    return (weight * counted[:, None]).sum((0, 2)) / counted.sum()


def induction_losses(logits: torch.Tensor, data: dict[str, torch.Tensor]) -> tuple[float, float]:
    """(loss on repeated tokens, loss on the others), pooled over tokens."""
    samples = loss_samples(logits, data)
    return float(samples["repeated"].mean()), float(samples["first"].mean())


def k_composition(state: dict[str, torch.Tensor], writer: tuple[int, int],
                  reader: tuple[int, int]) -> float:
    (lw, hw), (lr, hr) = writer, reader
    ov = state[f"blocks.{lw}.attn.W_V"][hw].double() @ state[f"blocks.{lw}.attn.W_O"][hw].double()
    qk = state[f"blocks.{lr}.attn.W_Q"][hr].double() @ state[f"blocks.{lr}.attn.W_K"][hr].double().T
    return float((ov @ qk.T).norm() / (ov.norm() * qk.norm()))


def k_composition_numbers(state: dict[str, torch.Tensor]) -> dict[str, float]:
    """L0H1 → L1H2: its rank among the 16 layer-0 → layer-1 pairs, its score, and its rank
    p-value against 9 of the 15 other pairs (writer-major order) drawn by
    ``default_rng(0).choice(15, 9, replace=False)``."""
    table = {(w, r): k_composition(state, (0, w), (1, r)) for w in range(4) for r in range(4)}
    value = table[(1, 2)]
    others = [pair for pair in table if pair != (1, 2)]
    picked = np.random.default_rng(0).choice(len(others), size=9, replace=False)
    return {"K-composition rank L0H1->L1H2": float(1 + sum(v > value for v in table.values())),
            "K-composition L0H1->L1H2": value,
            "K-composition L0H1->L1H2: p against 9 random pairs": stats.rank_p(
                value, [table[others[int(k)]] for k in picked])}


def numbers() -> dict[str, float]:
    from examples.induction.data import generate

    model = checkpoint("examples/induction/checkpoints/induction.pt")
    data = generate(500, 1234)
    store: dict[str, list[torch.Tensor]] = defaultdict(list)
    logits = passes(model, data["tokens"], 250, {
        "blocks.0.attn.hook_pattern": keep(store, "p0"),
        "blocks.1.attn.hook_pattern": keep(store, "p1"),
        "blocks.1.attn.hook_z": keep(store, "z1")})
    # previous token: each sample's weight on q - 1 summed over its 47 queries q = 1..47
    previous = torch.cat(store["p0"])[:, 1].diagonal(-1, -2, -1).double()
    sums, pairs = previous.sum(1).numpy(), np.full(len(previous), previous.shape[1], float)
    value = float(sums.sum() / pairs.sum())
    out = {"previous-token L0H1": value}
    resampled = stats.ratios(sums, pairs)
    stats.with_interval(out, "previous-token L0H1 (95%)", value, resampled)
    out["previous-token L0H1 (95%) p"] = stats.p_at_least(resampled, 0.4)
    scores = induction_scores(torch.cat(store["p1"]), data["tokens"])
    for h in range(4):
        out[f"induction L1H{h}"] = float(scores[h])
    out["induction L1H{0..3} >= 0.85: share"] = float((scores >= 0.85).double().mean())
    clean = loss_samples(logits, data)
    advantage = clean["first"] - clean["repeated"]
    stats.with_interval(out, "loss-repeated", float(clean["repeated"].mean()),
                        stats.means(clean["repeated"]))
    stats.with_interval(out, "advantage", float(advantage.mean()), stats.means(advantage))
    out |= k_composition_numbers(model.state_dict())
    mean_z = torch.cat(store["z1"]).double().mean(0).float()
    ablated = loss_samples(passes(model, data["tokens"], 250, {
        "blocks.1.attn.hook_z": replace(mean_z, [0, 1, 2, 3])}), data)
    drop = float(advantage.mean() - (ablated["first"] - ablated["repeated"]).mean())
    out["ablate L1: advantage drop"] = drop
    resampled = stats.drops(advantage, ablated["first"] - ablated["repeated"])
    stats.with_interval(out, "ablate L1: advantage drop (95%)", drop, resampled)
    out["ablate L1: advantage drop (95%) p"] = stats.p_at_least(resampled, 3.5)
    out["ablate L1: loss-first change"] = float(abs(ablated["first"].mean()
                                                    - clean["first"].mean()))
    return out | induction_paths.numbers()
