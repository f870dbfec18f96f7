"""Statistical conventions against independent references (numpy, scipy, pandas): quantile
methods and exact quantiles, histogram error bounds that never decide a verdict, ddof and
unbiased moments, the peak detector's settings, and table NaN policies."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import interp_assert as ia
from interp_assert import ClaimFailed, ClaimResult, InterpAssertError, Labelled
from interp_assert.evaluate import channel_peaks
from interp_assert.evaluate.channel_stats import QUANTILE_METHODS, channels_of, samples_to_stats
from interp_assert.evaluate.streaming import StreamingStats
from interp_assert.labels import Axis
from interp_assert.resources import set_memory_limit

PROPERTY = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])


def distribution(samples: np.ndarray, keep: bool = True, bins: int = 1024) -> Labelled:
    """A ``distribution:``-like quantity; ``keep=False``: histograms only (as when the samples
    do not fit the memory limit)."""
    samples = np.asarray(samples, dtype=float).reshape(len(samples), -1)
    stats = StreamingStats(samples.shape[1], bins, keep_samples=keep)
    for start in range(0, len(samples), 4096):
        stats.update(samples[start:start + 4096])
    labels = tuple(f"N{i}" for i in range(samples.shape[1]))
    return Labelled(stats.mean(), (Axis("neuron", labels),), "d", {"stats": stats})


def run(sentence: str, **quantities: object) -> ClaimResult:
    """Evaluate a sentence: its result, failed or not (errors raise)."""
    try:
        return ia.subject(quantities=quantities).check(sentence)
    except ClaimFailed as failed:
        assert isinstance(failed.result, ClaimResult)
        return failed.result


def mostly_zeros(n: int = 20_000, zeros: float = 0.966, seed: int = 0) -> np.ndarray:
    """The issue's channel: 96.6% exact zeros, the rest exponential."""
    rng = np.random.default_rng(seed)
    return np.where(rng.random(n) < zeros, 0.0, rng.exponential(size=n))


# ---- quantiles -------------------------------------------------------------------------------
def test_the_mostly_zero_channel_has_quantile_0_9_equal_to_0() -> None:
    x = mostly_zeros()
    assert np.quantile(x, 0.9) == 0.0
    result = run("d has quantile 0.9 <= 0", d=distribution(x))
    assert result.passed and result.outcome.value == np.quantile(x, 0.9)


@pytest.mark.parametrize("method", QUANTILE_METHODS)
@pytest.mark.parametrize("q", [0.1, 0.5, 0.9, 0.97, 0.999])
def test_exact_quantiles_match_numpy_for_every_method(method: str, q: float) -> None:
    x = np.random.default_rng(1).standard_t(3, size=5_001)
    d = distribution(x)
    default = run(f"d has quantile {q} > -1e9", d=d).outcome.value
    assert default == np.quantile(x, q)  # linear, numpy's default
    chosen = run(f"d has quantile {q} ({method}) > -1e9", d=d).outcome.value
    assert chosen == np.quantile(x, q, method=method)
    median = run(f"d has median (method {method}) > -1e9", d=d).outcome.value
    assert median == np.quantile(x, 0.5, method=method)


def test_quantile_options_round_trip_and_unknown_ones_are_errors() -> None:
    from interp_assert.claims import parse_claim

    for text in ("d has quantile 0.9 (method lower) <= 0", "d has median (method nearest) < 1",
                 "d has std (ddof 1) > 0", "d has kurtosis (unbiased) > 0",
                 "d has skew (biased) > 0", "d is unimodal (bins 32, prominence 0.1)"):
        claim = parse_claim(text).claim
        assert parse_claim(str(claim)).claim == claim
    with pytest.raises(InterpAssertError, match="not an option of quantile"):
        run("d has quantile 0.9 (ddof 1) <= 0", d=distribution(mostly_zeros()))
    with pytest.raises(InterpAssertError, match="unknown quantile method"):
        run("d has median (method fancy) <= 0", d=distribution(mostly_zeros()))


