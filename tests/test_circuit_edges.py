"""Circuits of edges (``edges: [L0H1 -> L1H2.k, L1H2 -> logits]``) against a hand-written
residual-stream computation on the bundled induction model (2 layers × 4 heads, attention only):
each receiving input of layer 1 and the logits read their own residual stream, built here from
the embeddings and each layer-0 head's ``z @ W_O`` (clean when the edge is kept, the head's
per-position mean over the dataset when not), as ACDC and "Hypothesis Testing the Circuit
Hypothesis" define edge ablation. No forward pass of the library's is used by the reference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import import_examples, run_plotting_pass_fail

from interp_assert import InterpAssertError
from interp_assert.evaluate.circuit_ablation import random_circuits
from interp_assert.evaluate.circuit_edges import edge_universe
from interp_assert.evaluate.forward import FORWARD_PASSES
from interp_assert.loading.circuits import parse_edge
from interp_assert.run.runner import load_claim_file

ROOT = Path(__file__).parents[1]
CHECKPOINT = ROOT / "examples" / "induction" / "checkpoints" / "induction.pt"
N = 24
DATA = {"rep": {"generate": "examples.induction.data:generate", "n": N, "seed": 5,
                "batch_size": 10}}
HEADS = [f"L{layer}H{head}" for layer in range(2) for head in range(4)]
EDGES = ["L0H1 -> L1H2.k", "L0H1 -> L1H1.k", "L0H0 -> L1H2.k", "L0H1 -> L1H2.q",
         "L1H2 -> logits", "L1H1 -> logits", "L0H3 -> logits"]


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """Every test here runs torch on one thread."""


@pytest.fixture(scope="module")
def world() -> dict[str, Any]:
    tiny, data = import_examples()
    model = tiny.load(CHECKPOINT)
    spec = DATA["rep"]
    return {"model": model, "data": data.generate(n=spec["n"], seed=spec["seed"])}


def write(folder: Path, claims: list[dict[str, Any]], circuits: Any) -> Path:
    raw: dict[str, Any] = {
        "subject": {"checkpoint": str(CHECKPOINT), "loader": "examples.tiny_transformer:load",
                    "python_path": str(ROOT)},
        "data": DATA, "quantities": {"loss": {"metric": "loss", "mask": "repeated"}},
        "circuits": circuits, "claims": claims}
    path = folder / "edges.claims.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


# ---- the reference: the residual stream by hand ----------------------------------------------
def _attend(model: Any, layer: int, q: Any, k: Any, v: Any) -> Any:
    """One layer's ``z [batch, pos, head, d_head]`` from its queries, keys and values."""
    import torch

    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / model.blocks[layer].attn.attn_scale
    n = scores.shape[-1]
    mask = torch.tril(torch.ones(n, n, dtype=torch.bool))
    pattern = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    return torch.einsum("bhqk,bkhd->bqhd", pattern, v)


def _inputs(model: Any, layer: int, resid: Any, head: int) -> tuple[Any, Any, Any]:
    """Head ``head``'s q, k, v from a residual stream (each may be its own)."""
    attn = model.blocks[layer].attn
    x = model.blocks[layer].ln1(resid)
    return tuple(x @ getattr(attn, f"W_{w}")[head] + getattr(attn, f"b_{w}")[head] for w in "QKV")


