"""Every claim kind's numbers against an independent numpy/scipy reference."""

from __future__ import annotations

import contextlib
import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cosine as scipy_cosine_distance

import interp_assert as ia
from interp_assert.labels import Axis, Labelled
from interp_assert.loading.subject import clear_subjects

PROPERTY = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                           HealthCheck.function_scoped_fixture])


def vector_subject(values, name: str = "q", axis: str = "digit", prefix: str = "",
                   **scalars: float) -> ia.Subject:
    """A subject with one labelled 1-D quantity (labels ``prefix0``, ``prefix1``, ...) and
    named scalars (used as thresholds so that sentences, and their parses, repeat)."""
    values = np.asarray(values, dtype=float)
    labels = tuple(f"{prefix}{i}" for i in range(len(values)))
    clear_subjects()  # quantities of earlier examples must not be served from the cache
    return ia.subject(quantities={name: Labelled(values, (Axis(axis, labels),)),
                                  **{key: np.float64(v) for key, v in scalars.items()}})


def matrix_subject(rows: np.ndarray, name: str = "W") -> ia.Subject:
    """Rows labelled N0, N1, ... on axis 'neuron'."""
    rows = np.asarray(rows, dtype=float)
    clear_subjects()
    return ia.subject(quantities={name: Labelled(rows, (
        Axis("neuron", tuple(f"N{i}" for i in range(rows.shape[0]))), Axis("d_model")))})


def holds(sentence: str, subject: ia.Subject) -> tuple[bool, ia.ClaimResult]:
    """Check and return (passed, result); a failed claim's result comes from ClaimFailed."""
    try:
        result = ia.check(sentence, subject)
    except ia.ClaimFailed as failure:
        assert failure.result is not None and not failure.result.passed
        assert failure.result.outcome is not None
        return False, failure.result
    assert result.passed and result.outcome is not None
    return True, result


def exact(x: float) -> str:
    """A float as claim-language text that reads back as exactly the same float."""
    text = repr(float(x))
    return text if not text.startswith("-") else f"({text})"


# ---- cluster ------------------------------------------------------------------------------
def ref_pairwise_cos(rows: np.ndarray) -> dict[tuple[int, int], float]:
    return {(i, j): 1.0 - scipy_cosine_distance(rows[i], rows[j])
            for i, j in itertools.combinations(range(len(rows)), 2)}


