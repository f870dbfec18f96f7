"""Plain mirror of ``specs/lens.claims.yaml`` (logit lens and direct logit attribution).

One pass over the 1000 sums (batches of 500) keeps, at the positions that predict A0..A10,
the residual after each block and every component the attribution splits the final residual
into (embeddings, each head's ``hook_z``, each MLP's output). The lens is the model's final
LayerNorm and unembedding in float64; the attribution freezes the final LayerNorm's scale
(``docs/definitions.md``, "Logit lens and direct logit attribution"). Each claim is a template
over A0..A10, and its value is the fraction of instances that hold; every instance's
interval (Wilson, or the percentile bootstrap of the mean: seed 0, 8 blocks of 250
resamples) is computed as the claims compute it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import numpy as np
import torch

from bench.plain.common import checkpoint, keep, observe, shared_passes, wilson

QUERY = list(range(21, 32))  # "=", A0..A9: the positions predicting A0..A10
ANSWER = [q + 1 for q in QUERY]
HOOKS = ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post", "hook_embed",
         "hook_pos_embed", "blocks.0.attn.hook_z", "blocks.1.attn.hook_z",
         "blocks.0.hook_mlp_out", "blocks.1.hook_mlp_out"]
COMPONENTS = ["embed", "pos_embed", *(f"L0H{h}" for h in range(4)), "MLP0",
              *(f"L1H{h}" for h in range(4)), "MLP1", "bias"]

#: the clean pass of adder.claims.yaml's dataset, which this file's dataset equals
PASS = "adder.pt: examples.adder.data:generate(1000, 1234), batches of 500"
STORE: dict[str, list[torch.Tensor]] = defaultdict(list)


def _at_queries(name: str) -> Callable[..., None]:
    grab = keep(STORE, name)
    return lambda module, args, out: grab(module, args, out[:, QUERY])


observe(PASS, {name: _at_queries(name) for name in HOOKS})

#: (claim id, label or None) -> key of :func:`numbers`: the fraction of instances that hold
SAME = {(claim, None): f"{claim}: instances holding" for claim in (
    "decided-after-block-1", "undecided-after-block-0", "confident-after-block-1",
    "mlp1-writes-the-answer", "mlps-lead", "sum-head-acts-through-mlps")}


def bootstrap_means(columns: np.ndarray, level: float = 0.95) -> np.ndarray:
    """[2, columns]: the percentile bootstrap interval of each column's mean (the same 2000
    resamples of the rows for every column, as each column's own seed-0 bootstrap draws)."""
    rng = np.random.default_rng(0)
    means = np.concatenate([columns[rng.integers(0, len(columns), size=(250, len(columns)))]
                            .mean(1) for _ in range(8)])
    return np.quantile(means, [(1 - level) / 2, (1 + level) / 2], axis=0)


