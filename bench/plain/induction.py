"""Plain mirror of ``specs/induction.claims.yaml``."""

from __future__ import annotations

from collections import defaultdict

import torch

from bench.plain.common import checkpoint, keep, passes, replace, token_losses

#: (claim id, label or None) -> key of :func:`numbers`
SAME = {
    ("previous-token-head", None): "previous-token L0H1",
    ("repeated-tokens-predictable", None): "loss-repeated",
    ("advantage", None): "advantage",
    ("k-composition-top-pair", None): "K-composition rank L0H1->L1H2",
    ("induction-heads-needed", None): "ablate L1: advantage drop",
    ("first-occurrences-unaffected", None): "ablate L1: loss-first change",
    ("patching-restores-induction", None): "patch L1: recovery",
    ("patching-layer-0-alone-does-not", None): "patch L0: recovery",
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
    losses = token_losses(logits, data["tokens"])
    repeated = data["repeated"][:, 1:].bool()
    return float(losses[repeated].mean()), float(losses[~repeated].mean())


def k_composition(state: dict[str, torch.Tensor], writer: tuple[int, int],
                  reader: tuple[int, int]) -> float:
    (lw, hw), (lr, hr) = writer, reader
    ov = state[f"blocks.{lw}.attn.W_V"][hw].double() @ state[f"blocks.{lw}.attn.W_O"][hw].double()
    qk = state[f"blocks.{lr}.attn.W_Q"][hr].double() @ state[f"blocks.{lr}.attn.W_K"][hr].double().T
    return float((ov @ qk.T).norm() / (ov.norm() * qk.norm()))


def numbers() -> dict[str, float]:
    from examples.induction.corrupt import generate as corrupt_generate
    from examples.induction.data import generate

    model = checkpoint("examples/induction/checkpoints/induction.pt")
    data = generate(500, 1234)
    store: dict[str, list[torch.Tensor]] = defaultdict(list)
    logits = passes(model, data["tokens"], 250, {
        "blocks.0.attn.hook_pattern": keep(store, "p0"),
        "blocks.1.attn.hook_pattern": keep(store, "p1"),
        "blocks.1.attn.hook_z": keep(store, "z1")})
    p0 = torch.cat(store["p0"])
    out = {"previous-token L0H1": float(p0[:, 1].diagonal(-1, -2, -1).double().mean())}
    scores = induction_scores(torch.cat(store["p1"]), data["tokens"])
    for h in range(4):
        out[f"induction L1H{h}"] = float(scores[h])
    repeated, first = induction_losses(logits, data)
    out |= {"loss-repeated": repeated, "advantage": first - repeated}
    state = model.state_dict()
    table = {(w, r): k_composition(state, (0, w), (1, r)) for w in range(4) for r in range(4)}
    out["K-composition rank L0H1->L1H2"] = float(1 + sum(v > table[(1, 2)]
                                                         for v in table.values()))
    mean_z = torch.cat(store["z1"]).double().mean(0).float()
    ablated = passes(model, data["tokens"], 250, {"blocks.1.attn.hook_z": replace(
        mean_z, [0, 1, 2, 3])})
    a_repeated, a_first = induction_losses(ablated, data)
    out["ablate L1: advantage drop"] = (first - repeated) - (a_first - a_repeated)
    out["ablate L1: loss-first change"] = abs(a_first - first)
    clean, corrupted = corrupt_generate(500, 1234), corrupt_generate(500, 1234, corrupt=True)
    store = defaultdict(list)
    clean_repeated, _ = induction_losses(passes(model, clean["tokens"], 250, {
        "blocks.0.attn.hook_z": keep(store, "z0"), "blocks.1.attn.hook_z": keep(store, "z1")}),
        clean)
    before, _ = induction_losses(passes(model, corrupted["tokens"], 250, {}), corrupted)
    for layer in (1, 0):
        source = torch.cat(store[f"z{layer}"])
        patched, _ = induction_losses(passes(model, corrupted["tokens"], 250, {
            f"blocks.{layer}.attn.hook_z": replace(source, [0, 1, 2, 3], per_sample=True)}),
            corrupted)
        out[f"patch L{layer}: recovery"] = (patched - before) / (clean_repeated - before)
    return out
