"""Intervals and p-values of ``has STATISTIC ... with C% confidence`` claims on a table's
per-group distributions (groups of unequal size): each channel's interval resamples its own
values, and its p-value inverts that interval; both recomputed here by hand from the
documented draws and the documented position formula."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import interp_assert as ia


def resampled(values: np.ndarray, statistic) -> np.ndarray:
    """The documented draws: default_rng(0), integers(0, n, (250, n)) per block, 8 blocks."""
    rng = np.random.default_rng(0)
    n = values.size
    return np.sort(np.concatenate([statistic(values[rng.integers(0, n, size=(250, n))])
                                   for _ in range(8)]))


def p_above(sorted_thetas: np.ndarray, bound: float) -> float:
    """p of '> bound': k = #{m <= b}; ((k - 1) + (b - m_{k-1}) / (m_k - m_{k-1})) / (R - 1)."""
    k = int(np.sum(sorted_thetas <= bound))
    if k == 0:
        return 0.0
    if k == sorted_thetas.size:
        return 1.0
    low, high = sorted_thetas[k - 1], sorted_thetas[k]
    return ((k - 1) + (bound - low) / (high - low)) / (sorted_thetas.size - 1)


def p_below(sorted_thetas: np.ndarray, bound: float) -> float:
    """p of '< bound': 1 - the same position with k = #{m < b}."""
    k = int(np.sum(sorted_thetas < bound))
    if k == 0:
        return 1.0
    if k == sorted_thetas.size:
        return 0.0
    low, high = sorted_thetas[k - 1], sorted_thetas[k]
    return 1 - ((k - 1) + (bound - low) / (high - low)) / (sorted_thetas.size - 1)


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    folder = tmp_path_factory.mktemp("dist_p")
    rng = np.random.default_rng(3)
    groups = {"a": np.round(rng.normal(0.0, 1.0, 60), 6),
              "b": np.round(rng.normal(0.5, 2.0, 80), 6)}
    lines = ["g,x"] + [f"{g},{v!r}" for g, values in groups.items() for v in values.tolist()]
    (folder / "t.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder, groups


def run(folder: Path, claims: dict[str, str]) -> dict[str, ia.ClaimResult]:
    body = "".join(f'  - {{id: {cid}, claim: "{text}"}}\n' for cid, text in claims.items())
    path = folder / "d.claims.yaml"
    path.write_text("quantities:\n  d: {table: t.csv, column: x, group_by: g, "
                    "as: distribution}\nclaims:\n" + body, encoding="utf-8")
    results = {r.claim_id: r for r in ia.load(path).run()}
    for result in results.values():
        assert result.error is None, result.error
    return results


def test_quantile_claim_p_value_inverts_its_interval(table) -> None:
    folder, groups = table
    thetas = resampled(groups["a"], lambda x: np.quantile(x, 0.1, axis=-1))
    near = float(f"{np.quantile(thetas, 0.1):.6f}")  # about 10% of the draws lie below
    far = float(f"{thetas[0] - 0.5:.6f}")  # below every draw
    results = run(folder, {
        "near": f"d[a] has quantile 0.1 > {near} with 95% confidence",
        "far": f"d[a] has quantile 0.1 > {far} with 95% confidence",
        "plain": f"d[a] has quantile 0.1 > {far}"})
    # group a has fewer values than group b: its interval resamples its 60 values only
    assert results["near"].outcome.interval == pytest.approx(
        (np.quantile(thetas, 0.025), np.quantile(thetas, 0.975)), rel=1e-12)
    assert results["near"].outcome.p_value == pytest.approx(p_above(thetas, near), rel=1e-9)
    assert 0.05 < results["near"].outcome.p_value < 0.2
    assert results["near"].status == "fails"  # p > 2.5%: the 95% interval straddles the bound
    assert results["far"].outcome.p_value == 0.0 and results["far"].status == "holds"
    assert results["plain"].outcome.p_value is None  # no confidence, no p-value


def test_every_channel_takes_the_largest_p_value(table) -> None:
    folder, groups = table
    thetas = {g: resampled(v, lambda x: np.std(x, axis=-1)) for g, v in groups.items()}
    bound = float(f"{np.quantile(thetas['b'], 0.97):.6f}")  # tight for b, loose for a
    results = run(folder, {
        "every": f"every g of d has std < {bound} with 95% confidence",
        "share": f"at least 1 of g of d has std < {bound} with 95% confidence"})
    expected = {g: p_below(t, bound) for g, t in thetas.items()}
    assert expected["a"] == 0.0 < expected["b"]
    assert results["every"].outcome.p_value == pytest.approx(max(expected.values()), rel=1e-9)
    assert results["every"].status == "fails"  # b's interval straddles the bound
    assert results["share"].status == "holds"  # a's does not
    assert results["share"].outcome.p_value is None  # a share of channels: no p-value
