"""Distribution claims over streaming statistics, checked against numpy/scipy on known samples."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

import interp_assert as ia
from interp_assert import ClaimFailed, ClaimResult, Labelled, QuantityError
from interp_assert.claims import parse_claim
from interp_assert.claims.distribution import DistributionClaim
from interp_assert.evaluate.channel_stats import channels_of, samples_to_stats
from interp_assert.evaluate.streaming import StreamingStats
from interp_assert.labels import Axis

N = 20_000


def distribution(samples: np.ndarray, labels: list[str] | None = None,
                 thresholds: tuple[float, ...] = ()) -> Labelled:
    """A quantity like a ``distribution:`` one: per-channel means plus streaming stats."""
    samples = np.asarray(samples, dtype=float)
    if samples.ndim == 1:
        samples = samples[:, None]
    stats = samples_to_stats(samples, thresholds=thresholds, chunk=4096)
    labels = labels or [f"N{i}" for i in range(samples.shape[1])]
    return Labelled(stats.mean(), (Axis("neuron", tuple(labels)),), "d", {"stats": stats})


def run(sentence: str, plot_dir: Path | None = None, **quantities: object) -> ClaimResult:
    """Evaluate a sentence; failures return their result instead of raising."""
    subject = ia.subject(quantities=quantities)
    try:
        return subject.check(sentence, plot_dir=plot_dir)
    except ClaimFailed as failed:
        assert isinstance(failed.result, ClaimResult)
        return failed.result


@pytest.fixture(scope="module")
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="module")
def shapes(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "gauss": rng.normal(size=N),
        "relu": np.maximum(rng.normal(size=N), 0.0),
        "expo": rng.exponential(size=N),
        "uniform": rng.uniform(size=N),
        "bimodal": np.concatenate([rng.normal(-2, 0.5, N // 2), rng.normal(2, 0.5, N // 2)]),
        "shifted": rng.normal(3.0, 1.0, size=N),
    }


# ---- the language ----------------------------------------------------------------------------
@pytest.mark.parametrize("text", [
    "post[L1N5] is unimodal",
    "post[L1N5] is multimodal",
    "post[L1N5] peaks near 0 within 0.1 std",
    "post[L1N5] peaks near -1 within 0.5",
    "post[L1N5] has fraction |x| < 0.1 >= 0.9",
    "post[L1N5] has fraction x > 0.5 std <= 0.2",
    "post[L1N5] has kurtosis in [2, 10]",
    "post[L1N5] has quantile 0.99 < 3",
    "post has peaks == 1",
    "every neuron of post is unimodal",
    "each neuron of post has mean > 0",
    "all neurons of post are unimodal",
    "mostly neurons of post peak near 0 within 0.1 std",
    "at least 80% of neurons of post have fraction |x| < 0.1 >= 0.9",
    "at most 5% of neurons of post are multimodal",
    "at least 3 of neurons of post[N0:N9] have median ≈ 0 ± 0.1",
])
def test_forms_parse_and_round_trip(text: str) -> None:
    first = parse_claim(text)
    assert isinstance(first.claim, DistributionClaim)
    printed = str(first)
    assert parse_claim(printed).claim == first.claim
    assert str(parse_claim(printed)) == printed


def test_verbs_agree_loosely() -> None:
    a = parse_claim("every neuron of post are unimodal").claim
    b = parse_claim("every neuron of post is unimodal").claim
    c = parse_claim("mostly neurons of post peaks near 0 within 1").claim
    assert a == b
    assert str(c) == "mostly neurons of post peak near 0 within 1"
    assert str(parse_claim("post has excess kurtosis > 1")) == "post has kurtosis > 1"
    assert str(parse_claim("post has fraction of |x|<0.1>=0.5")) == \
        "post has fraction |x| < 0.1 >= 0.5"


# ---- unimodality and peaks -------------------------------------------------------------------
@pytest.mark.parametrize("shape", ["gauss", "relu", "expo", "uniform", "shifted"])
def test_unimodal_shapes(shapes: dict[str, np.ndarray], shape: str) -> None:
    result = run("d is unimodal", d=distribution(shapes[shape]))
    assert result.passed, result.outcome.measured
    assert result.outcome.value == 1


def test_bimodal_mixture_is_not_unimodal(shapes: dict[str, np.ndarray]) -> None:
    result = run("d is unimodal", d=distribution(shapes["bimodal"]))
    assert not result.passed
    assert result.outcome.value == 2
    peaks = sorted(result.outcome.plot_data["peaks"])
    assert peaks == pytest.approx([-2, 2], abs=0.15)
    assert run("d is multimodal", d=distribution(shapes["bimodal"])).passed


def test_relu_gaussian_peaks_near_zero(shapes: dict[str, np.ndarray]) -> None:
    d = distribution(np.stack([shapes["relu"], shapes["shifted"]], axis=1))
    assert run("d[N0] peaks near 0 within 0.1 std", d=d).passed
    shifted = run("d[N1] peaks near 0 within 0.1 std", d=d)
    assert not shifted.passed
    assert shifted.outcome.value == pytest.approx(3.0, abs=0.3)  # in units of its std (1)
    assert run("d[N1] peaks near 3 within 0.3 std", d=d).passed
    assert run("d[N1] peaks near 3 within 0.3", d=d).passed


def test_peak_statistics_and_functions(shapes: dict[str, np.ndarray]) -> None:
    d = distribution(np.stack([shapes["relu"], shapes["bimodal"]], axis=1))
    assert run("d[N0] has peak == 0", d=d).passed
    assert run("d[N1] has peaks == 2", d=d).passed
    assert run("max(npeaks(d)) == 2", d=d).passed
    assert run("peak(d)[N0] == 0", d=d).passed


def test_the_highest_peak_counts_even_in_tiny_samples(rng: np.random.Generator) -> None:
    for n in (5, 20, 60):
        result = run("d is unimodal", d=distribution(rng.uniform(size=n)))
        assert result.passed, (n, result.outcome.measured)


def test_a_constant_channel_peaks_at_its_value() -> None:
    d = distribution(np.zeros(500))
    assert run("d is unimodal", d=d).passed
    assert run("d peaks near 0 within 0.1 std", d=d).passed  # std is 0 and so is the distance


# ---- moments and fractions against numpy / scipy -------------------------------------------
@pytest.mark.parametrize("shape", ["gauss", "relu", "expo", "uniform", "bimodal"])
def test_kurtosis_matches_scipy(shapes: dict[str, np.ndarray], shape: str) -> None:
    x = shapes[shape]
    expected = float(scipy.stats.kurtosis(x))
    result = run("d has kurtosis > -100", d=distribution(x))
    assert result.outcome.value == pytest.approx(expected, rel=1e-6, abs=1e-9)
    assert run(f"d has kurtosis in [{expected - 0.01}, {expected + 0.01}]",
               d=distribution(x)).passed
    assert not run(f"d has kurtosis > {expected + 0.05}", d=distribution(x)).passed


def test_moments_and_quantiles_match_numpy(shapes: dict[str, np.ndarray]) -> None:
    x = shapes["expo"]
    d = distribution(x)
    assert run("d has mean > 0", d=d).outcome.value == pytest.approx(np.mean(x), rel=1e-9)
    assert run("d has std > 0", d=d).outcome.value == pytest.approx(np.std(x), rel=1e-9)
    assert run("d has min >= 0", d=d).outcome.value == np.min(x)
    assert run("d has max > 0", d=d).outcome.value == np.max(x)
    width = (d.meta["stats"].hi[0] - d.meta["stats"].lo[0]) / d.meta["stats"].bins
    for q in (0.1, 0.5, 0.99):
        value = run(f"d has quantile {q} > 0", d=d).outcome.value
        assert value == pytest.approx(np.quantile(x, q), abs=2 * width)
    assert run("d has median > 0", d=d).outcome.value == pytest.approx(np.median(x),
                                                                        abs=2 * width)


def test_exact_fraction_with_a_registered_threshold(shapes: dict[str, np.ndarray]) -> None:
    x = shapes["gauss"]
    d = distribution(x, thresholds=(0.1,))
    result = run("d has fraction |x| < 0.1 >= 0", d=d)
    assert result.outcome.value == np.mean(np.abs(x) < 0.1)
    assert not result.outcome.notes  # exact: no approximation note
    above = run("d has fraction |x| >= 0.1 >= 0", d=d).outcome.value
    assert above == pytest.approx(np.mean(np.abs(x) >= 0.1), abs=1e-12)


@pytest.mark.parametrize("var, op, t", [("|x|", "<", 0.5), ("|x|", ">", 1.5), ("x", "<", 0.3),
                                        ("x", ">", -1.2), ("|x|", "<", 10.0)])
def test_histogram_fraction_is_close_to_numpy(shapes: dict[str, np.ndarray], var: str, op: str,
                                              t: float) -> None:
    x = shapes["gauss"]
    values = np.abs(x) if var == "|x|" else x
    expected = np.mean(values < t) if op == "<" else np.mean(values > t)
    result = run(f"d has fraction {var} {op} {t} >= 0", d=distribution(x))
    stats = samples_to_stats(x[:, None])
    width = (stats.hi[0] - stats.lo[0]) / stats.bins
    density = 0.4 * width * 2  # at most two bins' worth of a unit gaussian's mass
    assert result.outcome.value == pytest.approx(expected, abs=density)


def test_fraction_relative_to_std(shapes: dict[str, np.ndarray]) -> None:
    x = 3.0 * shapes["gauss"]
    expected = np.mean(np.abs(x) < 0.5 * np.std(x))
    value = run("d has fraction |x| < 0.5 std >= 0", d=distribution(x)).outcome.value
    assert value == pytest.approx(expected, abs=0.01)


# ---- quantifiers -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ten_neurons(rng: np.random.Generator) -> np.ndarray:
    """Ten channels: N0..N7 ReLU'd gaussians, N8 and N9 bimodal."""
    relu = np.maximum(rng.normal(size=(5000, 8)), 0)
    bimodal = np.where(rng.random((5000, 2)) < 0.5, -2.0, 2.0) + 0.4 * rng.normal(size=(5000, 2))
    return np.concatenate([relu, bimodal], axis=1)