class TestCluster:
    W = np.random.default_rng(7).normal(size=(8, 5))

    @pytest.mark.parametrize("members", [(0, 1), (0, 2, 5), (1, 3, 4, 6, 7)])
    def test_min_pairwise_cos_matches_reference(self, members):
        s = matrix_subject(self.W)
        ref = ref_pairwise_cos(self.W[list(members)])
        worst = min(ref.values())
        names = ", ".join(f"N{i}" for i in members)
        passed, result = holds(f"{names} cluster with cos > {exact(worst - 1e-9)}", s)
        assert passed
        assert result.outcome.value == pytest.approx(worst, abs=1e-12)
        table = {(r["a"], r["b"]): r["cos"] for r in result.outcome.rows}
        for (i, j), value in ref.items():
            assert table[(f"N{members[i]}", f"N{members[j]}")] == pytest.approx(value, abs=1e-12)
        passed, result = holds(f"{names} cluster with cos > {exact(worst + 1e-9)}", s)
        assert not passed
        failing = sum(not r["holds"] for r in result.outcome.rows)
        assert failing == sum(v <= worst + 1e-9 for v in ref.values())
        assert f"{failing} of {len(ref)} pairs fail" in result.outcome.measured

    def test_less_than_uses_the_largest_pair(self):
        s = matrix_subject(self.W)
        ref = ref_pairwise_cos(self.W[[0, 2, 5]])
        passed, result = holds(f"N0, N2, N5 cluster with cos < {exact(max(ref.values()) + 1e-9)}",
                               s)
        assert passed
        assert result.outcome.value == pytest.approx(max(ref.values()), abs=1e-12)

    def test_aligned_rows_cluster(self):
        base = np.array([1.0, -2.0, 0.5])
        rows = np.stack([base, 2 * base, base + 0.01, np.array([2.0, 1.0, 0.0])])
        s = matrix_subject(rows)
        assert holds("N0, N1, N2 cluster with cos ≥ 0.99", s)[0]
        assert not holds("N0, N1, N3 cluster with cos ≥ 0.99", s)[0]
        _, result = holds("N0, N1 cluster with cos >= 1", s)
        assert result.outcome.value == pytest.approx(1.0)

    def test_apart_from_default_threshold_and_op(self):
        base = np.array([1.0, 0.0, 0.0])
        rows = np.stack([base, base + np.array([0, 0.1, 0]), [0.0, 1.0, 0.0], [0.9, 0.1, 0.0]])
        s = matrix_subject(rows)
        ref = ref_pairwise_cos(rows)
        # N2 is orthogonal to the members: below 0.5
        passed, result = holds("N0, N1 cluster with cos > 0.5 apart from N2", s)
        assert passed
        apart = [r for r in result.outcome.rows if r.get("role") == "apart"]
        assert [(r["a"], r["b"]) for r in apart] == [("N2", "N0"), ("N2", "N1")]
        assert apart[0]["cos"] == pytest.approx(ref[(0, 2)])
        assert apart[1]["cos"] == pytest.approx(ref[(1, 2)])
        # N3 is close to the members: apart from it fails, the members still cluster
        passed, result = holds("N0, N1 cluster with cos > 0.5 apart from N2, N3", s)
        assert not passed
        assert "2 member/other pairs too close" in result.outcome.measured
        assert result.outcome.value == pytest.approx(ref[(0, 1)])

    def test_apart_from_with_own_threshold(self):
        rows = np.array([[1.0, 0.0], [1.0, 0.1], [1.0, 1.0]])
        s = matrix_subject(rows)
        c02 = 1 / math.sqrt(2)
        c12 = 1 - scipy_cosine_distance(rows[1], rows[2])
        top = max(c02, c12)
        assert holds(f"N0, N1 cluster with cos > 0.9 apart from N2 with cos < {exact(top + 1e-9)}",
                     s)[0]
        assert not holds(f"N0, N1 cluster with cos > 0.9 apart from N2 with cos < "
                         f"{exact(top - 1e-9)}", s)[0]

    def test_apart_from_after_equality_op(self):
        s = matrix_subject(self.W)
        holds("N0, N1 cluster with cos != 2 apart from N3", s)

    def test_zero_row_never_clusters(self):
        rows = np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 0.1]])
        s = matrix_subject(rows)
        passed, result = holds("N0, N1 cluster with cos > -2", s)
        assert not passed
        assert math.isnan(result.outcome.value)
        assert not holds("N0, N1, N2 cluster with cos < 2", s)[0]

    def test_nan_weight_never_clusters(self):
        rows = self.W.copy()
        rows[1, 2] = np.nan
        assert not holds("N0, N1 cluster with cos > -2", matrix_subject(rows))[0]
        rows[1, 2] = np.inf
        assert not holds("N0, N1 cluster with cos > -2", matrix_subject(rows))[0]

    def test_needs_two_members(self):
        with pytest.raises(ia.QuantityError, match="at least two"):
            ia.check("N0 cluster with cos > 0.5", matrix_subject(self.W))

    def test_on_a_checkpoint(self, make_project):
        import torch
        from conftest import tiny_state_dict

        path = make_project("""
            - id: aligned
              claim: N0, N1, N3 cluster with cos > 0.9
            - id: mixed
              claim: N0, N1, N4 cluster with cos > 0.9
        """)
        results = {r.claim_id: r for r in ia.load(path).run()}
        w = tiny_state_dict()["blocks.0.mlp.W_out"].double()
        ref = min(float(torch.nn.functional.cosine_similarity(w[i], w[j], dim=0))
                  for i, j in ((0, 1), (0, 3), (1, 3)))
        assert results["aligned"].passed
        assert results["aligned"].outcome.value == pytest.approx(ref, abs=1e-6)
        assert results["mixed"].status == "fails"


# ---- monotone -----------------------------------------------------------------------------
FLOATS = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
STRICT_SEQUENCES = st.lists(FLOATS, min_size=2, max_size=12, unique=True).map(sorted)


