"""bench/bench_scale.py: its bare-torch references compute the documented numbers, and its
quick run finds interp-assert's numbers equal to them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import bench_scale  # noqa: E402


def test_k_composition_reference_matches_the_definition() -> None:
    """The Gram-matrix route equals ‖(W_V W_O)(W_Q W_Kᵀ)ᵀ‖_F / (‖W_V W_O‖ ‖W_Q W_Kᵀ‖) per
    pair, computed pair by pair in numpy; ranks count the higher-scoring earlier-layer pairs."""
    layers, heads, d_model, d_head = 3, 2, 16, 4
    gen = torch.Generator().manual_seed(3)
    state = {f"blocks.{layer}.attn.{name}": torch.randn(
        heads, *((d_head, d_model) if name == "W_O" else (d_model, d_head)), generator=gen)
        for layer in range(layers) for name in ("W_Q", "W_K", "W_V", "W_O")}
    got = bench_scale.k_composition(state, layers, heads)
    w = {k: v.double().numpy() for k, v in state.items()}
    scores = {}
    for lw in range(layers):
        for lr in range(lw + 1, layers):
            for hw in range(heads):
                for hr in range(heads):
                    ov = w[f"blocks.{lw}.attn.W_V"][hw] @ w[f"blocks.{lw}.attn.W_O"][hw]
                    qk = w[f"blocks.{lr}.attn.W_Q"][hr] @ w[f"blocks.{lr}.attn.W_K"][hr].T
                    scores[f"L{lw}H{hw}>L{lr}H{hr}"] = (np.linalg.norm(ov @ qk.T) / (
                        np.linalg.norm(ov) * np.linalg.norm(qk)))
    claimed = scores[f"L0H0>L{layers - 1}H0"]
    assert got["rank"] == 1 + sum(v > claimed for v in scores.values())
    top = sorted(scores.items(), key=lambda kv: -kv[1])[:10]
    assert [k for k in got if k != "rank"] == [k for k, _ in top]
    for key, value in top:
        assert got[key] == pytest.approx(value, rel=1e-10)


@pytest.mark.slow
def test_quick_run_numbers_agree(tmp_path: Path) -> None:
    """``--quick --rows labels,kcomp`` runs fresh children and reports numbers that agree."""
    out = tmp_path / "scale.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_scale.py"), "--quick",
                           "--rows", "labels,kcomp", "--json", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {r["row"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"labels", "kcomp"}
    assert rows["labels"]["max_abs_diff"] == 0
    assert rows["kcomp"]["max_abs_diff"] <= 1e-4
    for row in rows.values():
        assert all(t > 0 for t in row["ours_s"] + row["bare_s"])
        assert row["ours_mb"][0] > 0 and row["bare_mb"][0] > 0
    assert "| labels |" in done.stdout and "| kcomp |" in done.stdout
