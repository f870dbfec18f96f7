"""The bundled claim files against the bundled checkpoints, checked against direct torch/numpy
computations; falsified variants and under-trained checkpoints fail with a table and a plot."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_entries

from interp_assert.claims import parse_claim
from interp_assert.loading.claim_file import ClaimEntry
from interp_assert.output.text import format_result
from interp_assert.run.runner import load_claim_file

ROOT = Path(__file__).resolve().parents[1]
ADDER = ROOT / "specs" / "adder.claims.yaml"
INDUCTION = ROOT / "specs" / "induction.claims.yaml"


def run(path: Path, tmp_path: Path, checkpoint: Path | None = None,
        sentence: str | None = None, on: str | None = None) -> dict:
    """Results by claim id (or the one extra sentence), plots written for failures."""
    claim_file = load_claim_file(path)
    spec = claim_file.subject
    if checkpoint is not None:
        spec = dataclasses.replace(spec, checkpoint=checkpoint)
    entries = claim_file.claims
    if sentence is not None:
        entry = ClaimEntry("variant", sentence, "", claim_file.claims[0].location,
                           options={"on": on} if on else {})
        entry.parsed = parse_claim(sentence)
        entries = [entry]
    return run_entries(claim_file, entries, spec, plot_dir=tmp_path)


@pytest.fixture(scope="module")
def adder_results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return run(ADDER, tmp_path_factory.mktemp("adder"))


def test_every_adder_claim_holds(adder_results: dict) -> None:
    failing = {k: format_result(r) for k, r in adder_results.items() if not r.passed}
    assert not failing, "\n\n".join(failing.values())


def _adder_model_and_data() -> tuple:
    from examples.adder.data import generate
    from examples.tiny_transformer import load

    checkpoint = torch.load(ROOT / "examples/adder/checkpoints/adder.pt", weights_only=True)
    return load(checkpoint), generate(1000, 1234), checkpoint


def test_adder_metrics_match_a_direct_computation(adder_results: dict) -> None:
    model, data, _ = _adder_model_and_data()
    with torch.no_grad():
        logits = model(data["tokens"])
    answer = np.arange(22, 33)  # A0..A10 in "X0..X9 + Y0..Y9 = A0..A10"
    predictions = logits[:, answer - 1].argmax(-1).numpy()
    targets = data["tokens"][:, answer].numpy()
    wrong = predictions != targets
    assert adder_results["exact-match"].outcome.value == pytest.approx(
        np.mean(~wrong.any(axis=1)))
    assert adder_results["token-accuracy"].outcome.value == pytest.approx(1 - wrong.mean())
    carry = data["carry"].numpy()[:, 5] != 0
    with_carry, without = wrong[carry, 5].mean(), wrong[~carry, 5].mean()
    outcome = adder_results["carry-costs-little"].outcome
    assert outcome.value == pytest.approx(with_carry)
    assert outcome.plot_data["bound"] == pytest.approx(without + 0.02)


def test_adder_weight_claims_match_numpy(adder_results: dict) -> None:
    model, _, checkpoint = _adder_model_and_data()
    state = checkpoint["model_state_dict"]
    effect = state["blocks.1.mlp.W_out"].double().numpy() @ state["unembed.W_U"].double().numpy()
    rows = effect[[104, 206, 218]][:, :10]
    unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    cos = unit @ unit.T
    smallest = min(cos[0, 1], cos[0, 2], cos[1, 2])
    assert adder_results["digit-9-neurons"].outcome.value == pytest.approx(smallest)
    from examples.adder.analysis import av_readout

    readout = av_readout(model)
    assert np.all(np.diff(readout) > 0)
    assert adder_results["av-monotone"].outcome.value == pytest.approx(np.diff(readout).min())


@pytest.mark.parametrize(("sentence", "on"), [
    ("N104,N206,N218 cluster with cos>0.99", "neuron_logits"),
    ("A·V monotone decreasing over digits", None),
    ("exact-match ≥ 100.1%", None),
])
def test_falsified_variants_fail_with_table_and_plot(sentence: str, on: str | None,
                                                     tmp_path: Path) -> None:
    result = run(ADDER, tmp_path, sentence=sentence, on=on)["variant"]
    assert result.status == "fails", format_result(result)
    report = format_result(result)
    assert "measured" in report and "expected" in report and "✗" in report
    assert result.plot is not None and result.plot.exists() and result.plot.stat().st_size > 1000


def test_under_trained_adder_fails_exact_match(tmp_path: Path) -> None:
    early = ROOT / "examples/adder/checkpoints/adder_early.pt"
    results = run(ADDER, tmp_path, checkpoint=early)
    assert results["exact-match"].status == "fails"
    assert results["exact-match"].outcome.value < 0.99
    assert results["exact-match"].plot.exists()


def test_induction_claims_hold_on_trained_and_fail_untrained(tmp_path: Path) -> None:
    trained = run(INDUCTION, tmp_path / "trained")
    assert all(r.passed for r in trained.values()), [format_result(r) for r in trained.values()
                                                     if not r.passed]
    untrained = run(INDUCTION, tmp_path / "untrained",
                    checkpoint=ROOT / "examples/induction/checkpoints/step_0000.pt")
    for claim_id in ("previous-token-head", "induction-heads", "advantage",
                     "repeated-tokens-predictable", "k-composition-top-pair",
                     "induction-heads-needed"):
        result = untrained[claim_id]
        assert result.status == "fails", format_result(result)
        assert result.plot is not None and result.plot.exists()
