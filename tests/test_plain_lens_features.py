"""The hand-written statistics of the plain mirrors of the adder's feature, sequential and
lens claim files (``bench/plain/adder_features.py``, ``adder_sequential.py``, ``lens.py``)
against scipy and a loop-by-loop reference, and the clean pass that mirrors share."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.plain import common  # noqa: E402
from bench.plain.adder_features import paired_bootstrap  # noqa: E402
from bench.plain.adder_sequential import sequence  # noqa: E402
from bench.plain.common import wilson  # noqa: E402
from bench.plain.lens import bootstrap_means  # noqa: E402
from examples.tiny_transformer import TinyConfig, TinyTransformer  # noqa: E402


@pytest.mark.parametrize(("successes", "trials"), [(0, 40), (7, 40), (4451, 33000), (50, 50)])
def test_wilson_equals_scipy(successes: int, trials: int) -> None:
    ci = stats.binomtest(successes, trials).proportion_ci(0.95, method="wilson")
    assert wilson(successes, trials) == pytest.approx((ci.low, ci.high), abs=1e-12)
    assert wilson(successes, trials)[0] == pytest.approx(ci.low, abs=1e-12)


def test_bootstraps_equal_scipy_percentile_bootstrap() -> None:
    rng = np.random.default_rng(5)
    before, after = rng.random(60), rng.random(60) * 0.8
    ours = paired_bootstrap(before, after)
    theirs = stats.bootstrap((before, after), lambda b, a, axis: b.mean(axis) - a.mean(axis),
                             n_resamples=2000, batch=250, paired=True, method="percentile",
                             rng=np.random.default_rng(0)).confidence_interval
    assert ours == pytest.approx((theirs.low, theirs.high), abs=1e-12)
    columns = rng.normal(size=(60, 3))
    ours_columns = bootstrap_means(columns)
    for j in range(3):
        theirs = stats.bootstrap((columns[:, j],), np.mean, n_resamples=2000, batch=250,
                                 method="percentile",
                                 rng=np.random.default_rng(0)).confidence_interval
        assert ours_columns[:, j] == pytest.approx([theirs.low, theirs.high], abs=1e-12)


def _sequence_by_loops(z: list[float], alpha: float = 0.05) -> tuple[float, float]:
    """The hedged betting sequence, one candidate and one sample at a time."""
    inside = []
    for j in range(1, 1000):
        m = j / 1000
        plus = minus = 1.0
        total, squares, out = 0.0, 0.0, False
        for t, value in enumerate(z, start=1):
            var_before = (0.25 + squares) / t
            lam = math.sqrt(2 * math.log(2 / alpha) / (var_before * t * math.log(1 + t)))
            plus *= 1 + min(lam, 0.5 / m) * (value - m)
            minus *= 1 - min(lam, 0.5 / (1 - m)) * (value - m)
            total += value
            squares += (value - (0.5 + total) / (t + 1)) ** 2
            out = out or max(plus, minus) / 2 >= 1 / alpha
        if not out:
            inside.append(j)
    low = 0.0 if inside[0] == 1 else (inside[0] - 1) / 1000
    high = 1.0 if inside[-1] == 999 else (inside[-1] + 1) / 1000
    return low, high


@pytest.mark.parametrize("seed", [0, 1])
def test_confidence_sequence_equals_loops(seed: int) -> None:
    z = np.random.default_rng(seed).binomial(1, 0.8, size=40).astype(float)
    assert sequence(z) == pytest.approx(_sequence_by_loops(z.tolist()), abs=1e-12)
    # every sum right: the lower end reaches 0.99 after 750 samples (50+100+200+400), not 350
    assert sequence(np.ones(350))[0] < 0.99 <= sequence(np.ones(750))[0]


def test_shared_pass_feeds_each_hook_once() -> None:
    torch.manual_seed(0)
    model = TinyTransformer(TinyConfig(n_layers=1, d_model=8, n_heads=2, d_head=4, d_mlp=16,
                                       d_vocab=5, n_ctx=6)).eval()
    tokens = torch.randint(0, 5, (7, 6))
    seen: dict[str, int] = {"early": 0, "direct": 0, "late": 0}

    def count(name: str) -> Callable[..., None]:
        return lambda _m, _i, out: seen.__setitem__(name, seen[name] + len(out))

    key = "test: a pass two mirrors share"
    common.observe(key, {"blocks.0.hook_resid_post": count("early")})
    first = common.shared_passes(key, model, tokens, 3,
                                 {"blocks.0.hook_resid_post": count("direct")})
    again = common.shared_passes(key, model, tokens, 3)
    assert again is first and seen == {"early": 7, "direct": 7, "late": 0}
    common.observe(key, {"blocks.0.hook_mlp_out": count("late")})  # asked for after it ran
    common.shared_passes(key, model, tokens, 3)
    assert seen == {"early": 7, "direct": 7, "late": 7}
    with torch.inference_mode():
        assert torch.allclose(first, model(tokens), atol=1e-6)  # batches of 3 against 7