class TestMonotone:
    @PROPERTY
    @given(STRICT_SEQUENCES)
    def test_strictly_increasing_sequences(self, values):
        s = vector_subject(values)
        for words in ("monotone increasing strictly", "strictly increasing", "monotone",
                      "monotone increasing", "monotone strictly"):
            passed, result = holds(f"q {words} over digits", s)
            assert passed, words
        assert result.outcome.value == pytest.approx(float(np.min(np.diff(values))))
        assert not holds("q monotone decreasing over digits", s)[0]

    @PROPERTY
    @given(STRICT_SEQUENCES)
    def test_strictly_decreasing_sequences(self, values):
        s = vector_subject(values[::-1])
        assert holds("q monotone decreasing strictly over digits", s)[0]
        assert holds("q monotone over digits", s)[0]
        assert not holds("q monotone increasing over digits", s)[0]

    @PROPERTY
    @given(st.lists(FLOATS, min_size=3, max_size=12, unique=True).map(sorted), st.data())
    def test_one_swap_makes_a_dip(self, values, data):
        i = data.draw(st.integers(0, len(values) - 2), label="swap at")
        swapped = list(values)
        swapped[i], swapped[i + 1] = swapped[i + 1], swapped[i]
        dip = values[i + 1] - values[i]
        assume(dip > 0 and math.isfinite(dip))
        smaller = dip * data.draw(st.floats(0, 0.99), label="fraction")
        assume(smaller < dip)  # a fraction of a subnormal dip (5e-324) can round back to it
        for sign, direction in ((1, "increasing"), (-1, "decreasing")):
            s = vector_subject([sign * v for v in swapped], dip=dip, twice=2 * dip,
                               smaller=smaller)
            passed, result = holds(f"q monotone {direction} over digits", s)
            assert not passed
            assert "1 step(s) against" in result.outcome.measured
            assert result.outcome.value == pytest.approx(-dip)
            assert holds(f"q monotone {direction} over digits with tolerance dip", s)[0]
            assert holds(f"q monotone {direction} over digits with tolerance twice", s)[0]
            assert not holds(f"q monotone {direction} over digits with tolerance smaller", s)[0]
            # strict: the dip must be strictly inside the tolerance
            assert not holds(f"q monotone {direction} strictly over digits with tolerance "
                             "smaller", s)[0]
            assert holds(f"q monotone {direction} strictly over digits with tolerance twice",
                         s)[0]

    def test_tolerance_literal_equal_to_the_dip(self):
        s = vector_subject([0.0, 1.0, 0.75, 2.0])
        assert not holds("q monotone increasing over digits", s)[0]
        assert holds("q monotone increasing over digits with tolerance 0.25", s)[0]
        assert not holds("q monotone increasing over digits with tolerance 0.2499", s)[0]
        assert not holds("q monotone increasing strictly over digits with tolerance 0.25", s)[0]
        assert holds("q monotone over digits with tolerance 25%", s)[0]

    @PROPERTY
    @given(STRICT_SEQUENCES, st.data())
    def test_nan_and_inf_never_pass(self, values, data):
        bad = data.draw(st.sampled_from([math.nan, math.inf, -math.inf]), label="bad")
        position = data.draw(st.integers(0, len(values)), label="position")
        spoiled = list(values)
        spoiled.insert(position, bad)
        s = vector_subject(spoiled)
        for words in ("monotone", "monotone increasing", "monotone decreasing",
                      "strictly increasing"):
            assert not holds(f"q {words} over digits with tolerance 1e300", s)[0]

    def test_flat_steps(self):
        s = vector_subject([0.0, 1.0, 1.0, 2.0])
        assert holds("q monotone increasing over digits", s)[0]
        passed, result = holds("q monotone increasing strictly over digits", s)
        assert not passed
        assert [r["holds"] for r in result.outcome.rows] == [True, False, True]

    def test_axis_name_is_plural_insensitive_and_checked(self):
        s = vector_subject([1.0, 2.0, 3.0], axis="digit")
        assert holds("q monotone over digits", s)[0]
        assert holds("q monotone over digit", s)[0]
        with pytest.raises(ia.UnknownNameError, match="no axis 'layers'"):
            ia.check("q monotone over layers", s)

    def test_needs_one_axis(self):
        with pytest.raises(ia.QuantityError, match="needs a single axis"):
            ia.check("W monotone over neurons", matrix_subject(np.ones((3, 2))))

    def test_single_element(self):
        s = vector_subject([1.0])
        with contextlib.suppress(ia.QuantityError):
            ia.check("q monotone over digits", s)

    def test_on_a_checkpoint_with_unicode_and_ascii_names(self, make_project):
        path = make_project("""
            - A·V monotone increasing strictly over digits
            - A.V monotone over digits
            - AV is strictly increasing over digits
            - AV monotone decreasing over digits
        """)
        statuses = [r.status for r in ia.load(path).run()]
        assert statuses == ["holds", "holds", "holds", "fails"]


