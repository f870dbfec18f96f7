"""Template arithmetic (``X{9-i}``, ``{2*i+1}``) and label ranges whose prefix holds digits
(``L1H0..L1H3``), each against values computed by hand with numpy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import interp_assert as ia
from interp_assert.errors import SpecError
from interp_assert.labels import Axis, Labelled, expand_labels
from interp_assert.language.templates import evaluate, fill, uses
from interp_assert.loading.subject import clear_subjects


def subject_of(values: np.ndarray, prefix: str) -> ia.Subject:
    clear_subjects()
    labels = tuple(f"{prefix}{i}" for i in range(len(values)))
    return ia.subject(quantities={"q": Labelled(np.asarray(values, float),
                                                (Axis("pos", labels),))})


def fraction_holding(sentence: str, subject: ia.Subject) -> float:
    try:
        result = ia.check(sentence, subject)
    except ia.ClaimFailed as failure:
        result = failure.result
    assert result is not None and result.outcome is not None
    return float(result.outcome.value)


@given(st.integers(-50, 50), st.integers(0, 9), st.integers(0, 9))
def test_placeholder_arithmetic_matches_python(value, a, b):
    assert evaluate(f"{a}-i", "i", value) == a - value
    assert evaluate(f"{a}*i+{b}", "i", value) == a * value + b
    assert evaluate(f"i*{a}-{b}*2", "i", value) == value * a - b * 2
    assert evaluate(f"{a}+{b}*i", "i", value) == a + b * value


def test_fill_leaves_other_variables_alone():
    assert fill("L{j}H{9-i}", "i", 2) == "L{j}H7"
    assert uses("X{2*i}", "i") and not uses("X{2*j}", "i")


def test_reversed_template_compares_mirrored_positions():
    values = np.array([0.1, 0.7, 0.3, 0.9, 0.2, 0.6])
    subject = subject_of(values, "X")
    # X{5-i} > X{i} for i in 0..2: pairs (5,0), (4,1), (3,2)
    expected = np.mean([values[5 - i] > values[i] for i in range(3)])
    assert fraction_holding("q[X{5-i}] > q[X{i}] for i in 0..2", subject) == expected
    # even positions against the next odd one: X{2*i} < X{2*i+1}
    expected = np.mean([values[2 * i] < values[2 * i + 1] for i in range(3)])
    assert fraction_holding("q[X{2*i}] < q[X{2*i+1}] for i in 0..2", subject) == expected


def test_head_range_with_digits_in_its_prefix_expands():
    assert expand_labels("L1H0..L1H3") == ["L1H0", "L1H1", "L1H2", "L1H3"]
    assert expand_labels("L0H2..L0H3, L1H0..L1H1") == ["L0H2", "L0H3", "L1H0", "L1H1"]
    assert expand_labels("N8..N11") == ["N8", "N9", "N10", "N11"]


def test_range_that_changes_prefix_is_refused_with_the_brace_form():
    with pytest.raises(SpecError) as info:
        expand_labels("L1H0..L2H3")
    assert "changes its prefix" in str(info.value)
    assert "L{0..1}H{0..3}" in info.value.hint


def test_head_range_labels_a_claim_file(tmp_path):
    torch = pytest.importorskip("torch")
    scores = torch.tensor([0.5, -1.0, 2.0, 0.25])
    torch.save({"head_score": scores}, tmp_path / "model.pt")
    (tmp_path / "heads.claims.yaml").write_text(
        "subject: {checkpoint: model.pt}\n"
        "quantities:\n"
        "  score:\n"
        "    weight: head_score\n"
        "    axes: [head]\n"
        "    labels: {head: L1H0..L1H3}\n"
        "claims:\n"
        "  - {id: one-head, claim: 'score[L1H2] == 2'}\n"
        "  - {id: top, claim: 'L1H2 in top 1 of score'}\n"
        "  - {id: mirrored, claim: 'score[L1H{3-i}] > score[L1H{i}] for i in 0..1'}\n")
    results = ia.load(tmp_path / "heads.claims.yaml").run()
    assert [r.status for r in results] == ["holds", "holds", "fails"]
    assert results[0].outcome.value == float(scores[2])
    values = scores.numpy()
    expected = np.mean([values[3 - i] > values[i] for i in range(2)])
    assert results[2].outcome.value == pytest.approx(expected)


def test_missing_axis_error_lists_the_axes(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save({"unembed": torch.ones(3, 5)}, tmp_path / "model.pt")
    (tmp_path / "axes.claims.yaml").write_text(
        "subject: {checkpoint: model.pt}\n"
        "quantities:\n"
        "  W_U: {weight: unembed, axes: [d_model, vocab]}\n"
        "claims:\n"
        "  - {id: wrong-axis, claim: 'mean(W_U, d_vocab) > 0'}\n"
        "  - {id: right-axis, claim: 'min(mean(W_U, vocab)) == 1'}\n")
    wrong, right = ia.load(tmp_path / "axes.claims.yaml").run()
    assert wrong.status == "error" and right.status == "holds"
    text = str(wrong.error)
    assert "has no axis 'd_vocab'" in text and "its axes: d_model, vocab" in text


@pytest.mark.parametrize(("hook", "axis", "first"), [
    ("blocks.1.mlp.hook_post", "neuron", "L1N0"),            # TransformerLens
    ("transformer.h.0.mlp.c_fc", "neuron", "L0N0"),          # nanoGPT / GPT-2
    ("transformer.h.2.mlp.gelu", "neuron", "L2N0"),
    ("model.layers.3.mlp.up_proj", "neuron", "L3N0"),        # Llama
    ("encoder.layer.2.intermediate", "neuron", "L2N0"),      # BERT
    ("transformer.h.0.mlp.c_proj", "d_model", None),         # writes the residual stream
    ("transformer.h.0.attn.c_attn", "d_model", None),
    ("blocks.0.hook_resid_post", "d_model", None),
])
def test_channel_axes_are_named_after_what_they_are(hook, axis, first):
    from interp_assert.evaluate.quantities.behaviour import activation_axes

    last = activation_axes(hook, (2, 5, 16), None)[-1]
    assert last.name == axis
    assert (last.labels[0] if last.labels else None) == first
    if last.labels:
        assert len(last.labels) == 16 and last.labels[-1] == first[:-1] + "15"
