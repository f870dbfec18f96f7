"""``changes`` and ``recovers`` judged sequentially: on the bundled models against the paired
per-sample values of the same claim judged fixed-sample, with the sequences written out
here (the betting sequence's own tests check it against a brute-force reference; the
asymptotic one is the Robbins formula in plain Python); and the false-pass rate over 1,000
seeded streams whose truth sits on the bound."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from test_sequential_kinds import reference_asymptotic as robbins

from interp_assert.claims.sequential_effects import judge_change, judge_recovery
from interp_assert.evaluate.sequential import BettingCS
from interp_assert.judge.verdict import Verdict
from interp_assert.plan.sequential import set_sequential
from interp_assert.run.runner import Runner, RunOptions

ROOT = Path(__file__).resolve().parents[1]
#: a per-sample loss on the induction data's repeated tokens (the stop reads per-sample values)
LOSS = "  loss-rep:\n    metric: loss\n    mask: repeated\n"


def run(folder: Path, spec: str, claims: str, n: int | None = None) -> list:
    text = (ROOT / "specs" / spec).read_text(encoding="utf-8")
    head = text.split("\nclaims:\n")[0].replace("../examples", str(ROOT / "examples"))
    if n is not None:
        head = head.replace("    n: 1000\n", f"    n: {n}\n")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / spec
    path.write_text(head + "\n" + LOSS + "\nclaims:\n" + claims, encoding="utf-8")
    runner = Runner(RunOptions(root=folder, artifacts=folder / "art", plots="never"))
    claim_file = runner.load(path)
    return list(runner.run(runner.checks(claim_file)))


@pytest.fixture(autouse=True)
def _defaults() -> Iterator[None]:
    yield
    set_sequential(None)


def test_changes_of_a_rate_stops_early_on_the_betting_sequence_of_its_absolute_mean(
        tmp_path: Path) -> None:
    seq, fixed = run(tmp_path, "adder.claims.yaml", (
        "  - id: seq\n    claim: \"ablate L0H3 (mean): exact-match changes by ≥ 50 points with "
        "95% confidence, sequentially\"\n"
        "  - id: fixed\n    claim: \"ablate L0H3 (mean): exact-match changes by ≥ 50 points\"\n"),
        n=300)
    info = seq.outcome.sequential
    assert info["used"] == 50 and info["budget"] == 300 and seq.verdict is Verdict.HOLDS
    before, after = (np.asarray(a) for a in fixed.outcome.meta["paired"][:2])
    low, high = BettingCS(0.05, -1.0, 1.0).update((after - before)[:50]).bounds()
    # the exact match falls: the sequence of m lies below 0, so |m| lies in [-high, -low]
    assert high < 0 and info["lower"] == pytest.approx(-high, abs=1e-12)
    assert info["upper"] == pytest.approx(-low, abs=1e-12) and -high >= 0.5
    assert seq.outcome.value == pytest.approx(abs((after - before)[:50].mean()), abs=1e-12)


def test_recovers_stops_early_and_matches_the_linear_combination_written_out(
        tmp_path: Path) -> None:
    claim = "patch L1H0, L1H1, L1H2, L1H3 from clean into corrupted: loss-rep recovers ≥ 90%"
    seq, fixed = run(tmp_path, "induction.claims.yaml", (
        f"  - id: seq\n    claim: \"{claim} with 95% confidence, sequentially\"\n"
        f"  - id: fixed\n    claim: \"{claim} with 95% confidence\"\n"))
    info = seq.outcome.sequential
    used = info["used"]
    assert used < info["budget"] == 500 and seq.verdict is Verdict.HOLDS
    before, after, source = (np.asarray(a)[:used] for a in fixed.outcome.meta["paired"])
    e_low, e_high = robbins(source - before, 0.025, 500)  # alpha / 2 for the sign
    d_low, d_high = robbins((after - before) - 0.9 * (source - before), 0.025, 500)
    assert info["denominator"] == pytest.approx([e_low, e_high], abs=1e-9)
    assert info["combinations"][0] == pytest.approx([0.9, d_low, d_high], abs=1e-9)
    # a loss falls when patched: D < 0, so R ≥ 0.9 ⇔ mean d ≤ 0
    assert e_high < 0 and d_high <= 0
    recovery = (after - before).mean() / (source - before).mean()
    assert seq.outcome.value == pytest.approx(recovery, abs=1e-9)


def test_recovery_decisions_by_hand() -> None:
    rng = np.random.default_rng(3)
    before = rng.normal(0, 1, 400)
    source = before + rng.normal(1.0, 0.2, 400)  # D = 1
    after = before + rng.normal(0.5, 0.2, 400)  # N = 0.5: R = 0.5
    for op, bound, upper, verdict in ((">=", 0.3, None, True), (">=", 0.7, None, False),
                                      ("<=", 0.7, None, True), ("in", 0.3, 0.7, True),
                                      ("in", 0.55, 0.9, False)):
        found = judge_recovery(before, after, source, None, 0.05, 400, op, bound, upper)
        assert found["holds"] is verdict, (op, bound, upper)
    # the same with the denominator's sign flipped (a metric that falls): the same verdicts
    found = judge_recovery(-before, -after, -source, None, 0.05, 400, ">=", 0.3, None)
    assert found["holds"] is True and found["denominator"][1] < 0
    # a denominator around 0: undecided, whatever the numerator
    flat = before + rng.normal(0.0, 1.0, 400)
    assert judge_recovery(before, after, flat, None, 0.05, 400, ">=", 0.3, None)["holds"] is None


def _first_decision(judge, budget: int) -> bool | None:
    """The verdict at the first check (after 50, 100, 200, ... samples) that decides."""
    n = 50
    while True:
        verdict = judge(min(n, budget))
        if verdict is not None or n >= budget:
            return verdict
        n *= 2


def test_false_pass_rate_with_the_truth_on_the_bound_is_at_most_alpha() -> None:
    """Unbounded values (the asymptotic sequence); bench/bench_sequential.py --validity runs
    the same check on rates (the betting sequence), which takes longer."""
    alpha, runs, budget = 0.05, 1000, 400
    passes = {"recovers ≥ 0.8": 0, "changes by > 0.3": 0}
    for seed in range(runs):
        rng = np.random.default_rng(seed)
        before = rng.normal(0, 1, budget)
        source = before + rng.normal(1.0, 1.0, budget)  # D = 1
        after = before + rng.normal(0.8, 1.0, budget)  # R = 0.8 exactly: on the bound
        passes["recovers ≥ 0.8"] += _first_decision(
            lambda k, b=before, a=after, s=source: judge_recovery(
                b[:k], a[:k], s[:k], None, alpha, budget, ">=", 0.8, None, False)["holds"],
            budget) is True
        changed = rng.normal(-0.3, 1.0, budget)  # |m| = 0.3 exactly
        passes["changes by > 0.3"] += _first_decision(
            lambda k, c=changed: judge_change(c[:k], None, alpha, budget, ">", 0.3, None,
                                              False)[0].holds, budget) is True
    rates = {name: count / runs for name, count in passes.items()}
    print("false-pass rates over", runs, "seeded runs:", rates)
    assert all(rate <= alpha for rate in rates.values()), rates


def test_circuit_score_uses_the_gap_between_the_full_and_the_ablated_model() -> None:
    from interp_assert.claims.outcome import Outcome
    from interp_assert.claims.sequential_effects import sequential_effect
    from interp_assert.language import ast

    rng = np.random.default_rng(5)
    low = rng.normal(0.0, 0.3, 300)
    high = low + rng.normal(2.0, 0.3, 300)  # the full model: a gap of 2
    before = low.copy()
    after = low + rng.normal(1.6, 0.3, 300)  # the circuit keeps 80%
    meta = {"paired": (before, after, high, low), "change": "share"}
    comparison = ast.Comparison(">=", ast.Number(0.7), None, 0.95, True)
    outcome = Outcome(False, "score 0.8", "score ≥ 0.7", value=0.8)
    assert sequential_effect(outcome, comparison, meta, 0.7, None, True, None)
    info = outcome.sequential
    e_low, e_high = robbins(high - low, 0.025, 300)
    d_low, d_high = robbins((after - before) - 0.7 * (high - low), 0.025, 300)
    assert info["denominator"] == pytest.approx([e_low, e_high], abs=1e-9)
    assert info["combinations"][0] == pytest.approx([0.7, d_low, d_high], abs=1e-9)
    assert outcome.passed is (e_low > 0 and d_low >= 0) and outcome.passed
    assert "mean(high − low)" in outcome.measured


def test_circuit_faithfulness_written_sequentially(tmp_path: Path) -> None:
    claim = "circuit induction is faithful: keeps ≥ 70% of advantage with 95% confidence"
    seq, fixed, minimal = run(tmp_path, "induction_circuits.claims.yaml", (
        f"  - id: seq\n    claim: \"{claim}, sequentially\"\n"
        f"  - id: fixed\n    claim: \"{claim}\"\n"
        "  - id: minimal\n    claim: \"circuit induction is minimal: each member matters by "
        "≥ 1% of advantage with 95% confidence, sequentially\"\n"))
    before, after, high, low = (np.asarray(a) for a in fixed.outcome.meta["paired"])
    info = seq.outcome.sequential
    assert info["used"] == info["budget"] == before.size
    e_low, e_high = robbins(high - low, 0.025, before.size)
    d_low, d_high = robbins((after - before) - 0.7 * (high - low), 0.025, before.size)
    assert info["denominator"] == pytest.approx([e_low, e_high], abs=1e-9)
    assert info["combinations"][0] == pytest.approx([0.7, d_low, d_high], abs=1e-9)
    assert seq.verdict is Verdict.HOLDS and e_low > 0 and d_low >= 0
    assert seq.outcome.value == pytest.approx(fixed.outcome.value, abs=1e-12)
    assert minimal.verdict is Verdict.ERROR
    assert "cannot be evaluated sequentially" in str(minimal.error)
