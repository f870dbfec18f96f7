"""Plain mirror of ``specs/induction_sweep.claims.yaml`` (every checkpoint of the sweep)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch

from bench.plain import induction_stats as stats
from bench.plain.common import ROOT, checkpoint, keep, passes
from bench.plain.induction import induction_scores

SAME: dict[tuple[str, str | None], str] = {}


def key(record: dict[str, Any]) -> str | None:
    """Each sweep step's row: ``"<step> <name>"``."""
    if not record.get("label"):
        return None
    name = "induction L1H2" if record["id"] == "induction-head" else record["id"]
    return f"{record['label']} {name}"


def numbers() -> dict[str, float]:
    from examples.induction.data import generate

    data = generate(200, 99)
    out = {}
    for path in sorted((ROOT / "examples/induction/checkpoints").glob("step_*.pt")):
        model = checkpoint(str(path.relative_to(ROOT)))
        store: dict[str, list[torch.Tensor]] = defaultdict(list)
        logits = passes(model, data["tokens"], 200,
                        {"blocks.1.attn.hook_pattern": keep(store, "p1")})
        out[f"{path.stem} induction L1H2"] = float(
            induction_scores(torch.cat(store["p1"]), data["tokens"])[2])
        losses = stats.loss_samples(logits, data)
        advantage = losses["first"] - losses["repeated"]  # per sample; with its interval
        stats.with_interval(out, f"{path.stem} advantage", float(advantage.mean()),
                            stats.means(advantage))
    return out