def test_a_histogram_quantile_inside_its_error_bound_is_an_error_not_a_verdict() -> None:
    x = mostly_zeros()
    d = distribution(x, keep=False)
    with pytest.raises(InterpAssertError, match="cannot decide within histogram resolution") \
            as caught:
        run("d has quantile 0.9 <= 0", d=d)
    assert "memory limit" in caught.value.hint
    # a bound well outside the interval is decided, and agrees with numpy
    assert run("d has quantile 0.9 <= 0.5", d=d).passed
    assert not run("d has quantile 0.99 <= 0.01", d=d).passed


def test_samples_over_the_memory_limit_fall_back_to_bounded_histograms() -> None:
    x = mostly_zeros()
    try:
        set_memory_limit(8 * len(x))  # the samples need 2 × 8 bytes × n: more than 25% of it
        d = distribution(x)
    finally:
        set_memory_limit(None)
    stats = d.meta["stats"]
    assert not stats.exact and "memory limit" in stats.dropped
    with pytest.raises(InterpAssertError, match="cannot decide"):
        run("d has quantile 0.9 <= 0", d=d)


@PROPERTY
@given(seed=st.integers(0, 10_000), q=st.floats(0, 1), method=st.sampled_from(QUANTILE_METHODS),
       zeros=st.floats(0, 0.99), scale=st.floats(1e-3, 1e3))
def test_histogram_bounds_hold_the_true_quantile(seed: int, q: float, method: str,
                                                 zeros: float, scale: float) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3_000))
    x = np.where(rng.random(n) < zeros, 0.0, rng.standard_t(2, size=n) * scale)
    channel = channels_of(samples_to_stats(x[:, None]))[0]
    channel.samples = None  # as when the samples were not kept
    low, high = channel.quantile_bounds(q, method)
    truth = float(np.quantile(x, q, method=method))
    assert low <= truth <= high


@PROPERTY
@given(seed=st.integers(0, 10_000), t=st.floats(-3, 3), var=st.sampled_from(["x", "|x|"]),
       op=st.sampled_from(["<", "<=", ">", ">="]))
def test_histogram_bounds_hold_the_true_fraction(seed: int, t: float, var: str, op: str) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=int(rng.integers(1, 3_000))).round(int(rng.integers(1, 4)))
    channel = channels_of(samples_to_stats(x[:, None]))[0]
    values = np.abs(x) if var == "|x|" else x
    truth = float(np.mean({"<": values < t, "<=": values <= t, ">": values > t,
                           ">=": values >= t}[op]))
    exact, _ = channel.fraction(var, op, t)
    assert exact == truth  # kept samples: exact
    channel.samples = None
    low, high = channel.fraction_bounds(var, op, t)
    assert low - 1e-12 <= truth <= high + 1e-12


@PROPERTY
@given(seed=st.integers(0, 10_000), q=st.sampled_from([0.05, 0.5, 0.9, 0.99]),
       bound=st.floats(-2, 2))
def test_a_histogram_verdict_is_numpys_verdict_or_an_error(seed: int, q: float,
                                                           bound: float) -> None:
    rng = np.random.default_rng(seed)
    x = np.where(rng.random(2_000) < 0.5, 0.0, rng.normal(size=2_000))
    truth = bool(np.quantile(x, q) <= bound)
    try:
        verdict = run(f"d has quantile {q} <= {bound!r}", d=distribution(x, keep=False)).passed
    except InterpAssertError as error:
        assert "cannot decide" in str(error)
        return
    assert verdict == truth


# ---- moments ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def skewed() -> np.ndarray:
    return np.random.default_rng(3).gamma(0.7, size=3_001)