def loss_with_edges(world: dict[str, Any], kept: set[str]) -> float:
    """The masked loss of the model in which only ``kept`` edges read the clean heads."""
    import torch

    model, data = world["model"], world["data"]
    tokens = data["tokens"]
    with torch.no_grad():
        embed = model.embed.W_E[tokens] + model.pos_embed.W_pos[: tokens.shape[1]]
        attn0, attn1 = model.blocks[0].attn, model.blocks[1].attn
        q, k, v = (torch.stack(t, dim=2) for t in zip(*(
            _inputs(model, 0, embed, h) for h in range(4))))
        z0 = _attend(model, 0, q, k, v)
        out0 = torch.einsum("bphd,hdm->bphm", z0, attn0.W_O)  # each head's write
        mean0 = out0.mean(0, keepdim=True).expand_as(out0)

        def resid(receiver: str, outs: Any, means: Any, heads: list[str]) -> Any:
            """The residual stream that ``receiver`` reads from the heads of one layer."""
            total = 0
            for i, name in enumerate(heads):
                total = total + (outs if f"{name} -> {receiver}" in kept else means)[:, :, i]
            return total

        layer0 = [f"L0H{h}" for h in range(4)]
        base = embed + attn0.b_O
        qkv = []
        for h in range(4):
            qkv.append([_inputs(model, 1, base + resid(f"L1H{h}.{x}", out0, mean0, layer0),
                                h)[i] for i, x in enumerate("qkv")])
        q, k, v = (torch.stack([qkv[h][i] for h in range(4)], dim=2) for i in range(3))
        z1_clean = _attend(model, 1, *(torch.stack(t, dim=2) for t in zip(*(
            _inputs(model, 1, base + out0.sum(2), h) for h in range(4)))))
        z1 = _attend(model, 1, q, k, v)
        out1 = torch.einsum("bphd,hdm->bphm", z1, attn1.W_O)
        mean1 = torch.einsum("bphd,hdm->bphm", z1_clean, attn1.W_O).mean(0, keepdim=True
                                                                         ).expand_as(out1)
        final = (base + attn1.b_O + resid("logits", out0, mean0, layer0)
                 + resid("logits", out1, mean1, [f"L1H{h}" for h in range(4)]))
        logits = model.unembed(model.ln_final(final)).double().numpy()
    return masked_loss(data, logits)


def masked_loss(data: dict[str, Any], logits: np.ndarray) -> float:
    """Mean over samples of the mean cross-entropy at repeated tokens (predicted from p-1)."""
    tokens = data["tokens"].numpy()
    mask = data["repeated"].numpy().copy()
    mask[:, 0] = False
    shifted = logits[:, :-1]
    top = shifted.max(-1, keepdims=True)
    log_probs = shifted - top - np.log(np.exp(shifted - top).sum(-1, keepdims=True))
    per_sample = [np.mean([-log_probs[b, p - 1, tokens[b, p]] for p in range(1, tokens.shape[1])
                           if mask[b, p]]) for b in range(tokens.shape[0]) if mask[b, 1:].any()]
    return float(np.mean(per_sample))


# ---- claims against the reference -------------------------------------------------------------
def test_edge_scores_match_the_residual_stream_by_hand(world: dict[str, Any],
                                                       tmp_path: Path) -> None:
    universe = set(edge_universe(HEADS))
    assert len(universe) == 4 * 4 * 3 + 8
    claims = [
        {"id": "faithful", "claim": "circuit e is faithful: keeps ≥ 0% of loss"},
        {"id": "complete", "claim": "circuit e is complete: removing it loses ≥ 0% of loss"},
        {"id": "minimal", "claim": "circuit e is minimal: each member matters by ≥ -100% of "
                                   "loss"},
    ]
    claim_file = load_claim_file(write(tmp_path, claims, {"e": {"edges": EDGES}}))
    before = len(FORWARD_PASSES)
    run_plotting_pass_fail(load_claim_file(write(tmp_path, claims[:1], {"e": {"edges": EDGES}})),
                           None)
    # the clean pass (metric, means, layer 0's hook_z); every edge ablated: one input pass
    # (no kept sender), layer 1's hook_z, the metric; the circuit: 3 sets of kept senders in
    # layer 1 ({L0H0, L0H1} for L1H2.k, {L0H1} for L1H1.k and L1H2.q, none: that input pass
    # is the one every edge ablated ran, and is shared), layer 1's hook_z, the metric
    assert len(FORWARD_PASSES) - before == 1 + 3 + 4
    results = run_plotting_pass_fail(claim_file, None)
    full, base = loss_with_edges(world, universe), loss_with_edges(world, set())
    alone = loss_with_edges(world, set(EDGES))
    without = loss_with_edges(world, universe - set(EDGES))
    assert abs(full - base) > 1.0 and abs(alone - base) > 0.05  # the edges matter here
    members = {e: (alone - loss_with_edges(world, set(EDGES) - {e})) / (full - base)
               for e in EDGES}
    expected = {"faithful": (alone - base) / (full - base),
                "complete": (full - without) / (full - base),
                "minimal": min(members.values())}
    for name, value in expected.items():
        assert results[name].error is None, results[name].error
        assert abs(results[name].outcome.value - value) <= 1e-5, (name, value)
    rows = {r["run"]: r["metric"] for r in results["faithful"].outcome.rows}
    assert abs(rows["full model"] - full) <= 1e-5
    assert abs(rows["everything ablated"] - base) <= 1e-5
    assert abs(rows["circuit alone (e)"] - alone) <= 1e-5
    got = {r["run"].removeprefix("circuit without "): r["score"]
           for r in results["minimal"].outcome.rows if r["run"].startswith("circuit without")}
    assert max(abs(got[e] - members[e]) for e in EDGES) <= 1e-5