@pytest.mark.parametrize("sentence, holds", [
    ("every neuron of d is unimodal", False),
    ("mostly neurons of d are unimodal", False),           # 8/10 < 90%
    ("at least 80% of neurons of d are unimodal", True),
    ("at least 81% of neurons of d are unimodal", False),
    ("at least 8 of neurons of d are unimodal", True),
    ("at least 9 of neurons of d are unimodal", False),
    ("at most 20% of neurons of d are multimodal", True),
    ("at most 1 of neurons of d are multimodal", False),
    ("mostly neurons of d[N0:N8] are unimodal", False),    # 8 of 9 is 88.9% < 90%
    ("every channel of d[N0:N7] peaks near 0 within 0.1 std", True),
    ("d is unimodal", False),                               # no quantifier: every channel
])
def test_quantifiers(ten_neurons: np.ndarray, sentence: str, holds: bool) -> None:
    result = run(sentence, d=distribution(ten_neurons))
    assert result.passed is holds, result.outcome.measured


def test_mostly_means_ninety_percent(rng: np.random.Generator) -> None:
    relu = np.maximum(rng.normal(size=(4000, 9)), 0)
    bimodal = (np.where(rng.random((4000, 1)) < 0.5, -2.0, 2.0)
               + 0.4 * rng.normal(size=(4000, 1)))
    d = distribution(np.concatenate([relu, bimodal], axis=1))
    result = run("mostly neurons of d are unimodal", d=d)
    assert result.passed
    assert result.outcome.value == pytest.approx(0.9)


