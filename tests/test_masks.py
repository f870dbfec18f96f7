"""Conditions in expressions (count, fraction, where) and vector literals with a tolerance,
against the same numbers computed directly with numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import interp_assert as ia
from interp_assert.claims.builtin import parse_claim
from interp_assert.errors import QuantityError
from interp_assert.labels import Axis, Labelled
from interp_assert.loading.subject import clear_subjects

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
FLOATS = st.floats(-3, 3, allow_nan=False, width=64)


def subject_of(**quantities: np.ndarray) -> ia.Subject:
    clear_subjects()
    made = {}
    for name, values in quantities.items():
        values = np.asarray(values, dtype=float)
        axes = [Axis("neuron", tuple(f"N{i}" for i in range(values.shape[0])))]
        axes += [Axis(f"d{k}") for k in range(1, values.ndim)]
        made[name] = Labelled(values, tuple(axes))
    return ia.subject(quantities=made)


def measured(sentence: str, subject: ia.Subject) -> float:
    try:
        result = ia.check(sentence, subject)
    except ia.ClaimFailed as failure:
        result = failure.result
    assert result is not None and result.outcome is not None, result and result.error
    return float(result.outcome.value)


@SETTINGS
@given(arrays(float, (12, 5), elements=FLOATS), st.sampled_from([0.5, 1.0, 2.0]))
def test_count_and_fraction_of_a_condition(rows, bound):
    subject = subject_of(W=rows)
    norms = np.linalg.norm(rows, axis=1)
    assert measured(f"count(norm(W) > {bound}) >= 0", subject) == np.sum(norms > bound)
    assert measured(f"fraction(norm(W) > {bound}) >= 0", subject) == pytest.approx(
        np.mean(norms > bound))
    assert measured(f"sum(abs(W) > {bound}) >= 0", subject) == np.sum(np.abs(rows) > bound)
    per_row = measured(f"max(count(abs(W) > {bound}, d1)) >= 0", subject)
    assert per_row == np.max(np.sum(np.abs(rows) > bound, axis=1))


@SETTINGS
@given(arrays(float, 9, elements=FLOATS), arrays(float, 9, elements=FLOATS))
def test_where_keeps_the_elements_whose_condition_holds(gate, logit):
    subject = subject_of(gate=gate, logit=logit)
    chosen = gate[logit >= 0]
    value = measured("mean(gate where logit >= 0) > -100", subject)
    if chosen.size:
        assert value == pytest.approx(np.mean(chosen))
    else:
        assert math.isnan(value)  # nothing selected: a NaN, which never passes
    assert measured("count(gate where logit >= 0) >= 0", subject) == np.sum(
        chosen != 0)


def test_the_mean_of_nothing_selected_is_nan_without_a_warning():
    """An empty selection's mean is NaN (never passes) and warns nothing: numpy's "Mean of
    empty slice" is no news to the claim's author."""
    import warnings

    subject = subject_of(gate=np.array([1.0, 2.0]), logit=np.array([-1.0, -2.0]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(measured("mean(gate where logit >= 0) > -100", subject))
        assert measured("sum(gate where logit >= 0) >= 0", subject) == 0


def test_where_along_one_axis_keeps_rows_and_labels():
    rows = np.arange(12.0).reshape(4, 3)
    keep = np.array([1.0, -1.0, 2.0, -2.0])
    subject = subject_of(W=rows, score=keep)
    result = ia.check("sum(W where score > 0) == 24", subject)  # rows N0 and N2
    assert result.outcome.value == rows[[0, 2]].sum()


def test_nan_in_a_condition_never_passes():
    values = np.array([1.0, np.nan, 3.0])
    subject = subject_of(x=values)
    assert math.isnan(measured("count(x > 0) >= 0", subject))
    with pytest.raises(QuantityError, match="NaN at N1"):
        ia.check("mean(x where x > 0) > 0", subject)


@SETTINGS
@given(arrays(float, 4, elements=FLOATS), arrays(float, 4, elements=FLOATS),
       st.sampled_from([0.05, 0.5, 1.0]))
def test_vector_literal_within_a_tolerance(values, expected, tolerance):
    subject = subject_of(q=values)
    texts = [repr(float(v)) if v >= 0 else f"({float(v)!r})" for v in expected]
    literal = "[" + ", ".join(texts) + "]"
    sentence = f"q ≈ {literal} within {tolerance}"
    deviation = np.abs(values - expected)
    try:
        result, holds = ia.check(sentence, subject), True
    except ia.ClaimFailed as failure:
        result, holds = failure.result, False
    assert result.outcome.value == pytest.approx(deviation.max())
    assert holds == bool(np.all(deviation <= tolerance))


def test_vector_of_the_wrong_length_is_a_clear_error():
    subject = subject_of(q=np.zeros(3))
    with pytest.raises(QuantityError, match="has 3 elements"):
        ia.check("q ≈ [1, 2] within 0.1", subject)


@pytest.mark.parametrize("sentence", [
    "count(norm(neurons) > 0.8) >= 10", "fraction(abs(x) > 0.3) >= 0.5",
    "mean(gate where logit >= 0) > 0.5", "A·V ≈ [0.74, 2.83, 4.0] within 0.1",
    "mean([1, 2, 3]) == 2",
])
def test_conditions_print_back_to_the_same_sentence(sentence):
    parsed = parse_claim(sentence)
    assert str(parse_claim(str(parsed.claim)).claim) == str(parsed.claim)


@SETTINGS
@given(arrays(float, (6, 10), elements=st.floats(-3, 3, allow_nan=False, width=16)),
       st.integers(1, 4))
def test_top_k_per_row_counted_across_rows(scores, k):
    """How many neurons (rows) have each token (column) among their top k."""
    subject = subject_of(S=scores)
    in_top = np.zeros_like(scores)
    for row, line in enumerate(scores):
        in_top[row, np.argsort(-line, kind="stable")[:k]] = 1
    per_token = in_top.sum(axis=0)
    for token in (0, 3, 9):
        got = measured(f"count(top(S, {k}), neuron)[{token}] >= 0", subject)
        assert got == per_token[token]
    in_bottom = np.zeros_like(scores)
    for row, line in enumerate(scores):
        in_bottom[row, np.argsort(line, kind="stable")[:k]] = 1
    assert measured(f"count(bottom(S, {k}), neuron)[0] >= 0", subject) == in_bottom[:, 0].sum()


@SETTINGS
@given(arrays(float, (5, 8), elements=FLOATS), st.sampled_from([0.0, 0.5, 0.9, 0.999, 1.0]))
def test_quantile_matches_numpy(values, level):
    subject = subject_of(S=values)
    assert measured(f"quantile(S, {level}) > -100", subject) == pytest.approx(
        np.quantile(values, level))
    per_row = measured(f"max(quantile(S, {level}, d1)) > -100", subject)
    assert per_row == pytest.approx(np.max(np.quantile(values, level, axis=1)))


def test_random_edge_control_counts_like_numpy():
    """How many of 30 random edges pass the 90th percentile of all edge scores (seeded)."""
    scores = np.random.default_rng(3).normal(size=(12, 20))
    subject = subject_of(S=scores)
    rng = np.random.default_rng(7)
    drawn = scores.reshape(-1)[np.sort(rng.choice(scores.size, 30, replace=False))]
    expected = np.sum(drawn > np.quantile(scores, 0.9))
    got = measured("count(sample(S, 30, 7) > quantile(S, 0.9)) >= 0", subject)
    assert got == expected