def test_random_edge_circuits_and_failure_plot(world: dict[str, Any], tmp_path: Path) -> None:
    claims = [{"id": "edges-fail", "claim": "circuit e is faithful: keeps ≥ 99% of loss and "
                                            "beats 100% of 3 random circuits"}]
    results = run_plotting_pass_fail(load_claim_file(write(tmp_path, claims,
                                                           {"e": {"edges": EDGES}})),
                                     tmp_path / "plots")
    outcome = results["edges-fail"].outcome
    assert not results["edges-fail"].passed
    universe = edge_universe(HEADS)
    sets = random_circuits({"edge": universe}, {"edge": len(EDGES)}, frozenset(EDGES), 3, 0)
    full, base = loss_with_edges(world, set(universe)), loss_with_edges(world, set())
    scores = [(loss_with_edges(world, set(s)) - base) / (full - base) for s in sets]
    random_rows = [r for r in outcome.rows if r["run"].startswith("random")]
    assert np.allclose([r["score"] for r in random_rows], scores, atol=1e-5, rtol=0)
    assert len(list((tmp_path / "plots").rglob("*.png"))) == 1


def test_edge_syntax() -> None:
    assert parse_edge("L0H1->L1H2") == ["L0H1 -> L1H2.q", "L0H1 -> L1H2.k", "L0H1 -> L1H2.v"]
    assert parse_edge("L0H1 → logits") == ["L0H1 -> logits"]
    assert parse_edge(" L0H0 -> L1H3.v ") == ["L0H0 -> L1H3.v"]


@pytest.mark.parametrize(("circuits", "message"), [
    ({"e": {"edges": ["L1H0 -> L1H2.k"]}}, "not before its receiver's layer 1"),
    ({"e": {"edges": ["L0H1 -> L1H2.x"]}}, "is not a head's input"),
    ({"e": {"edges": ["l0h1 -> logits"]}}, "did you mean 'L0H1'"),
    ({"e": {"edges": ["L0H1 L1H2.k"]}}, "is not an edge (sender -> receiver)"),
    ({"e": {"edges": ["L0H1 -> L1H2", "L0H1 -> L1H2.k"]}}, "listed twice"),
    ({"e": {"edges": ["L0H1 -> logits"], "heads": ["L0H1"]}}, "lists both 'edges' and heads"),
    ({"e": {"edges": ["L0H7 -> logits"]}}, "names L0H7, which the model does not have"),
])
def test_bad_edges_name_the_fix(circuits: Any, message: str, tmp_path: Path) -> None:
    claims = [{"id": "c", "claim": "circuit e is faithful: keeps ≥ 50% of loss"}]
    result = run_plotting_pass_fail(load_claim_file(write(tmp_path, claims, circuits)), None)["c"]
    assert isinstance(result.error, InterpAssertError)
    assert message in str(result.error), str(result.error)
    assert "circuit 'e'" in str(result.error)
