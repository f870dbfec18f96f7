"""Plain mirror of ``specs/adder.claims.yaml``."""

from __future__ import annotations

import csv
from collections import defaultdict

import numpy as np
import torch

from bench.plain.common import ROOT, checkpoint, keep, passes, replace

#: (claim id, label or None) -> key of :func:`numbers`
SAME = {
    ("exact-match", None): "exact-match",
    ("token-accuracy", None): "token-accuracy",
    ("local-effect", None): "ablate L0H0,L0H1 at A4: digit-error[A5]",
    ("learned-in-time", None): "log reaches 0.99 at",
    ("final-exact", None): "final log",
}


def numbers() -> dict[str, float]:
    from examples.adder.analysis import av_readout
    from examples.adder.data import generate

    model = checkpoint("examples/adder/checkpoints/adder.pt")
    data = generate(1000, 1234)
    tokens, carry = data["tokens"], data["carry"]
    answer = list(range(22, 33))  # A0..A10 after X0..X9, +, Y0..Y9, =
    store: dict[str, list[torch.Tensor]] = defaultdict(list)
    logits = passes(model, tokens, 500, {"blocks.0.attn.hook_pattern": keep(store, "p0"),
                                         "blocks.0.attn.hook_z": keep(store, "z0")})

    def wrong(logits: torch.Tensor) -> torch.Tensor:
        return logits[:, [a - 1 for a in answer]].argmax(-1) != tokens[:, answer]

    miss = wrong(logits)
    out = {"exact-match": float((~miss.any(1)).double().mean()),
           "token-accuracy": float((~miss).double().mean())}
    for i in range(11):
        out[f"digit-error[A{i}]"] = float(miss[:, i].double().mean())
    with_carry = carry[:, 5] != 0
    out["error A5 with carry"] = float(miss[with_carry, 5].double().mean())
    out["error A5 without carry"] = float(miss[~with_carry, 5].double().mean())
    pattern = torch.cat(store["p0"]).double().mean(0)  # [head, query, key]
    for i in range(9):
        out[f"L0H0 A{i}->X{i + 1},Y{i + 1}"] = float(pattern[0, 22 + i, i + 1]
                                                     + pattern[0, 22 + i, 12 + i])
    for i in range(10):
        out[f"L0H3 A{i}->X{i},Y{i}"] = float(pattern[3, 22 + i, i] + pattern[3, 22 + i, 11 + i])
    mean_z = torch.cat(store["z0"]).double().mean(0).float()  # [pos, head, d_head]
    for heads, positions, name in (([0], None, "L0H0"), ([3], None, "L0H3"),
                                   ([2], None, "L0H2"), ([0, 1], [26], "L0H0,L0H1 at A4")):
        ablated = wrong(passes(model, tokens, 500, {"blocks.0.attn.hook_z": replace(
            mean_z, heads, positions)}))
        out[f"ablate {name}: exact-match"] = float((~ablated.any(1)).double().mean())
        out[f"ablate {name}: digit-error[A5]"] = float(ablated[:, 5].double().mean())
    readout = av_readout(model)
    out["A·V argmax"] = float(np.argmax(readout))
    out["A·V monotone"] = float(np.all(np.diff(readout) > 0) or np.all(np.diff(readout) < 0))
    state = model.state_dict()
    logits_n = (state["blocks.1.mlp.W_out"] @ state["unembed.W_U"][:, :10]).double().numpy()
    picked = logits_n[[104, 206, 218]]
    unit = picked / np.linalg.norm(picked, axis=1, keepdims=True)
    out["cluster min cos"] = float((unit @ unit.T)[np.triu_indices(3, 1)].min())
    w_out = state["blocks.1.mlp.W_out"].double()
    target = state["unembed.W_U"][:, 4].double()
    congruence = (w_out @ target) / (w_out.norm(dim=1) * target.norm())
    out["L1N44 congruence(4) rank"] = float(1 + (congruence > congruence[44]).sum())
    with open(ROOT / "examples/adder/train_log.csv", newline="") as handle:
        log = [(int(r["step"]), float(r["val_exact"])) for r in csv.DictReader(handle)]
    out["log reaches 0.99 at"] = float(next(step for step, v in log if v >= 0.99))
    out["final log"] = log[-1][1]
    return out
