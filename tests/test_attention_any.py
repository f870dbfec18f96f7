"""Attention claims on any attention-shaped quantity, ``on:`` expressions, declared axes that
keep the dataset's labels, and per-head distributions of ``hook_z``; every number against a
plain torch forward pass and numpy.

The adder (examples/adder, positions X0..A10) gets two extra identity modules that see layer
1's pattern: ``blocks.1.attn.probe`` (inside attention: its axes are derived) and a top-level
``probe`` (a generic name: its quantity declares its axes).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

import interp_assert
from interp_assert.judge.verdict import ClaimResult

ROOT = Path(__file__).parents[1]
POSITIONS = "X0..X9, +, Y0..Y9, =, A0..A10"
LABELS = ([f"X{i}" for i in range(10)] + ["+"] + [f"Y{i}" for i in range(10)] + ["="]
          + [f"A{i}" for i in range(11)])
SUMS = {"generate": "examples.adder.data:generate", "n": 48, "seed": 3, "batch_size": 48,
        "positions": POSITIONS}
REPEATS = {"generate": "examples.induction.data:generate", "n": 40, "seed": 11,
           "batch_size": 40}
LOADER = '''
import torch
from examples.tiny_transformer import load as load_tiny


def load(checkpoint):
    """The adder with two identity modules fed layer 1's attention pattern."""
    model = load_tiny(checkpoint)
    model.blocks[1].attn.add_module("probe", torch.nn.Identity())
    model.add_module("probe", torch.nn.Identity())

    def feed(_module, _inputs, output):
        model.blocks[1].attn.probe(output)
        model.probe(output)

    model.blocks[1].attn.hook_pattern.register_forward_hook(feed)
    return model