def test_report_lists_channels_worst_first(ten_neurons: np.ndarray) -> None:
    result = run("every neuron of d is unimodal", d=distribution(ten_neurons))
    outcome = result.outcome
    assert "8/10 neurons (80.0%) hold" in outcome.measured
    failing = [row["neuron"] for row in outcome.rows if not row["holds"]]
    assert failing == ["N8", "N9"]
    assert set(outcome.rows[0]) >= {"neuron", "statistic", "value", "holds"}


def test_at_most_lists_the_channels_that_have_the_property(ten_neurons: np.ndarray) -> None:
    result = run("at most 10% of neurons of d are multimodal", d=distribution(ten_neurons))
    assert not result.passed
    assert result.outcome.value == pytest.approx(0.2)
    against = [row["neuron"] for row in result.outcome.rows if not row["holds"]]
    assert sorted(against) == ["N8", "N9"]
    assert [row["neuron"] for row in result.outcome.rows[:2]] == against


def test_the_quantified_noun_must_name_the_channel_axis(ten_neurons: np.ndarray) -> None:
    with pytest.raises(QuantityError, match="per neuron, not per head"):
        run("every head of d is unimodal", d=distribution(ten_neurons))
    assert run("every channel of d[N0:N7] is unimodal", d=distribution(ten_neurons)).passed


