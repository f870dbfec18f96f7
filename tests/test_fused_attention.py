"""``layout: attention:`` on a nanoGPT-style model (fused ``c_attn``, no hook points): the hook
points and weights it gives, and head ablations through ``c_proj``'s input, each checked
against the model's own forward pass and plain torch."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

import interp_assert as ia
from interp_assert.errors import InterpAssertError, QuantityError, SpecError
from interp_assert.evaluate.evaluation import Evaluation
from interp_assert.evaluate.fused_attention import FusedHook, fused_weight
from interp_assert.loading.layout_rules import parse_attention
from interp_assert.loading.subject import get_subject

ROOT = Path(__file__).resolve().parents[1]
HEADS, WIDTH, LENGTH, VOCAB = 4, 32, 12, 16
D_HEAD = WIDTH // HEADS
RULE = {"qkv": "transformer.h.{l}.attn.c_attn", "out": "transformer.h.{l}.attn.c_proj",
        "n_heads": HEADS}
QUANTITIES = {
    "pattern": {"activation": "blocks.1.attn.hook_pattern"},  # TransformerLens's name
    "scores": {"activation": "transformer.h.1.attn.hook_attn_scores"},
    "q": {"activation": "transformer.h.1.attn.hook_q"},
    "k": {"activation": "transformer.h.1.attn.hook_k"},
    "v": {"activation": "transformer.h.1.attn.hook_v"},
    "z": {"activation": "transformer.h.1.attn.hook_z"},
    "loss": {"metric": "loss", "answer": "P1..P11"},
    "wq": {"circuit": "W_Q"}, "wk": {"circuit": "W_K"}, "wv": {"circuit": "W_V"},
    "wo": {"circuit": "W_O"},
}


def _module(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location("nanogpt_model_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, one_torch_thread: None) -> dict[str, Any]:
    """A random two-layer nanoGPT (attention sharpened so patterns are not uniform), its
    checkpoint, 40 random sequences, and the model's own attention tensors on them."""
    folder = tmp_path_factory.mktemp("fused")
    shutil.copy(ROOT / "examples" / "nanogpt" / "model.py", folder / "model.py")
    gpt = _module(folder / "model.py")
    torch.manual_seed(0)
    config = {"vocab_size": VOCAB, "block_size": LENGTH, "n_layer": 2, "n_head": HEADS,
              "n_embd": WIDTH}
    model = gpt.GPT(**config).eval()
    with torch.no_grad():
        for block in model.transformer.h:
            block.attn.c_attn.weight.mul_(4.0)
    torch.save({"config": config, "model": model.state_dict()}, folder / "gpt.pt")
    tokens = torch.randint(0, VOCAB, (40, LENGTH), generator=torch.Generator().manual_seed(1))
    torch.save({"tokens": tokens}, folder / "data.pt")
    seen: dict[str, torch.Tensor] = {}
    attn = model.transformer.h[1].attn
    hooks = [attn.c_attn.register_forward_hook(lambda m, a, out: seen.update(qkv=out)),
             attn.c_proj.register_forward_pre_hook(lambda m, a: seen.update(z=a[0])),
             model.transformer.h[1].ln_1.register_forward_hook(
                 lambda m, a, out: seen.update(x=out))]
    with torch.no_grad():
        logits = model(tokens)
    for hook in hooks:
        hook.remove()
    return {"folder": folder, "model": model, "tokens": tokens, "logits": logits,
            **{k: v.double().numpy() for k, v in seen.items()}}


