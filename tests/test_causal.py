"""Ablation and patching claims against an independent torch-hook reference.

A random two-layer TinyTransformer runs on repeated-segment sequences; every reference number
comes from plain forward hooks on ``blocks.{l}.attn.hook_z`` / ``blocks.{l}.mlp.hook_post`` and
a masked cross-entropy computed here.
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
from interp_assert.evaluate.interventions import random_sets, resample_order
from interp_assert.judge.verdict import ClaimResult
from interp_assert.run.runner import load_claim_file

ROOT = Path(__file__).parents[1]
N, HEADS = 24, 3
DATA = {"rep": {"generate": "examples.induction.data:generate", "n": N, "seed": 1,
                "batch_size": 10},
        "other": {"generate": "examples.induction.data:generate", "n": N, "seed": 2,
                  "batch_size": 10},
        "small": {"generate": "examples.induction.data:generate", "n": 8, "seed": 3}}
QUANTITIES = {"loss": {"metric": "loss", "mask": "repeated"},
              "acc": {"metric": "token_accuracy", "answer": "20..40"}}
Hook = Callable[[Any], Any]



@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """Every test here runs torch on one thread."""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    import torch

    tiny, data = import_examples()
    torch.manual_seed(0)
    model = tiny.TinyTransformer(tiny.TinyConfig(
        n_layers=2, d_model=16, n_heads=HEADS, d_head=4, d_mlp=16, d_vocab=64, n_ctx=48))
    with torch.no_grad():  # sharper attention, so that heads matter
        for block in model.blocks:
            block.attn.W_Q.mul_(3.0)
            block.attn.W_K.mul_(3.0)
    folder = tmp_path_factory.mktemp("causal")
    tiny.save_checkpoint(folder / "model.pt", model)
    model.eval()
    batches = {name: data.generate(n=spec["n"], seed=spec["seed"]) for name, spec in DATA.items()}
    return {"folder": folder, "model": model, "data": batches}


def write(world: dict[str, Any], name: str, claims: list[dict[str, Any]]) -> Path:
    text = yaml.safe_dump({
        "subject": {"checkpoint": "model.pt", "loader": "examples.tiny_transformer:load",
                    "python_path": str(ROOT)},
        "data": DATA, "quantities": QUANTITIES, "claims": claims},
        allow_unicode=True, sort_keys=False)
    path = world["folder"] / f"{name}.claims.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def run(path: Path, plots: Path | None = None) -> dict[str, ClaimResult]:
    """Evaluate every claim; only ``*-pass`` / ``*-fail`` claims draw their plot."""
    claim_file = load_claim_file(path)
    return run_plotting_pass_fail(claim_file, plots)


# ---- the reference -------------------------------------------------------------------------
def forward(world: dict[str, Any], dataset: str, hooks: dict[str, Hook] | None = None) -> Any:
    """Logits with ``hooks`` (module path -> output -> new output) attached."""
    import torch

    model = world["model"]
    handles = [model.get_submodule(path).register_forward_hook(
        lambda _m, _i, out, f=f: f(out)) for path, f in (hooks or {}).items()]
    try:
        with torch.no_grad():
            return model(world["data"][dataset]["tokens"]).double().numpy()
    finally:
        for handle in handles:
            handle.remove()


def capture(world: dict[str, Any], dataset: str, path: str) -> Any:
    seen: list[Any] = []
    forward(world, dataset, {path: lambda out: seen.append(out.clone())})
    return seen[0]


def masked_loss(world: dict[str, Any], dataset: str, logits: np.ndarray) -> float:
    """Mean over samples of the mean cross-entropy at repeated tokens (predicted from p-1)."""
    tokens = world["data"][dataset]["tokens"].numpy()
    mask = world["data"][dataset]["repeated"].numpy().copy()
    mask[:, 0] = False
    shifted = logits[:, :-1]
    log_probs = shifted - np.log(np.exp(shifted - shifted.max(-1, keepdims=True)).sum(
        -1, keepdims=True)) - shifted.max(-1, keepdims=True)
    per_sample = []
    for b in range(tokens.shape[0]):
        picked = [-log_probs[b, p - 1, tokens[b, p]] for p in range(1, tokens.shape[1])
                  if mask[b, p]]
        if picked:
            per_sample.append(np.mean(picked))
    return float(np.mean(per_sample))


def loss(world: dict[str, Any], dataset: str, hooks: dict[str, Hook] | None = None) -> float:
    return masked_loss(world, dataset, forward(world, dataset, hooks))


def set_head(head: int, value: Callable[[Any], Any], positions: list[int] | None = None) -> Hook:
    def hook(out: Any) -> Any:
        new = out.clone()
        where = slice(None) if positions is None else positions
        new[:, where, head] = value(new)[:, where] if positions is not None else value(new)
        return new

    return hook


# ---- claims against the reference --------------------------------------------------------------
def test_ablations_match_reference(world: dict[str, Any], tmp_path: Path) -> None:
    import torch

    z = "blocks.1.attn.hook_z"
    clean = loss(world, "rep")
    zero = loss(world, "rep", {z: set_head(1, lambda new: torch.zeros_like(new[:, :, 1]))})
    mean_z = capture(world, "rep", z)[:, :, 1].mean(0)
    mean = loss(world, "rep", {z: set_head(1, lambda new: mean_z.expand_as(new[:, :, 1]))})
    other_mean = capture(world, "other", z)[:, :, 1].mean(0)
    over = loss(world, "rep", {z: set_head(1, lambda new: other_mean.expand_as(new[:, :, 1]))})
    order = torch.as_tensor(resample_order(N, N, 4, same=True))
    resampled_z = capture(world, "rep", z)[:, :, 1][order]
    resample = loss(world, "rep", {z: set_head(1, lambda new: resampled_z)})
    positions = list(range(20, 31))
    partial = loss(world, "rep", {z: set_head(1, lambda new: torch.zeros_like(new[:, :, 1]),
                                              positions)})

    def zero_neuron(out: Any) -> Any:
        new = out.clone()
        new[..., 3] = 0
        return new

    neuron = loss(world, "rep", {"blocks.0.mlp.hook_post": zero_neuron})
    module = loss(world, "rep", {"blocks.0.hook_attn_out": lambda out: torch.zeros_like(out)})
    claims = [
        {"id": "zero-pass", "claim": f"ablate L1H1 (zero): loss rises by ≥ {zero - clean - 1e-5}"},
        {"id": "zero-fail", "claim": f"ablate L1H1 (zero): loss rises by ≥ {zero - clean + 1e-5}"},
        {"id": "mean", "claim": "ablate L1H1: loss changes by ≥ 0"},
        {"id": "over", "claim": "ablate L1H1 (mean over other): loss changes by ≥ 0"},
        {"id": "resample", "claim": "ablate L1H1 (resample, seed 4): loss changes by ≥ 0"},
        {"id": "partial", "claim": "ablate L1H1 at 20..30 (zero): loss changes by ≥ 0"},
        {"id": "neuron", "claim": "ablate L0N3 (zero): loss drops by ≤ 10 nats"},
        {"id": "module", "claim": "ablate blocks.0.hook_attn_out (zero): loss changes by ≥ 0"},
        {"id": "masked", "claim": "ablate L1H1 (zero): loss on not repeated tokens changes by ≥ 0"},
    ]
    results = run(write(world, "ablate", claims), tmp_path)
    for name in ("zero-pass", "zero-fail"):
        assert results[name].error is None, str(results[name].error)
        assert results[name].plot is not None and results[name].plot.exists()
    assert results["zero-pass"].passed and not results["zero-fail"].passed
    expected = {"zero-pass": zero, "mean": mean, "over": over, "resample": resample,
                "partial": partial, "module": module}
    for name, after in expected.items():
        outcome = results[name].outcome
        assert outcome is not None, (name, results[name].error)
        row = outcome.rows[0]
        assert row["before"] == pytest.approx(clean, abs=1e-5), name
        assert row["after"] == pytest.approx(after, abs=1e-5), name
    neuron_outcome = results["neuron"].outcome
    assert neuron_outcome is not None
    assert neuron_outcome.value == pytest.approx(clean - neuron, abs=1e-5)
    assert "mean-ablated at all positions (reference rep)" in results["mean"].outcome.measured  # type: ignore[union-attr]
    assert results["over"].outcome.context["intervention"].endswith("(reference other)")  # type: ignore[union-attr]
    assert "at 20..30" in results["partial"].outcome.measured  # type: ignore[union-attr]
    assert results["masked"].passed, results["masked"].error
    assert results["masked"].outcome.rows[0]["before"] != pytest.approx(clean)  # type: ignore[union-attr]


def test_patching_matches_reference(world: dict[str, Any], tmp_path: Path) -> None:
    z = "blocks.1.attn.hook_z"
    source_z = capture(world, "rep", z)[:, :, 0]
    patched = loss(world, "other", {z: set_head(0, lambda new: source_z)})
    clean, corrupt = loss(world, "rep"), loss(world, "other")
    recovery = (patched - corrupt) / (clean - corrupt)
    other_z = capture(world, "other", z)[:, :, 0]
    back = loss(world, "rep", {z: set_head(0, lambda new: other_z)})
    claims = [
        {"id": "patch-pass", "claim": f"patch L1H0 from rep into other: loss recovers "
                                      f"≥ {recovery - 1e-4:.6f}"},
        {"id": "patch-fail", "claim": f"patch L1H0 from rep into other: loss recovers "
                                      f"≥ {recovery + 1e-4:.6f}"},
        {"id": "back", "claim": "patch L1H0 from other into rep: loss changes by ≥ 0"},
        {"id": "unpaired", "claim": "patch L1H0 from small into rep: loss recovers ≥ 0"},
    ]
    results = run(write(world, "patch", claims), tmp_path)
    for name, status in (("patch-pass", "holds"), ("patch-fail", "fails")):
        result = results[name]
        assert result.error is None, str(result.error)
        assert result.status == status
        assert result.plot is not None and result.plot.exists()
    outcome = results["patch-pass"].outcome
    assert outcome is not None
    assert outcome.value == pytest.approx(recovery, abs=1e-4)
    assert outcome.rows[0]["before"] == pytest.approx(corrupt, abs=1e-5)
    assert outcome.rows[0]["after"] == pytest.approx(patched, abs=1e-5)
    assert f"source {clean:.4g}"[:12] in outcome.measured
    assert results["back"].outcome.rows[0]["after"] == pytest.approx(back, abs=1e-5)  # type: ignore[union-attr]
    assert "paired datasets" in str(results["unpaired"].error)


def test_random_controls(world: dict[str, Any], tmp_path: Path) -> None:
    import torch

    z = "blocks.1.attn.hook_z"
    clean = loss(world, "rep")
    pool = [f"L{layer}H{h}" for layer in range(2) for h in range(HEADS)]
    sets = random_sets(pool, ["L1H2"], 1, 3, 0)
    assert len(sets) == 3 and all("L1H2" not in s for s in sets)
    assert random_sets(pool, ["L1H2"], 1, 10, 0) == [(p,) for p in pool if p != "L1H2"]
    first = sets[0][0]
    layer, head = int(first[1]), int(first[3])
    first_rise = loss(world, "rep", {f"blocks.{layer}.attn.hook_z": set_head(
        head, lambda new: torch.zeros_like(new[:, :, head]))}) - clean
    own = loss(world, "rep", {z: set_head(2, lambda new: torch.zeros_like(new[:, :, 2]))}) - clean
    claims = [
        {"id": "ctl-pass", "claim": f"ablate L1H2 (zero): loss rises by ≥ {own - 1e-5} while 3 "
                                    "random sets of the same size change by ≤ 100 nats"},
        {"id": "ctl-fail", "claim": f"ablate L1H2 (zero): loss rises by ≥ {own - 1e-5} while 3 "
                                    "random sets of the same size change by ≤ 0 nats"},
        {"id": "pair", "claim": "ablate L1H2, L0N1 (zero): loss changes by ≥ 0 while random sets "
                                "of the same size change by ≥ 0"},
    ]
    results = run(write(world, "controls", claims), tmp_path)
    for name, status in (("ctl-pass", "holds"), ("ctl-fail", "fails")):
        assert results[name].error is None, str(results[name].error)
        assert results[name].status == status
        assert results[name].plot is not None and results[name].plot.exists()
    outcome = results["ctl-pass"].outcome
    assert outcome is not None
    assert [row["intervened"] for row in outcome.rows] == \
        ["L1H2"] + [f"{s[0]} (control)" for s in sets]
    assert outcome.rows[1]["effect"] == pytest.approx(abs(first_rise), abs=1e-5)
    assert "3 random sets of 1: change mean" in outcome.measured and "sd" in outcome.measured
    assert "all heads or all neurons" in str(results["pair"].error)


def test_causal_syntax() -> None:
    with pytest.raises(ClaimSyntaxError, match="patching"):
        parse_claim("ablate L1H0 (mean): loss recovers ≥ 80%")
    with pytest.raises(ClaimSyntaxError):
        parse_claim("ablate L1H0 (average): loss drops by ≥ 1")
    claim = parse_claim("ablate L1H2: loss on repeated tokens rises by ≥ 1 nat").claim
    assert str(claim) == "ablate L1H2 (mean): loss on repeated tokens rises by >= 1 nat"
    sentence = ("patch L1H0, L1H1 at 3..5 from clean into corrupted: logit-diff recovers ≥ 80% "
                "while 4 random sets of the same size recover ≤ 10%")
    claim = parse_claim(sentence).claim
    assert parse_claim(str(claim)).claim == claim
    templated = parse_claim("ablate L1H{i} (zero): loss rises by ≥ 0 for i in 0..2")
    assert templated.for_each is not None


def test_reference_passes_are_planned(world: dict[str, Any]) -> None:
    """Mean ablations read their reference means from the metric's clean pass, and patching
    plans its source and target passes: 5 passes (clean rep, clean other, 3 intervened)
    where unplanned reference passes made 7, with the reference's numbers."""

    from interp_assert.evaluate import forward as forward_module
    from interp_assert.run.runner import Runner, RunOptions

    z = "blocks.1.attn.hook_z"
    clean, corrupt = loss(world, "rep"), loss(world, "other")
    means = {h: capture(world, "rep", z)[:, :, h].mean(0) for h in (1, 2)}
    ablated = {h: loss(world, "rep", {z: set_head(h, lambda new, h=h: means[h].expand_as(
        new[:, :, h]))}) for h in (1, 2)}
    source_z = capture(world, "rep", z)[:, :, 0]
    patched = loss(world, "other", {z: set_head(0, lambda new: source_z)})
    claims = [{"id": f"mean-{h}", "claim": f"ablate L1H{h} (mean): loss changes by ≥ 0"}
              for h in (1, 2)]
    claims.append({"id": "patch", "claim": "patch L1H0 from rep into other: loss recovers ≥ 0"})
    runner = Runner(RunOptions(plots="never"))
    claim_file = runner.load(write(world, "planned", claims))
    before = len(forward_module.FORWARD_PASSES)
    results = {r.claim_id: r for r in runner.run(runner.checks(claim_file))}
    assert len(forward_module.FORWARD_PASSES) - before == 5
    for h in (1, 2):
        row = results[f"mean-{h}"].outcome.rows[0]  # type: ignore[union-attr]
        assert row["before"] == pytest.approx(clean, abs=1e-5)
        assert row["after"] == pytest.approx(ablated[h], abs=1e-5)
    outcome = results["patch"].outcome
    assert outcome is not None, results["patch"].error
    assert outcome.value == pytest.approx((patched - corrupt) / (clean - corrupt), abs=1e-4)


