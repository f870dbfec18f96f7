"""Sequential attention claims stop their forward pass once decided: the model is run on fewer
samples than the dataset holds, the result records the samples used, and the verdict, value
and confidence sequence equal a numpy computation on those same first samples of a whole
pass. A fixed-sample claim on the same pass keeps it running to the end, and a later run
reading the pattern whole gets every sample."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from interp_assert.evaluate.evaluation import Evaluation
from interp_assert.evaluate.sequential import BettingCS
from interp_assert.judge.verdict import Verdict
from interp_assert.language import ast
from interp_assert.loading.subject import get_subject
from interp_assert.plan.sequential import set_sequential
from interp_assert.run.runner import Runner, RunOptions

ROOT = Path(__file__).resolve().parents[1]
# positions of the adder's sums: X0..X9 (0-9), + (10), Y0..Y9 (11-20), = (21), A0..A10 (22-32)
X1, Y1, A1 = 1, 12, 23


def spec_file(folder: Path, spec: str, claims: str, n: int | None = None) -> Path:
    """A bundled claim file's subject, data (``n`` samples per dataset) and quantities, with
    ``claims``."""
    text = (ROOT / "specs" / spec).read_text(encoding="utf-8")
    head = text.split("\nclaims:\n")[0].replace("../examples", str(ROOT / "examples"))
    if n is not None:
        head = head.replace("    n: 1000\n", f"    n: {n}\n").replace("    n: 500\n",
                                                                    f"    n: {n}\n")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / spec
    path.write_text(head + "\nclaims:\n" + claims, encoding="utf-8")
    return path


def counted_run(folder: Path, spec: str, claims: str, n: int | None = None
                ) -> tuple[list, int]:
    """The results of ``claims`` and how many samples the model was called on."""
    runner = Runner(RunOptions(root=folder, artifacts=folder / "art", plots="never"))
    claim_file = runner.load(spec_file(folder, spec, claims, n))
    checks = runner.checks(claim_file)
    model = get_subject(checks[0].target.spec).model
    seen: list[int] = []
    handle = model.register_forward_pre_hook(lambda _m, args: seen.append(len(args[0])))
    try:
        results = list(runner.run(checks))
    finally:
        handle.remove()
    return results, sum(seen)


def whole_pattern(folder: Path, spec: str, name: str, n: int | None = None) -> np.ndarray:
    """Pattern quantity ``name`` over the whole dataset, evaluated without a plan."""
    runner = Runner(RunOptions(root=folder))
    claim_file = runner.load(spec_file(folder, spec, "  - id: x\n    claim: \"1 ≥ 0\"\n", n))
    subject = get_subject(runner.checks(claim_file)[0].target.spec)
    return np.asarray(Evaluation(claim_file, subject, None, None).value(ast.Ref(name)).values)


@pytest.fixture(autouse=True)
def _defaults() -> Iterator[None]:
    yield
    set_sequential(None)


def check_against(result, scores: np.ndarray, budget: int) -> None:
    """The result's sequence, value and record are those of ``scores`` (the used samples)."""
    info = result.outcome.sequential
    assert info["used"] == scores.size and info["budget"] == budget and info["decided"]
    low, high = BettingCS(0.05).update(scores).bounds()
    assert abs(info["lower"] - low) <= 1e-12 and abs(info["upper"] - high) <= 1e-12
    assert (result.verdict is Verdict.HOLDS) == (low >= 0.2)
    assert f"stopped early: {scores.size} of {budget} samples" in " ".join(result.outcome.notes)