def test_moments_match_pandas_and_scipy(skewed: np.ndarray) -> None:
    d = distribution(skewed)
    series = pd.Series(skewed)
    cases = {"std": np.std(skewed), "std (ddof 1)": series.std(), "var": np.var(skewed),
             "var (ddof 1)": series.var(), "kurtosis": scipy.stats.kurtosis(skewed),
             "kurtosis (unbiased)": series.kurt(), "skew": scipy.stats.skew(skewed),
             "skew (unbiased)": series.skew(), "skewness (biased)": scipy.stats.skew(skewed)}
    for text, expected in cases.items():
        value = run(f"d has {text} > -1e9", d=d).outcome.value
        assert value == pytest.approx(float(expected), rel=1e-9), text


def test_expression_functions_take_the_same_options(skewed: np.ndarray) -> None:
    skewed = skewed[:3_000]
    x = Labelled(skewed.reshape(3, -1), (Axis("row"), Axis("sample")), "x")
    series = pd.Series(skewed)
    cases = {"std(x, all, 1)": series.std(), "var(x, all, 1)": series.var(),
             "std(x)": np.std(skewed), "var(x, all)": np.var(skewed),
             "kurtosis(x, all, unbiased)": series.kurt(),
             "kurtosis(x, all)": scipy.stats.kurtosis(skewed),
             "skew(x, all, unbiased)": series.skew(), "skew(x, all)": scipy.stats.skew(skewed),
             "std(x, sample, 1)[0]": np.std(skewed.reshape(3, -1)[0], ddof=1)}
    for text, expected in cases.items():
        value = run(f"{text} > -1e9", x=x).outcome.value
        assert value == pytest.approx(float(expected), rel=1e-9), text
    with pytest.raises(InterpAssertError, match="ddof"):
        run("std(x, all, 0.5) > 0", x=x)


# ---- the peak detector -----------------------------------------------------------------------
def test_peak_settings_are_scipy_find_peaks_settings() -> None:
    from scipy.signal import find_peaks

    rng = np.random.default_rng(5)
    x = np.concatenate([rng.normal(0, 1, 20_000), rng.normal(3.2, 0.5, 6_000)])
    d = distribution(x)
    channel = channels_of(d.meta["stats"])[0]
    for options, settings_ in (("", channel_peaks.PeakSettings()),
                               ("(bins 20)", channel_peaks.PeakSettings(bins=20)),
                               ("(bins 40, distance 30)",
                                channel_peaks.PeakSettings(bins=40, distance=30)),
                               ("(prominence 0.9)", channel_peaks.PeakSettings(prominence=0.9)),
                               ("(height 0.5)", channel_peaks.PeakSettings(height=0.5))):
        modes = channel.modes(settings_)
        if settings_.bins is not None:
            assert len(modes.counts) == settings_.bins
        # the reference: scipy on the same histogram with the documented rule
        padded = np.concatenate([[0.0], modes.counts, [0.0]])
        found, props = find_peaks(padded, prominence=0, distance=settings_.distance,
                                  height=settings_.height * modes.counts.max())
        heights = padded[found]
        noise = settings_.sigmas * np.sqrt(2 * heights - props["prominences"])
        keep = props["prominences"] >= np.maximum(settings_.prominence * modes.counts.max(),
                                                  noise)
        keep[np.argmax(heights)] = True
        assert len(modes.locations) == int(keep.sum()), options
        result = run(f"d has peaks {options} >= 1", d=d)
        assert result.outcome.value == int(keep.sum()), options
    assert run("d is multimodal", d=d).passed
    assert run("d is unimodal (distance 64)", d=d).passed  # peaks closer than 64 bins merge


def test_the_peak_docstring_states_the_defaults() -> None:
    default = channel_peaks.PeakSettings()
    doc = channel_peaks.__doc__
    assert f"[{default.prominence:g}]" in doc and f"[{default.sigmas:g}]" in doc
    assert f"8..{channel_peaks.MAX_BINS}" in doc and f"[{default.distance} bin]" in doc