def write(world: dict[str, Any], name: str, claims: list[str], layout: Any = None,
          quantities: dict[str, Any] | None = None) -> Path:
    data = {"subject": {"checkpoint": "gpt.pt", "loader": "model.py:load"},
            "layout": {"attention": RULE} if layout is None else layout,
            "data": {"seqs": {"file": "data.pt", "positions": f"P0..P{LENGTH - 1}"}},
            "quantities": QUANTITIES if quantities is None else quantities,
            "claims": [{"id": f"c{i}", "claim": c} for i, c in enumerate(claims)]
            or [{"id": "c", "claim": "1 > 0"}]}
    path = world["folder"] / f"{name}.claims.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def quantities(world: dict[str, Any], *names: str) -> dict[str, Any]:
    claim_file = ia.load(write(world, "values", [])).claim_file
    ev = Evaluation(claim_file, get_subject(claim_file.subject))
    return {name: ev.quantity(name) for name in names}


def test_hook_points_reproduce_the_models_own_attention(world: dict[str, Any]) -> None:
    got = quantities(world, "pattern", "scores", "q", "k", "v", "z")
    pattern, z = got["pattern"], got["z"]
    assert [a.name for a in pattern.axes] == ["batch", "head", "query", "key"]
    assert pattern.axes[1].labels == ("L1H0", "L1H1", "L1H2", "L1H3")
    assert pattern.axes[2].labels[:2] == ("P0", "P1")
    assert [a.name for a in z.axes] == ["batch", "pos", "head", "d_head"]
    # z is c_proj's input, split [batch, pos, head, d_head]
    np.testing.assert_array_equal(z.values, world["z"].reshape(40, LENGTH, HEADS, D_HEAD))
    # q, k, v: the thirds of c_attn's output, split as nanoGPT's forward splits them
    thirds = np.split(world["qkv"], 3, axis=-1)
    for name, part in zip("qkv", thirds):
        np.testing.assert_allclose(got[name].values, part.reshape(40, LENGTH, HEADS, D_HEAD),
                                   rtol=1e-6, atol=1e-6)
    # the pattern times v is what the model's own attention (SDPA) fed c_proj
    recomputed = np.einsum("bhqk,bkhd->bqhd", pattern.values, got["v"].values)
    np.testing.assert_allclose(recomputed, z.values, atol=2e-5)
    # scores: q·k/√d_head below the diagonal, -inf above; the pattern is their softmax
    q, k = (t.reshape(40, LENGTH, HEADS, D_HEAD) for t in thirds[:2])
    expected = np.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(D_HEAD)
    below = np.tril(np.ones((LENGTH, LENGTH), dtype=bool))
    np.testing.assert_allclose(got["scores"].values[..., below], expected[..., below],
                               rtol=1e-4, atol=1e-4)
    assert np.all(np.isneginf(got["scores"].values[..., ~below]))
    assert np.all(pattern.values[..., ~below] == 0)
    np.testing.assert_allclose(pattern.values.sum(-1), 1.0, atol=1e-5)
    assert pattern.values.max() > 0.9  # sharp enough that a wrong split would show


def test_weights_per_head_reproduce_q_and_the_output_projection(world: dict[str, Any]) -> None:
    got = quantities(world, "wq", "wk", "wv", "wo")
    assert got["wq"].shape == (2 * HEADS, WIDTH, D_HEAD)
    assert got["wq"].axes[0].labels[HEADS:] == ("L1H0", "L1H1", "L1H2", "L1H3")
    attn = world["model"].transformer.h[1].attn
    bias = attn.c_attn.bias.detach().double().numpy().reshape(3, HEADS, D_HEAD)
    x = world["x"]  # ln_1's output, c_attn's input
    thirds = np.split(world["qkv"], 3, axis=-1)
    for index, name in enumerate(("wq", "wk", "wv")):
        weights = got[name].values[HEADS:]  # layer 1
        part = thirds[index].reshape(40, LENGTH, HEADS, D_HEAD)
        for head in range(HEADS):
            np.testing.assert_allclose(x @ weights[head] + bias[index, head], part[:, :, head],
                                       atol=1e-5)
    w_o = got["wo"].values[HEADS:]
    z = world["z"].reshape(40, LENGTH, HEADS, D_HEAD)
    out = sum(z[:, :, h] @ w_o[h] for h in range(HEADS)) + attn.c_proj.bias.detach().numpy()
    with torch.no_grad():
        expected = attn.c_proj(torch.as_tensor(world["z"], dtype=torch.float32)).double()
    np.testing.assert_allclose(out, expected.numpy(), atol=1e-5)


