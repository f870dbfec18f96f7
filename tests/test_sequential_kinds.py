"""Sequential claims beyond rates, on the bundled adder: attention scores (the betting sequence
on per-sample scores), loss (the asymptotic sequence, stopping its pass early) and paired
ablation effects (the asymptotic sequence on per-sample drops), each against a reference
computed here from the model's own values; a failing one keeps its kind's plot."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from test_sequential import adder_file, run

from interp_assert.evaluate.evaluation import Evaluation
from interp_assert.evaluate.sequential import BettingCS
from interp_assert.judge.verdict import Verdict
from interp_assert.language import ast
from interp_assert.loading.subject import get_subject
from interp_assert.plan.sequential import set_sequential
from interp_assert.run.runner import Runner, RunOptions

# positions of the adder's sums: X0..X9 (0-9), + (10), Y0..Y9 (11-20), = (21), A0..A10 (22-32)
X1, Y1, A1 = 1, 12, 23


@pytest.fixture(autouse=True)
def _defaults() -> Iterator[None]:
    yield
    set_sequential(None)


def values_of(folder: Path, name: str, n: int) -> np.ndarray:
    """A quantity of the adder file evaluated on a whole pass (the reference's input)."""
    runner = Runner(RunOptions(root=folder))
    claim_file = runner.load(adder_file(folder, "  - id: x\n    claim: exact-match ≥ 0\n", n))
    subject = get_subject(runner.checks(claim_file)[0].target.spec)
    value = Evaluation(claim_file, subject, None, None).value(ast.Ref(name))
    return value.meta["samples"] if name != "pattern0" else value.values


def reference_asymptotic(x: np.ndarray, alpha: float, target: int) -> tuple[float, float]:
    """The Robbins normal-mixture asymptotic sequence at the last sample, written out with
    plain Python from Waudby-Smith et al. (2021): mean ± sd · sqrt(2(tρ²+1)/(t²ρ²) ·
    log(sqrt(tρ²+1)/α)), ρ² = (−2 log α + log(−2 log α + 1)) / t*."""
    values = [float(v) for v in x]
    t = len(values)
    mean = sum(values) / t
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / t)
    rho2 = (-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / target
    width = sd * math.sqrt(2 * (t * rho2 + 1) / (t * t * rho2)
                           * math.log(math.sqrt(t * rho2 + 1) / alpha))
    return mean - width, mean + width


def test_attention_score_judged_by_the_betting_sequence_of_per_sample_scores(
        tmp_path: Path) -> None:
    _, (result,) = run(tmp_path, "  - id: head\n    claim: \"L0H3: A1 attends to X1, Y1 ≥ 0.5 "
                                 "with 95% confidence, sequentially\"\n", n=200)
    pattern = values_of(tmp_path / "ref", "pattern0", 200)  # (batch, head, query, key)
    info = result.outcome.sequential  # alone on its pass, the claim stops it early
    assert info["used"] < info["budget"] == 200 and info["decided"]
    scores = (pattern[:, 3, A1, X1] + pattern[:, 3, A1, Y1])[:info["used"]]  # one query each
    low, high = BettingCS(0.05).update(scores).bounds()
    assert abs(info["lower"] - low) <= 1e-12 and abs(info["upper"] - high) <= 1e-12
    assert low >= 0.5 and result.verdict is Verdict.HOLDS
    assert f"{scores.mean():.4g}" in result.outcome.measured
    assert "per-sample scores" in result.outcome.measured


def test_loss_stops_its_pass_early_on_the_asymptotic_sequence(tmp_path: Path) -> None:
    _, (result,) = run(tmp_path, "  - id: loss\n    claim: loss ≤ 0.5 with 95% confidence, "
                                 "sequentially\n", n=400)
    losses = values_of(tmp_path / "ref", "loss", 400)
    info = result.outcome.sequential
    assert info["used"] == 50 and info["budget"] == 400 and result.verdict is Verdict.HOLDS
    low, high = reference_asymptotic(losses[:50], 0.05, 400)
    assert abs(info["lower"] - low) <= 1e-9 and abs(info["upper"] - high) <= 1e-9
    assert result.outcome.value == pytest.approx(losses[:50].mean(), abs=1e-12)
    assert any("valid only asymptotically" in note for note in result.outcome.notes)


def test_ablation_drop_judged_on_paired_per_sample_differences(tmp_path: Path) -> None:
    _, (fixed, seq) = run(tmp_path, (
        "  - id: fixed\n    claim: \"ablate L0H3 (mean): loss rises by ≥ 0.3 with 95% "
        "confidence\"\n"
        "  - id: seq\n    claim: \"ablate L0H3 (mean): loss rises by ≥ 0.3 with 95% "
        "confidence, sequentially\"\n"), n=200)
    before, after = fixed.outcome.meta["paired"]
    rises = np.asarray(after) - np.asarray(before)
    low, high = reference_asymptotic(rises, 0.05, 200)
    info = seq.outcome.sequential
    assert info["used"] == 200 and info["decided"]
    assert abs(info["lower"] - low) <= 1e-9 and abs(info["upper"] - high) <= 1e-9
    assert seq.outcome.value == pytest.approx(rises.mean(), abs=1e-9)
    assert low >= 0.3 and seq.verdict is Verdict.HOLDS
    assert fixed.outcome.sequential is None  # the same claim without ', sequentially'


def test_failing_sequential_attention_claim_keeps_its_plot(tmp_path: Path) -> None:
    runner = Runner(RunOptions(root=tmp_path, artifacts=tmp_path / "art"))
    claim_file = runner.load(adder_file(tmp_path, (
        "  - id: head\n    claim: \"L0H3: A1 attends to X1, Y1 ≥ 0.999 with 95% confidence, "
        "sequentially\"\n"), 100))
    (result,) = runner.run(runner.checks(claim_file))
    assert result.verdict in (Verdict.FAILS, Verdict.UNDECIDED)
    assert result.plot is not None and result.plot.read_bytes()[:4] == b"\x89PNG"
    assert "sequence" in result.outcome.plot_data


def test_interp_sequential_makes_attention_and_effects_sequential(tmp_path: Path) -> None:
    set_sequential(True)
    _, results = run(tmp_path, (
        "  - id: head\n    claim: \"L0H3: A1 attends to X1, Y1 ≥ 0.5 with 95% confidence\"\n"
        "  - id: drop\n    claim: \"ablate L0H3 (mean): loss rises by ≥ 0.3 with 95% "
        "confidence\"\n"), n=100)
    assert all(r.outcome.sequential is not None for r in results)


def test_ablation_stops_its_intervened_pass_and_a_later_whole_reader_reruns_it(
        tmp_path: Path) -> None:
    _, (seq, fixed) = run(tmp_path, (
        "  - id: seq\n    claim: \"ablate L0H3 (mean): loss rises by ≥ 0.3 with 95% "
        "confidence, sequentially\"\n"
        "  - id: fixed\n    claim: \"ablate L0H3 (mean): loss rises by ≥ 0.3 with 95% "
        "confidence\"\n"), n=400)
    info = seq.outcome.sequential
    assert info["budget"] == 400 and info["used"] < 400 and seq.verdict is Verdict.HOLDS
    before, after = fixed.outcome.meta["paired"]  # the later claim read both passes whole
    assert len(before) == len(after) == 400
    rises = (np.asarray(after) - np.asarray(before))[:info["used"]]
    low, high = reference_asymptotic(rises, 0.05, 400)
    assert abs(info["lower"] - low) <= 1e-9 and abs(info["upper"] - high) <= 1e-9
    assert low >= 0.3 and seq.outcome.value == pytest.approx(rises.mean(), abs=1e-9)
    assert f"stopped early: {info['used']} of 400 samples" in " ".join(seq.outcome.notes)


def test_rate_effect_uses_the_betting_sequence_on_differences_in_minus_one_one(
        tmp_path: Path) -> None:
    _, (seq, fixed) = run(tmp_path, (
        "  - id: seq\n    claim: \"ablate L0H3 (mean): exact-match drops by ≥ 50 points with "
        "95% confidence, sequentially\"\n"
        "  - id: fixed\n    claim: \"ablate L0H3 (mean): exact-match drops by ≥ 50 points\"\n"),
        n=400)
    info = seq.outcome.sequential
    before, after = fixed.outcome.meta["paired"]
    drops = (np.asarray(before) - np.asarray(after))[:info["used"]]
    low, high = BettingCS(0.05, -1.0, 1.0).update(drops).bounds()
    assert info["used"] == 50 and seq.verdict is Verdict.HOLDS and low >= 0.5
    assert abs(info["lower"] - low) <= 1e-12 and abs(info["upper"] - high) <= 1e-12
    assert not any("asymptotically" in note for note in seq.outcome.notes)
