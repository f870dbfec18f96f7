"""NaN never passes: random claims with a NaN injected at each step on the way to a verdict
(bound, tolerance, an intermediate expression, the measured result); infinite bounds compare as
IEEE says; bounds that hold no value are errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import interp_assert as ia
from interp_assert import ClaimFailed, InterpAssertError, Labelled
from interp_assert.evaluate.channel_stats import samples_to_stats
from interp_assert.labels import Axis
from interp_assert.loading.subject import clear_subjects

PROPERTY = settings(max_examples=120, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

# {Q}: the vector q (5 increasing values over digit), {W}: a 4 × 4 matrix, {D}: a
# distribution; {B} a lower bound, {U} an upper bound, {T} a tolerance, {E} an energy fraction.
# Each template names the elements of q on the way to its verdict (a NaN elsewhere may rightly
# not matter: 'any of', a label ranked against others).
ALL = (0, 1, 2, 3, 4)
TEMPLATES = {
    "{Q}[2] > {B}": (2,), "{Q}[2] < {U}": (2,), "{Q}[2] in [{B}, {U}]": (2,),
    "{Q}[2] ≈ 1.5 ± {T}": (2,), "{Q}[2] != {U}": (2,), "all of 1, 2 of {Q} > {B}": (1, 2),
    "mean of 0..4 of {Q} < {U}": ALL, "any of 2 of {Q} in [{B}, {U}]": (2,),
    "{Q} increasing over digit with tolerance {T}": ALL,
    "{Q} strictly increasing over digit with tolerance {T}": ALL,
    "{Q} monotone over digit with tolerance {T}": ALL, "4 ranks above 0 in {Q}": (0, 4),
    "4 in top 3 of {Q}": (4,), "argmax of {Q} over digit is 4": ALL,
    "mean({Q}) ≈ 1.5 ± {T}": ALL, "effective_rank({W}, {E}) <= {U}": (),
    "effective rank of {W} at 90% energy <= {U}": (), "sum({W} * {W}) > {B}": (),
    "{D} has mean > {B}": (), "{D} has quantile 0.5 < {U}": (),
    "{D} has std (ddof 1) < {U}": (), "{D} has fraction |x| < {T} >= 0": (),
    "{D} peaks near 0 within {T}": (), "every neuron of {D} has kurtosis in [{B}, {U}]": (),
}
CLEAN = {"B": "(0 - 1000)", "U": "1000", "T": "100", "E": "0.9"}
NAN = "(0/0)"


def subject(rng: np.random.Generator, nan_in: str | None, positions: tuple[int, ...] = ALL
            ) -> ia.Subject:
    """q, W and d, with a NaN in one element of ``nan_in`` (``q``, ``W``, ``d``), and q0/W0:
    copies with a 0 in one element (``q0 * q0 / q0`` is NaN there only)."""
    q = np.sort(rng.uniform(1, 2, 5))
    w = rng.normal(size=(4, 4))
    d = rng.normal(size=(400, 2))
    q0, w0 = q.copy(), w.copy()
    q0[rng.choice(positions)] = 0.0
    w0[tuple(rng.integers(4, size=2))] = 0.0
    if nan_in == "q":
        q[rng.choice(positions)] = np.nan
    elif nan_in == "W":
        w[tuple(rng.integers(4, size=2))] = np.nan
    elif nan_in == "d":
        d[rng.integers(400), rng.integers(2)] = np.nan
    digits = (Axis("digit", tuple(str(i) for i in range(5))),)
    stats = samples_to_stats(d)
    clear_subjects()
    return ia.subject(quantities={
        "q": Labelled(q, digits), "q0": Labelled(q0, digits),
        "W": Labelled(w, (Axis("row"), Axis("col"))), "W0": Labelled(w0, (Axis("row"),
                                                                         Axis("col"))),
        "d": Labelled(stats.mean(), (Axis("neuron", ("N0", "N1")),), "d", {"stats": stats})})


def passes(sentence: str, s: ia.Subject) -> bool | str:
    """True/False, or 'error' for a claim error."""
    try:
        return bool(s.check(sentence).passed)
    except ClaimFailed:
        return False
    except InterpAssertError:
        return "error"


def fill(template: str, **override: str) -> str:
    names = {"Q": "q", "W": "W", "D": "d", **CLEAN, **override}
    return template.format(**names)


@PROPERTY
@given(template=st.sampled_from(sorted(TEMPLATES)),
       step=st.sampled_from(["bound", "tolerance", "intermediate", "result"]),
       seed=st.integers(0, 2**16))
def test_a_nan_anywhere_never_passes(template: str, step: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    clean = fill(template)
    assert passes(clean, subject(rng, None)) is True, clean  # without the NaN it holds
    rng = np.random.default_rng(seed)
    if step == "bound":
        slots = [k for k in ("B", "U", "E") if "{" + k + "}" in template]
        injected = {k: NAN for k in slots[:1]}
    elif step == "tolerance":
        injected = {"T": NAN} if "{T}" in template else {}
    elif step == "intermediate":
        injected = ({"Q": "(q0 * q0 / q0)"} if "{Q}" in template else
                    {"W": "(W0 * W0 / W0)"} if "{W}" in template else {})
    else:
        injected = {}
    if step != "result" and not injected:
        return  # this claim has no such step
    where = None
    if step == "result":
        where = "q" if "{Q}" in template else "W" if "{W}" in template else "d"
    sentence = fill(template, **injected)
    verdict = passes(sentence, subject(rng, where, TEMPLATES[template] or ALL))
    assert verdict is not True, f"{sentence} passed with a NaN at the {step}"


# ---- the examples --------------------------------------------------------------------
@pytest.fixture
def av() -> ia.Subject:
    """A·V increasing over digits, as on the adder."""
    clear_subjects()
    values = np.array([0.1, 0.4, 0.9, 1.7, 2.0])
    return ia.subject(quantities={"AV": Labelled(values, (Axis("digit", tuple("01234")),))})


def test_strictly_decreasing_with_a_nan_tolerance_is_an_error(av: ia.Subject) -> None:
    with pytest.raises(InterpAssertError, match="tolerance") as caught:
        av.check("AV strictly decreasing over digit with tolerance 0/0")
    assert "NaN" in str(caught.value)
    with pytest.raises(InterpAssertError, match="tolerance"):
        av.check("AV increasing over digit with tolerance (0 - 1)")
    assert passes("AV strictly increasing over digit with tolerance 0", av) is True


def test_the_effective_rank_of_a_zero_matrix_is_undefined() -> None:
    clear_subjects()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 5)) @ np.diag([5, 3, 1, 0.1, 0.01])
    s = ia.subject(quantities={"Z": Labelled(np.zeros((4, 4)), (Axis("a"), Axis("b"))),
                               "X": Labelled(x, (Axis("a"), Axis("b")))})
    with pytest.raises(InterpAssertError, match="all zeros"):
        s.check("effective rank of Z at 90% energy <= 4")
    assert passes("effective_rank(Z, 0.9) <= 4", s) is False  # NaN: never passes
    with pytest.raises(InterpAssertError, match="energy"):
        s.check("effective_rank(X, 0/0) <= 5")
    # the reference: numpy's singular values
    singular = np.linalg.svd(x, compute_uv=False)
    energy = np.cumsum(singular**2) / np.sum(singular**2)
    for fraction in (0.5, 0.9, 0.99, 0.999999):
        expected = int(np.argmax(energy >= fraction - 1e-12)) + 1
        value = s.check(f"effective_rank(X, {fraction}) >= 0").outcome.value
        assert value == expected
        assert s.check(f"effective rank of X at {fraction * 100:g}% energy >= 0").outcome.value \
            == expected


# ---- infinite bounds and impossible bounds ---------------------------------------------------
@pytest.mark.parametrize("x", [-1e300, -2.5, 0.0, 3.0, 1e300])
def test_infinite_bounds_compare_as_ieee_says(x: float) -> None:
    clear_subjects()
    s = ia.subject(quantities={"x": np.float64(x)})
    inf = float("inf")
    cases = {"x < exp(1000)": x < inf, "x > -exp(1000)": x > -inf, "x > exp(1000)": x > inf,
             "x <= -exp(1000)": x <= -inf, "x in [-exp(1000), exp(1000)]": -inf <= x <= inf,
             "x in [exp(1000), exp(1000)]": inf <= x <= inf, "x != exp(1000)": x != inf,
             "x == exp(1000)": x == inf, "x ≈ 0 ± exp(1000)": abs(x - 0) <= inf,
             "x ≈ exp(1000) ± 1": False}
    for sentence, expected in cases.items():
        assert passes(sentence, s) is expected, sentence


def test_an_infinite_measured_value_never_passes() -> None:
    clear_subjects()
    s = ia.subject(quantities={"x": np.float64(math.inf)})
    for sentence in ("x > 0", "x >= exp(1000)", "x in [0, exp(1000)]", "x != 1"):
        assert passes(sentence, s) is False, sentence


@pytest.mark.parametrize("sentence, match", [
    ("x in [2, 0.5]", "reversed"), ("x ≈ 1 ± (0 - 0.1)", "negative"),
    ("x > 0/0", "NaN"), ("x in [0, 0/0]", "NaN"), ("x ≈ 1 ± 0/0", "NaN"),
    ("0 in top 0 of v", "selects nothing"), ("0 in top 300 of v", "more than there are"),
    ("0 in bottom 300 of v", "more than there are"),
])
def test_bounds_that_hold_no_value_are_clear_errors(sentence: str, match: str) -> None:
    clear_subjects()
    v = Labelled(np.arange(256.0), (Axis("unit", tuple(str(i) for i in range(256))),))
    s = ia.subject(quantities={"x": np.float64(1.0), "v": v})
    with pytest.raises(InterpAssertError, match=match) as caught:
        s.check(sentence)
    assert caught.value.hint  # each says how to fix it
