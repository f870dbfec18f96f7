"""Path patching and attribution patching claims against hand-written torch references on the
bundled induction model (examples/induction/checkpoints/induction.pt) and its clean and
corrupted datasets (examples/induction/corrupt.py).

The references here use plain forward hooks on the TransformerLens hook points and
``torch.autograd.grad``; the metric is the pooled cross-entropy on repeated tokens (the spec's
``loss-repeated``) computed directly in float64.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import import_examples, run_plotting_pass_fail

from interp_assert import ClaimSyntaxError
from interp_assert.claims import parse_claim
from interp_assert.judge.verdict import ClaimResult
from interp_assert.run.runner import load_claim_file

ROOT = Path(__file__).parents[1]
CHECKPOINT = ROOT / "examples" / "induction" / "checkpoints" / "induction.pt"
N, SEED = 60, 7
GEN = "examples.induction.corrupt:generate"
DATA = {"clean": {"generate": GEN, "n": N, "seed": SEED, "batch_size": 25},
        "corrupted": {"generate": GEN, "n": N, "seed": SEED, "batch_size": 25,
                      "args": {"corrupt": True}},
        "few": {"generate": GEN, "n": 8, "seed": SEED}}
QUANTITIES = {"loss-repeated": {"metric": "loss", "mask": "repeated", "average": "tokens"},
              "loss-samples": {"metric": "loss", "mask": "repeated"},
              "accuracy": {"metric": "token_accuracy", "answer": "20..30"}}
Hook = Callable[[Any], Any]


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """Every test here runs torch on one thread."""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    import importlib

    tiny, _data = import_examples()
    corrupt = importlib.import_module("examples.induction.corrupt")
    model = tiny.load(CHECKPOINT)
    model.eval()
    data = {"clean": corrupt.generate(N, SEED), "corrupted": corrupt.generate(N, SEED, True)}
    return {"folder": tmp_path_factory.mktemp("paths"), "model": model, "data": data}


def write(world: dict[str, Any], name: str, claims: list[dict[str, Any]]) -> Path:
    text = yaml.safe_dump({
        "subject": {"checkpoint": str(CHECKPOINT), "loader": "examples.tiny_transformer:load",
                    "python_path": str(ROOT)},
        "data": DATA, "quantities": QUANTITIES, "claims": claims},
        allow_unicode=True, sort_keys=False)
    path = world["folder"] / f"{name}.claims.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def run(path: Path, plots: Path | None = None) -> dict[str, ClaimResult]:
    return run_plotting_pass_fail(load_claim_file(path), plots)


# ---- the reference -------------------------------------------------------------------------
def forward(world: dict[str, Any], dataset: str, hooks: dict[str, Hook] | None = None,
            grad: bool = False) -> Any:
    """Logits of the model with ``hooks`` (module path -> output -> new output or None)."""
    import torch

    model = world["model"]
    handles = [model.get_submodule(path).register_forward_hook(
        lambda _m, _i, out, f=f: f(out)) for path, f in (hooks or {}).items()]
    try:
        with torch.set_grad_enabled(grad):
            return model(world["data"][dataset]["tokens"])
    finally:
        for handle in handles:
            handle.remove()


def capture(world: dict[str, Any], dataset: str, path: str,
            hooks: dict[str, Hook] | None = None) -> Any:
    seen: list[Any] = []
    forward(world, dataset, {**(hooks or {}), path: lambda out: seen.append(out.clone())})
    return seen[0]


def pooled_loss(world: dict[str, Any], dataset: str, logits: Any) -> Any:
    """Cross-entropy pooled over every repeated token t >= 1, predicted from t - 1 (torch)."""
    import torch

    tokens = world["data"][dataset]["tokens"]
    mask = world["data"][dataset]["repeated"].bool().clone()
    mask[:, 0] = False
    log_probs = logits.double().log_softmax(-1)
    picked = log_probs[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0]
    weights = mask[:, 1:].double()
    return -(picked * weights).sum() / torch.as_tensor(weights.sum())


def loss(world: dict[str, Any], dataset: str, hooks: dict[str, Hook] | None = None) -> float:
    return float(pooled_loss(world, dataset, forward(world, dataset, hooks)))


def set_heads(values: dict[int, Any]) -> Hook:
    """A hook writing ``values[h]`` (a [batch, pos, d_head] tensor) into head h."""

    def hook(out: Any) -> Any:
        new = out.clone()
        for head, value in values.items():
            new[:, :, head] = value
        return new

    return hook


def path_recovery(world: dict[str, Any], senders: list[int], receiver: tuple[str, int] | None
                  ) -> float:
    """Three passes by hand: layer-0 ``senders`` clean into corrupted; the receiver's input
    (``hook_k``/``hook_q``/``hook_v`` of a layer-1 head, or None for the logits) read with
    every layer-1 head frozen at its corrupted value; then patched alone."""
    z0, z1 = "blocks.0.attn.hook_z", "blocks.1.attn.hook_z"
    clean_z0 = capture(world, "clean", z0)
    corrupted_z1 = capture(world, "corrupted", z1)
    send = {z0: set_heads({h: clean_z0[:, :, h] for h in senders})}
    clean, corrupted = loss(world, "clean"), loss(world, "corrupted")
    if receiver is None:  # the logits: pass 2 itself, layer 1 frozen
        patched = loss(world, "corrupted", {**send, z1: lambda out: corrupted_z1.clone()})
    else:
        hook, head = receiver
        path = f"blocks.1.attn.{hook}"
        received = capture(world, "corrupted", path, send)[:, :, head]
        patched = loss(world, "corrupted", {path: set_heads({head: received})})
    return (patched - corrupted) / (clean - corrupted)


def attribution_by_hand(world: dict[str, Any]) -> np.ndarray:
    """[layer, head] estimates: Σ (clean z − corrupted z) · ∂loss/∂z at corrupted."""
    import torch

    hooks = [f"blocks.{layer}.attn.hook_z" for layer in range(2)]
    clean = [capture(world, "clean", hook) for hook in hooks]
    kept: dict[str, Any] = {}
    logits = forward(world, "corrupted", {h: lambda out, h=h: kept.__setitem__(h, out)
                                          for h in hooks}, grad=True)
    grads = torch.autograd.grad(pooled_loss(world, "corrupted", logits),
                                [kept[h] for h in hooks])
    return np.stack([((c.double() - kept[h].detach().double()) * g.double()).sum((0, 1, 3))
                     .numpy() for c, h, g in zip(clean, hooks, grads)])


# ---- claims against the reference --------------------------------------------------------------
def test_path_patching_matches_three_pass_reference(world: dict[str, Any],
                                                    tmp_path: Path) -> None:
    keys = path_recovery(world, [1], ("hook_k", 2))
    queries = path_recovery(world, [0, 1], ("hook_q", 3))
    logits = path_recovery(world, [0, 1, 2, 3], None)
    claims = [
        {"id": "keys-pass", "claim": "patch path L0H1 → L1H2 keys from clean into corrupted: "
                                     f"loss-repeated recovers ≥ {keys - 1e-4:.6f}"},
        {"id": "keys-fail", "claim": "patch path L0H1 → L1H2 keys from clean into corrupted: "
                                     f"loss-repeated recovers ≥ {keys + 1e-4:.6f}"},
        {"id": "queries", "claim": "patch path L0H0, L0H1 → L1H3 queries from clean into "
                                   "corrupted: loss-repeated recovers ≥ -100%"},
        {"id": "logits", "claim": "patch path L0H0, L0H1, L0H2, L0H3 → logits from clean into "
                                  "corrupted: loss-repeated recovers ≥ -100%"},
        {"id": "late", "claim": "patch path L1H0 → L1H2 keys from clean into corrupted: "
                                "loss-repeated recovers ≥ 0"},
        {"id": "unpaired", "claim": "patch path L0H1 → L1H2 from few into corrupted: "
                                    "loss-repeated recovers ≥ 0"},
    ]
    from interp_assert.evaluate import gradients

    gradient_passes = len(gradients.GRADIENT_PASSES)
    results = run(write(world, "paths", claims), tmp_path)
    assert len(gradients.GRADIENT_PASSES) == gradient_passes  # no gradients without attribution
    for name, status in (("keys-pass", "holds"), ("keys-fail", "fails")):
        assert results[name].error is None, str(results[name].error)
        assert results[name].status == status
        assert results[name].plot is not None and results[name].plot.exists()
    for name, reference in (("keys-pass", keys), ("queries", queries), ("logits", logits)):
        outcome = results[name].outcome
        assert outcome is not None, str(results[name].error)
        assert abs(outcome.value - reference) <= 1e-6, (name, outcome.value, reference)
    assert outcome.plot_data["source"] == pytest.approx(loss(world, "clean"), abs=1e-6)
    assert "earlier layer" in str(results["late"].error)
    assert "paired datasets" in str(results["unpaired"].error)


def test_attribution_matches_autograd(world: dict[str, Any], tmp_path: Path) -> None:
    from scipy.stats import pearsonr, spearmanr

    from interp_assert.evaluate import gradients

    by_hand = attribution_by_hand(world)
    corrupted = loss(world, "corrupted")
    z = {layer: capture(world, "clean", f"blocks.{layer}.attn.hook_z") for layer in range(2)}
    real = np.array([[loss(world, "corrupted", {f"blocks.{layer}.attn.hook_z": set_heads(
        {h: z[layer][:, :, h]})}) - corrupted for h in range(4)] for layer in range(2)])
    rho = spearmanr(by_hand.ravel(), real.ravel()).statistic
    r = pearsonr(by_hand.ravel(), real.ravel()).statistic
    print(f"attribution vs patching over 8 heads: spearman {rho:.4f}, pearson {r:.4f}")
    assert r > 0.9  # the linear estimate tracks real patching on this model
    top3 = [f"L{i // 4}H{i % 4}" for i in np.argsort(-np.abs(real.ravel()), kind="stable")[:3]]
    drop = -by_hand[1, 2]
    claims = [
        {"id": "one-pass", "claim": "attribution of L1H2 from clean into corrupted: "
                                    f"loss-repeated drops by ≥ {drop - 1e-4:.6f}"},
        {"id": "one-fail", "claim": "attribution of L1H2 from clean into corrupted: "
                                    f"loss-repeated drops by ≥ {drop + 1e-4:.6f}"},
        {"id": "layer", "claim": "attribution of L1H0, L1H1, L1H2, L1H3 from clean into "
                                 "corrupted: loss-repeated recovers ≥ -1000%"},
        {"id": "top-pass", "claim": "attribution from clean into corrupted on loss-repeated "
                                    "agrees with patching for the top 3 heads"},
        {"id": "rank-fail", "claim": "attribution from clean into corrupted on loss-repeated "
                                     f"agrees with patching over heads with spearman ≥ "
                                     f"{rho + 1e-3:.4f}"},
        {"id": "accuracy", "claim": "attribution of L1H2 from clean into corrupted: "
                                    "accuracy rises by ≥ 0"},
    ]
    before = len(gradients.GRADIENT_PASSES)
    results = run(write(world, "attribution", claims), tmp_path)
    for name, status in (("one-pass", "holds"), ("one-fail", "fails"), ("top-pass", "holds"),
                         ("rank-fail", "fails")):
        assert results[name].error is None, str(results[name].error)
        assert results[name].status == status, name
        assert results[name].plot is not None and results[name].plot.exists()
    assert len(gradients.GRADIENT_PASSES) - before == 1  # one gradient pass serves them all
    assert abs(results["one-pass"].outcome.value - drop) <= 1e-6  # type: ignore[union-attr]
    layer_sum = by_hand[1].sum() / (loss(world, "clean") - corrupted)
    assert abs(results["layer"].outcome.value - layer_sum) <= 1e-6  # type: ignore[union-attr]
    rows = {row["unit"]: row for row in results["top-pass"].outcome.rows}  # type: ignore[union-attr]
    for layer in range(2):
        for h in range(4):
            assert abs(rows[f"L{layer}H{h}"]["estimate"] - by_hand[layer, h]) <= 1e-6
            assert abs(rows[f"L{layer}H{h}"]["patching"] - real[layer, h]) <= 1e-6
    assert {u for u, row in rows.items() if row["top_both"]} == set(top3)
    assert results["rank-fail"].outcome.value == pytest.approx(rho, abs=1e-9)  # type: ignore[union-attr]
    assert "differentiable metric" in str(results["accuracy"].error)


def test_sample_averaged_loss_gradient(world: dict[str, Any]) -> None:
    """The mean-of-sample-means loss (``average: samples``) differentiates to the same metric
    value as the forward metric, and its estimates differ from the pooled one's."""
    results = run(write(world, "samples", [
        {"id": "a", "claim": "attribution from clean into corrupted on loss-samples agrees with "
                             "patching over heads with spearman ≥ -1"}]))
    outcome = results["a"].outcome
    assert outcome is not None, str(results["a"].error)
    tokens = world["data"]["corrupted"]["tokens"]
    mask = world["data"]["corrupted"]["repeated"].bool().clone()
    mask[:, 0] = False
    logits = forward(world, "corrupted").double()
    picked = logits[:, :-1].log_softmax(-1).gather(-1, tokens[:, 1:, None])[..., 0]
    per_sample = [-(picked[b][mask[b, 1:]]).mean() for b in range(N) if mask[b].any()]
    expected = float(sum(per_sample) / len(per_sample))
    assert float(outcome.context["gradient metric at target"]) == pytest.approx(expected,
                                                                                rel=1e-3)


