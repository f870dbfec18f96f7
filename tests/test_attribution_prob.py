"""Attribution patching on the probability of the answer (``metric: answer_prob``) on the bundled
induction model: the metric against a direct softmax, each head's estimate against a
hand-written ``torch.autograd.grad`` of the same probability, and that gradient against central
finite differences on a float64 copy of the model."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import import_examples, run_plotting_pass_fail

from interp_assert.run.runner import load_claim_file

ROOT = Path(__file__).parents[1]
CHECKPOINT = ROOT / "examples" / "induction" / "checkpoints" / "induction.pt"
N, SEED = 30, 7
GEN = "examples.induction.corrupt:generate"
DATA = {"clean": {"generate": GEN, "n": N, "seed": SEED, "batch_size": 16},
        "corrupted": {"generate": GEN, "n": N, "seed": SEED, "batch_size": 16,
                      "args": {"corrupt": True}}}
ANSWER = list(range(20, 31))
Hook = Callable[[Any], Any]


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """Every test here runs torch on one thread."""


@pytest.fixture(scope="module")
def world() -> dict[str, Any]:
    import importlib

    tiny, _ = import_examples()
    corrupt = importlib.import_module("examples.induction.corrupt")
    model = tiny.load(CHECKPOINT)
    return {"model": model, "data": {"clean": corrupt.generate(N, SEED),
                                     "corrupted": corrupt.generate(N, SEED, True)}}


def forward(model: Any, tokens: Any, hooks: dict[str, Hook], grad: bool = False) -> Any:
    import torch

    handles = [model.get_submodule(path).register_forward_hook(
        lambda _m, _i, out, f=f: f(out)) for path, f in hooks.items()]
    try:
        with torch.set_grad_enabled(grad):
            return model(tokens)
    finally:
        for handle in handles:
            handle.remove()


def probability(logits: Any, tokens: Any) -> Any:
    """Mean over samples of the mean over answer positions p of softmax(logits[p−1])[t_p]."""
    probs = logits.double()[:, [p - 1 for p in ANSWER]].softmax(-1)
    return probs.gather(-1, tokens[:, ANSWER, None])[..., 0].mean(1).mean()


def z_of(model: Any, tokens: Any) -> list[Any]:
    seen: dict[int, Any] = {}
    forward(model, tokens, {f"blocks.{layer}.attn.hook_z":
                            lambda out, layer=layer: seen.__setitem__(layer, out.detach())
                            for layer in range(2)})
    return [seen[0], seen[1]]


def test_answer_probability_attribution_matches_autograd_and_finite_differences(
        world: dict[str, Any], tmp_path: Path) -> None:
    import torch

    model, data = world["model"], world["data"]
    clean, corrupted = data["clean"]["tokens"], data["corrupted"]["tokens"]
    hooks = [f"blocks.{layer}.attn.hook_z" for layer in range(2)]
    kept: dict[str, Any] = {}
    logits = forward(model, corrupted, {h: lambda out, h=h: kept.__setitem__(h, out)
                                        for h in hooks}, grad=True)
    metric = probability(logits, corrupted)
    grads = torch.autograd.grad(metric, [kept[h] for h in hooks])
    deltas = [c.double() - t.double() for c, t in zip(z_of(model, clean), z_of(model,
                                                                                 corrupted))]
    by_hand = np.stack([(d * g.double()).sum((0, 1, 3)).numpy() for d, g in zip(deltas, grads)])
    # the gradient itself, by central differences on a float64 copy, along each head's delta
    double = copy.deepcopy(model).double()
    eps = 1e-4
    for layer, head in ((1, 2), (0, 1)):
        def shifted(sign: float, layer: int = layer, head: int = head) -> float:
            def hook(out: Any) -> Any:
                new = out.clone()
                new[:, :, head] += sign * eps * deltas[layer][:, :, head]
                return new
            return float(probability(forward(double, corrupted, {hooks[layer]: hook}),
                                     corrupted))
        slope = (shifted(1.0) - shifted(-1.0)) / (2 * eps)
        print(f"L{layer}H{head}: finite difference {slope:.8g}, autograd "
              f"{by_hand[layer, head]:.8g}")
        assert slope == pytest.approx(by_hand[layer, head], rel=1e-4, abs=1e-7)
    raise_by = by_hand[1, 2]
    raw = {"subject": {"checkpoint": str(CHECKPOINT), "loader": "examples.tiny_transformer:load",
                       "python_path": str(ROOT)},
           "data": DATA,
           "quantities": {"prob": {"metric": "answer_prob", "answer": "20..30"}},
           "claims": [
               {"id": "prob", "claim": "attribution of L1H2 from clean into corrupted: prob "
                                       "rises by ≥ -1"},
               {"id": "prob-fail", "claim": "attribution of L1H2 from clean into corrupted: "
                                            f"prob rises by ≥ {raise_by + 0.05:.6f}"},
               {"id": "layer", "claim": "attribution of L1H0, L1H1, L1H2, L1H3 from clean into "
                                        "corrupted: prob rises by ≥ -1"},
               {"id": "metric", "claim": "prob ≥ 0"}]}
    path = tmp_path / "prob.claims.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    results = run_plotting_pass_fail(load_claim_file(path), tmp_path)
    for name in ("prob", "layer", "metric"):
        assert results[name].error is None, str(results[name].error)
    print(f"estimate L1H2 {results['prob'].outcome.value:.8g} vs {raise_by:.8g}; layer 1 "
          f"{results['layer'].outcome.value:.8g} vs {by_hand[1].sum():.8g}")
    assert abs(results["prob"].outcome.value - raise_by) <= 1e-6
    assert abs(results["layer"].outcome.value - by_hand[1].sum()) <= 1e-6
    direct = float(probability(forward(model, corrupted, {}), corrupted))
    assert 0 < direct < 1
    clean_prob = float(probability(forward(model, clean, {}), clean))
    assert abs(clean_prob - direct) > 0.05  # the corruption moves the probability
    assert abs(results["metric"].outcome.value - clean_prob) <= 1e-6  # the plain metric too
    assert results["prob-fail"].status == "fails"
    assert results["prob-fail"].plot is not None and results["prob-fail"].plot.exists()
