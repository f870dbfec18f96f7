"""The cluster of an exemplar (rows whose cosine with it passes a threshold), against numpy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import interp_assert as ia
from interp_assert.claims.cluster_of import linkage_order
from interp_assert.labels import Axis, Labelled
from interp_assert.loading.subject import clear_subjects


def neurons(rows: np.ndarray) -> ia.Subject:
    clear_subjects()
    labels = tuple(f"N{i}" for i in range(len(rows)))
    return ia.subject(quantities={"neurons": Labelled(rows, (Axis("neuron", labels),
                                                             Axis("d_model")))})


def verdict(sentence: str, subject: ia.Subject) -> tuple[bool, ia.ClaimResult]:
    try:
        return True, ia.check(sentence, subject)
    except ia.ClaimFailed as failure:
        return False, failure.result


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000), st.sampled_from([0.3, 0.5, 0.8]), st.booleans())
def test_found_cluster_matches_numpy(seed, threshold, absolute):
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(12, 5))
    rows[3] = 2 * rows[0] + 0.2 * rng.normal(size=5)
    rows[7] = -rows[0]
    unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    cos = unit @ unit[0]
    score = np.abs(cos) if absolute else cos
    inside = {f"N{i}" for i in np.flatnonzero(score > threshold)} | {"N0"}
    include = ["N3", "N7"]
    exclude = [f"N{i}" for i in (5, 9)]
    word = "|cos|" if absolute else "cos"
    holds, result = verdict(f"the cluster of N0 at {word} > {threshold} includes "
                            f"{', '.join(include)} and excludes {', '.join(exclude)}",
                            neurons(rows))
    expected = all(x in inside for x in include) and not any(x in inside for x in exclude)
    assert holds == expected
    assert result.outcome.value == pytest.approx(min(score[3], score[7]))
    assert f"the cluster has {len(inside)} rows" in result.outcome.measured


def test_unknown_row_is_named():
    with pytest.raises(ia.InterpAssertError, match="N99"):
        ia.check("the cluster of N0 at cos > 0.5 includes N99", neurons(np.eye(4)))


def test_linkage_order_keeps_groups_together():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=6), rng.normal(size=6)
    rows = np.array([a, b, a + 0.05 * rng.normal(size=6), b + 0.05 * rng.normal(size=6),
                     a + 0.05 * rng.normal(size=6)])
    unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    order = linkage_order(unit @ unit.T)
    groups = ["a" if i in (0, 2, 4) else "b" for i in order]
    assert groups in (["a"] * 3 + ["b"] * 2, ["b"] * 2 + ["a"] * 3)
