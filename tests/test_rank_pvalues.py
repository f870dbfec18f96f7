"""Monte-Carlo rank p-values (Phipson & Smyth 2010): against a direct numpy count on fixed
draws, their validity under exchangeable draws, the draws a confidence needs, and composition
scores against random pairs of heads on the bundled induction model (scores recomputed here
from its state dict)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import run_plotting_pass_fail

from interp_assert.claims import parse_claim
from interp_assert.errors import QuantityError
from interp_assert.evaluate.rank_test import check_draws, clears, draws_needed, rank_test
from interp_assert.run.runner import load_claim_file

ROOT = Path(__file__).parents[1]
CHECKPOINT = ROOT / "examples" / "induction" / "checkpoints" / "induction.pt"


def numpy_p(observed: float, draws: np.ndarray) -> float:
    """(1 + #{draws ≥ observed, NaN draws counted}) / (1 + K); NaN observed: 1."""
    if np.isnan(observed):
        return 1.0
    return float((1 + np.count_nonzero(~(draws < observed))) / (1 + draws.size))


def test_rank_p_matches_numpy_on_fixed_draws() -> None:
    rng = np.random.default_rng(7)
    for _ in range(500):
        k = int(rng.integers(1, 60))
        draws = np.round(rng.normal(size=k), int(rng.integers(0, 3)))  # rounding makes ties
        if rng.random() < 0.1:
            draws[rng.integers(0, k)] = np.nan
        observed = float(rng.choice(draws)) if rng.random() < 0.3 else float(rng.normal())
        test = rank_test(observed, draws)
        assert test.p_value == numpy_p(observed, draws)
        assert test.rank == round(test.p_value * (k + 1))
    assert rank_test(2.0, [1.0, 2.0, 3.0]).p_value == 3 / 4  # a tie counts against the claim
    assert rank_test(5.0, [1.0, 2.0, 3.0]).p_value == 1 / 4
    assert rank_test(math.nan, [1.0, 2.0]).p_value == 1.0


def test_rank_p_is_valid_under_exchangeable_draws() -> None:
    """K + 1 exchangeable values: P(p ≤ j/(K+1)) = j/(K+1) exactly (continuous draws)."""
    rng = np.random.default_rng(0)
    k, runs = 19, 4000
    values = rng.normal(size=(runs, k + 1))
    p = np.array([rank_test(row[0], row[1:]).p_value for row in values])
    for j in (1, 2, 5, 10):
        rate = float(np.mean(p <= j / (k + 1)))
        sd = math.sqrt(j / (k + 1) * (1 - j / (k + 1)) / runs)
        assert abs(rate - j / (k + 1)) < 4 * sd, (j, rate)


@pytest.mark.parametrize(("level", "need"), [(0.95, 19), (0.9, 9), (0.99, 99), (0.8, 4),
                                             (0.5, 1), (0.975, 39)])
def test_draws_needed(level: float, need: int) -> None:
    assert draws_needed(level) == need
    check_draws(need, level, "random sets", "write {n}")
    assert clears(1 / (need + 1), level)
    if need > 1:
        assert not clears(1 / need, level)
        with pytest.raises(QuantityError, match=f"{need - 1} random sets cannot give") as info:
            check_draws(need - 1, level, "random sets", "write 'while {n} random sets'")
        assert f"while {need} random sets" in str(info.value.hint)
    assert not clears(math.nan, level)


# ---- composition against random pairs on the induction model ----------------------------------
def reference_scores(mode: str) -> dict[tuple[str, str], float]:
    """‖A B‖_F / (‖A‖_F ‖B‖_F) for every (layer-0 writer, layer-1 reader): A = W_V W_O of the
    writer; B = W_Q W_Kᵀ (Q), its transpose (K) or W_V W_O (V) of the reader."""
    import torch

    sd = {k: v.double().numpy() for k, v in torch.load(
        CHECKPOINT, weights_only=False)["model_state_dict"].items()}
    heads = sd["blocks.0.attn.W_Q"].shape[0]

    def ov(layer: int, h: int) -> np.ndarray:
        return sd[f"blocks.{layer}.attn.W_V"][h] @ sd[f"blocks.{layer}.attn.W_O"][h]

    def qk(layer: int, h: int) -> np.ndarray:
        return sd[f"blocks.{layer}.attn.W_Q"][h] @ sd[f"blocks.{layer}.attn.W_K"][h].T

    out = {}
    for w in range(heads):
        for r in range(heads):
            a = ov(0, w)
            b = {"Q": qk(1, r), "K": qk(1, r).T, "V": ov(1, r)}[mode]
            out[(f"L0H{w}", f"L1H{r}")] = float(np.linalg.norm(a @ b) /
                                                (np.linalg.norm(a) * np.linalg.norm(b)))
    return out


def run_claims(folder: Path, claims: list[dict[str, Any]]) -> dict[str, Any]:
    path = folder / "comp.claims.yaml"
    path.write_text(yaml.safe_dump({
        "subject": {"checkpoint": str(CHECKPOINT), "loader": "examples.tiny_transformer:load",
                    "python_path": str(ROOT)}, "claims": claims}, allow_unicode=True),
        encoding="utf-8")
    return run_plotting_pass_fail(load_claim_file(path), folder / "plots")


def test_composition_against_random_pairs(tmp_path: Path) -> None:
    scores = reference_scores("K")
    pairs = list(scores)
    ordered = sorted(pairs, key=scores.__getitem__)
    top, low = ordered[-1], ordered[0]
    claims = [{"id": "top-pass", "claim": f"K-composition of {top[0]} into {top[1]} beats 9 "
                                          "random pairs with 90% confidence"},
              {"id": "low-fail", "claim": f"K-composition of {low[0]} into {low[1]} beats 9 "
                                          "random pairs with 90% confidence"},
              {"id": "plain", "claim": f"K-composition of {top[0]} into {top[1]} beats 15 "
                                       "random pairs"},
              {"id": "few", "claim": "K-composition of L0H1 into L1H2 beats 9 random pairs "
                                     "with 95% confidence"},
              {"id": "many", "claim": "K-composition of L0H1 into L1H2 beats 16 random pairs"},
              {"id": "late", "claim": "K-composition of L1H1 into L0H2 beats 3 random pairs"}]
    results = run_claims(tmp_path, claims)
    for name, claimed, status in (("top-pass", top, "holds"), ("low-fail", low, "fails")):
        result = results[name]
        assert result.error is None, str(result.error)
        outcome = result.outcome
        drawn = [(r["writer"], r["reader"]) for r in outcome.rows[1:]]
        assert len(drawn) == 9 and len(set(drawn)) == 9 and claimed not in drawn
        assert outcome.value == pytest.approx(scores[claimed], abs=1e-9)
        assert [r["score"] for r in outcome.rows[1:]] == pytest.approx(
            [scores[p] for p in drawn], abs=1e-9)
        draws = np.array([scores[p] for p in drawn])
        assert outcome.p_value == numpy_p(scores[claimed], draws)
        assert result.status == status
        assert result.plot is not None and result.plot.exists()
    assert results["top-pass"].outcome.p_value == pytest.approx(0.1)
    assert results["low-fail"].outcome.p_value == 1.0
    plain = results["plain"]
    assert plain.status == "holds" and plain.outcome.p_value is None  # no confidence: no p
    assert "rank 1 of 16" in plain.outcome.measured
    assert "draw at least 19" in str(results["few"].error.hint)
    assert "only 15 other pairs" in str(results["many"].error)
    assert "earlier layer" in str(results["late"].error)


@pytest.mark.parametrize("sentence", [
    "K-composition of L0H1 into L1H2 beats 9 random pairs with 90% confidence",
    "V-composition of L0H1 into L1H2 beats 5 random pairs",
])
def test_composition_random_round_trip(sentence: str) -> None:
    claim = parse_claim(sentence).claim
    assert str(claim) == sentence
    assert parse_claim(str(claim)).claim == claim