def test_path_and_attribution_syntax() -> None:
    sentence = ("patch path L0H0, L0H1 → L1H0, L1H1 keys, L1H2 queries and values at 3..5 from "
                "clean into corrupted: loss recovers ≥ 50% while 4 random sets of the same size "
                "recover ≤ 10%")
    claim = parse_claim(sentence).claim
    assert [(r.label, r.inputs) for r in claim.receivers] == [
        ("L1H0", ("keys",)), ("L1H1", ("keys",)), ("L1H2", ("queries", "values"))]
    assert parse_claim(str(claim)).claim == claim
    bare = parse_claim("patch path L0H1 -> L1H2 from a into b: loss drops by ≥ 1").claim
    assert bare.receivers[0].inputs == ("queries", "keys", "values")
    with pytest.raises(ClaimSyntaxError):
        parse_claim("patch path L0H1 → logits keys from a into b: loss drops by ≥ 1")
    for text in ("attribution of L1H2 at 4 from a into b: loss drops by ≥ 1 while random sets "
                 "of the same size drop ≤ 0.1",
                 "attribution from a into b on loss on repeated tokens agrees with patching "
                 "for the top 2 heads",
                 "attribution from a into b on ld agrees with patching over neurons with "
                 "spearman ≥ 0.5"):
        parsed = parse_claim(text).claim
        assert parse_claim(str(parsed)).claim == parsed