# ---- rankings -----------------------------------------------------------------------------
DISTINCT = st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=2, max_size=10,
                    unique=True)


def ref_rank(values: np.ndarray, i: int, descending: bool = True) -> int:
    order = np.argsort(-values if descending else values, kind="stable")
    return int(np.flatnonzero(order == i)[0]) + 1


class TestRankings:
    @PROPERTY
    @given(DISTINCT, st.data())
    def test_top_and_bottom_k(self, values, data):
        v = np.array(values)
        n = len(v)
        s = vector_subject(v, prefix="L")
        i = data.draw(st.integers(0, n - 1), label="member")
        k = data.draw(st.integers(1, n), label="k")
        for side, descending in (("top", True), ("bottom", False)):
            rank = ref_rank(v, i, descending)
            passed, result = holds(f"L{i} in {side} {k} of q", s)
            assert passed == (rank <= k)
            assert result.outcome.rows[0]["rank"] == rank
            assert result.outcome.value == rank

    @PROPERTY
    @given(DISTINCT, st.data())
    def test_several_members_in_top_k(self, values, data):
        v = np.array(values)
        n = len(v)
        members = data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n,
                                     unique=True), label="members")
        k = data.draw(st.integers(1, n), label="k")
        s = vector_subject(v, prefix="L")
        ranks = [ref_rank(v, i) for i in members]
        names = ", ".join(f"L{i}" for i in members)
        passed, result = holds(f"{names} in top {k} of q", s)
        assert passed == (max(ranks) <= k)
        assert result.outcome.value == max(ranks)

    @PROPERTY
    @given(DISTINCT, st.data())
    def test_ranks_above(self, values, data):
        v = np.array(values)
        i, j = data.draw(st.lists(st.integers(0, len(v) - 1), min_size=2, max_size=2,
                                  unique=True), label="pair")
        s = vector_subject(v, prefix="L")
        passed, result = holds(f"L{i} ranks above L{j} in q", s)
        assert passed == (v[i] > v[j])
        assert result.outcome.value == pytest.approx(v[i] - v[j])

    @PROPERTY
    @given(DISTINCT, st.data())
    def test_argmax_argmin(self, values, data):
        v = np.array(values)
        s = vector_subject(v)
        other = data.draw(st.integers(0, len(v) - 1), label="other")
        for which, index in (("argmax", int(np.argmax(v))), ("argmin", int(np.argmin(v)))):
            passed, result = holds(f"{which} of q over digits is {index}", s)
            assert passed
            assert result.outcome.value == v[index]
            assert holds(f"{which} of q over digits is {other}", s)[0] == (other == index)

    def test_ties_share_the_better_rank(self):
        s = vector_subject([3.0, 3.0, 1.0, 5.0], prefix="L")
        assert holds("L0, L1 in top 3 of q", s)[0]
        passed, result = holds("L1 in top 2 of q", s)
        assert passed and result.outcome.value == 2
        assert not holds("L0 ranks above L1 in q", s)[0]

    def test_nan_never_ranks(self):
        s = vector_subject([np.nan, 1.0, 2.0], prefix="L")
        assert not holds("L0 in top 3 of q", s)[0]
        assert not holds("L0 in bottom 3 of q", s)[0]
        assert not holds("L0 ranks above L1 in q", s)[0]
        assert not holds("L1 ranks above L0 in q", s)[0]
        assert not holds("argmax of q over digits is L2", s)[0]
        assert not holds("argmin of q over digits is L1", s)[0]
        assert holds("L2 in top 1 of q", s)[0]

    def test_unknown_labels(self):
        s = vector_subject([1.0, 2.0], prefix="L")
        with pytest.raises(ia.UnknownNameError, match="unknown label 'L7'"):
            ia.check("argmax of q over digits is L7", s)

    def test_top_k_over_a_function_on_a_checkpoint(self, make_project):
        import torch
        from conftest import tiny_state_dict

        norms = tiny_state_dict()["blocks.0.mlp.W_out"].double().norm(dim=1).numpy()
        order = np.argsort(-norms)
        best, worst = int(order[0]), int(order[-1])
        path = make_project(f"""
            - N{best} in top 1 of norm(neurons)
            - N{worst} in top 15 of norm(neurons)
            - N{worst} in bottom 1 of norm(neurons)
            - N{best} ranks above N{worst} in norm(neurons)
            - argmax of norm(neurons) over neurons is N{best}
            - argmin of norm(neurons) over neuron is N{worst}
        """)
        assert [r.status for r in ia.load(path).run()] == [
            "holds", "fails", "holds", "holds", "holds", "holds"]
        assert torch.is_tensor(tiny_state_dict()["readout"])


