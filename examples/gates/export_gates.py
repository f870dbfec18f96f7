"""Export per-sample, per-head attention "gates" of the adder model to a table.

Run from the repository root::

    python -m examples.gates.export_gates            # writes gates.csv and gates.jsonl here

The model is ``examples/adder/checkpoints/adder.pt`` when it exists, otherwise a seeded random
:class:`~examples.tiny_transformer.TinyTransformer` with the adder's architecture (nothing is
trained). It runs over ``--n`` addition problems and writes one row per (head, sample):

``head``
    the attention head, ``L{layer}H{head}`` (the group column).
``sample``
    the problem's index in the dataset.
``aligned_attn``
    a JSON array of 10 numbers in [0, 1]: for each answer digit ``A_i`` (i = 0..9), the
    attention that the position predicting it pays to the two operand digits ``X_i`` and
    ``Y_i`` that determine it (a per-sample vector, like a gate's per-token scalars).
``entropy``
    the mean attention entropy (nats) over the 11 positions predicting ``A0 .. A10``.
``ov_logit``
    a per-head constant, ``log(‖W_V W_O‖_F / geometric mean over heads)``: positive for heads
    whose OV circuit is larger than the typical head's (a "gate logit": ``sigmoid(ov_logit) >=
    0.5`` iff the head is above the geometric mean; the logits sum to 0).

Values are rounded to 4 decimals so both files stay small (about 100 KB and 140 KB at ``--n 128``).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path
from typing import Any

import torch

from examples.adder.data import ANSWER_QUERY_POSITIONS, generate, position_index
from examples.tiny_transformer import TinyTransformer, load

HERE = Path(__file__).resolve().parent
CHECKPOINT = HERE.parent / "adder" / "checkpoints" / "adder.pt"
COLUMNS = ("head", "sample", "aligned_attn", "entropy", "ov_logit")


def load_model(checkpoint: Path = CHECKPOINT, seed: int = 0) -> tuple[TinyTransformer, str]:
    """The trained adder if its checkpoint exists, else a seeded random one (and which)."""
    if checkpoint.exists():
        return load(checkpoint), f"checkpoint {checkpoint.name}"
    from examples.adder.train import MODEL_CONFIG

    torch.manual_seed(seed)
    return TinyTransformer(MODEL_CONFIG).eval(), f"random TinyTransformer (seed {seed})"


def attention_patterns(model: TinyTransformer, tokens: torch.Tensor) -> list[torch.Tensor]:
    """Every layer's attention pattern ``[batch, head, query, key]`` for ``tokens``."""
    patterns: list[torch.Tensor] = []
    handles = [block.attn.hook_pattern.register_forward_hook(
        lambda _module, _inputs, output: patterns.append(output.detach()))
        for block in model.blocks]
    try:
        with torch.no_grad():
            model(tokens)
    finally:
        for handle in handles:
            handle.remove()
    return patterns


def ov_logits(model: TinyTransformer) -> list[float]:
    """``log(‖W_V W_O‖_F / geometric mean)`` per head, layer by layer."""
    with torch.no_grad():
        logs = [math.log(float(torch.linalg.matrix_norm(block.attn.W_V[h] @ block.attn.W_O[h])))
                for block in model.blocks for h in range(block.attn.W_V.shape[0])]
    centre = sum(logs) / len(logs)
    return [value - centre for value in logs]


def gate_rows(model: TinyTransformer, tokens: torch.Tensor) -> list[dict[str, Any]]:
    """One row per (head, sample), ordered by head then sample."""
    answer_queries = ANSWER_QUERY_POSITIONS
    aligned = [(position_index(f"X{i}"), position_index(f"Y{i}")) for i in range(10)]
    logits = ov_logits(model)
    rows: list[dict[str, Any]] = []
    flat = 0
    for layer, pattern in enumerate(attention_patterns(model, tokens)):
        for head in range(pattern.shape[1]):
            p = pattern[:, head]  # [batch, query, key]
            on_digits = torch.stack([p[:, answer_queries[i], x] + p[:, answer_queries[i], y]
                                     for i, (x, y) in enumerate(aligned)], dim=1)
            rows_p = p[:, answer_queries]
            entropy = -(rows_p * torch.log(rows_p.clamp_min(1e-12))).sum(-1).mean(-1)
            for sample in range(p.shape[0]):
                rows.append({
                    "head": f"L{layer}H{head}", "sample": sample,
                    "aligned_attn": json.dumps([round(float(v), 4) for v in on_digits[sample]]),
                    "entropy": round(float(entropy[sample]), 4),
                    "ov_logit": round(logits[flat], 4),
                })
            flat += 1
    return rows


def write(rows: list[dict[str, Any]], out_dir: Path) -> tuple[Path, Path]:
    """Write ``gates.csv`` (array cells as JSON text) and ``gates.jsonl`` (as JSON arrays)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, jsonl_path = out_dir / "gates.csv", out_dir / "gates.jsonl"
    with open(csv_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    with open(jsonl_path, "w", encoding="utf-8") as handle:
        for row in rows:
            record = {**row, "aligned_attn": json.loads(row["aligned_attn"])}
            handle.write(json.dumps(record, separators=(",", ":")) + "\n")
    return csv_path, jsonl_path


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=128, help="addition problems (default 128)")
    parser.add_argument("--seed", type=int, default=1234, help="dataset seed")
    parser.add_argument("--checkpoint", type=Path, default=CHECKPOINT)
    parser.add_argument("--out-dir", type=Path, default=HERE)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    model, which = load_model(args.checkpoint)
    tokens = generate(args.n, args.seed)["tokens"]
    paths = write(gate_rows(model, tokens), args.out_dir)
    print(f"model: {which}; {args.n} problems (seed {args.seed})")
    for path in paths:
        print(f"wrote {path} ({path.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
