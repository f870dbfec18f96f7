"""The main job without interp-assert: the loads, forward passes and numbers of ``specs/``.

A plain script of the kind a researcher writes instead of claim files: it loads every
checkpoint the bundled claim files use (with the examples' loaders and data generators),
runs the same forward passes (clean, mean-ablated, patched) with forward hooks, and computes
the claims' numbers with torch, numpy and the standard library. ``bench/bench_main_job.py``
times it as a fresh process against ``pytest specs`` and compares its numbers with the
claims' recorded values.

Run: python bench/main_job_plain.py [--out numbers.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from examples.tiny_transformer import load  # noqa: E402

Hooks = dict[str, Callable[..., Any]]


def passes(model: Any, tokens: torch.Tensor, batch: int, hooks: Hooks) -> torch.Tensor:
    """One forward pass in batches with the given forward hooks; the float32 logits."""
    handles = [model.get_submodule(name).register_forward_hook(hook)
               for name, hook in hooks.items()]
    out = []
    with torch.inference_mode():
        for start in range(0, len(tokens), batch):
            out.append(model(tokens[start:start + batch]))
    for handle in handles:
        handle.remove()
    return torch.cat(out)


def keep(store: dict[str, list[torch.Tensor]], name: str) -> Callable[..., None]:
    def hook(_m: Any, _i: Any, out: torch.Tensor) -> None:
        store[name].append(out.detach().clone())
    return hook


def replace(values: torch.Tensor, heads: list[int], positions: list[int] | None = None,
            per_sample: bool = False) -> Callable[..., torch.Tensor]:
    """A hook writing ``values`` ([pos, head, d] means, or [n, pos, head, d] per sample)
    into the heads' slices of hook_z."""
    offset = [0]

    def hook(_m: Any, _i: Any, z: torch.Tensor) -> torch.Tensor:
        z = z.clone()
        rows = slice(offset[0], offset[0] + len(z))
        offset[0] += len(z)
        source = values[rows] if per_sample else values[None].expand(len(z), *values.shape)
        where = slice(None) if positions is None else positions
        for h in heads:
            z[:, where, h] = source[:, where, h]
        return z
    return hook


def token_losses(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """-log p of each token from position 1 on, predicted by the logits before it (float64)."""
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    return -logp.gather(-1, tokens[:, 1:, None])[..., 0].double()


def adder() -> dict[str, float]:
    from examples.adder.analysis import av_readout
    from examples.adder.data import generate

    model = load(ROOT / "examples/adder/checkpoints/adder.pt")
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


def induction() -> dict[str, float]:
    from examples.induction.corrupt import generate as corrupt_generate
    from examples.induction.data import generate

    model = load(ROOT / "examples/induction/checkpoints/induction.pt")
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


def induction_sweep() -> dict[str, float]:
    from examples.induction.data import generate

    data = generate(200, 99)
    out = {}
    for path in sorted((ROOT / "examples/induction/checkpoints").glob("step_*.pt")):
        model = load(path)
        store: dict[str, list[torch.Tensor]] = defaultdict(list)
        logits = passes(model, data["tokens"], 200,
                        {"blocks.1.attn.hook_pattern": keep(store, "p1")})
        out[f"{path.stem} induction L1H2"] = float(
            induction_scores(torch.cat(store["p1"]), data["tokens"])[2])
        repeated, first = induction_losses(logits, data)
        out[f"{path.stem} advantage"] = first - repeated
    return out


def gates() -> dict[str, float]:
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


def minilm() -> dict[str, float]:
    import transformers

    from examples.minilm.model import model_folder

    folder = model_folder()
    model = transformers.AutoModel.from_pretrained(folder, attn_implementation="eager").eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    lines = (ROOT / "examples/minilm/sentences.txt").read_text(encoding="utf-8").splitlines()
    sentences = [s.strip() for s in lines if s.strip() and not s.lstrip().startswith("#")]
    sums: dict[str, torch.Tensor] = defaultdict(lambda: torch.zeros(6, 12, dtype=torch.float64))
    counts: dict[str, float] = defaultdict(float)
    with torch.inference_mode():
        for start in range(0, len(sentences), 16):
            batch = tokenizer(sentences[start:start + 16], padding=True, return_tensors="pt")
            attentions = model(**batch, output_attentions=True).attentions
            mask = batch["attention_mask"].bool()
            last = mask.sum(1) - 1  # each sentence's [SEP]
            rows = torch.arange(len(mask))
            pairs = {"previous": mask[:, 1:] & mask[:, :-1], "next": mask[:, :-1] & mask[:, 1:]}
            for layer, att in enumerate(attentions):
                att = att.double()  # [b, h, q, k]
                sums["previous"][layer] += (att.diagonal(-1, -2, -1) * pairs["previous"][:, None]
                                            ).sum((0, 2))
                sums["next"][layer] += (att.diagonal(1, -2, -1) * pairs["next"][:, None]
                                        ).sum((0, 2))
                real = mask[:, None, :]
                sums["cls"][layer] += (att[..., 0] * real).sum((0, 2))
                sums["sep"][layer] += (att[rows, :, :, last] * real).sum((0, 2))
                sums["self"][layer] += (att.diagonal(0, -2, -1) * real).sum((0, 2))
            counts["previous"] += float(pairs["previous"].sum())
            counts["next"] += float(pairs["next"].sum())
            for name in ("cls", "sep", "self"):
                counts[name] += float(mask.sum())
    scores = {name: sums[name] / counts[name] for name in sums}
    return {"L0H2 previous": float(scores["previous"][0, 2]),
            "L1H8 next": float(scores["next"][1, 8]),
            "L1H11 [CLS]": float(scores["cls"][1, 11]), "L2H9 [CLS]": float(scores["cls"][2, 9]),
            "L4H5 [CLS]": float(scores["cls"][4, 5]), "L0H5 [SEP]": float(scores["sep"][0, 5]),
            "L1H1 itself": float(scores["self"][1, 1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="write the numbers here (JSON)")
    args = parser.parse_args()
    numbers = {"adder": adder(), "gates": gates(), "induction": induction(),
               "induction_sweep": induction_sweep(), "minilm": minilm()}
    if args.out:
        args.out.write_text(json.dumps(numbers, indent=1))


if __name__ == "__main__":
    main()