# ---- NaN and inf -------------------------------------------------------------------------------
def test_nan_or_inf_never_passes(rng: np.random.Generator) -> None:
    x = np.maximum(rng.normal(size=(3000, 3)), 0)
    x[10, 1] = np.nan
    x[20, 2] = np.inf
    d = distribution(x)
    assert run("d[N0] is unimodal", d=d).passed
    for sentence in ("d[N1] is unimodal", "d[N2] has kurtosis > -10",
                     "d[N1] peaks near 0 within 1 std", "d[N2] has fraction |x| < 100 >= 0"):
        result = run(sentence, d=d)
        assert not result.passed, sentence
    every = run("every neuron of d has mean > -1", d=d)
    assert not every.passed
    assert any("NaN or inf" in note for note in every.outcome.notes)
    # 'at most' counts a NaN channel as if it had the property
    assert not run("at most 1 of neurons of d have mean > 100", d=d).passed
    assert run("at most 2 of neurons of d have mean > 100", d=d).passed


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # StreamingStats on an all-NaN column
def test_empty_channel_never_passes() -> None:
    stats = StreamingStats(2)
    stats.update(np.column_stack([np.arange(100.0), np.full(100, np.nan)]))
    d = Labelled(stats.mean(), (Axis("neuron", ("N0", "N1")),), "d", {"stats": stats})
    assert run("d[N0] has mean > 0", d=d).passed
    assert not run("d[N1] has mean > -1e9", d=d).passed
    assert not run("d[N1] is unimodal", d=d).passed


# ---- memory ------------------------------------------------------------------------------------
def test_histogram_size_does_not_grow_with_samples(rng: np.random.Generator) -> None:
    small = samples_to_stats(rng.normal(size=(1_000, 4)))
    large = samples_to_stats(rng.normal(size=(400_000, 4)), chunk=50_000)
    assert small.counts.shape == large.counts.shape == (4, 1024)
    assert large.counts.nbytes == small.counts.nbytes
    channel = channels_of(large)[0]
    assert channel.n == 400_000
    assert len(channel.modes().counts) <= 64


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_splitting_channels_over_threads_changes_nothing(
        rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch, dtype: type) -> None:
    import interp_assert.evaluate.streaming as streaming

    batches = [rng.standard_t(3, size=(600, 37)).astype(dtype) * scale for scale in (1, 5, 0.5)]
    batches[1][3, 5], batches[2][7, 30] = np.nan, np.inf
    stats = {}
    for parts in (1, 3):
        monkeypatch.setattr(streaming, "thread_count", lambda p=parts: p)
        monkeypatch.setattr(streaming, "_MIN_VALUES_PER_THREAD", 1)
        assert len(streaming._channel_parts(37, 600 * 37)) == parts
        stats[parts] = StreamingStats(37, thresholds=[0.5, 2.0])
        for batch in batches:
            stats[parts].update(batch)
    one, three = stats[1], stats[3]
    for name in ("counts", "lo", "hi", "minimum", "maximum", "nonfinite", "below", "shift"):
        np.testing.assert_array_equal(getattr(one, name), getattr(three, name), err_msg=name)
    np.testing.assert_allclose(one.power_sums, three.power_sums, rtol=1e-12)
    # and both agree with a direct computation on the finite values
    pooled = np.concatenate(batches).astype(np.float64)
    for c in (0, 5, 30):
        column = pooled[:, c][np.isfinite(pooled[:, c])]
        assert three.mean()[c] == pytest.approx(column.mean(), rel=1e-6)
        assert three.kurtosis()[c] == pytest.approx(scipy.stats.kurtosis(column), rel=1e-5)
        assert three.counts[c].sum() == column.size