def numbers() -> dict[str, float]:
    from examples.adder.data import generate

    model = checkpoint("examples/adder/checkpoints/adder.pt")
    tokens = generate(1000, 1234)["tokens"]
    shared_passes(PASS, model, tokens, 500)  # one pass with adder.py's when both run
    got = {name: torch.cat(parts).double().numpy() for name, parts in STORE.items()}
    state = {k: v.double().numpy() for k, v in model.state_dict().items()}
    w_u, b_u = state["unembed.W_U"], state["unembed.b_U"]
    w, b, eps = state["ln_final.w"], state["ln_final.b"], model.ln_final.eps
    answers = tokens[:, ANSWER].numpy()  # [n, 11]
    take = np.take_along_axis

    def lens(resid: np.ndarray) -> np.ndarray:
        centred = resid - resid.mean(-1, keepdims=True)
        normed = centred / np.sqrt((centred ** 2).mean(-1, keepdims=True) + eps) * w + b
        return normed @ w_u + b_u

    logits = {layer: lens(got[f"blocks.{layer}.hook_resid_post"]) for layer in (0, 1)}
    prob, rank = {}, {}
    for layer, ell in logits.items():
        exp = np.exp(ell - ell.max(-1, keepdims=True))
        prob[layer] = take(exp, answers[..., None], -1)[..., 0] / exp.sum(-1)
        rank[layer] = 1 + (ell > take(ell, answers[..., None], -1)).sum(-1)

    # direct logit attribution, the final LayerNorm's scale frozen at the final residual
    final = got["blocks.1.hook_resid_post"]
    total = take(logits[1], answers[..., None], -1)[..., 0] - logits[1].mean(-1)
    direction = np.moveaxis(w_u[:, answers], 0, -1) - w_u.mean(1)  # [n, 11, d_model]
    centred = final - final.mean(-1, keepdims=True)
    sigma = np.sqrt((centred ** 2).mean(-1) + eps)
    read = direction * w
    read = (read - read.mean(-1, keepdims=True)) / sigma[..., None]
    parts = {"embed": got["hook_embed"], "pos_embed": got["hook_pos_embed"],
             "MLP0": got["blocks.0.hook_mlp_out"], "MLP1": got["blocks.1.hook_mlp_out"]}
    for layer in (0, 1):
        w_o = state[f"blocks.{layer}.attn.W_O"]
        for h in range(4):
            parts[f"L{layer}H{h}"] = got[f"blocks.{layer}.attn.hook_z"][:, :, h] @ w_o[h]
    dla = {name: (vectors * read).sum(-1) for name, vectors in parts.items()}
    dla["bias"] = ((state["blocks.0.attn.b_O"] + state["blocks.1.attn.b_O"]) * read).sum(-1) \
        + direction @ b + b_u[answers] - b_u.mean()
    table = np.stack([dla[name] for name in COMPONENTS], -1)  # [n, 11, component]
    means = table.mean(0)  # [11, component]
    ranks = 1 + (means[:, None, :] > means[:, :, None]).sum(-1)

    # every instance's interval, as the claims compute them (shares: the denominator held)
    shares = {name: dla[name] / total.mean(0) for name in ("MLP1", "L0H0")}
    columns = np.concatenate([prob[0], prob[1], shares["MLP1"], shares["L0H0"]], 1)
    (low0, low1, low_mlp1, low_l0h0), (high0, high1, high_mlp1, high_l0h0) = (
        np.split(bound, 4) for bound in bootstrap_means(columns))
    n = len(tokens)
    holds = {
        "decided-after-block-1": [wilson(int((rank[1][:, i] <= 1).sum()), n)[0] >= 0.99
                                  for i in range(11)],
        "undecided-after-block-0": list(high0 <= 0.6),
        "confident-after-block-1": list(prob[1].mean(0) >= 0.99),
        "mlp1-writes-the-answer": list(shares["MLP1"].mean(0) >= 0.65),
        "mlps-lead": [bool(ranks[i, COMPONENTS.index("MLP1")] <= 2
                           and ranks[i, COMPONENTS.index("MLP0")] <= 2) for i in range(11)],
        "sum-head-acts-through-mlps": list(shares["L0H0"].mean(0) <= 0.02),
    }
    out = {f"{claim}: instances holding": float(np.mean(ok)) for claim, ok in holds.items()}
    for i in range(11):  # each instance's numbers, as its row reports them
        out[f"A{i}: P(answer) after blocks.0"] = float(prob[0][:, i].mean())
        out[f"A{i}: P(answer) after blocks.0 [low]"] = float(low0[i])
        out[f"A{i}: P(answer) after blocks.0 [high]"] = float(high0[i])
        out[f"A{i}: P(answer) after blocks.1"] = float(prob[1][:, i].mean())
        out[f"A{i}: P(answer) after blocks.1 [low]"] = float(low1[i])
        out[f"A{i}: P(answer) after blocks.1 [high]"] = float(high1[i])
        out[f"A{i}: rank 1 after blocks.1"] = float((rank[1][:, i] <= 1).mean())
        for name, low, high in (("MLP1", low_mlp1, high_mlp1), ("L0H0", low_l0h0, high_l0h0)):
            out[f"A{i}: {name} share"] = float(shares[name][:, i].mean())
            out[f"A{i}: {name} share [low]"] = float(low[i])
            out[f"A{i}: {name} share [high]"] = float(high[i])
        out[f"A{i}: MLP0 mean"] = float(means[i, COMPONENTS.index("MLP0")])
        out[f"A{i}: MLP0 rank"] = float(ranks[i, COMPONENTS.index("MLP0")])
        out[f"A{i}: logit-diff"] = float(total[:, i].mean())
        out[f"A{i}: components - logit-diff"] = float(np.abs(table[:, i].sum(-1)
                                                             - total[:, i]).max())
    return out
