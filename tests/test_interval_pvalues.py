"""p-values of probe, logit-lens and feature-frequency claims: each inverts the claim's own
interval (``p ≤ (1 − C)/2`` exactly when the C% interval clears the bound, on many fixed cases),
and a pytest run with ``--interp-alpha`` on the bundled adder puts them, with composition
against random pairs and random controls, into the run-level error control (p-values checked
against scipy's score test and a hand-written Holm)."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from scipy import stats as scipy_stats

from interp_assert.claims.compare import judged_value
from interp_assert.claims.interval_pvalues import lens_p, probe_interval
from interp_assert.claims.outcome import compare
from interp_assert.evaluate.pvalues import percentile_p
from interp_assert.evaluate.stats import bootstrap_mean, wilson
from interp_assert.language.ast import Comparison, Number

ROOT = Path(__file__).parents[1]
LEVELS = (0.8, 0.9, 0.95, 0.99)
OPS = (">=", ">", "<=", "<", "in", "≈")


def comparison(op: str, level: float | None, bound: float, upper: float | None = None
               ) -> Comparison:
    return Comparison(op, Number(bound), Number(upper) if upper is not None else None, level)


def clears(interval: tuple[float, float], cmp: Comparison, bound: float,
           upper: float | None) -> bool:
    """The verdict as the probe and feature claims decide it from their interval."""
    judged = judged_value(float("nan"), interval, cmp)
    return all(compare(v, cmp, bound, upper) for v in (
        judged if isinstance(judged, tuple) else (judged,)))


def random_bounds(rng: np.random.Generator, centre: float, spread: float, op: str
                  ) -> tuple[float, float | None]:
    bound = centre + float(rng.normal(0, spread))
    if op == "in":
        return bound, bound + abs(float(rng.normal(0, 2 * spread)))
    if op == "≈":
        return bound, abs(float(rng.normal(0, spread)))
    return bound, None


def test_probe_p_values_correspond_to_their_intervals() -> None:
    """Accuracy (Wilson), selectivity (bootstrap of the mean) and R² (percentile of the
    finite draws) at the claim's own level, on 450 fixed cases."""
    rng = np.random.default_rng(19)
    checked = 0
    for case in range(450):
        n = int(rng.integers(5, 300))
        op, level = str(rng.choice(OPS)), float(rng.choice(LEVELS))
        kind = ("accuracy", "selectivity", "R²")[case % 3]
        correct = (rng.random(n) < rng.uniform(0.3, 1)).astype(np.float64)
        diff = correct - (rng.random(n) < 0.5)
        draws = rng.normal(rng.uniform(0, 1), rng.uniform(0.01, 0.2), size=2000)
        draws[rng.random(2000) < 0.01] = np.nan  # a resample with constant labels
        fit = SimpleNamespace(task="regression" if kind == "R²" else "classification",
                              correct=correct, differences=diff,
                              r2_draws=draws[np.isfinite(draws)],
                              interval=(0.0, 1.0), selectivity_interval=(0.0, 1.0))
        centre = {"accuracy": correct.mean(), "selectivity": diff.mean(),
                  "R²": float(np.nanmean(draws))}[kind]
        bound, upper = random_bounds(rng, centre, 2 / math.sqrt(n), op)
        cmp = comparison(op, level, bound, upper)
        interval, p = probe_interval(fit, "selectivity" if kind == "selectivity" else kind,
                                     cmp, bound, upper)
        finite = draws[np.isfinite(draws)]
        reference = {"accuracy": wilson(correct.sum(), n, level),
                     "selectivity": bootstrap_mean(diff, level),
                     "R²": (float(np.quantile(finite, (1 - level) / 2)),
                            float(np.quantile(finite, (1 + level) / 2)))}[kind]
        assert interval == pytest.approx(reference, abs=1e-12)
        assert p is not None
        if abs(p - (1 - level) / 2) < 1e-9:
            continue  # a tie: floating point decides it either way
        assert (p <= (1 - level) / 2) == clears(interval, cmp, bound, upper), (kind, op, p)
        checked += 1
    assert checked > 430
    plain = probe_interval(fit, "accuracy", comparison(">=", None, 0.5), 0.5, None)
    assert plain == ((0.0, 1.0), None)  # without a confidence: the fit's 95% interval, no p


