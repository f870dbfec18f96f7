"""The bootstrap intervals of ``evaluate/intervals.py`` against scipy on fixed data: the same
resample indices (scipy draws ``rng.integers(0, n, (batch, n))`` per batch, as we do), so the
numbers agree exactly, not merely to Monte-Carlo error."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from interp_assert.evaluate import intervals
from interp_assert.evaluate.stats import bootstrap_mean, interval_for, wilson


def _scipy(data: tuple[np.ndarray, ...], statistic, level: float = 0.95, paired: bool = True):
    result = scipy_stats.bootstrap(data, statistic, n_resamples=intervals.RESAMPLES,
                                   batch=intervals.BLOCK, paired=paired, vectorized=True,
                                   method="percentile", confidence_level=level,
                                   rng=np.random.default_rng(intervals.SEED))
    return result.confidence_interval.low, result.confidence_interval.high


@pytest.mark.parametrize("level", [0.9, 0.95, 0.99])
def test_mean_matches_scipy_exactly(level: float) -> None:
    samples = np.random.default_rng(3).normal(1.0, 2.0, 137)
    low, high = intervals.mean_interval(samples, level)
    ref = _scipy((samples,), lambda x, axis=-1: np.mean(x, axis=axis), level, paired=False)
    assert (low, high) == pytest.approx(ref, abs=1e-12)
    # and evaluate.stats' interval of the mean is unchanged: the same numbers
    assert bootstrap_mean(samples, level) == pytest.approx((low, high), abs=1e-12)


def test_ratio_of_sums_over_clusters_matches_scipy_paired() -> None:
    rng = np.random.default_rng(4)
    totals = rng.integers(1, 12, 80).astype(float)  # tokens per sequence
    correct = rng.binomial(totals.astype(int), 0.8).astype(float)
    low, high = intervals.ratio_interval(correct, totals, 0.95)
    ref = _scipy((correct, totals), lambda c, t, axis=-1: c.sum(axis) / t.sum(axis))
    assert (low, high) == pytest.approx(ref, abs=1e-12)
    assert low < correct.sum() / totals.sum() < high
    # a cluster interval is wider than Wilson's over tokens when sequences differ
    assert high - low > 0


@pytest.mark.parametrize("change", ["drop", "rise", "change"])
def test_paired_difference_matches_scipy_paired(change: str) -> None:
    rng = np.random.default_rng(5)
    before = rng.normal(2.0, 1.0, 60)
    after = before - 0.3 + rng.normal(0, 0.2, 60)  # strongly paired
    low, high = intervals.paired_interval(before, after, change, 0.95)
    sign = {"drop": lambda b, a: b - a, "rise": lambda b, a: a - b,
            "change": lambda b, a: np.abs(a - b)}[change]
    ref = _scipy((before, after), lambda b, a, axis=-1: sign(b.mean(axis), a.mean(axis)))
    assert (low, high) == pytest.approx(ref, abs=1e-12)
    # pairing: far narrower than resampling the two sides independently
    u_low, u_high = intervals.unpaired_interval(before, after, change, 0.95)
    if change == "drop":
        assert high - low < 0.5 * (u_high - u_low)
        assert low < before.mean() - after.mean() < high


def test_recovery_ratio_of_paired_means_matches_scipy() -> None:
    rng = np.random.default_rng(6)
    target = rng.normal(0.0, 0.5, 50)
    source = target + 3 + rng.normal(0, 0.3, 50)
    patched = target + 2.4 + rng.normal(0, 0.3, 50)
    low, high = intervals.paired_interval(target, patched, "recover", 0.9, source)
    ref = _scipy((target, patched, source), lambda t, p, s, axis=-1:
                 (p.mean(axis) - t.mean(axis)) / (s.mean(axis) - t.mean(axis)), 0.9)
    assert (low, high) == pytest.approx(ref, abs=1e-12)
    point = (patched.mean() - target.mean()) / (source.mean() - target.mean())
    assert low < point < high


@pytest.mark.parametrize(("name", "options", "reference"), [
    ("std", {"ddof": 1}, lambda x, axis=-1: np.std(x, axis=axis, ddof=1)),
    ("var", {}, lambda x, axis=-1: np.var(x, axis=axis)),
    ("kurtosis", {}, lambda x, axis=-1: scipy_stats.kurtosis(x, axis=axis)),
    ("skew", {"unbiased": True}, lambda x, axis=-1: scipy_stats.skew(x, axis=axis, bias=False)),
    ("quantile", {"q": 0.9, "method": "lower"},
     lambda x, axis=-1: np.quantile(x, 0.9, axis=axis, method="lower")),
    ("median", {}, lambda x, axis=-1: np.median(x, axis=axis)),
    ("fraction", {"var": "|x|", "op": "<", "threshold": 0.5},
     lambda x, axis=-1: np.mean(np.abs(x) < 0.5, axis=axis)),
    ("max", {}, lambda x, axis=-1: np.max(x, axis=axis)),
])
def test_distribution_statistics_match_scipy(name: str, options: dict, reference) -> None:
    samples = np.random.default_rng(7).standard_t(5, 150)
    low, high = intervals.statistic_interval(samples, name, 0.95, **options)
    ref = _scipy((samples,), reference, paired=False)
    assert (low, high) == pytest.approx(ref, abs=1e-12)


def test_statistic_over_sequences_resamples_whole_sequences() -> None:
    """Tokens grouped by sequence (4 consecutive values each) are resampled together: the
    same numbers as scipy resampling the sequence index, pooling the chosen sequences."""
    rng = np.random.default_rng(8)
    seqs = rng.normal(0, 1, (40, 1)) + rng.normal(0, 0.1, (40, 4))  # correlated within
    low, high = intervals.statistic_interval(seqs.reshape(-1), "mean", 0.95, unit_rows=4)
    index = np.arange(40.0)
    ref = _scipy((index,), lambda i, axis=-1: seqs[i.astype(int)].reshape(i.shape[0], -1)
                 .mean(axis=-1))
    assert (low, high) == pytest.approx(ref, abs=1e-12)
    t_low, t_high = intervals.statistic_interval(seqs.reshape(-1), "mean", 0.95)
    assert high - low > 1.5 * (t_high - t_low)  # tokens as units would be overconfident


def test_wilson_still_matches_scipy_through_interval_of() -> None:
    expected = scipy_stats.binomtest(37, 40).proportion_ci(0.95, method="wilson")
    meta = {"successes": np.array(37), "trials": np.array(40)}
    assert intervals.interval_of(meta) == pytest.approx((expected.low, expected.high),
                                                        abs=1e-12)
    assert interval_for(meta) == wilson(37, 40)


def test_nan_policy() -> None:
    nan = (float("nan"), float("nan"))
    values = np.array([1.0, np.nan, 2.0])
    assert np.isnan(intervals.mean_interval(values)).all()
    assert np.isnan(intervals.paired_interval(np.ones(3), values)).all()
    assert np.isnan(intervals.ratio_interval(np.zeros(3), np.zeros(3))).all()  # 0/0 resamples
    assert np.isnan(intervals.mean_interval(np.array([]))).all()
    assert np.isnan(intervals.statistic_interval(values, "std")).all()
    assert nan != intervals.mean_interval(np.ones(3))


def test_interval_of_reads_each_kind_of_meta() -> None:
    before, after = np.arange(10.0), np.arange(10.0) - 1
    paired = intervals.interval_of({"paired": (before, after), "change": "drop"})
    assert paired == pytest.approx((1.0, 1.0))  # every unit drops by exactly 1
    clusters = intervals.interval_of({"successes": np.array(5), "trials": np.array(10),
                                      "clusters": (np.array([5.0, 0]), np.array([5.0, 5]))})
    assert clusters[0] == 0.0 and clusters[1] == 1.0
    assert intervals.units_of({"clusters": (np.ones(7), np.ones(7))}) == 7
    assert intervals.units_of({"samples": np.ones(12), "unit_rows": 4}) == 3
    assert intervals.interval_of({"context": {}}) is None


def test_sums_and_differences_keep_their_per_sample_values() -> None:
    from interp_assert.labels import Labelled

    a = np.array([1.0, 2.0, 4.0])
    b = np.array([0.5, 0.5, 2.0])

    def value(samples: np.ndarray | None, number: float) -> Labelled:
        return Labelled(np.array(number), (), "v", {} if samples is None
                        else {"samples": samples})

    assert intervals.combined_samples("-", value(a, a.mean()), value(b, b.mean())) == \
        pytest.approx(a - b)
    assert intervals.combined_samples("*", value(None, 2.0), value(a, a.mean())) == \
        pytest.approx(2 * a)
    assert intervals.combined_samples("/", value(a, a.mean()), value(None, 4.0)) == \
        pytest.approx(a / 4)
    # the mean of c / x_i is not c / mean(x), nor of x_i * y_i the product of the means
    assert intervals.combined_samples("/", value(None, 2.0), value(a, a.mean())) is None
    assert intervals.combined_samples("*", value(a, a.mean()), value(b, b.mean())) is None
    # samples that are not the value's (a pooled statistic): nothing
    assert intervals.combined_samples("+", value(a, 9.0), value(b, b.mean())) is None


def test_baseline_entries_keep_per_sample_values_and_read_older_files(tmp_path) -> None:
    import json

    from interp_assert.output.baseline import BaselineStore
    from interp_assert.output.unit_samples import decode_samples, encode_samples

    values = np.random.default_rng(9).normal(size=50)
    text = encode_samples(values)
    assert decode_samples(text) == pytest.approx(values, abs=0)  # exact float64
    assert decode_samples("f8z:3:not base64!") is None and decode_samples("x") is None
    path = tmp_path / "b.json"
    store = BaselineStore(path, "b.json")
    records = [{"file": "a.claims.yaml", "name": "sure", "value": 0.5, "samples": text,
                "dataset": "d (n=50)"},
               {"file": "a.claims.yaml", "name": "plain", "value": 0.25}]
    assert store.update(records, tmp_path) == 2
    store.save()
    data = json.loads(path.read_text(encoding="utf-8"))["files"]["a.claims.yaml"]
    assert set(data["plain"]) == {"value", "checkpoint", "sha256"}  # the format as before
    loaded = BaselineStore.load(path).get(tmp_path / "a.claims.yaml", "sure")
    assert loaded is not None and loaded.dataset == "d (n=50)"
    assert loaded.unit_samples()["samples"] == pytest.approx(values, abs=0)
    assert BaselineStore.load(path).get(tmp_path / "a.claims.yaml", "plain").unit_samples() \
        is None
