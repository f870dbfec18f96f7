"""Centred distributions, pairs(), ECDF plots, points on a circle and head→neuron links,
each against an independent numpy computation (the notebooks' analyses of issue 16)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import interp_assert as ia
from interp_assert.claims import parse_claim
from interp_assert.claims.plots import FAIL, HOLD, legend_texts
from interp_assert.errors import ClaimFailed, QuantityError
from interp_assert.evaluate.centring import layer_scaled, mean_centred, mode, peak_centred
from interp_assert.evaluate.channel_stats import samples_to_stats
from interp_assert.evaluate.geometry import circle_angle, circle_residual, pca
from interp_assert.evaluate.pairwise import pairs
from interp_assert.labels import Axis, Labelled

pytestmark = pytest.mark.usefixtures("heavy_modules_loaded")


def dist(samples: np.ndarray, keep: bool = True) -> Labelled:
    """A distribution quantity of ``samples [n, channels]`` (channels C0..)."""
    stats = samples_to_stats(samples)
    if not keep:
        stats._kept, stats.dropped = None, "over the memory limit"
    labels = tuple(f"C{i}" for i in range(samples.shape[1]))
    return Labelled(stats.mean(), (Axis("channel", labels),), "d", {"stats": stats})


def kept(x: Labelled) -> np.ndarray:
    return np.asarray(x.meta["stats"].samples(), dtype=float)


def number(value: float) -> Labelled:
    return Labelled(np.asarray(float(value)), ())


def draw(claim: Any, outcome: Any) -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.5, 5.0), dpi=100, layout="constrained")
    ax = figure.add_subplot()
    claim.plot(outcome, ax)
    figure.canvas.draw()
    return figure


def failed(sentence: str, subject: Any) -> tuple[Any, Any]:
    with pytest.raises(ClaimFailed) as info:
        ia.check(sentence, subject)
    return parse_claim(sentence).claim, info.value.result.outcome


# ---- centred distributions -----------------------------------------------------------------
@pytest.fixture(scope="module")
def samples() -> np.ndarray:
    rng = np.random.default_rng(3)
    relu = np.maximum(rng.normal(0.2, 1.0, 3000), 0.0)          # a spike at 0
    skewed = rng.gamma(2.0, 0.5, 3000) - 1.0
    wide = rng.normal(3.0, 4.0, 3000)
    return np.column_stack([relu, skewed, wide])


def numpy_mode(row: np.ndarray, bins: int = 50) -> float:
    counts, edges = np.histogram(row, bins=bins)
    k = int(np.argmax(counts))
    return (edges[k] + edges[k + 1]) / 2


def test_mean_and_peak_centring_match_numpy(samples: np.ndarray) -> None:
    x = dist(samples)
    centred = mean_centred(x)
    np.testing.assert_allclose(kept(centred), (samples - samples.mean(0)).T, atol=1e-12)
    np.testing.assert_allclose(centred.values, 0.0, atol=1e-12)
    modes = np.array([numpy_mode(c) for c in samples.T])
    assert modes[0] == pytest.approx(numpy_mode(samples[:, 0]))
    np.testing.assert_allclose(mode(x).values, modes, rtol=0, atol=1e-12)
    np.testing.assert_allclose(kept(peak_centred(x)), (samples - modes).T, atol=1e-12)
    coarse = np.array([numpy_mode(c, 7) for c in samples.T])
    np.testing.assert_allclose(mode(x, number(7)).values, coarse, atol=1e-12)


def test_layer_scaling_gives_every_channel_the_mean_std(samples: np.ndarray) -> None:
    x = dist(samples)
    scaled = layer_scaled(peak_centred(x))
    std = samples.std(0)
    expected = std.mean() * (samples - [numpy_mode(c) for c in samples.T]) / std
    np.testing.assert_allclose(kept(scaled), expected.T, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(scaled.meta["stats"].std(), std.mean(), rtol=1e-9)


def test_a_constant_or_nan_channel_stays_nan_and_samples_are_needed(
        samples: np.ndarray) -> None:
    data = samples.copy()
    data[:, 2] = 1.5  # zero std: cannot be rescaled
    data[5, 1] = np.nan
    scaled = layer_scaled(dist(data))
    assert np.isnan(kept(scaled)[2]).all()
    assert np.isnan(kept(scaled)[1][5]) and np.isfinite(kept(scaled)[1]).sum() == 2999
    assert mode(dist(data)).values[2] == 1.5
    with pytest.raises(QuantityError, match="samples, which were not kept"):
        peak_centred(dist(samples, keep=False))
    with pytest.raises(QuantityError, match="needs a distribution quantity"):
        mean_centred(Labelled(np.ones(3), (Axis("x"),), "plain"))
    with pytest.raises(QuantityError, match="whole number >= 1"):
        mode(dist(samples), number(2.5))


def test_a_claim_on_a_centred_distribution(samples: np.ndarray) -> None:
    subject = ia.subject(quantities={"d": dist(samples)})
    result = ia.check("at least 2 of channels of layer_scaled(peak_centred(d)) have fraction "
                      "|x| < 0.5 std >= 0.3", subject)
    std = samples.std(0)
    scaled = std.mean() * (samples - [numpy_mode(c) for c in samples.T]) / std
    shares = np.mean(np.abs(scaled) < 0.5 * scaled.std(0), axis=0)
    assert result.outcome.value == pytest.approx(np.mean(shares >= 0.3))


# ---- pairs and the ECDF plot ---------------------------------------------------------------
def test_pairs_are_the_upper_triangle() -> None:
    m = np.arange(16.0).reshape(4, 4)
    x = Labelled(m, (Axis("n", ("a", "b", "c", "d")), Axis("m", ("a", "b", "c", "d"))))
    p = pairs(x)
    np.testing.assert_array_equal(p.values, m[np.triu_indices(4, k=1)])
    assert p.labels_of(0) == ["a~b", "a~c", "a~d", "b~c", "b~d", "c~d"]
    with pytest.raises(QuantityError, match="square matrix"):
        pairs(Labelled(np.ones((2, 3)), (Axis("n"), Axis("m"))))


def test_a_fraction_claim_draws_the_ecdf_with_its_threshold() -> None:
    values = np.random.default_rng(0).normal(size=500)
    subject = ia.subject(quantities={"v": Labelled(values, (Axis("sample"),), "v")})
    claim, outcome = failed("v has fraction |x| <= 0.5 >= 0.9", subject)
    share = np.mean(np.abs(values) <= 0.5)
    assert outcome.value == pytest.approx(share)
    ecdf = outcome.plot_data["ecdf"]
    x, f = np.array(ecdf["x"]), np.array(ecdf["F"])
    ordered = np.sort(np.abs(values))
    np.testing.assert_allclose(x, ordered)  # 500 points: every one drawn
    np.testing.assert_allclose(f, np.arange(1, 501) / 500)
    ax = draw(claim, outcome).axes[0]
    vertical = [line.get_xdata()[0] for line in ax.get_lines() if line.get_linestyle() == ":"]
    assert vertical == [0.5]
    texts = legend_texts(ax)
    assert "empirical CDF" in texts and "bound on the fraction (0.9)" in texts
    assert f"measured F(t) = {share:.4g}" in texts


def test_a_quantile_claim_marks_the_level_and_the_bound() -> None:
    values = np.random.default_rng(1).normal(size=300)
    subject = ia.subject(quantities={"v": Labelled(values, (Axis("sample"),), "v")})
    claim, outcome = failed("v has quantile 0.9 < 0.5", subject)
    assert outcome.value == pytest.approx(np.quantile(values, 0.9))
    texts = legend_texts(draw(claim, outcome).axes[0])
    assert "level q = 0.9" in texts and "bound 0.5" in texts
    assert f"measured quantile {np.quantile(values, 0.9):.4g}" in texts


# ---- points on a circle --------------------------------------------------------------------
def test_pca_and_the_circle_fit_match_numpy() -> None:
    rng = np.random.default_rng(2)
    angles = np.radians(np.arange(10) * 30.0)
    plane = np.column_stack([2 + 3 * np.cos(angles), -1 + 3 * np.sin(angles)])
    basis = np.linalg.qr(rng.normal(size=(6, 2)))[0]
    rows = plane @ basis.T + 0.5                      # a circle in a plane of 6-D space
    x = Labelled(rows, (Axis("token", tuple(str(i) for i in range(10))), Axis("d")), "x")
    p = pca(x, number(2))
    assert p.shape == (10, 2) and p.labels_of(1) == ["PC0", "PC1"]
    centred = rows - rows.mean(0)
    # the points span a plane: two components keep every centred row's length
    np.testing.assert_allclose(np.linalg.norm(p.values, axis=1),
                               np.linalg.norm(centred, axis=1), atol=1e-10)
    top = np.linalg.svd(centred, full_matrices=False)[2][:2]
    np.testing.assert_allclose(np.abs(p.values), np.abs(centred @ top.T), atol=1e-10)
    np.testing.assert_allclose(circle_residual(p).values, 0.0, atol=1e-9)
    steps = np.diff(circle_angle(p).values)
    np.testing.assert_allclose(np.abs(steps), 30.0, atol=1e-9)
    assert len(set(np.sign(steps))) == 1


def noisy_circle() -> tuple[np.ndarray, np.ndarray]:
    angles = np.radians(np.arange(8) * 40.0)
    radius = np.array([1.0, 1.02, 0.98, 1.6, 1.0, 0.99, 1.01, 1.0])
    return np.column_stack([radius * np.cos(angles), radius * np.sin(angles)]), radius


def kasa(points: np.ndarray) -> tuple[np.ndarray, float]:
    m = np.column_stack([points, np.ones(len(points))])
    d, e, f = np.linalg.lstsq(m, -(points ** 2).sum(1), rcond=None)[0]
    centre = np.array([-d / 2, -e / 2])
    return centre, float(np.sqrt(centre @ centre - f))


def test_a_point_off_the_circle_fails_and_is_circled_in_red() -> None:
    points, _ = noisy_circle()
    subject = ia.subject(quantities={"p": Labelled(
        points, (Axis("token", tuple(f"t{i}" for i in range(8))), Axis("xy")), "p")})
    claim, outcome = failed("p lies on a circle within 0.2 in order", subject)
    centre, r = kasa(points)
    deviation = np.abs(np.linalg.norm(points - centre, axis=1) - r) / r
    assert outcome.value == pytest.approx(deviation.max())
    assert outcome.plot_data["failing"] == [int(i) for i in np.flatnonzero(deviation > 0.2)]
    ax = draw(claim, outcome).axes[0]
    from matplotlib.colors import to_rgba

    red = [c for c in ax.collections if c.get_edgecolor().size
           and tuple(c.get_edgecolor()[0]) == to_rgba(FAIL)]
    assert len(red) == 1 and len(red[0].get_offsets()) == len(outcome.plot_data["failing"])
    ia.check("p lies on a circle within 0.6 in order", subject)
    reversed_order = ia.subject(quantities={"p": Labelled(points[[0, 2, 1, 3, 4, 5, 6, 7]],
                                                          (Axis("token"), Axis("xy")), "p")})
    _, shuffled = failed("p lies on a circle within 0.6 in order", reversed_order)
    assert shuffled.plot_data["failing"]


def test_nan_points_never_lie_on_a_circle() -> None:
    points, _ = noisy_circle()
    points[2, 0] = np.nan
    subject = ia.subject(quantities={"p": Labelled(points, (Axis("t"), Axis("xy")), "p")})
    claim, outcome = failed("p lies on a circle within 10", subject)
    assert math.isnan(outcome.value)
    draw(claim, outcome)
    with pytest.raises(Exception, match="three or more points in a plane"):
        ia.check("pca_bad lies on a circle within 1", ia.subject(quantities={
            "pca_bad": Labelled(np.ones((4, 3)), (Axis("t"), Axis("d")), "pca_bad")}))


# ---- head→neuron links ---------------------------------------------------------------------
@pytest.fixture()
def scores() -> Any:
    table = np.array([[0.9, 0.1, 0.7, 0.0],
                      [0.8, 0.2, 0.1, np.nan],
                      [0.1, 0.6, 0.2, 0.1]])
    heads, neurons = ("H0", "H1", "H2"), ("N0", "N1", "N2", "N3")
    quantity = Labelled(table, (Axis("head", heads), Axis("neuron", neurons)), "hn")
    return table, ia.subject(quantities={"hn": quantity})


def test_links_hold_with_the_weakest_listed_edge(scores: Any) -> None:
    table, subject = scores
    result = ia.check("hn > 0.5 links H0, H1 to N0", subject)
    assert result.outcome.value == pytest.approx(min(table[0, 0], table[1, 0]))
    ia.check("hn > 0.5 links H2 to N1 only", subject)
    ia.check("hn < 0.5 links H2 to N0, N3", subject)


def test_missing_and_forbidden_edges_fail_and_are_drawn_red(scores: Any) -> None:
    table, subject = scores
    claim, outcome = failed("hn > 0.5 links H0 to N0, N1 only", subject)
    assert outcome.value == pytest.approx(table[0, 1])
    states = {(outcome.plot_data["sources"][i], outcome.plot_data["targets"][j]): s
              for i, j, _, s in outcome.plot_data["edges"]}
    assert states[("H0", "N0")] == "listed" and states[("H0", "N1")] == "missing"
    assert states[("H1", "N0")] == "forbidden" and states[("H2", "N1")] == "forbidden"
    assert states[("H0", "N2")] == "other"
    ax = draw(claim, outcome).axes[0]
    from matplotlib.colors import to_rgba

    colors = {line.get_label(): to_rgba(line.get_color()) for line in ax.get_lines()
              if not line.get_label().startswith("_")}
    assert colors["listed edge (passes)"] == to_rgba(HOLD)
    assert colors["listed edge missing (fails)"] == to_rgba(FAIL)
    assert colors["edge from another source ('only': fails)"] == to_rgba(FAIL)


def test_a_nan_score_never_links_and_bad_labels_are_named(scores: Any) -> None:
    _, subject = scores
    _, outcome = failed("hn > 0.5 links H1 to N3", subject)
    assert math.isnan(outcome.value)
    with pytest.raises(Exception, match="unknown label 'H9'"):
        ia.check("hn > 0.5 links H9 to N0", subject)


# ---- template plots mark every instance ----------------------------------------------------
def outlined(ax: Any, color: str) -> set[tuple[int, int]]:
    from matplotlib.colors import to_rgba
    from matplotlib.patches import Rectangle

    return {(round(p.get_xy()[1] + 0.5), round(p.get_xy()[0] + 0.5)) for p in ax.patches
            if isinstance(p, Rectangle) and not p.get_fill() and p.get_width() == 1
            and p.get_edgecolor() == to_rgba(color)}


def cosines(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=1)
    return rows @ rows.T / np.outer(norms, norms)


def test_a_cluster_template_outlines_every_failing_instance(tmp_path: Any) -> None:
    from conftest import claim_file_text, save_checkpoint, tiny_state_dict

    save_checkpoint(tmp_path / "model.pt")
    weights = tiny_state_dict()["blocks.0.mlp.W_out"].double().numpy()
    cos = cosines(weights[[0, 1, 2, 3, 4]])
    fails = [i for i in range(1, 5) if not cos[0, i] > 0.3]
    assert 1 <= len(fails) <= 3
    path = tmp_path / "c.claims.yaml"
    path.write_text(claim_file_text("""
        - id: c
          claim: N0, N{i} cluster with cos > 0.3 for i in 1..4
          on: neurons
        """), encoding="utf-8")
    result = ia.load(path).run(plot_dir=tmp_path / "plots", plots="all")[0]
    assert result.status == "fails" and result.plot is not None
    union = result.outcome.plot_data["union"]
    assert union["labels"] == ["N0", "N1", "N2", "N3", "N4"]
    ax = draw(parse_claim(result.sentence).claim, result.outcome).axes[0]
    assert outlined(ax, FAIL) == {c for i in fails for c in ((0, i), (i, 0))}
    holds = [i for i in range(1, 5) if i not in fails]
    assert outlined(ax, "black") == {c for i in holds for c in ((0, i), (i, 0))}
    assert any(t.startswith("failing pair (cos not > 0.3): " + ", ".join(
        f"i={i}" for i in fails)) for t in legend_texts(ax))


def test_a_top_k_template_marks_every_instance_label() -> None:
    values = np.array([5.0, 4.0, 3.0, 2.0, 1.0, 0.0])
    subject = ia.subject(quantities={"v": Labelled(values, (Axis("unit", tuple(
        f"u{i}" for i in range(6))),), "v")})
    claim, outcome = failed("u{i} in top 3 of v for i in 1..4", subject)
    assert outcome.measured.startswith("2/4 instances hold")
    ax = draw(claim, outcome).axes[0]
    from matplotlib.colors import to_rgba

    colors = {tick.get_text(): to_rgba(tick.get_color()) for tick in ax.get_xticklabels()}
    assert colors["u1"] == colors["u2"] == to_rgba(HOLD)
    assert colors["u3"] == colors["u4"] == to_rgba(FAIL)
    assert "failing instances: i=3, i=4" in ax.get_title()