def test_wilson_interval_matches_scipy_at_the_claims_level() -> None:
    """A probe's accuracy interval is built at the claim's level (not always at 95%)."""
    correct = np.r_[np.ones(181), np.zeros(19)]
    fit = SimpleNamespace(task="classification", correct=correct, interval=(0.0, 1.0))
    for level in LEVELS:
        interval, p = probe_interval(fit, "accuracy", comparison(">=", level, 0.85), 0.85, None)
        ci = scipy_stats.binomtest(181, 200).proportion_ci(level, method="wilson")
        assert interval == pytest.approx((ci.low, ci.high), abs=1e-12)
        z = (181 / 200 - 0.85) / math.sqrt(0.85 * 0.15 / 200)
        assert p == pytest.approx(scipy_stats.norm.sf(z), rel=1e-12)


def test_lens_p_values_correspond_to_their_intervals() -> None:
    rng = np.random.default_rng(5)
    checked = 0
    for case in range(300):
        n = int(rng.integers(5, 400))
        level = float(rng.choice(LEVELS))
        values = rng.normal(rng.uniform(0, 3), 1.0, size=n)
        if case % 2:  # the mean, bootstrapped
            op = str(rng.choice(OPS))
            bound, upper = random_bounds(rng, float(values.mean()), 2 / math.sqrt(n), op)
            cmp = comparison(op, level, bound, upper)
            p = lens_p(values, cmp, bound, upper, None)
            held = clears(bootstrap_mean(values, level), cmp, bound, upper)
        else:  # the share of samples meeting the condition, Wilson, at least the share
            op = str(rng.choice([">=", ">", "<=", "<"]))
            bound = float(np.quantile(values, rng.uniform(0.05, 0.95)))
            ok = {">=": values >= bound, ">": values > bound, "<=": values <= bound,
                  "<": values < bound}[op]
            share = float(np.clip(ok.mean() + rng.normal(0, 2 / math.sqrt(n)), 0.01, 0.99))
            p = lens_p(values, comparison(op, level, bound), bound, None, share)
            held = wilson(float(ok.sum()), n, level)[0] >= share
        assert p is not None
        if abs(p - (1 - level) / 2) < 1e-9:
            continue
        assert (p <= (1 - level) / 2) == held, (case, p)
        checked += 1
    assert checked > 280
    values = np.array([1.0, np.nan, 2.0])
    assert lens_p(values, comparison(">=", 0.95, 0.0), 0.0, None, None) == 1.0  # NaN: never
    assert lens_p(values, comparison(">=", None, 0.0), 0.0, None, None) is None


def test_percentile_p_inverts_numpy_quantile() -> None:
    rng = np.random.default_rng(3)
    draws = rng.normal(size=500)
    for q in (0.01, 0.025, 0.1, 0.3):
        bound = float(np.quantile(draws, q))
        assert percentile_p(draws, ">=", bound) == pytest.approx(q, abs=1e-12)
        assert percentile_p(draws, "<=", float(np.quantile(draws, 1 - q))) == pytest.approx(
            q, abs=1e-12)
    assert percentile_p(np.array([np.nan]), ">=", 0.0) == 1.0
    assert percentile_p(draws, "==", 0.0) is None


# ---- the run-level family on the bundled adder ------------------------------------------------
MIXED = f"""\
subject:
  checkpoint: {ROOT}/examples/adder/checkpoints/adder.pt
  loader: examples.tiny_transformer:load
  python_path: {ROOT}
data:
  sums:
    generate: examples.adder.sae_data:generate
    n: 200
    seed: 1234
    batch_size: 200
    positions: X0..X9, +, Y0..Y9, =, A0..A10
quantities:
  sae: {{sae: {ROOT}/examples/adder/sae}}
  exact-match: {{metric: exact_match, answer: A0..A10}}
"""


