"""Plain mirror of ``specs/adder_features.claims.yaml`` (the adder's sparse autoencoder).

Three passes over the 1000 sums of ``examples.adder.sae_data`` (batches of 500): the clean pass
encodes ``blocks.0.hook_resid_post`` with the dictionary (float64, every token), the ablated
pass removes six features' share of the reconstruction there, the steered pass adds
``20 · W_dec[174]`` at A4. Intervals as ``docs/definitions.md`` gives them: Wilson's score
interval, and the paired percentile bootstrap (seed 0, 8 blocks of 250 resamples).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import torch

from bench.plain.common import ROOT, checkpoint, passes, wilson

HOOK = "blocks.0.hook_resid_post"
ANSWER = list(range(22, 33))  # A0..A10 after X0..X9, +, Y0..Y9, =
A0_A9 = list(range(22, 32))
A4 = 26
ABLATED = [174, 163, 80, 142, 2, 197]

#: (claim id, label or None) -> key of :func:`numbers`
SAME = {
    ("carry-feature-frequency", None): "F174 frequency over tokens",
    ("carry-feature-on-answers", None): "F174 frequency over samples at A0..A9",
    ("carry-feature-top", None): "F174 top 50: with carry_in",
    ("no-carry-feature-top", None): "F248 top 50 at A0..A9: without carry_in",
    ("writes-4", None): "F166 W_dec @ W_U: rank of token 4",
    ("carry-features-redundant", None): "ablate 6 features: exact-match drop",
    ("steering-breaks-a5", None): "steer F174 by 20 at A4: digit-error[A5] rise",
    ("steering-breaks-a5-surely", None): "steer F174 by 20 at A4: a5-accuracy drop",
}


def paired_bootstrap(before: np.ndarray, after: np.ndarray, level: float = 0.95
                     ) -> tuple[float, float]:
    """Percentile interval of mean(before) − mean(after) over 2000 paired resamples."""
    rng = np.random.default_rng(0)
    drops = np.concatenate([before[idx].mean(1) - after[idx].mean(1) for idx in (
        rng.integers(0, len(before), size=(250, len(before))) for _ in range(8))])
    low, high = np.quantile(drops, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def _top(activation: np.ndarray, count: int, positions: list[int]) -> list[tuple[int, int]]:
    """(sample, position) of the ``count`` largest nonzero activations at ``positions``
    (ties: lower sample, then lower position)."""
    sample, where = np.nonzero(activation[:, positions] > 0)
    position = np.asarray(positions)[where]
    value = activation[sample, position]
    order = np.lexsort((position, sample, -value))[:count]
    return list(zip(sample[order].tolist(), position[order].tolist(), strict=True))


def numbers() -> dict[str, float]:
    from safetensors.torch import load_file

    from examples.adder.sae_data import generate

    model = checkpoint("examples/adder/checkpoints/adder.pt")
    sae = {k: v.double() for k, v in load_file(
        ROOT / "examples/adder/sae/sae_weights.safetensors").items()}
    data = generate(1000, 1234)
    tokens, carry_in = data["tokens"], data["carry_in"]

    def encode(x: torch.Tensor) -> torch.Tensor:
        return torch.relu((x.double() - sae["b_dec"]) @ sae["W_enc"] + sae["b_enc"])

    store: dict[str, list[torch.Tensor]] = defaultdict(list)

    def keep_features(_m: Any, _i: Any, x: torch.Tensor) -> None:
        store["f"].append(encode(x))

    def ablate(_m: Any, _i: Any, x: torch.Tensor) -> torch.Tensor:
        f = encode(x)[..., ABLATED]
        return x - (f @ sae["W_dec"][ABLATED]).to(x.dtype)

    def steer(_m: Any, _i: Any, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        x[:, A4] += (20 * sae["W_dec"][174]).to(x.dtype)
        return x

    def right(logits: torch.Tensor) -> torch.Tensor:
        """[n, 11]: whether each answer digit is the argmax of the logits before it."""
        return logits[:, [a - 1 for a in ANSWER]].argmax(-1) == tokens[:, ANSWER]

    clean = right(passes(model, tokens, 500, {HOOK: keep_features}))
    ablated = right(passes(model, tokens, 500, {HOOK: ablate}))
    steered = right(passes(model, tokens, 500, {HOOK: steer}))
    f = torch.cat(store["f"]).numpy()  # [n, pos, d_sae] float64
    out: dict[str, float] = {}

    fired = int((f[:, :, 174] > 0).sum())
    out["F174 frequency over tokens"] = fired / f[:, :, 174].size
    low, high = wilson(fired, f[:, :, 174].size)
    out["F174 frequency over tokens [low]"], out["F174 frequency over tokens [high]"] = low, high
    on = int((f[:, A0_A9, 174] > 0).any(1).sum())
    key = "F174 frequency over samples at A0..A9"
    out[key] = on / len(f)
    out[f"{key} [low]"], out[f"{key} [high]"] = wilson(on, len(f))
    carry = carry_in.numpy() != 0
    out["F174 top 50: with carry_in"] = float(sum(
        carry[s, p] for s, p in _top(f[:, :, 174], 50, list(range(f.shape[1])))))
    out["F248 top 50 at A0..A9: without carry_in"] = float(sum(
        not carry[s, p] for s, p in _top(f[:, :, 248], 50, A0_A9)))

    logits = sae["W_dec"][166] @ model.unembed.W_U.detach().double()
    out["F166 W_dec @ W_U: rank of token 4"] = float(1 + (logits > logits[4]).sum())

    exact = clean.all(1).double().mean() - ablated.all(1).double().mean()
    out["ablate 6 features: exact-match drop"] = float(exact)
    before, after = clean[:, 5].double().numpy(), steered[:, 5].double().numpy()
    out["steer F174 by 20 at A4: digit-error[A5] rise"] = float(
        (1 - after).mean() - (1 - before).mean())
    key = "steer F174 by 20 at A4: a5-accuracy drop"
    out[key] = float(before.mean() - after.mean())
    out[f"{key} [low]"], out[f"{key} [high]"] = paired_bootstrap(before, after)
    return out
