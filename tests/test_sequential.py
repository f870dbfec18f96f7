"""Sequential claims on the bundled adder: the pass stops once every sequential claim on it is
decided, the result says how many samples it used, an undecided claim has a verdict of its own
(or xfail), and what cannot be sequential says so."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from interp_assert.evaluate import forward
from interp_assert.evaluate.sequential import BettingCS
from interp_assert.judge.verdict import Verdict, judge
from interp_assert.plan.sequential import set_sequential, set_undecided
from interp_assert.run.runner import Runner, RunOptions, exit_code, tally_line

ROOT = Path(__file__).resolve().parents[1]


LOSS = "  loss:\n    metric: loss\n    answer: A0..A10\n"


def adder_file(folder: Path, claims: str, n: int = 1000) -> Path:
    """The bundled adder claim file's subject, data (its first ``n`` sums) and quantities (and
    a loss), with ``claims``."""
    text = (ROOT / "specs" / "adder.claims.yaml").read_text(encoding="utf-8")
    head = text.split("\nclaims:\n")[0].replace("../examples", str(ROOT / "examples"))
    head = head.replace("    n: 1000\n", f"    n: {n}\n")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "adder.claims.yaml"
    path.write_text(head + "\n" + LOSS + "\nclaims:\n" + claims, encoding="utf-8")
    return path


def run(folder: Path, claims: str, n: int = 1000) -> tuple[Runner, list]:
    runner = Runner(RunOptions(root=folder, artifacts=folder / "art"))
    claim_file = runner.load(adder_file(folder, claims, n))
    return runner, list(runner.run(runner.checks(claim_file)))


@pytest.fixture(autouse=True)
def _defaults() -> Iterator[None]:
    yield
    set_sequential(None)
    set_undecided(None)


def test_far_from_the_bound_stops_the_pass_after_one_small_batch(tmp_path: Path) -> None:
    passes = len(forward.FORWARD_PASSES)
    runner, (result,) = run(tmp_path, "  - id: seq\n    claim: exact-match ≥ 50% with 95% "
                                      "confidence, sequentially\n", n=400)
    assert len(forward.FORWARD_PASSES) == passes + 1
    assert result.verdict is Verdict.HOLDS
    info = result.outcome.sequential
    assert info["used"] == 50 and info["budget"] == 400 and info["decided"]
    assert "after 50 of 400 samples" in result.outcome.measured
    assert "decided after 50 samples (stopped early: 50 of 400 samples)" in result.outcome.notes
    # the reference: the same sequence over the first 50 samples of a whole pass
    whole = _samples_of(tmp_path / "whole")
    low, high = BettingCS(0.05).update(whole[:50]).bounds()
    assert abs(info["lower"] - low) <= 1e-12 and abs(info["upper"] - high) <= 1e-12
    assert runner.record(result)["sequential"]["used"] == 50
    assert result.outcome.value == pytest.approx(whole[:50].mean(), abs=1e-12)


def _samples_of(folder: Path) -> np.ndarray:
    """The per-sample exact matches of the whole dataset, from the quantity itself."""
    from interp_assert.evaluate.evaluation import Evaluation
    from interp_assert.language import ast
    from interp_assert.loading.subject import get_subject

    runner = Runner(RunOptions(root=folder))
    claim_file = runner.load(adder_file(folder, "  - id: x\n    claim: exact-match ≥ 0\n", 400))
    subject = get_subject(runner.checks(claim_file)[0].target.spec)
    value = Evaluation(claim_file, subject, None, None).value(ast.Ref("exact-match"))
    meta = value.meta
    assert meta["trials"] == 400 and meta["samples"].sum() == meta["successes"]
    return value.meta["samples"]


def test_a_later_run_does_not_read_a_pass_cut_short_for_another(tmp_path: Path) -> None:
    _, (far,) = run(tmp_path, "  - id: far\n    claim: exact-match ≥ 50% with 95% "
                              "confidence, sequentially\n", n=200)
    assert far.outcome.sequential["used"] == 50
    # the same subject and dataset in a new run: this claim needs more than those 50 samples
    _, (close,) = run(tmp_path, "  - id: close\n    claim: exact-match ≥ 99% with 95% "
                                "confidence, sequentially\n", n=200)
    assert close.outcome.sequential["used"] == 200 and close.verdict is Verdict.UNDECIDED


def test_claims_sharing_a_pass_stop_together_or_not_at_all(tmp_path: Path) -> None:
    _, results = run(tmp_path, (
        "  - id: a\n    claim: exact-match ≥ 50% with 95% confidence, sequentially\n"
        "  - id: b\n    claim: token-accuracy ≥ 60% with 90% confidence, sequentially\n"
        "  - id: c\n    claim: token-accuracy ≥ 99.9%\n"), n=200)
    assert [r.verdict for r in results] == [Verdict.HOLDS] * 3
    # a fixed-sample claim reads the pass whole, so the sequential ones use every sample
    assert [r.outcome.sequential["used"] for r in results[:2]] == [200, 200]
    assert "stopped early" not in " ".join(results[0].outcome.notes)
    _, together = run(tmp_path / "t", (
        "  - id: a\n    claim: exact-match ≥ 50% with 95% confidence, sequentially\n"
        "  - id: b\n    claim: token-accuracy ≥ 60% with 90% confidence, sequentially\n"),
        n=200)
    assert [r.outcome.sequential["used"] for r in together] == [50, 50]


def test_undecided_fails_by_default_and_can_be_xfail(tmp_path: Path) -> None:
    claims = ("  - id: close\n    claim: token-accuracy ≥ 99.99% with 95% confidence, "
              "sequentially\n")
    runner, (result,) = run(tmp_path, claims, n=200)
    assert result.verdict is Verdict.UNDECIDED and result.judgement.fails_run
    info = result.outcome.sequential
    assert info["used"] == 200 and not info["decided"] and info["estimate"] > 200
    assert result.judgement.reason == (f"undecided after 200 samples; about "
                                       f"{info['estimate']:,} would decide it")
    assert result.plot is not None and result.plot.stat().st_size > 0  # the sequence plot
    record = runner.record(result)
    assert record["verdict"] == "undecided" and record["fails_run"]
    assert exit_code([record]) == 1
    assert tally_line([record]) == "0 passed, 0 failed, 0 errors, 1 undecided"
    out = tmp_path / "results.json"
    runner.options.json = out
    runner.options.report = tmp_path / "report.html"
    runner.finish([record])
    assert json.loads(out.read_text())["results"][0]["sequential"]["budget"] == 200
    report = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert 'data-verdict="undecided"' in report and "#bc4c00" in report
    set_undecided("xfail")
    again = judge(result.outcome, None)
    assert again.verdict is Verdict.XFAIL and not again.fails_run
    assert again.reason == result.judgement.reason


def test_the_option_makes_every_confidence_claim_sequential(tmp_path: Path) -> None:
    claims = "  - id: c\n    claim: exact-match ≥ 50% with 95% confidence\n"
    _, (fixed,) = run(tmp_path, claims, n=200)
    assert fixed.outcome.sequential is None and "CI" in fixed.outcome.measured
    set_sequential(True)
    _, (seq,) = run(tmp_path / "s", claims, n=200)
    assert seq.outcome.sequential["used"] == 50 and seq.verdict is Verdict.HOLDS


def test_what_cannot_be_sequential_says_so(tmp_path: Path) -> None:
    _, results = run(tmp_path, (
        "  - id: weights\n    claim: max(norm(digit_unembed)) ≥ 1 with 95% confidence, "
        "sequentially\n"
        "  - id: equal\n    claim: exact-match == 1 with 95% confidence, sequentially\n"),
        n=100)
    weights, equal = results
    assert all(r.verdict is Verdict.ERROR for r in results)
    assert "cannot be evaluated sequentially: it has no per-sample values" in str(weights.error)
    assert "drop ', sequentially'" in weights.error.hint
    assert "'==' cannot be decided sequentially" in str(equal.error)


@pytest.mark.usefixtures("heavy_modules_loaded")
def test_pytest_options_undecided_as_failure_or_xfail(pytester: pytest.Pytester) -> None:
    adder_file(pytester.path, (
        "  - id: far\n    claim: exact-match ≥ 50% with 95% confidence\n"
        "  - id: close\n    claim: token-accuracy ≥ 99.99% with 95% confidence\n"), n=100)
    result = pytester.runpytest("-p", "no:randomly", "--interp-sequential", "--junitxml=j.xml",
                                "-rf")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*undecided after 100 samples; about * would decide it*"])
    junit = (pytester.path / "j.xml").read_text(encoding="utf-8")
    assert junit.count("<failure") == 1 and "undecided" in junit
    result = pytester.runpytest("-p", "no:randomly", "--interp-sequential",
                                "--interp-undecided=xfail")
    result.assert_outcomes(passed=1, xfailed=1)
    result = pytester.runpytest("-p", "no:randomly", "--interp-undecided=maybe")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*--interp-undecided*invalid choice*"])