def _loss(world: dict[str, Any], replace: Any = None) -> float:
    """Mean next-token cross-entropy on P1..P11, c_proj's input of layer 1 changed by
    ``replace`` (plain torch)."""
    model, tokens = world["model"], world["tokens"]
    attn = model.transformer.h[1].attn
    hook = attn.c_proj.register_forward_pre_hook(
        lambda m, args: (replace(args[0].clone()),) if replace else None)
    try:
        with torch.no_grad():
            logits = model(tokens).double()
    finally:
        hook.remove()
    losses = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, VOCAB),
                                               tokens[:, 1:].reshape(-1), reduction="none")
    return float(losses.mean())


def test_head_ablation_goes_through_the_output_projections_input(world: dict[str, Any]) -> None:
    head = slice(2 * D_HEAD, 3 * D_HEAD)  # L1H2's columns of c_proj's input
    mean = torch.as_tensor(world["z"][:, :, head].mean(axis=0), dtype=torch.float32)

    def zero(z: torch.Tensor) -> torch.Tensor:
        z[:, :, head] = 0
        return z

    def mean_ablated(z: torch.Tensor) -> torch.Tensor:
        z[:, :, head] = mean
        return z

    clean = _loss(world)
    path = write(world, "ablate", ["ablate L1H2 (zero): loss changes by ≥ 0",
                                   "ablate L1H2 (mean): loss changes by ≥ 0",
                                   "loss ≥ 0"])
    results = {r.claim_id: r for r in ia.load(path).run()}
    assert results["c2"].outcome.value == pytest.approx(clean, abs=1e-5)
    assert results["c0"].outcome.value == pytest.approx(abs(_loss(world, zero) - clean),
                                                        abs=1e-5)
    assert results["c1"].outcome.value == pytest.approx(abs(_loss(world, mean_ablated)
                                                            - clean), abs=1e-5)
    assert results["c0"].outcome.value > 1e-3  # the head matters: the check can fail


def test_q_k_v_can_be_replaced_but_the_pattern_cannot(world: dict[str, Any]) -> None:
    def zero_v(model_out: torch.Tensor) -> torch.Tensor:
        model_out[:, :, 2 * WIDTH:] = 0
        return model_out

    model = world["model"]
    hook = model.transformer.h[1].attn.c_attn.register_forward_hook(
        lambda m, a, out: zero_v(out.clone()))
    try:
        zeroed = _loss(world)
    finally:
        hook.remove()
    path = write(world, "replace", ["ablate transformer.h.1.attn.hook_v (zero): loss changes "
                                    "by ≥ 0",
                                    "ablate blocks.1.attn.hook_pattern (zero): loss changes "
                                    "by ≥ 0"])
    results = {r.claim_id: r for r in ia.load(path).run()}
    assert results["c0"].outcome.value == pytest.approx(abs(zeroed - _loss(world)), abs=1e-5)
    error = results["c1"].error
    assert error is not None and "can be read but not replaced" in error.message