# ---- raw samples without streaming statistics ----------------------------------------------
def test_activations_are_pooled_per_named_axis(rng: np.random.Generator) -> None:
    values = np.maximum(rng.normal(size=(200, 5, 3)), 0)
    acts = Labelled(values, (Axis("batch"), Axis("pos"), Axis("neuron", ("N0", "N1", "N2"))),
                    "acts")
    result = run("every neuron of acts peaks near 0 within 0.1 std", acts=acts)
    assert result.passed
    assert len(result.outcome.rows) == 3
    assert len(run("every pos of acts is unimodal", acts=acts).outcome.rows) == 5
    pooled = run("acts has mean > 0", acts=acts)
    assert pooled.outcome.value == pytest.approx(values.mean())
    with pytest.raises(QuantityError, match="one value per"):
        run("every neuron of m is unimodal",
            m=Labelled(values.mean(axis=(0, 1)), (Axis("neuron", ("N0", "N1", "N2")),), "m"))


# ---- plots -------------------------------------------------------------------------------------
def test_failing_claims_draw_a_png(tmp_path: Path, ten_neurons: np.ndarray,
                                   shapes: dict[str, np.ndarray]) -> None:
    d = distribution(ten_neurons)
    many = run("every neuron of d is unimodal", plot_dir=tmp_path / "a", d=d)
    assert many.plot is not None and many.plot.exists()
    assert many.plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert many.outcome.plot_data["strip"]["holds"].count(False) == 2
    assert many.outcome.plot_data["label"] in ("neuron N8", "neuron N9")
    one = run("d[N0] peaks near 1 within 0.1 std", plot_dir=tmp_path / "b",
              d=distribution(shapes["relu"][:, None]))
    assert one.plot is not None and one.plot.exists()
    assert one.outcome.plot_data["band"] is not None
    frac = run("d has fraction |x| < 0.1 >= 0.99", d=distribution(shapes["gauss"]))
    assert not frac.passed
    assert math.isclose(abs(frac.outcome.plot_data["lines"][0][0]), 0.1)


def test_the_histogram_of_a_statistic_claim_is_found_only_for_its_plot(
        tmp_path: Path, shapes: dict[str, np.ndarray]) -> None:
    """A statistic claim leaves finding the worst channel's peaks (scipy.signal) to its plot:
    a claim without a plot has none; one with a plot has the samples' histogram."""
    d = distribution(shapes["gauss"])
    held = run("d has mean < 1", d=d)
    assert held.passed and held.plot is None
    assert "counts" not in held.outcome.plot_data
    drawn = run("d has mean > 1", plot_dir=tmp_path, d=d)
    assert not drawn.passed and drawn.plot is not None and drawn.plot.exists()
    edges = np.asarray(drawn.outcome.plot_data["edges"])
    expected, _ = np.histogram(shapes["gauss"], bins=edges)
    counts = np.asarray(drawn.outcome.plot_data["counts"])  # streamed: rebinned, so close
    assert np.allclose(counts, expected, rtol=0.05, atol=3)
    assert counts.sum() == pytest.approx(expected.sum(), rel=1e-3)


# ---- a real forward pass ----------------------------------------------------------------------
def test_distribution_quantity_of_a_model(tmp_path: Path) -> None:
    import torch

    from examples.tiny_transformer import TinyConfig, TinyTransformer, save_checkpoint

    torch.manual_seed(0)
    config = TinyConfig(n_layers=1, d_model=16, n_heads=2, d_head=8, d_mlp=8, d_vocab=12,
                        n_ctx=33)
    save_checkpoint(tmp_path / "m.pt", TinyTransformer(config))
    root = Path(__file__).resolve().parents[1]
    (tmp_path / "m.claims.yaml").write_text(f"""
subject: {{checkpoint: m.pt, loader: "examples.tiny_transformer:load", python_path: "{root}"}}
data:
  sums: {{generate: "examples.adder.data:generate", n: 64, seed: 1}}
quantities:
  post: {{distribution: blocks.0.mlp.hook_post, thresholds: [0.05]}}
claims:
  - {{id: zero, claim: "mostly neurons of post peak near 0 within 0.1 std"}}
  - {{id: frac, claim: "post[L0N0] has fraction |x| < 0.05 >= 0"}}
""", encoding="utf-8")
    results = {r.claim_id: r for r in ia.load(tmp_path / "m.claims.yaml").run()}
    assert results["zero"].error is None, results["zero"].error
    assert results["zero"].passed, results["zero"].outcome.measured
    assert not results["frac"].outcome.notes  # a registered threshold: exact