def test_random_controls_rank_test(world: dict[str, Any], tmp_path: Path) -> None:
    """``with C% confidence`` on the random controls: the Monte-Carlo rank p-value of the
    claimed effect among the random sets' effects, each set's effect from torch hooks here."""
    import torch

    clean = loss(world, "rep")
    pool = [f"L{layer}H{h}" for layer in range(2) for h in range(HEADS)]

    def rise(labels: tuple[str, ...]) -> float:
        hooks: dict[str, Hook] = {}
        for layer in range(2):
            heads = [int(label[3]) for label in labels if int(label[1]) == layer]
            if heads:
                def zero(out: Any, heads: list[int] = heads) -> Any:
                    new = out.clone()
                    new[:, :, heads] = torch.zeros_like(new[:, :, heads])
                    return new
                hooks[f"blocks.{layer}.attn.hook_z"] = zero
        return loss(world, "rep", hooks) - clean

    pairs = [(a, b) for i, a in enumerate(pool) for b in pool[i + 1:]]
    effects = {pair: rise(pair) for pair in pairs}
    best, worst = max(effects, key=effects.__getitem__), min(effects, key=effects.__getitem__)

    def reference_p(claimed: tuple[str, ...]) -> float:
        sets = random_sets(pool, claimed, 2, 5, 0)
        draws = np.array([effects[tuple(sorted(s, key=pool.index))] for s in sets])
        return (1 + int(np.sum(draws >= effects[claimed]))) / (1 + len(sets))

    tail = "while 5 random sets of the same size change by ≤ 100 nats with 80% confidence"
    claims = [
        {"id": "rank-pass", "claim": f"ablate {', '.join(best)} (zero): loss rises by ≥ -100 "
                                     f"nats {tail}"},
        {"id": "rank-fail", "claim": f"ablate {', '.join(worst)} (zero): loss rises by ≥ -100 "
                                     f"nats {tail}"},
        {"id": "both", "claim": f"ablate {', '.join(best)} (zero): loss rises by ≥ -100 nats "
                                f"with 95% confidence {tail}"},
        {"id": "effect", "claim": f"ablate {', '.join(best)} (zero): loss rises by ≥ -100 nats "
                                  "with 95% confidence"},
        {"id": "few", "claim": f"ablate {', '.join(best)} (zero): loss rises by ≥ 0 while 3 "
                               "random sets of the same size change by ≤ 100 with 80% confidence"},
        {"id": "plain", "claim": f"ablate {', '.join(best)} (zero): loss rises by ≥ -100 nats "
                                 "while 5 random sets of the same size change by ≤ 100 nats"},
    ]
    results = run(write(world, "rank", claims), tmp_path)
    for name, claimed, status in (("rank-pass", best, "holds"), ("rank-fail", worst, "fails")):
        result = results[name]
        assert result.error is None, str(result.error)
        assert result.outcome is not None
        assert result.outcome.p_value == pytest.approx(reference_p(claimed), abs=1e-12)
        assert result.status == status
        assert result.plot is not None and result.plot.exists()
    assert results["rank-pass"].outcome.p_value == pytest.approx(1 / 6)  # type: ignore[union-attr]
    assert "rank 1 of 6, p = 1/6" in results["rank-pass"].outcome.measured  # type: ignore[union-attr]
    both, effect = results["both"].outcome, results["effect"].outcome
    assert both is not None and effect is not None and effect.p_value is not None
    assert both.p_value == max(1 / 6, effect.p_value)  # the claim holds when both tests do
    assert "19" not in str(results["few"].error) and "draw at least 4" in str(
        results["few"].error.hint)  # type: ignore[union-attr]
    assert results["plain"].outcome.p_value is None  # type: ignore[union-attr]