def test_rule_errors_name_the_fix(world: dict[str, Any]) -> None:
    with pytest.raises(SpecError, match="unknown key 'qvk'") as info:
        ia.load(write(world, "typo", [], {"attention": {**RULE, "qvk": "x.{l}.y"}}))
    assert "did you mean 'qkv'" in str(info.value)
    with pytest.raises(SpecError, match="needs 'n_heads'"):
        ia.load(write(world, "heads", [], {"attention": {"qkv": RULE["qkv"]}}))
    with pytest.raises(SpecError, match="with '\\{l\\}'"):
        ia.load(write(world, "layer", [], {"attention": {"qkv": "transformer.h.0.attn.c_attn",
                                                         "n_heads": 4}}))
    # only 'out': the pattern needs 'qkv'; heads that do not divide the width
    only_out = write(world, "only-out", ["mean(pattern) > 0",
                                         "ablate L1H2 (zero): loss changes by ≥ 0"],
                     {"attention": {"out": RULE["out"], "n_heads": 4}})
    pattern, ablated = ia.load(only_out).run()
    error = pattern.error
    assert isinstance(error, QuantityError) and "add 'qkv:'" in error.hint

    def zero(z: torch.Tensor) -> torch.Tensor:
        z[:, :, 2 * D_HEAD:3 * D_HEAD] = 0
        return z

    assert ablated.outcome is not None  # ablating heads needs only 'out'
    assert ablated.outcome.value == pytest.approx(abs(_loss(world, zero) - _loss(world)),
                                                  abs=1e-5)
    odd = write(world, "odd", ["mean(z) > 0", "mean(wq) > 0", "loss > 0"],
                {"attention": {**RULE, "n_heads": 5}})
    results = ia.load(odd).run()
    errors = [r.error for r in results[:2]]
    assert all(isinstance(e, InterpAssertError) for e in errors)
    assert "does not split into 5 heads" in errors[0].message
    assert "do not split into q, k, v of 5 heads" in errors[1].message
    # the broken hook point fails only its own claims: the loss of the same pass is measured
    assert results[2].passed and results[2].outcome.value == pytest.approx(_loss(world))


def test_per_head_fusion_scale_and_no_mask() -> None:
    """``order: head qkv d_head`` (GPT-NeoX), ``causal: false`` and ``scale:`` on plain
    tensors, against reshapes written out by hand."""
    rule = parse_attention({"qkv": "gpt_neox.layers.{l}.attention.query_key_value",
                            "n_heads": 2, "order": "(head qkv d_head)", "causal": False,
                            "scale": 0.5})
    assert rule is not None
    assert rule.resolve("blocks.3.attn.hook_k") == (
        "gpt_neox.layers.3.attention.query_key_value", "hook_k")
    assert rule.resolve("gpt_neox.layers.3.attention.hook_v")[1] == "hook_v"  # type: ignore
    assert rule.resolve("blocks.3.attn.hook_z") is None  # no 'out:'
    y = torch.randn(3, 5, 2 * 3 * 4, generator=torch.Generator().manual_seed(0))
    parts = y.view(3, 5, 2, 3, 4)  # [batch, pos, head, part, d_head]

    def hook(kind: str) -> FusedHook:
        return FusedHook(f"x.{kind}", None, "x", kind, rule)

    np.testing.assert_array_equal(hook("hook_k").derive(y).numpy(), parts[:, :, :, 1].numpy())
    q, k = parts[:, :, :, 0].double(), parts[:, :, :, 1].double()
    scores = 0.5 * torch.einsum("bqhd,bkhd->bhqk", q, k)
    np.testing.assert_allclose(hook("hook_pattern").derive(y).numpy(),
                               torch.softmax(scores, -1).numpy(), atol=1e-6)
    written = hook("hook_v").write(y, torch.zeros(3, 5, 2, 4))
    assert torch.equal(written.view(3, 5, 2, 3, 4)[:, :, :, :2], parts[:, :, :, :2])
    assert not written.view(3, 5, 2, 3, 4)[:, :, :, 2].any()
    weight = np.random.default_rng(0).normal(size=(24, 6))
    np.testing.assert_array_equal(fused_weight(weight, rule, "W_K", "w"),
                                  weight.reshape(2, 3, 4, 6)[:, 1].transpose(0, 2, 1))


def test_a_model_without_hook_points_is_pointed_to_the_rule(world: dict[str, Any]) -> None:
    path = write(world, "no-rule", ["ablate L1H0 (zero): loss changes by ≥ 0",
                                    "mean(pattern) > 0"], layout={})
    for result in ia.load(path).run():
        assert result.error is not None
        assert "layout: attention:" in result.error.hint, result.error.hint
