"""Logit lens and direct logit attribution: one forward pass, failure plots, NaN and errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import run_entries

from interp_assert.claims.builtin import parse_claim
from interp_assert.errors import ClaimSyntaxError
from interp_assert.evaluate import forward
from interp_assert.run.runner import load_claim_file

ROOT = Path(__file__).resolve().parents[1]
ADDER = ROOT / "examples" / "adder" / "checkpoints" / "adder.pt"
DATA = {"sums": {"generate": "examples.adder.data:generate", "n": 100, "seed": 5,
                 "positions": "X0..X9, +, Y0..Y9, =, A0..A10"}}


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """Every test here runs torch on one thread."""


def run(folder: Path, claims: list[dict[str, Any]], checkpoint: Path = ADDER,
        plots: Path | None = None) -> dict[str, Any]:
    body = {"subject": {"checkpoint": str(checkpoint), "loader": "examples.tiny_transformer:load",
                        "python_path": [str(ROOT)]},
            "data": DATA, "quantities": {"exact": {"metric": "exact_match",
                                                   "answer": "A0..A10"}},
            "claims": claims}
    path = folder / "lens.claims.yaml"
    path.write_text(yaml.safe_dump(body, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return run_entries(load_claim_file(path), plot_dir=plots)


def test_every_claim_shares_one_pass(tmp_path: Path) -> None:
    before = len(forward.FORWARD_PASSES)
    results = run(tmp_path, [
        {"id": "metric", "claim": "exact ≥ 90%"},
        {"id": "lens", "claim": "logit lens at blocks.1: rank of the answer at A{i} ≤ 1 on 90% "
                                "of samples for i in 0..10"},
        {"id": "dla", "claim": "MLP1 contributes ≥ 50% of logit-diff at A{i} for i in 0..3"},
        {"id": "top", "claim": "MLP1 in top 2 contributors to logit-diff at A{i} for i in 2..4"},
        {"id": "neuron", "claim": "L1N44 contributes ≥ -100 to logit-diff at A5"}])
    assert all(r.error is None and r.outcome.passed for r in results.values()), results
    assert len(forward.FORWARD_PASSES) - before == 1


def test_failing_claims_draw_their_plots(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    results = run(tmp_path, [
        {"id": "lens-fail", "claim": "logit lens at blocks.0: rank of the answer at A3 ≤ 1 on "
                                     "90% of samples"},
        {"id": "dla-fail", "claim": "L0H0 contributes ≥ 50% of logit-diff at A3"},
        {"id": "top-fail", "claim": "L0H0 in top 2 contributors to logit-diff at A3"}],
        plots=tmp_path / "plots")
    for name in ("lens-fail", "dla-fail", "top-fail"):
        result = results[name]
        assert result.error is None, result.error
        assert not result.outcome.passed
        assert result.plot is not None and result.plot.exists() and result.plot.stat().st_size
    curve = results["lens-fail"].outcome.plot_data["curve"]
    assert [label for label, _, _ in curve] == ["embed", "blocks.0", "blocks.1"]
    # the claimed layer's point is the claim's own value; after block 1 every answer is top
    assert curve[1][1] == results["lens-fail"].outcome.value < 0.9
    assert curve[2][1] == 1.0
    data = results["dla-fail"].outcome.plot_data  # every component, read for the plot only
    assert data["claimed"] == {"L0H0": False}
    assert data["labels"][:3] == ["embed", "pos_embed", "L0H0"] and len(data["labels"]) == 13
    from matplotlib.colors import to_rgba
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    parse_claim("L0H0 contributes ≥ 50% of logit-diff at A3").claim.plot(
        results["dla-fail"].outcome, ax)
    bars = {tick.get_text(): patch for tick, patch in zip(ax.get_xticklabels(), ax.patches)}
    assert bars["L0H0"].get_facecolor() == to_rgba("red")
    assert bars["MLP1"].get_facecolor() != to_rgba("red")
    assert "bound 0.5" in [text.get_text() for text in ax.get_legend().get_texts()]


def test_nan_never_passes(tmp_path: Path) -> None:
    import torch

    checkpoint = torch.load(ADDER, map_location="cpu", weights_only=True)
    checkpoint["model_state_dict"]["unembed.b_U"][3] = float("nan")
    broken = tmp_path / "nan.pt"
    torch.save(checkpoint, broken)
    results = run(tmp_path, [
        {"id": "share", "claim": "logit lens at blocks.1: rank of the answer at A3 ≥ 0 on 0% of "
                                 "samples"},
        {"id": "mean", "claim": "logit lens at blocks.1: mean probability of the answer at A3 "
                                "≥ 0"},
        {"id": "dla", "claim": "MLP1 contributes ≥ -100 to logit-diff at A3"},
        {"id": "top", "claim": "MLP1 in top 2 contributors to logit-diff at A3"}], broken)
    share = results["share"].outcome
    assert share.value == 0.0 and share.rows[0]["nan"] == 100
    assert not results["mean"].outcome.passed and np.isnan(results["mean"].outcome.value)
    # the mean logit, and so the logit difference, is NaN: MLP1's own share of it is finite,
    # but a decomposition of NaN never passes
    for name in ("dla", "top"):
        assert not results[name].outcome.passed


def test_errors_name_the_problem(tmp_path: Path) -> None:
    results = run(tmp_path, [
        {"id": "position", "claim": "logit lens at blocks.1: mean logit of the answer at A99 ≥ 0"},
        {"id": "field", "claim": "MLP1 contributes ≥ 1 to logit-diff vs nowhere at A3"},
        {"id": "component", "claim": "MLP7 contributes ≥ 1 to logit-diff at A3"},
        {"id": "unknown", "claim": "attn1 contributes ≥ 1 to logit-diff at A3"},
        {"id": "shape", "claim": "logit lens at blocks.0.attn.hook_z: mean logit of the answer "
                                 "≥ 0"},
        {"id": "first", "claim": "logit lens at blocks.1: mean logit of the answer at X0 ≥ 0"}])
    messages = {name: (r.error.message, r.error.hint) for name, r in results.items()}
    assert "no position 'A99'" in messages["position"][0]
    assert "no field 'nowhere'" in messages["field"][0]
    assert "'MLP7' is not a component of this model (2 blocks)" in messages["component"][0]
    assert "'attn1' is not a component" in messages["unknown"][0]
    assert "MLP{l}" in messages["unknown"][1]
    assert "residual stream" in messages["shape"][0]
    assert "first of the sequence" in messages["first"][0]


def test_sentences_print_back_and_bad_shares_are_refused() -> None:
    for text in ("logit lens at blocks.1: rank of the answer ≤ 3 on 90% of samples",
                 "logit lens at blocks.0: mean probability of the answer at A3 ≥ 0.5 with 95% "
                 "confidence",
                 "L1H2 contributes ≥ 50% of logit-diff vs wrong at A3 with 90% confidence",
                 "L0H1, MLP0 in top 3 contributors to logit-diff"):
        claim = parse_claim(text).claim
        assert str(parse_claim(str(claim)).claim) == str(claim)
    with pytest.raises(ClaimSyntaxError, match="between 0% and 100%"):
        parse_claim("logit lens at blocks.1: rank of the answer ≤ 3 on 150% of samples")
