"""The plain mirror of ``specs/gates.claims.yaml`` (``bench/plain/gates.py``: numpy, scipy and
the standard library, no interp-assert) against interp-assert's recorded values, and the
mirror's hand-written peak detector against interp-assert's on known mixtures."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import interp_assert as ia

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.plain import gates  # noqa: E402
from bench.plain.gates_peaks import count_peaks  # noqa: E402


def test_gates_mirror_equals_every_recorded_value() -> None:
    plain = gates.numbers()
    results = ia.load(ROOT / "specs/gates.claims.yaml").run()
    assert {r.claim_id for r in results} == {claim for claim, _ in gates.SAME}
    for result in results:
        assert result.error is None, result.error
        key = gates.SAME[(result.claim_id, None)]
        assert result.outcome.value == pytest.approx(plain[key], abs=1e-9), result.claim_id
        if f"{key} [low]" in plain:
            assert result.outcome.interval == pytest.approx(
                (plain[f"{key} [low]"], plain[f"{key} [high]"]), abs=1e-12)
    assert plain["peaks L0H0"] == 1.0 and plain["fraction of heads with kurtosis in [-1, 3]"] == 1


@pytest.mark.parametrize("kind", ["normal", "uniform", "two", "three", "skewed"])
def test_hand_written_peaks_match_the_detector(kind: str) -> None:
    from interp_assert.evaluate.channel_stats import channels_of, samples_to_stats

    rng = np.random.default_rng(5)
    x = {"normal": lambda: rng.normal(0, 1, 500),
         "uniform": lambda: rng.uniform(-1, 1, 800),
         "two": lambda: np.concatenate([rng.normal(0, 1, 400), rng.normal(6, 1, 300)]),
         "three": lambda: np.concatenate([rng.normal(m, 0.5, 600) for m in (0, 4, 8)]),
         "skewed": lambda: rng.exponential(1.0, 1000)}[kind]()
    modes = channels_of(samples_to_stats(x[:, None]))[0].modes()
    hand = count_peaks(x)
    assert len(hand) == {"normal": 1, "uniform": 1, "two": 2, "three": 3, "skewed": 1}[kind]
    np.testing.assert_allclose(modes.locations, hand, rtol=0, atol=1e-12)
