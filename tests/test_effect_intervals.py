"""``with C% confidence`` on steering, path patching, attribution patching and circuit
hypothesis tests: each claim's per-sample values against a hand-written torch forward on the
bundled models, and its interval against the documented bootstrap written out here with the
same resample indices (``default_rng(0)``, blocks of 250 of ``integers(0, n, (250, n))``, 2000
resamples, linear quantiles) and against ``scipy.stats.bootstrap``."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import import_examples, run_plotting_pass_fail
from scipy import stats as scipy_stats

from interp_assert.evaluate.intervals import interval_of
from interp_assert.evaluate.pvalues import p_value_for
from interp_assert.run.runner import load_claim_file

ROOT = Path(__file__).parents[1]
INDUCTION = ROOT / "examples" / "induction" / "checkpoints" / "induction.pt"
ADDER = ROOT / "examples" / "adder" / "checkpoints" / "adder.pt"
N, SEED = 40, 3
GEN = "examples.induction.corrupt:generate"
A4 = 26  # the adder's position A4 (X0..X9 + Y0..Y9 = A0..)
SUBJECT = {"loader": "examples.tiny_transformer:load", "python_path": str(ROOT)}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def by_hand(data: list[np.ndarray], statistic: Callable[..., float], level: float = 0.95
            ) -> tuple[float, float]:
    """The documented paired bootstrap, written out."""
    rng = np.random.default_rng(0)
    n = data[0].shape[0]
    thetas = []
    for _ in range(8):
        for row in rng.integers(0, n, size=(250, n)):
            thetas.append(statistic(*(d[row] for d in data)))
    alpha = (1 - level) / 2
    return float(np.quantile(thetas, alpha)), float(np.quantile(thetas, 1 - alpha))


def share(before: np.ndarray, after: np.ndarray, high: np.ndarray, low: np.ndarray) -> float:
    return (after.mean() - before.mean()) / (high.mean() - low.mean())


def run(folder: Path, checkpoint: Path, data: dict[str, Any], quantities: dict[str, Any],
        claims: dict[str, str], circuits: dict[str, Any] | None = None) -> dict[str, Any]:
    raw: dict[str, Any] = {"subject": {"checkpoint": str(checkpoint), **SUBJECT}, "data": data,
                           "quantities": quantities,
                           "claims": [{"id": k, "claim": v} for k, v in claims.items()]}
    if circuits:
        raw["circuits"] = circuits
    path = folder / "effects.claims.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return run_plotting_pass_fail(load_claim_file(path), folder / "plots")


def check_interval(outcome: Any, reference: list[np.ndarray], statistic: Callable[..., float],
                   tolerance: float, level: float = 0.95) -> float:
    """The claim's per-sample arrays match ``reference``; its interval is the bootstrap by
    hand of its own arrays (exactly) and of the reference (within ``20 × tolerance``); its
    p-value inverts it. Returns the largest absolute difference of the arrays."""
    p = outcome.p_value  # holds exactly when the interval clears: when p ≤ (1 − level) / 2
    assert p is not None and (p <= (1 - level) / 2) == outcome.passed
    recorded = [np.asarray(a) for a in outcome.meta["paired"]]
    gap = max(float(np.max(np.abs(r - e))) for r, e in zip(recorded, reference))
    assert gap <= tolerance
    assert outcome.interval == pytest.approx(by_hand(recorded, statistic, level), abs=1e-12)
    assert outcome.interval == pytest.approx(by_hand(reference, statistic, level),
                                             abs=20 * tolerance)
    assert outcome.value == pytest.approx(statistic(*recorded), abs=1e-9)
    return gap


# ---- the statistic -------------------------------------------------------------------------
def test_share_statistic_against_scipy_and_its_p_value() -> None:
    rng = np.random.default_rng(11)
    base = rng.normal(0.1, 0.3, 50)
    full = base + 4 + rng.normal(0, 0.5, 50)
    alone = base + 3 + rng.normal(0, 0.7, 50)
    meta = {"paired": (base, alone, full, base), "change": "share"}
    interval = interval_of(meta, 0.9)
    assert interval == pytest.approx(by_hand([base, alone, full, base], share, 0.9), abs=1e-12)
    result = scipy_stats.bootstrap(
        (base, alone, full), lambda b, a, f, axis=-1: (a.mean(axis) - b.mean(axis)) /
        (f.mean(axis) - b.mean(axis)), n_resamples=2000, batch=250, paired=True,
        vectorized=True, method="percentile", confidence_level=0.9, rng=np.random.default_rng(0))
    ci = result.confidence_interval
    assert interval == pytest.approx((ci.low, ci.high), abs=1e-12)
    # the p-value inverts the same interval: p ≤ 5% exactly when the 90% interval clears
    for bound in (interval[0] - 1e-9, interval[0] + 1e-9):
        p = p_value_for(meta, ">=", bound)
        assert p is not None and (p <= 0.05) == (bound <= interval[0])
    # a gap that vanishes gives a NaN interval (never passes) and p = 1
    flat = {"paired": (base, alone, base, base), "change": "share"}
    assert all(math.isnan(end) for end in interval_of(flat))
    assert p_value_for(flat, ">=", 0.0) == 1.0


# ---- steering (the adder) --------------------------------------------------------------------
def adder_losses(model: Any, tokens: Any, hook: str, add: np.ndarray | None) -> np.ndarray:
    """Per sample, the cross-entropy of A5 from the logits at A4 with ``add`` added to
    ``hook`` at A4 (float64)."""
    import torch

    def change(_m: Any, _i: Any, out: Any) -> Any:
        if add is None:
            return None
        new = out.clone()
        new[:, A4] += torch.as_tensor(add, dtype=out.dtype)
        return new

    handle = model.get_submodule(hook).register_forward_hook(change)
    try:
        with torch.no_grad():
            logits = model(tokens).double().numpy()[:, A4]
    finally:
        handle.remove()
    z = logits - logits.max(-1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return -log_probs[np.arange(len(z)), tokens.numpy()[:, A4 + 1]]


def test_steering_interval_is_paired_over_samples(tmp_path: Path) -> None:
    import sys

    import torch

    tiny, _ = import_examples()
    sys.path.insert(0, str(ROOT))
    try:
        from examples.adder.data import generate
    finally:
        sys.path.remove(str(ROOT))
    n, seed, hook = 120, 77, "blocks.0.hook_resid_post"
    data = generate(n, seed)
    model = tiny.load(ADDER).eval()
    seen: list[np.ndarray] = []
    handle = model.get_submodule(hook).register_forward_hook(
        lambda _m, _i, out: seen.append(out.double().numpy()))
    with torch.no_grad():
        model(data["tokens"])
    handle.remove()
    carry = data["carry"][:, 5].numpy() != 0
    mean_diff = seen[0][carry, A4].mean(0) - seen[0][~carry, A4].mean(0)
    before = adder_losses(model, data["tokens"], hook, None)
    after = adder_losses(model, data["tokens"], hook, 0.5 * mean_diff)
    rise = after.mean() - before.mean()
    low, _ = by_hand([before, after], lambda b, a: a.mean() - b.mean())
    # a feature of the bundled dictionary: 20 · W_dec[F174] added at A4
    from safetensors.numpy import load_file

    w_dec = load_file(str(ROOT / "examples/adder/sae/sae_weights.safetensors"))["W_dec"]
    featured = adder_losses(model, data["tokens"], hook, 20 * w_dec[174].astype(np.float64))
    steer = f"steer {hook} at A4 by 0.5 · mean-diff of {hook} at A4 by carry[5]: loss-A5 rises"
    results = run(tmp_path, ADDER, {"sums": {"generate": "examples.adder.data:generate", "n": n,
                                             "seed": seed,
                                             "positions": "X0..X9, +, Y0..Y9, =, A0..A10"}},
                  {"loss-A5": {"metric": "loss", "answer": "A5"},
                   "sae": {"sae": str(ROOT / "examples/adder/sae")}},
                  {"sure": f"{steer} by ≥ {low / 2:.4f} nats with 95% confidence",
                   "feature": "steer feature F174 of sae by 20 at A4: loss-A5 changes by ≥ 0.1 "
                              "nats with 90% confidence",
                   "straddle-fail": f"{steer} by ≥ {(low + rise) / 2:.5f} nats with 95% "
                                    "confidence"})
    sure = results["sure"]
    assert sure.status == "holds", sure.outcome or sure.error
    gap = check_interval(sure.outcome, [before, after], lambda b, a: a.mean() - b.mean(), 1e-5)
    assert "paired bootstrap on 120 samples" in sure.outcome.measured
    assert sure.outcome.p_value is not None and sure.outcome.p_value <= 0.025
    feature = results["feature"]
    gap = max(gap, check_interval(feature.outcome, [before, featured],
                                  lambda b, a: abs(a.mean() - b.mean()), 1e-5, 0.9))
    assert feature.status == "holds", feature.outcome or feature.error
    failed = results["straddle-fail"]
    assert failed.status == "fails" and failed.outcome.value > (low + rise) / 2
    assert any("straddles the bound" in note for note in failed.outcome.notes)
    assert failed.outcome.p_value > 0.025
    assert failed.plot is not None and Path(failed.plot).stat().st_size > 1000
    print(f"steering: per-sample losses max |diff| {gap:.2e}")


# ---- path patching, attribution and circuits (the induction model) ---------------------------
@pytest.fixture(scope="module")
def induction() -> dict[str, Any]:
    import importlib

    tiny, _ = import_examples()
    corrupt = importlib.import_module("examples.induction.corrupt")
    model = tiny.load(INDUCTION).eval()
    return {"model": model, "clean": corrupt.generate(N, SEED),
            "corrupted": corrupt.generate(N, SEED, True)}


def forward(world: dict[str, Any], dataset: str, hooks: dict[str, Any], grad: bool = False
            ) -> Any:
    import torch

    model = world["model"]
    handles = [model.get_submodule(path).register_forward_hook(
        lambda _m, _i, out, f=f: f(out)) for path, f in hooks.items()]
    try:
        with torch.set_grad_enabled(grad):
            return model(world[dataset]["tokens"])
    finally:
        for handle in handles:
            handle.remove()


def losses(world: dict[str, Any], dataset: str, logits: Any) -> Any:
    """Per sample (torch), the mean cross-entropy at repeated tokens t ≥ 1 (from t − 1)."""
    tokens = world[dataset]["tokens"]
    mask = world[dataset]["repeated"].bool().clone()
    mask[:, 0] = False
    picked = logits.double().log_softmax(-1)[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0]
    weights = mask[:, 1:].double()
    return -(picked * weights).sum(1) / weights.sum(1)


def capture(world: dict[str, Any], dataset: str, path: str, hooks: dict[str, Any]) -> Any:
    seen: list[Any] = []
    forward(world, dataset, {**hooks, path: lambda out: seen.append(out.clone())})
    return seen[0]


def induction_run(tmp_path: Path, claims: dict[str, str], circuits: Any = None
                  ) -> dict[str, Any]:
    data = {name: {"generate": GEN, "n": N, "seed": SEED, "batch_size": 16,
                   **({"args": {"corrupt": True}} if name == "corrupted" else {})}
            for name in ("clean", "corrupted")}
    return run(tmp_path, INDUCTION, data, {"loss": {"metric": "loss", "mask": "repeated"},
                                           "prob": {"metric": "answer_prob", "answer": "20..30"},
                                           "loss-ratio": {"expr": "loss / loss"}},
               claims, circuits)


def recovery(b: np.ndarray, a: np.ndarray, s: np.ndarray) -> float:
    return (a.mean() - b.mean()) / (s.mean() - b.mean())


def test_path_patching_and_attribution_intervals(induction: dict[str, Any],
                                                 tmp_path: Path) -> None:
    import torch

    z0, z1 = "blocks.0.attn.hook_z", "blocks.1.attn.hook_z"
    clean_z = {z: capture(induction, "clean", z, {}) for z in (z0, z1)}
    corrupted_z1 = capture(induction, "corrupted", z1, {})
    clean = losses(induction, "clean", forward(induction, "clean", {})).numpy()
    corrupted = losses(induction, "corrupted", forward(induction, "corrupted", {})).numpy()
    # path L0H0..L0H3 → logits: layer 0 clean, layer 1 frozen at its corrupted output
    patched = losses(induction, "corrupted", forward(induction, "corrupted", {
        z0: lambda out: clean_z[z0].clone(), z1: lambda out: corrupted_z1.clone()})).numpy()
    # attribution of L1H3: per sample, Σ (clean z − corrupted z) · ∂loss_i/∂z_i at corrupted
    kept: dict[str, Any] = {}
    logits = forward(induction, "corrupted", {z1: lambda out: kept.__setitem__("z", out)},
                     grad=True)
    (grad,) = torch.autograd.grad(losses(induction, "corrupted", logits).sum(), [kept["z"]])
    delta = (clean_z[z1] - kept["z"].detach()).double()[:, :, 3]
    estimated = corrupted + (delta * grad.double()[:, :, 3]).sum((1, 2)).numpy()
    # the same for answer_prob: each sample's mean probability of tokens 20..30 (from p − 1)
    logits = forward(induction, "corrupted", {z1: lambda out: kept.__setitem__("z", out)},
                     grad=True)
    tokens = induction["corrupted"]["tokens"]
    probs = logits.double()[:, 19:30].softmax(-1).gather(-1, tokens[:, 20:31, None])[..., 0]
    (grad_p,) = torch.autograd.grad(probs.mean(1).sum(), [kept["z"]])
    prob = probs.mean(1).detach().numpy()
    delta = (clean_z[z1] - kept["z"].detach()).double()[:, :, 3]
    prob_estimated = prob + (delta * grad_p.double()[:, :, 3]).sum((1, 2)).numpy()
    drop = lambda b, a: b.mean() - a.mean()  # noqa: E731
    low, _ = by_hand([corrupted, estimated], drop)
    results = induction_run(tmp_path, {
        "path": "patch path L0H0, L0H1, L0H2, L0H3 → logits from clean into corrupted: loss "
                "changes by ≤ 0.5 nats with 95% confidence",
        "attribution": f"attribution of L1H3 from clean into corrupted: loss drops by ≥ "
                       f"{low / 2:.4f} nats with 95% confidence",
        "prob": "attribution of L1H3 from clean into corrupted: prob changes by ≥ 0 with 95% "
                "confidence",
        "path-fail": "patch path L0H0, L0H1, L0H2, L0H3 → logits from clean into corrupted: "
                     "loss recovers ≥ 50% with 95% confidence",
        "attribution-fail": "attribution of L1H3 from clean into corrupted: loss drops by ≥ "
                            f"{(low + corrupted.mean() - estimated.mean()) / 2:.5f} nats with "
                            "95% confidence"})
    path = results["path"]
    assert path.status == "holds", path.outcome or path.error
    gap_path = check_interval(path.outcome, [corrupted, patched],
                              lambda b, a: abs(a.mean() - b.mean()), 1e-5)
    attribution = results["attribution"]
    assert attribution.status == "holds", attribution.outcome or attribution.error
    paired = attribution.outcome.meta["paired"]
    gap_attr = check_interval(attribution.outcome, [corrupted, estimated, clean][:len(paired)],
                              drop, 1e-5)
    assert "estimated after patching" in " ".join(attribution.outcome.notes)
    prob_result = results["prob"]
    assert prob_result.status == "holds", prob_result.outcome or prob_result.error
    gap_attr = max(gap_attr, check_interval(prob_result.outcome, [prob, prob_estimated],
                                            lambda b, a: abs(a.mean() - b.mean()), 1e-5))
    failed = results["path-fail"]
    assert failed.status == "fails"
    check_interval(failed.outcome, [corrupted, patched, clean], recovery, 1e-5)
    assert failed.outcome.interval[1] < 0.5 and failed.outcome.p_value > 0.025
    assert failed.plot is not None and Path(failed.plot).stat().st_size > 1000
    straddles = results["attribution-fail"]
    assert straddles.status == "fails" and straddles.outcome.value > straddles.outcome.interval[0]
    assert any("straddles the bound" in note for note in straddles.outcome.notes)
    assert straddles.plot is not None and Path(straddles.plot).stat().st_size > 1000
    print(f"path patching: max |diff| {gap_path:.2e}; attribution: {gap_attr:.2e}")


CIRCUIT = ["L0H1", "L1H0", "L1H3"]
HEADS = [f"L{layer}H{head}" for layer in range(2) for head in range(4)]


def loss_keeping(world: dict[str, Any], kept: set[str], means: dict[str, Any]) -> np.ndarray:
    """Per sample on 'clean', with every head outside ``kept`` set to its per-position mean."""

    def hook(layer: int) -> Any:
        def replace(out: Any) -> Any:
            new = out.clone()
            for head in range(4):
                if f"L{layer}H{head}" not in kept:
                    new[:, :, head] = means[layer][:, head]
            return new
        return replace

    logits = forward(world, "clean", {f"blocks.{layer}.attn.hook_z": hook(layer)
                                      for layer in range(2)})
    return losses(world, "clean", logits).numpy()


def test_circuit_scores_are_paired_ratios_of_means(induction: dict[str, Any],
                                                   tmp_path: Path) -> None:
    means = {layer: capture(induction, "clean", f"blocks.{layer}.attn.hook_z", {}).mean(0)
             for layer in range(2)}
    full = loss_keeping(induction, set(HEADS), means)
    base = loss_keeping(induction, set(), means)
    alone = loss_keeping(induction, set(CIRCUIT), means)
    rest = loss_keeping(induction, set(HEADS) - set(CIRCUIT), means)
    without = {m: loss_keeping(induction, set(CIRCUIT) - {m}, means) for m in CIRCUIT}
    faithful = by_hand([base, alone, full, base], share)
    results = induction_run(tmp_path, {
        "faithful": f"circuit ind is faithful: keeps ≥ {100 * faithful[0] - 5:.1f}% of loss "
                    "with 95% confidence",
        "complete": "circuit ind is complete: removing it loses ≥ 0% of loss with 90% "
                    "confidence",
        "ratio": "circuit ind is faithful (ratio): keeps ≥ 0% of loss with 95% confidence",
        "minimal-fail": "circuit ind is minimal: each member matters by ≥ 12% of loss with 95% "
                        "confidence",
        "no-samples": "circuit ind is complete: removing it loses ≥ 0% of loss-ratio with 95% "
                      "confidence"}, {"ind": {"heads": CIRCUIT}})
    error = results["no-samples"].error
    assert error is not None and "records no per-sample values" in error.message
    assert "drop 'with ... confidence'" in error.hint
    out = {name: r.outcome for name, r in results.items()}
    assert results["faithful"].status == "holds", out["faithful"] or results["faithful"].error
    gaps = [check_interval(out["faithful"], [base, alone, full, base], share, 1e-5),
            check_interval(out["complete"], [rest, full, full, base], share, 1e-5, 0.9),
            check_interval(out["ratio"], [0 * full, alone, full, 0 * full], share, 1e-5)]
    # minimality: every member's own interval; the weakest one is reported
    members = {m: by_hand([without[m], alone, full, base], share) for m in CIRCUIT}
    weakest = min(members, key=lambda m: members[m][0])
    failed = results["minimal-fail"]
    assert any(lo < 0.12 for lo, _ in members.values())  # measured: L1H0 [0.100, 0.133]
    assert failed.status == "fails"
    assert out["minimal-fail"].interval == pytest.approx(members[weakest], abs=20e-5)
    drawn = out["minimal-fail"].plot_data["member_intervals"]
    for m in CIRCUIT:
        assert drawn[m] == pytest.approx(members[m], abs=20e-5)
    assert failed.plot is not None and Path(failed.plot).stat().st_size > 1000
    print(f"circuit scores: per-sample max |diff| {max(gaps):.2e}; members {members}")


def test_circuit_confidence_round_trips() -> None:
    from interp_assert.claims import parse_claim

    sentence = ("circuit ind is faithful (ratio): keeps >= 70% of loss and beats 90% of 5 "
                "random circuits with 95% confidence")
    claim = parse_claim(sentence).claim
    assert str(claim) == sentence and claim.comparison.confidence == 0.95
    assert parse_claim(str(claim)).claim == claim
    inside = parse_claim("circuit ind is complete: removing it loses ≥ 90% with 90% confidence "
                         "of loss").claim
    assert inside.comparison.confidence == 0.9 and str(inside).endswith("with 90% confidence")
