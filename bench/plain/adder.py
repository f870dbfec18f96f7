"""Plain mirror of ``specs/adder.claims.yaml``."""

from __future__ import annotations

import csv
from collections import defaultdict

import numpy as np
import torch

from bench.plain.adder_stats import bootstrap, score_p_at_least
from bench.plain.common import ROOT, checkpoint, keep, passes, replace, shared_passes, wilson

#: (claim id, label or None) -> key of :func:`numbers`
SAME = {
    ("exact-match", None): "exact-match",
    ("exact-match-confident", None): "exact-match",
    ("token-accuracy", None): "token-accuracy",
    ("av-monotone", None): "A·V smallest step",
    ("av-argmax", None): "A·V at argmax 9",
    ("digit-9-neurons", None): "cluster min cos",
    ("every-digit", None): "every-digit: fraction of instances",
    ("carry-costs-little", None): "error A5 with carry",
    ("sum-head", None): "sum-head: fraction of instances",
    ("carry-head", None): "carry-head: fraction of instances",
    ("sum-head-needed", None): "ablate L0H0: exact-match drop",
    ("carry-head-needed", None): "ablate L0H3: exact-match drop",
    ("l0h2-idle", None): "ablate L0H2: exact-match drop",
    ("local-effect", None): "ablate L0H0,L0H1 at A4: digit-error[A5] rise",
    ("neuron-44-writes-4", None): "L1N44 congruence(4) rank",
    ("learned-in-time", None): "log reaches 0.99 at",
    ("final-exact", None): "final log",
}


def _with_interval(out: dict[str, float], key: str, value: float,
                   interval: tuple[float, float]) -> None:
    out[key], out[f"{key} [low]"], out[f"{key} [high]"] = value, *interval


def numbers() -> dict[str, float]:
    from examples.adder.analysis import av_readout
    from examples.adder.data import generate

    model = checkpoint("examples/adder/checkpoints/adder.pt")
    data = generate(1000, 1234)
    tokens, carry = data["tokens"], data["carry"]
    n = len(tokens)
    answer = list(range(22, 33))  # A0..A10 after X0..X9, +, Y0..Y9, =
    store: dict[str, list[torch.Tensor]] = defaultdict(list)
    logits = shared_passes(  # lens.py reads this pass too (the datasets are equal)
        "adder.pt: examples.adder.data:generate(1000, 1234), batches of 500", model, tokens,
        500, {"blocks.0.attn.hook_pattern": keep(store, "p0"),
              "blocks.0.attn.hook_z": keep(store, "z0")})

    def wrong(logits: torch.Tensor) -> torch.Tensor:
        return logits[:, [a - 1 for a in answer]].argmax(-1) != tokens[:, answer]

    out: dict[str, float] = {}
    miss = wrong(logits)
    exact = int((~miss.any(1)).sum())
    _with_interval(out, "exact-match", exact / n, wilson(exact, n))
    out["exact-match p-value of >= 0.99"] = score_p_at_least(exact, n, 0.99)
    # token accuracy: the unit is the sequence (its correct tokens over its 11 scored tokens)
    right = (~miss).sum(1).double().numpy()
    scored = np.full(n, float(len(answer)))
    _with_interval(out, "token-accuracy", float(right.sum() / scored.sum()),
                   bootstrap([right, scored], lambda r, s: r.sum(-1) / s.sum(-1)))
    held = 0
    for i in range(11):
        errors = int(miss[:, i].sum())
        _with_interval(out, f"digit-error[A{i}]", errors / n, wilson(errors, n))
        held += errors / n <= 0.01
    out["every-digit: fraction of instances"] = held / 11
    for name, rows in (("with", carry[:, 5] != 0), ("without", carry[:, 5] == 0)):
        errors, trials = int(miss[rows, 5].sum()), int(rows.sum())
        _with_interval(out, f"error A5 {name} carry", errors / trials, wilson(errors, trials))

    pattern = torch.cat(store["p0"]).double().mean(0)  # [head, query, key]
    sums = [float(pattern[0, 22 + i, i + 1] + pattern[0, 22 + i, 12 + i]) for i in range(9)]
    carries = [float(pattern[3, 22 + i, i] + pattern[3, 22 + i, 11 + i]) for i in range(10)]
    for i, value in enumerate(sums):
        out[f"L0H0 A{i}->X{i + 1},Y{i + 1}"] = value
    for i, value in enumerate(carries):
        out[f"L0H3 A{i}->X{i},Y{i}"] = value
    out["sum-head: fraction of instances"] = float(np.mean([v >= 0.8 for v in sums]))
    out["carry-head: fraction of instances"] = float(np.mean([v >= 0.5 for v in carries]))

    # mean ablations: the reference is the clean pass's per-position mean of hook_z
    mean_z = torch.cat(store["z0"]).double().mean(0).float()  # [pos, head, d_head]
    for heads, positions, name in (([0], None, "L0H0"), ([3], None, "L0H3"),
                                   ([2], None, "L0H2"), ([0, 1], [26], "L0H0,L0H1 at A4")):
        ablated = wrong(passes(model, tokens, 500, {"blocks.0.attn.hook_z": replace(
            mean_z, heads, positions)}))
        out[f"ablate {name}: exact-match"] = float((~ablated.any(1)).double().mean())
        out[f"ablate {name}: exact-match drop"] = out["exact-match"] - out[
            f"ablate {name}: exact-match"]
        out[f"ablate {name}: digit-error[A5]"] = float(ablated[:, 5].double().mean())
        out[f"ablate {name}: digit-error[A5] rise"] = out[
            f"ablate {name}: digit-error[A5]"] - out["digit-error[A5]"]

    readout = av_readout(model)
    steps = np.diff(readout)
    increasing = (steps < 0).sum() <= (steps > 0).sum()
    out["A·V smallest step"] = float(np.min(steps if increasing else -steps))
    out["A·V argmax"] = float(np.argmax(readout))
    out["A·V at argmax 9"] = float(readout[9])
    state = model.state_dict()
    logits_n = (state["blocks.1.mlp.W_out"] @ state["unembed.W_U"][:, :10]).double().numpy()
    picked = logits_n[[104, 206, 218]]
    unit = picked / np.linalg.norm(picked, axis=1, keepdims=True)
    out["cluster min cos"] = float((unit @ unit.T)[np.triu_indices(3, 1)].min())
    # congruence(4): every MLP neuron of every layer (L0N0..L1N255) against W_U[:, 4]
    w_out = torch.cat([state[f"blocks.{layer}.mlp.W_out"] for layer in (0, 1)]).double()
    target = state["unembed.W_U"][:, 4].double()
    congruence = (w_out @ target) / (w_out.norm(dim=1) * target.norm())
    out["L1N44 congruence(4) rank"] = float(1 + (congruence > congruence[256 + 44]).sum())
    with open(ROOT / "examples/adder/train_log.csv", newline="") as handle:
        log = [(int(r["step"]), float(r["val_exact"])) for r in csv.DictReader(handle)]
    out["log reaches 0.99 at"] = float(next(step for step, v in log if v >= 0.99))
    out["final log"] = log[-1][1]
    return out
