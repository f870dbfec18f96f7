"""The clean → corrupted claims of ``specs/induction.claims.yaml``: activation patching, path
patching (Wang et al. 2022: senders patched, later heads frozen, receivers' inputs replaced)
and attribution patching (one forward-backward pass on the corrupted set), with forward hooks.

Passes on the corrupted set, one per distinct intervention (500 sequences, batches of 250):
none; layer 1 patched (patching, and the path L1 → logits: no later layer to freeze); layer 0
patched (patching, and pass 2 of the path L0 → L1 keys: it captures layer 1's keys); layer 1's
keys replaced (pass 3 of that path); layer 0 patched with layer 1 frozen at its corrupted
``hook_z`` (the path L0 → logits); each of the 8 heads patched alone (attribution against
patching); the gradient pass. On the clean set one pass captures both layers' ``hook_z``.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch

from bench.plain import induction_stats as stats
from bench.plain.common import checkpoint, keep, passes, replace

HEADS = [0, 1, 2, 3]
BATCH = 250


def gradient_products(model: torch.nn.Module, data: dict[str, torch.Tensor],
                      clean: dict[int, torch.Tensor]) -> tuple[np.ndarray, float]:
    """Per sample, layer and head ``e = Σ_{pos, d} (z_clean − z) · ∂T/∂z`` at the corrupted
    run, with ``T`` a batch's summed loss on its repeated tokens (float64 from the float32
    logits); and ``D``, the number of scored tokens (``∂M/∂z = ∂T/∂z / D``)."""
    tokens, scored = data["tokens"], data["repeated"][:, 1:].double()
    seen: dict[int, torch.Tensor] = {}
    handles = [model.get_submodule(f"blocks.{layer}.attn.hook_z").register_forward_hook(
        lambda _m, _i, out, layer=layer: seen.__setitem__(layer, out)) for layer in (0, 1)]
    products = []
    for start in range(0, len(tokens), BATCH):
        rows = slice(start, start + BATCH)
        with torch.enable_grad():
            logp = model(tokens[rows]).double().log_softmax(-1)[:, :-1]
            picked = logp.gather(-1, tokens[rows, 1:, None])[..., 0]
            grads = torch.autograd.grad(-(picked * scored[rows]).sum(), [seen[0], seen[1]])
        products.append(torch.stack([
            ((clean[layer][rows].double() - seen[layer].detach().double()) * grad.double())
            .sum((1, 3)) for layer, grad in zip((0, 1), grads)], 1))
    for handle in handles:
        handle.remove()
    return torch.cat(products).numpy(), float(scored.sum())


def top(values: np.ndarray, k: int) -> set[int]:
    """The ``k`` units of largest |value| (ties: the earlier unit)."""
    return set(sorted(range(len(values)), key=lambda i: (-abs(values[i]), i))[:k])


def numbers() -> dict[str, float]:
    from scipy.stats import pearsonr, spearmanr

    from examples.induction.corrupt import generate

    model = checkpoint("examples/induction/checkpoints/induction.pt")
    clean, corrupted = generate(500, 1234), generate(500, 1234, corrupt=True)
    tokens = corrupted["tokens"]
    store: dict[str, list[torch.Tensor]] = defaultdict(list)
    source = stats.loss_samples(passes(model, clean["tokens"], BATCH, {
        "blocks.0.attn.hook_z": keep(store, "z0"),
        "blocks.1.attn.hook_z": keep(store, "z1")}), clean)["repeated"]
    before = stats.loss_samples(passes(model, tokens, BATCH, {
        "blocks.1.attn.hook_z": keep(store, "frozen z1")}), corrupted)["repeated"]
    z = {layer: torch.cat(store[f"z{layer}"]) for layer in (0, 1)}

    def loss(hooks: dict) -> np.ndarray:
        return stats.loss_samples(passes(model, tokens, BATCH, hooks), corrupted)["repeated"]

    def patched(layer: int, heads: list[int] = HEADS) -> dict:
        return {f"blocks.{layer}.attn.hook_z": replace(z[layer], heads, per_sample=True)}

    def recovery(after: np.ndarray) -> float:
        return float((after.mean() - before.mean()) / (source.mean() - before.mean()))

    out: dict[str, float] = {}
    after = {1: loss(patched(1)), 0: loss(patched(0) | {"blocks.1.attn.hook_k": keep(store, "k1")})}
    for layer in (1, 0):
        out[f"patch L{layer}: recovery"] = recovery(after[layer])
    # the path L1 -> logits freezes nothing (no layer after 1): it is the layer-1 patch's pass
    out["path L1 -> logits: recovery"] = recovery(after[1])
    resampled = stats.recoveries(before, after[1], source)
    for name in ("patch L1", "path L1 -> logits"):
        stats.with_interval(out, f"{name}: recovery (95%)", recovery(after[1]), resampled)
        out[f"{name}: recovery (95%) p"] = stats.p_at_least(resampled, 0.9)
    keys = loss({"blocks.1.attn.hook_k": replace(torch.cat(store["k1"]), HEADS,
                                                 per_sample=True)})
    out["path L0 -> L1 keys: recovery"] = recovery(keys)
    direct = loss(patched(0) | {"blocks.1.attn.hook_z": replace(
        torch.cat(store["frozen z1"]), HEADS, per_sample=True)})
    out["path L0 -> logits: change"] = float(abs(direct.mean() - before.mean()))

    products, scored = gradient_products(model, corrupted, z)
    estimate = products.sum(0) / scored  # [layer, head]
    shares = products[:, 1, 3] * (len(before) / scored)  # each sample's estimated change
    drop = float(before.mean() - (before.mean() + estimate[1, 3]))
    out["attribution L1H3: drop"] = drop
    resampled = stats.drops(before, before + shares)
    stats.with_interval(out, "attribution L1H3: drop (95%)", drop, resampled)
    out["attribution L1H3: drop (95%) p"] = stats.p_at_least(resampled, 0.8)
    real = np.array([loss(patched(layer, [head])).mean() - before.mean()
                     for layer in (0, 1) for head in HEADS])
    flat = estimate.reshape(-1)
    out["attribution against patching: top 3 shared"] = float(len(top(flat, 3) & top(real, 3)))
    out["attribution against patching: spearman"] = float(spearmanr(flat, real).statistic)
    out["attribution against patching: pearson"] = float(pearsonr(flat, real).statistic)
    return out