CLAIMS = [
    ("probe", "probe blocks.0.hook_resid_post at A4 for carry[5]: accuracy ≥ 85% with 95% "
              "confidence"),
    ("lens", "logit lens at blocks.1: rank of the answer at A3 ≤ 1 on 95% of samples with 95% "
             "confidence"),
    ("feature", "feature F174 of sae: frequency ≥ 12% with 95% confidence"),
    ("comp", "K-composition of L0H3 into L1H0 beats 4 random pairs with 80% confidence"),
    ("control", "ablate L1H1 (mean): exact-match drops by ≥ 0 while 4 random sets of the same "
                "size drop by ≤ 1 with 80% confidence"),
    ("plain", "feature F174 of sae: frequency ≥ 12%")]


def score_p(k: float, n: float, bound: float) -> float:
    return float(scipy_stats.norm.sf((k / n - bound) / math.sqrt(bound * (1 - bound) / n)))


def test_new_members_join_the_run_level_error_control(pytester: pytest.Pytester,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INTERP_ASSERT_ALPHA", raising=False)
    monkeypatch.delenv("INTERP_ASSERT_ERROR_CONTROL", raising=False)
    claims = yaml.safe_dump({"claims": [{"id": i, "claim": c} for i, c in CLAIMS]},
                            allow_unicode=True)
    (pytester.path / "mixed.claims.yaml").write_text(MIXED + claims, encoding="utf-8")
    result = pytester.runpytest("-p", "no:randomly", "--interp-alpha", "0.05",
                                "--interp-json", "out.json", "--junitxml", "out.xml",
                                "--interp-plots", "never")
    records = {r["name"]: r for r in json.loads(
        (pytester.path / "out.json").read_text())["results"]}
    rows = {name: record["rows"] for name, record in records.items()}
    held_out = next(r for r in rows["probe"] if r["split"] == "held-out")
    k = round(held_out["accuracy"] * held_out["samples"])
    lens = rows["lens"][0]
    feature = rows["feature"][0]
    scores = [r["score"] for r in rows["comp"]]
    effects = [r["effect"] for r in rows["control"]]
    expected = {
        "probe": score_p(k, held_out["samples"], 0.85),
        "lens": score_p(round(lens["value"] * lens["samples"]), lens["samples"], 0.95),
        "feature": score_p(feature["fired"], feature["of"], 0.12),
        "comp": (1 + sum(s >= scores[0] for s in scores[1:])) / len(scores),
        "control": (1 + sum(e >= effects[0] for e in effects[1:])) / len(effects)}
    assert expected["comp"] == pytest.approx(0.2)  # the top pair of the model: rank 1 of 5
    family = {name: r["error_control"] for name, r in records.items() if "error_control" in r}
    assert set(family) == set(expected)  # 'plain' has no confidence: not a member
    names = sorted(expected, key=expected.__getitem__)
    m, running, holm = len(names), 0.0, {}
    for i, name in enumerate(names):  # Holm's step-down, by hand
        running = max(running, min(1.0, (m - i) * expected[name]))
        holm[name] = running
    for name, entry in family.items():
        assert entry["p_value"] == pytest.approx(expected[name], rel=1e-9, abs=1e-300)
        assert entry["adjusted_p"] == pytest.approx(holm[name], rel=1e-9, abs=1e-300)
        assert entry["family"] == 5
        assert entry["survives"] == (entry["verdict_alone"] == "holds" and holm[name] <= 0.05)
    assert family["comp"]["verdict_alone"] == "holds" and not family["comp"]["survives"]
    assert records["comp"]["verdict"] == "fails"
    assert records["comp"]["reason"].startswith("does not survive Holm at α = 0.05")
    assert family["probe"]["survives"] and records["probe"]["verdict"] == "holds"
    result.stdout.fnmatch_lines([
        "*run-level error control (Holm at α = 0.05, 5 confidence claims)*",
        "*mixed.claims.yaml::comp: p = 0.2, adjusted p = *"])
    suite = ET.parse(pytester.path / "out.xml").getroot().find("testsuite")
    assert suite is not None
    failed = {case.get("name") for case in suite.iter("testcase")
              if case.find("failure") is not None}
    assert "comp" in failed and "probe" not in failed