def test_key_claim_stops_the_pass_and_matches_numpy_on_the_samples_used(
        tmp_path: Path) -> None:
    claim = "\"L0H3: A1 attends to X1, Y1 ≥ 0.5 with 95% confidence, sequentially\""
    (result,), called = counted_run(tmp_path, "adder.claims.yaml",
                                    f"  - id: head\n    claim: {claim}\n", n=350)
    info = result.outcome.sequential
    assert info["used"] == called == 50 and info["budget"] == 350
    pattern = whole_pattern(tmp_path / "ref", "adder.claims.yaml", "pattern0", n=350)
    scores = pattern[:50, 3, A1, X1].astype(np.float64) + pattern[:50, 3, A1, Y1]
    low, high = BettingCS(0.05).update(scores).bounds()
    assert abs(info["lower"] - low) <= 1e-12 and abs(info["upper"] - high) <= 1e-12
    assert low >= 0.5 and result.verdict is Verdict.HOLDS
    assert result.outcome.value == pytest.approx(scores.mean(), abs=1e-6)
    assert "after 50 of 350 samples" in result.outcome.measured
    assert "mean over 50 samples" in result.outcome.measured


def test_streamed_and_induction_claims_stop_together(tmp_path: Path) -> None:
    claims = ("  - id: prev\n    claim: L0H1 attends to the previous token ≥ 0.2 with 95% "
              "confidence, sequentially\n"
              "  - id: ind\n    claim: L1H2 attends to the token after the previous occurrence "
              "≥ 0.2 with 95% confidence, sequentially\n")
    (prev, ind), called = counted_run(tmp_path, "induction.claims.yaml", claims)
    used = prev.outcome.sequential["used"]
    assert used == ind.outcome.sequential["used"] == called < 500
    pattern0 = whole_pattern(tmp_path / "r0", "induction.claims.yaml", "pattern0")[:used]
    q = np.arange(1, pattern0.shape[2])
    previous = pattern0[:, 1, q, q - 1].astype(np.float64).mean(axis=1)
    check_against(prev, previous, 500)
    assert prev.outcome.value == pytest.approx(previous.mean(), abs=1e-6)
    # the induction target written out by hand: the successors of earlier occurrences
    from examples.induction.data import generate

    tokens = np.asarray(generate(n=500, seed=1234)["tokens"])[:used]
    pattern1 = whole_pattern(tmp_path / "r1", "induction.claims.yaml", "pattern1")[:used]
    per_sample = []
    for b in range(used):
        sums, pairs = 0.0, 0
        for query in range(tokens.shape[1]):
            keys = [j + 1 for j in range(query - 1) if tokens[b, j] == tokens[b, query]]
            if keys:
                sums += float(sum(pattern1[b, 2, query, k] for k in keys))
                pairs += 1
        if pairs:
            per_sample.append(sums / pairs)
    check_against(ind, np.array(per_sample), 500)


def test_a_fixed_sample_claim_on_the_pass_keeps_it_running(tmp_path: Path) -> None:
    claims = ("  - id: seq\n    claim: \"L0H3: A1 attends to X1, Y1 ≥ 0.5 with 95% confidence, "
              "sequentially\"\n"
              "  - id: fixed\n    claim: \"L0H3: A2 attends to X2, Y2 ≥ 0.5\"\n")
    (seq, fixed), called = counted_run(tmp_path, "adder.claims.yaml", claims, n=250)
    assert seq.outcome.sequential["used"] == seq.outcome.sequential["budget"] == 250
    assert called == 250 and fixed.verdict is Verdict.HOLDS
    assert "stopped early" not in " ".join(seq.outcome.notes)


def test_a_later_run_reads_the_pattern_whole(tmp_path: Path) -> None:
    claim = "\"L0H3: A1 attends to X1, Y1 ≥ 0.5 with 95% confidence, sequentially\""
    (seq,), _ = counted_run(tmp_path, "adder.claims.yaml", f"  - id: s\n    claim: {claim}\n",
                            n=150)
    assert seq.outcome.sequential["used"] == 50
    (fixed,), called = counted_run(tmp_path / "later", "adder.claims.yaml",
                                   "  - id: f\n    claim: \"L0H3: A1 attends to X1, Y1 ≥ 0.5 "
                                   "with 95% confidence\"\n", n=150)
    assert called == 150 and "150 samples" in fixed.outcome.measured