def test_neuron_attribution_matches_autograd(tmp_path: Path) -> None:
    """Neurons (``hook_post`` slices) of a random two-layer model with MLPs: the estimates of
    the agreement claim equal ``torch.autograd`` ones, and the real changes forward hooks'."""
    import torch

    tiny, data = import_examples()
    torch.manual_seed(0)
    model = tiny.TinyTransformer(tiny.TinyConfig(
        n_layers=2, d_model=16, n_heads=2, d_head=8, d_mlp=8, d_vocab=64, n_ctx=48))
    model.eval()
    tiny.save_checkpoint(tmp_path / "mlp.pt", model)
    spec = {"rep": {"generate": "examples.induction.data:generate", "n": 16, "seed": 1},
            "other": {"generate": "examples.induction.data:generate", "n": 16, "seed": 2}}
    batches = {name: data.generate(n=16, seed=s["seed"]) for name, s in spec.items()}
    world = {"model": model, "data": batches}
    hooks = [f"blocks.{layer}.mlp.hook_post" for layer in range(2)]
    clean = [capture(world, "rep", hook) for hook in hooks]
    kept: dict[str, Any] = {}
    logits = forward(world, "other", {h: lambda out, h=h: kept.__setitem__(h, out)
                                      for h in hooks}, grad=True)
    grads = torch.autograd.grad(pooled_loss(world, "other", logits), [kept[h] for h in hooks])
    by_hand = np.concatenate([((c.double() - kept[h].detach().double()) * g.double())
                              .sum((0, 1)).numpy() for c, h, g in zip(clean, hooks, grads)])
    before = loss(world, "other")
    real = []
    for layer in range(2):
        for n in range(8):
            def patch(out: Any, layer: int = layer, n: int = n) -> Any:
                new = out.clone()
                new[..., n] = clean[layer][..., n]
                return new
            real.append(loss(world, "other", {hooks[layer]: patch}) - before)
    path = tmp_path / "mlp.claims.yaml"
    path.write_text(yaml.safe_dump({
        "subject": {"checkpoint": "mlp.pt", "loader": "examples.tiny_transformer:load",
                    "python_path": str(ROOT)},
        "data": spec, "quantities": {"loss": {"metric": "loss", "mask": "repeated",
                                              "average": "tokens"}},
        "claims": [{"id": "neurons", "claim": "attribution from rep into other on loss agrees "
                                              "with patching over neurons with spearman ≥ -1"},
                   {"id": "one", "claim": "attribution of L1N5 from rep into other: loss "
                                          "changes by ≥ 0"}]}, sort_keys=False),
        encoding="utf-8")
    results = run(path)
    outcome = results["neurons"].outcome
    assert outcome is not None, str(results["neurons"].error)
    estimates = np.array([row["estimate"] for row in outcome.rows])
    assert [row["unit"] for row in outcome.rows] == [f"L{i // 8}N{i % 8}" for i in range(16)]
    np.testing.assert_allclose(estimates, by_hand, atol=1e-6, rtol=0)
    np.testing.assert_allclose([row["patching"] for row in outcome.rows], real, atol=1e-6,
                               rtol=0)
    assert results["one"].outcome.value == pytest.approx(abs(by_hand[13]), abs=1e-6)  # type: ignore[union-attr]