'''


def _examples() -> tuple[Any, Any, Any]:
    saved = list(sys.path)
    sys.path.insert(0, str(ROOT))
    try:
        from examples import tiny_transformer
        from examples.adder import data as adder
        from examples.induction import data as induction
    finally:
        sys.path[:] = saved
    return tiny_transformer, adder, induction


def _capture(checkpoint: Path, tokens: Any, hook: str) -> np.ndarray:
    """``hook``'s output on ``tokens``, by a plain torch forward hook (float64)."""
    import torch

    tiny, _, _ = _examples()
    model = tiny.load(checkpoint)
    seen: list[np.ndarray] = []
    handle = model.get_submodule(hook).register_forward_hook(
        lambda _m, _i, out: seen.append(out.detach().double().numpy()))
    with torch.no_grad():
        model(tokens)
    handle.remove()
    return seen[0]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    _, adder, induction = _examples()
    folder = tmp_path_factory.mktemp("attention_any")
    (folder / "probe_loader.py").write_text(LOADER, encoding="utf-8")
    sums = adder.generate(n=SUMS["n"], seed=SUMS["seed"])["tokens"]
    repeats = induction.generate(n=REPEATS["n"], seed=REPEATS["seed"])["tokens"]
    adder_pt = ROOT / "examples/adder/checkpoints/adder.pt"
    induction_pt = ROOT / "examples/induction/checkpoints/induction.pt"
    return {"folder": folder, "pattern": _capture(adder_pt, sums, "blocks.1.attn.hook_pattern"),
            "z": _capture(induction_pt, repeats, "blocks.1.attn.hook_z"),
            "adder": adder_pt, "induction": induction_pt}


def _run(world: dict[str, Any], name: str, subject: dict[str, Any], data: dict[str, Any],
         quantities: dict[str, Any], claims: list[dict[str, Any]]) -> dict[str, ClaimResult]:
    text = yaml.safe_dump({"subject": {**subject, "python_path": str(ROOT)}, "data": data,
                           "quantities": quantities, "claims": claims},
                          allow_unicode=True, sort_keys=False)
    path = world["folder"] / f"{name}.claims.yaml"
    path.write_text(text, encoding="utf-8")
    return {r.claim_id: r for r in interp_assert.load(path).run()}


def _adder(world: dict[str, Any], name: str, quantities: dict[str, Any],
           claims: list[dict[str, Any]]) -> dict[str, ClaimResult]:
    subject = {"checkpoint": str(world["adder"]), "loader": "probe_loader.py:load"}
    return _run(world, name, subject, {"sums": SUMS}, quantities, claims)


def _value(result: ClaimResult) -> float:
    assert result.error is None, str(result.error)
    assert result.outcome is not None and result.outcome.value is not None
    return float(result.outcome.value)


def _previous(pattern: np.ndarray) -> float:
    """Mean weight on key q - 1 over every (sample, query >= 1)."""
    return float(np.mean([pattern[b, q, q - 1] for b in range(pattern.shape[0])
                          for q in range(1, pattern.shape[1])]))


# ---- attention on any attention-shaped quantity ---------------------------------------------
def test_derived_and_declared_patterns_keep_labels(world: dict[str, Any]) -> None:
    """A module inside attention whose output is [batch, head, query, query] is a pattern
    (heads L1H0.., the dataset's positions); a generic module declared
    ``axes: [batch, head, query, key]`` keeps the dataset's positions and gets head labels."""
    p = world["pattern"]
    a4, x4, y4 = LABELS.index("A4"), LABELS.index("X4"), LABELS.index("Y4")
    quantities = {"derived": {"activation": "blocks.1.attn.probe"},
                  "declared": {"activation": "probe", "axes": ["batch", "head", "query", "key"]}}
    claims = [{"id": "derived", "claim": "L1H2: A4 attends to X4, Y4 >= 0", "on": "derived"},
              {"id": "declared", "claim": "H2: A4 attends to X4, Y4 >= 0"},
              {"id": "declared-prev", "claim": "H1 attends to the previous token >= 0"},
              {"id": "top", "claim": "H0: top-1 sources of A4 include X4"},
              {"id": "generic", "claim": "H0: A4 attends to X4 >= 0", "on": "generic"}]
    quantities["generic"] = {"activation": "probe"}
    results = _adder(world, "labels", quantities, claims)
    expected = float((p[:, 2, a4, x4] + p[:, 2, a4, y4]).mean())
    assert _value(results["derived"]) == pytest.approx(expected, rel=1e-6)
    assert _value(results["declared"]) == pytest.approx(expected, rel=1e-6)
    assert _value(results["declared-prev"]) == pytest.approx(_previous(p[:, 1]), rel=1e-6)
    top = results["top"]
    assert top.error is None, str(top.error)
    assert top.passed is bool(np.argmax(p[:, 0, a4].mean(axis=0)) == x4)
    # undeclared and not inside attention: axes batch, pos, dim2, d_model: a clear error
    message = str(results["generic"].error)
    assert "claim 'generic'" in message and "'generic' cannot be read as an attention" in message
    assert "pos (4)" in message and "axes: [batch, head, query, key]" in message


def test_derived_pattern_needs_no_on(world: dict[str, Any]) -> None:
    """A claim file whose only pattern is a module inside attention (no hook_pattern, no
    declared axes) needs no ``on:``; other activations inside attention are not patterns."""
    p = world["pattern"]
    quantities = {"att": {"activation": "blocks.1.attn.probe"},
                  "z": {"activation": "blocks.1.attn.hook_z"}}
    claims = [{"id": "prev", "claim": "L1H1 attends to the previous token >= 0"},
              {"id": "best", "claim": "A4 attends to X4 >= 0"},
              {"id": "other-layer", "claim": "L0H1 attends to itself >= 0"}]
    results = _adder(world, "derived_only", quantities, claims)
    assert _value(results["prev"]) == pytest.approx(_previous(p[:, 1]), rel=1e-6)
    a4, x4 = LABELS.index("A4"), LABELS.index("X4")
    assert _value(results["best"]) == pytest.approx(float(p[:, :, a4, x4].mean(0).max()),
                                                    rel=1e-6)
    assert "unknown head 'L0H1'" in str(results["other-layer"].error)


def test_on_accepts_expressions(world: dict[str, Any]) -> None:
    """``on:`` takes an expression quantity or an expression itself."""
    p = world["pattern"]
    a4, x4 = LABELS.index("A4"), LABELS.index("X4")
    quantities = {"p1": {"activation": "blocks.1.attn.hook_pattern"},
                  "sharp": {"expr": "p1 * p1"}}
    claims = [{"id": "expr-q", "claim": "L1H3 attends to the previous token >= 0", "on": "sharp"},
              {"id": "inline", "claim": "L1H3 attends to the previous token >= 0",
               "on": "p1 * p1"},
              {"id": "mean", "claim": "L1H0: A4 attends to X4 >= 0", "on": "mean(p1, batch)"},
              {"id": "bad", "claim": "L1H0: A4 attends to X4 >= 0", "on": "p1 +"},
              {"id": "unknown", "claim": "L1H0: A4 attends to X4 >= 0", "on": "pp1"}]
    results = _adder(world, "on", quantities, claims)
    assert _value(results["expr-q"]) == pytest.approx(_previous(p[:, 3] ** 2), rel=1e-6)
    assert _value(results["inline"]) == pytest.approx(_previous(p[:, 3] ** 2), rel=1e-6)
    assert _value(results["mean"]) == pytest.approx(float(p[:, 0, a4, x4].mean()), rel=1e-6)
    assert "neither a quantity of the claim file nor an expression" in str(results["bad"].error)
    assert "unknown name 'pp1'" in str(results["unknown"].error)
    assert "did you mean 'p1'" in str(results["unknown"].error)


def test_wrong_shape_names_claim_quantity_axes_and_fix(world: dict[str, Any]) -> None:
    quantities = {"z": {"activation": "blocks.1.attn.hook_z"},
                  "norms": {"expr": "norm(z)"}}
    claims = [{"id": "on-z", "claim": "L1H0: A4 attends to X4 >= 0", "on": "z"},
              {"id": "on-norms", "claim": "A4 attends to X4 >= 0", "on": "norms"}]
    results = _adder(world, "shapes", quantities, claims)
    z = str(results["on-z"].error)
    assert "claim 'on-z'" in z and "'z' cannot be read as an attention pattern" in z
    assert "batch (48), pos (33), head (4), d_head (32)" in z
    assert "axes: [batch, head, query, key]" in z and "hook_pattern" in z
    norms = str(results["on-norms"].error)
    assert "'norms' cannot be read as an attention pattern" in norms
    assert "batch (48), pos (33), head (4)]; it has no query and key axis" in norms


# ---- per-head distributions of hook_z -------------------------------------------------------
def _induction(world: dict[str, Any], name: str, claims: list[dict[str, Any]]
               ) -> dict[str, ClaimResult]:
    subject = {"checkpoint": str(world["induction"]), "loader": "examples.tiny_transformer:load"}
    return _run(world, name, subject, {"repeats": REPEATS},
                {"z": {"distribution": "blocks.1.attn.hook_z"}}, claims)


def _rows(result: ClaimResult, axis: str) -> dict[str, float]:
    assert result.error is None, str(result.error)
    assert result.outcome is not None
    return {row[axis]: row["value"] for row in result.outcome.rows}


def test_hook_z_distribution_per_head(world: dict[str, Any]) -> None:
    """``every head of z`` pools each head's d_head coordinates over batch and positions:
    one result per head; ``every channel`` is one per (head, d_head); ``z[L1H2]`` is one
    head's d_head channels."""
    z = world["z"]  # [batch, pos, head, d_head]
    n_heads, d_head = z.shape[2], z.shape[3]
    per_head = [z[:, :, h, :].reshape(-1) for h in range(n_heads)]
    claims = [{"id": "std", "claim": "every head of z has std > 0"},
              {"id": "fraction", "claim": "every head of z has fraction |x| < 1 std >= 0.6"},
              {"id": "kurtosis", "claim": "every head of z has kurtosis > -3"},
              {"id": "cells", "claim": "every channel of z has mean > -100"},
              {"id": "one-head", "claim": "every channel of z[L1H2] has std > 0"},
              {"id": "noun", "claim": "every neuron of z has std > 0"}]
    results = _induction(world, "hook_z", claims)
    std = _rows(results["std"], "head")
    assert sorted(std) == [f"L1H{h}" for h in range(n_heads)]  # one result per head
    assert [std[f"L1H{h}"] for h in range(n_heads)] == pytest.approx(
        [float(v.std()) for v in per_head], rel=1e-6)
    fractions = _rows(results["fraction"], "head")
    reference = [float(np.mean(np.abs(v) < v.std())) for v in per_head]
    assert [fractions[f"L1H{h}"] for h in range(n_heads)] == pytest.approx(reference, abs=1e-9)
    assert _value(results["fraction"]) == pytest.approx(np.mean([r >= 0.6 for r in reference]))
    from scipy.stats import kurtosis

    kurt = _rows(results["kurtosis"], "head")
    assert [kurt[f"L1H{h}"] for h in range(n_heads)] == pytest.approx(
        [float(kurtosis(v)) for v in per_head], rel=1e-6)
    cells = _rows(results["cells"], "head × d_head")
    assert len(cells) == n_heads * d_head
    assert cells["L1H3[5]"] == pytest.approx(float(z[:, :, 3, 5].mean()), rel=1e-6)
    one = _rows(results["one-head"], "d_head")
    assert [one[str(d)] for d in range(d_head)] == pytest.approx(
        [float(z[:, :, 2, d].std()) for d in range(d_head)], rel=1e-6)
    message = str(results["noun"].error)
    assert "no axis 'neuron'" in message and "every head of z" in message


def test_pooled_statistics_need_kept_samples() -> None:
    """Per-head statistics regroup the kept samples; without them the error says why."""
    from interp_assert.evaluate.head_channels import pooled_stats
    from interp_assert.evaluate.streaming import StreamingStats

    rng = np.random.default_rng(0)
    grid = rng.normal(size=(500, 3, 4)) * np.arange(1, 4)[None, :, None]
    stats = StreamingStats(12, 64)
    stats.update(grid.reshape(500, 12))
    pooled = pooled_stats(stats, (3, 4), 0, "x")
    assert pooled.std() == pytest.approx(grid.transpose(1, 0, 2).reshape(3, -1).std(axis=1))
    by_column = pooled_stats(stats, (3, 4), 1, "x")
    assert by_column.mean() == pytest.approx(grid.mean(axis=(0, 1)))
    dropped = StreamingStats(12, 64, keep_samples=False)
    dropped.update(grid.reshape(500, 12))
    with pytest.raises(interp_assert.InterpAssertError, match="raw samples"):
        pooled_stats(dropped, (3, 4), 0, "x")


def test_axis_rules() -> None:
    """The derived, declared and head-channel axis rules on names alone."""
    from interp_assert.evaluate.quantities.behaviour import (
        activation_axes,
        declared_axes,
        head_channels,
    )

    positions = ("P0", "P1", "P2", "P3", "P4")
    derived = activation_axes("transformer.h.1.attn.attn_dropout", (2, 3, 5, 5), positions)
    assert [a.name for a in derived] == ["batch", "head", "query", "key"]
    assert derived[1].labels == ("L1H0", "L1H1", "L1H2")
    assert derived[2].labels == derived[3].labels == positions
    bert = activation_axes("encoder.layer.0.attention.self.dropout", (2, 3, 5, 5), None)
    assert bert[1].labels == ("L0H0", "L0H1", "L0H2") and bert[2].labels is None
    # not square, other positions, outside attention, or a TransformerLens hook: not a pattern
    for hook, shape in (("h.1.attn.attn_dropout", (2, 3, 5, 4)), ("h.1.attn.x", (2, 3, 4, 4)),
                        ("h.1.mlp.x", (2, 3, 5, 5)), ("blocks.0.attn.hook_rot_q", (2, 5, 5, 5))):
        assert [a.name for a in activation_axes(hook, shape, positions)][1:3] != ["head",
                                                                                  "query"]
    declared = declared_axes("probe", (2, 4, 5, 5), positions, ["batch", "head", "query", "key"])
    assert declared[1].labels == ("H0", "H1", "H2", "H3")
    assert declared[2].labels == declared[3].labels == positions
    renamed = declared_axes("blocks.2.mlp.hook_post", (2, 5, 3), positions,
                            ["sample", "position", "unit"])
    assert renamed[1].labels == positions and renamed[2].labels == ("L2N0", "L2N1", "L2N2")
    assert head_channels("blocks.1.attn.hook_z") and head_channels("blocks.0.attn.hook_v")
    assert not head_channels("blocks.1.attn.hook_pattern")
    assert not head_channels("blocks.0.mlp.hook_post")