def test_bad_peak_settings_are_errors() -> None:
    d = distribution(mostly_zeros())
    for text, match in (("(bins 2)", "bins"), ("(prominence 2)", "prominence"),
                        ("(distance 0)", "distance"), ("(sigmas x)", "number")):
        with pytest.raises(InterpAssertError, match=match):
            run(f"d is unimodal {text}", d=d)


# ---- tables: NaN policy ----------------------------------------------------------------------
@pytest.fixture
def nan_table(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    rng = np.random.default_rng(2)
    rows = []
    for g in ("a", "b"):
        for _ in range(20):
            rows.append({"group": g, "cells": rng.uniform(0, 1, 4).round(6).tolist()})
    rows[3]["cells"][1] = float("nan")  # group a, data row 4
    rows[25]["cells"] = [float("nan")] * 4  # group b, data row 26: only NaN
    frame = pd.DataFrame(rows)
    frame.assign(cells=[json.dumps(c) for c in frame.cells]).to_csv(tmp_path / "t.csv",
                                                                     index=False)
    return tmp_path, frame


def table_quantity(folder: Path, **options: object) -> Labelled:
    from interp_assert.evaluate.evaluation import Evaluation
    from interp_assert.run.runner import load_claim_file

    definition = {"table": "t.csv", "column": "cells", "per_row": "mean", "group_by": "group",
                  **options}
    path = folder / "q.claims.yaml"
    path.write_text(json.dumps({"quantities": {"q": definition}, "claims": []}),
                    encoding="utf-8")
    claim_file = load_claim_file(path)
    if "q" in claim_file.quantity_errors:
        raise claim_file.quantity_errors["q"]
    return Evaluation(claim_file, None).quantity("q")


def test_nan_propagates_by_default_and_the_rows_are_named(nan_table) -> None:
    folder, frame = nan_table
    q = table_quantity(folder)
    per_row = frame.cells.apply(np.mean).to_numpy()  # numpy: NaN propagates
    expected = np.array([np.mean(per_row[frame.group == g]) for g in ("a", "b")])
    assert np.isnan(expected).all() and np.isnan(q.values).all()
    note = next(v for k, v in q.meta["context"].items() if k.startswith("NaN"))
    assert "rows 4, 26" in note and "group a, b" in note and "nan: omit" in note


def test_nan_omit_matches_pandas_skipna(nan_table) -> None:
    folder, frame = nan_table
    q = table_quantity(folder, nan="omit")
    per_row = frame.cells.apply(lambda c: pd.Series(c).mean())
    expected = per_row.groupby(frame.group).mean()  # pandas skips NaN at both steps
    np.testing.assert_allclose(q.values, expected.to_numpy(), rtol=1e-12)
    assert "rows 4, 26" in q.meta["context"]["NaN values omitted ('nan: omit')"]
    dist = table_quantity(folder, nan="omit", **{"as": "distribution", "per_row": None})
    pooled = np.concatenate([np.asarray(c) for c in frame.cells[frame.group == "a"]])
    assert dist.values[0] == pytest.approx(np.nanmean(pooled), rel=1e-12)
    with pytest.raises(InterpAssertError, match="propagate, omit"):
        table_quantity(folder, nan="skip")


# ---- memory ------------------------------------------------------------------------------------
def test_kept_samples_are_exact_and_taken_per_channel() -> None:
    x = np.random.default_rng(9).normal(size=(3_000, 5)).astype(np.float32)
    stats = StreamingStats(5)
    for part in np.array_split(x, 7):
        stats.update(part)
    np.testing.assert_array_equal(stats.samples(), x.T)
    np.testing.assert_array_equal(stats.take([3, 1]).samples(), x.T[[3, 1]])
    channel = channels_of(stats)[2]
    assert channel.quantile(0.3) == np.quantile(x[:, 2].astype(np.float64), 0.3)
    assert math.isfinite(channel.quantile(0.3))