# ---- aggregates ---------------------------------------------------------------------------
class TestAggregate:
    W = np.random.default_rng(3).normal(size=(6, 4))

    @pytest.mark.parametrize("how", ["all", "any", "mean", "max", "min"])
    def test_aggregates_of_norms(self, how):
        s = matrix_subject(self.W)
        norms = np.linalg.norm(self.W[[0, 2, 3, 4]], axis=1)
        reference = {"all": norms.min(), "any": norms.max(), "mean": norms.mean(),
                     "max": norms.max(), "min": norms.min()}[how]
        for bound, expect in ((reference - 1e-9, True), (reference + 1e-9, False)):
            passed, result = holds(f"{how} of N0, N2..N4 norm > {exact(bound)}", s)
            assert passed == expect
            assert result.outcome.value == pytest.approx(reference, abs=1e-12)
        values = {r["element"]: r["value"] for r in result.outcome.rows}
        assert values == pytest.approx(dict(zip(["N0", "N2", "N3", "N4"], norms)))

    def test_aggregate_over_elements_of_a_row(self):
        s = matrix_subject(self.W)
        row = self.W[1]
        passed, result = holds(f"all of N1 > {exact(row.min() - 1e-9)}", s)
        assert passed
        assert len(result.outcome.rows) == row.size
        assert holds(f"mean of N1 ≈ {exact(row.mean())} ± 1e-12", s)[0]

    def test_all_and_any_count_elements(self):
        s = vector_subject([0.1, 0.6, 0.9], prefix="L")
        passed, result = holds("all of L0..L2 > 0.5", s)
        assert not passed and "2/3 elements hold" in result.outcome.measured
        assert holds("any of L0..L2 > 0.5", s)[0]
        assert not holds("any of L0, L1 > 0.95", s)[0]
        assert holds("all of L1, L2 in [0.6, 0.9]", s)[0]

    @pytest.mark.parametrize("how", ["all", "mean", "max", "min"])
    def test_nan_element_fails(self, how):
        s = vector_subject([0.7, np.nan, 0.9], prefix="L")
        assert not holds(f"{how} of L0..L2 > 0", s)[0]

    def test_any_of_only_nan_fails(self):
        s = vector_subject([np.nan, 0.9], prefix="L")
        assert not holds("any of L0 > 0.5", s)[0]

    def test_any_with_a_nan_element_does_not_depend_on_order(self):
        first = holds("any of L0, L1 > 0.5", vector_subject([np.nan, 0.9], prefix="L"))[0]
        second = holds("any of L0, L1 > 0.5", vector_subject([0.9, np.nan], prefix="L"))[0]
        assert first == second

    def test_all_in_interval_reports_the_failing_element(self):
        s = vector_subject([0.5, 5.0], prefix="L")
        passed, result = holds("all of L0, L1 in [0, 1]", s)
        assert not passed
        assert result.outcome.value == 5.0
        assert "L1" in result.outcome.measured


# ---- compare ------------------------------------------------------------------------------
class TestCompare:
    def test_interval_and_approx_against_numpy(self):
        rng = np.random.default_rng(11)
        w = rng.normal(size=(5, 3))
        s = matrix_subject(w)
        n1 = float(np.linalg.norm(w[1]))
        passed, result = holds(f"norm(N1) in [{exact(n1 - 1e-9)}, {exact(n1 + 1e-9)}]", s)
        assert passed and result.outcome.value == pytest.approx(n1)
        assert not holds(f"norm(N1) in [{exact(n1 + 1e-9)}, {exact(n1 + 1)}]", s)[0]
        assert not holds(f"norm(N1) in [{exact(n1 - 1)}, {exact(n1 - 1e-9)}]", s)[0]
        assert holds(f"norm(N1) ≈ {exact(n1 + 0.05)} ± 0.0501", s)[0]
        assert not holds(f"norm(N1) ≈ {exact(n1 + 0.05)} ± 0.0499", s)[0]
        assert holds(f"norm(N1) ~= {exact(n1)} +/- 0", s)[0]

    @pytest.mark.parametrize("sentence, expected", [
        ("acc >= 99%", True), ("acc > 99.5%", False), ("acc ≥ 99.5%", True),
        ("acc < 1", True), ("acc <= 0.995", True), ("acc == 0.995", True),
        ("acc != 0.995", False), ("acc ≠ 0.9", True), ("acc in [99%, 100%]", True),
        ("acc ≈ 99% ± 1 point", True), ("acc ≈ 98% ± 1 point", False),
        ("acc - 0.5 > 49 points", True), ("acc * 2 > 1.98", True), ("-acc < -0.99", True),
    ])
    def test_scalar_comparisons(self, sentence, expected):
        s = ia.subject(quantities={"acc": 0.995})
        passed, result = holds(sentence, s)
        assert passed == expected
        assert result.outcome.value == pytest.approx(eval_subject(sentence))

    def test_percent_bound_is_the_decimal_value(self):
        s = ia.subject(quantities={"acc": 999 / 1000})
        assert holds("acc >= 99.9%", s)[0]

    def test_report_text(self):
        s = ia.subject(quantities={"acc": 0.5})
        with pytest.raises(ia.ClaimFailed) as info:
            ia.check("acc >= 99%", s)
        report = str(info.value)
        assert "acc >= 99%" in report
        assert "measured 0.5; expected >= 0.99" in report

    @pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
    def test_nan_or_inf_never_pass(self, bad):
        w = np.ones((3, 2))
        w[1, 0] = bad
        s = matrix_subject(w)
        for sentence in ("norm(N1) > 0", "norm(N1) < 1e300", "norm(N1) != 5", "N1[0] > -1e308",
                         "N1[0] < 1e308", "norm(N1) in [-1e308, 1e308]", "N1[0] ≈ 0 ± 1e308"):
            assert not holds(sentence, s)[0], sentence

    def test_nan_weight_in_a_checkpoint(self, tmp_path):
        import torch
        from conftest import save_checkpoint, write_claims

        save_checkpoint(tmp_path / "nan.pt", {"w": torch.tensor([1.0, float("nan")])})
        path = write_claims(tmp_path / "nan.claims.yaml", """
            subject: nan.pt
            claims:
              - norm(w) > 0
              - w[0] > 0
              - w[1] > 0
              - all of 0, 1 of w > 0
              - any of 0, 1 of w > 0
              - mean(w) > 0
        """)
        assert [r.status for r in ia.load(path).run()] == [
            "fails", "holds", "fails", "fails", "holds", "fails"]

    def test_for_each_instances(self):
        s = vector_subject([0.2, 0.5, 0.9, 0.1], prefix="L")
        passed, result = holds("L{i} > 0.15 for i in 0..2", s)
        assert passed and result.outcome.value == 1.0
        passed, result = holds("L{i} > 0.15 for i in 0..3", s)
        assert not passed and result.outcome.value == pytest.approx(0.75)
        assert "first failing i=3" in result.outcome.measured
        passed, result = holds("L{i+1} > L{i} for i in 0..2", s)
        assert not passed and result.outcome.value == pytest.approx(2 / 3)


def eval_subject(sentence: str) -> float:
    """The left-hand side of the scalar comparisons above, computed by hand."""
    acc = 0.995
    lhs = sentence.split(" ")[0:3]
    if lhs[1] == "-":
        return acc - 0.5
    if lhs[1] == "*":
        return acc * 2
    return -acc if lhs[0] == "-acc" else acc


def test_torch_tensors_are_accepted_as_quantities():
    import torch

    t = torch.tensor([[3.0, 4.0], [0.0, 1.0]], dtype=torch.float32)
    s = ia.subject(quantities={"W": t})
    result = ia.check("norm(W[0]) ≈ 5 ± 1e-6", s)
    assert result.outcome.value == pytest.approx(5.0)
