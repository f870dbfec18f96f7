"""The five user notebooks as claim files (examples/notebooks/): every claim runs without an
error, holds (or, marked open, does not yet), and its number equals an independent
numpy/torch/pandas computation from the checkpoint or table (examples/notebooks/values.py)."""

from __future__ import annotations

import math

import pytest

from examples.notebooks import values
from interp_assert.judge.verdict import Verdict

#: the Python A·V readout runs through the model's float32 weights; values.py uses float64
TOLERANCE = {("002", "av-monotone"): 1e-5}
#: claims marked `status: open`: hypotheses that do not hold on the bundled model
OPEN = {("002", "av-monotone-yaml"), ("002", "embeddings-on-circle")}


@pytest.fixture(scope="module")
def results() -> dict:
    return values.project_values()


def test_every_claim_has_an_independent_value(results: dict) -> None:
    assert set(results) == set(values.INDEPENDENT)


def test_no_claim_errors_and_each_holds_unless_open(results: dict) -> None:
    problems = {key: (r.verdict, str(r.error)) for key, r in results.items()
                if r.verdict is not (Verdict.XFAIL if key in OPEN else Verdict.HOLDS)}
    assert not problems


@pytest.mark.parametrize("key", list(values.INDEPENDENT), ids="::".join)
def test_value_matches_independent_computation(results: dict, key: tuple[str, str]) -> None:
    measured = results[key].outcome.value
    independent = values.INDEPENDENT[key][1]()
    assert measured is not None and math.isfinite(measured)
    assert measured == pytest.approx(independent, abs=TOLERANCE.get(key, 1e-6), rel=0)


def test_every_not_expressible_row_says_why() -> None:
    notebooks = set(values.FILES)
    for notebook, analysis, why in values.NOT_EXPRESSIBLE:
        assert notebook in notebooks and analysis
        assert why.startswith(("not expressible: ", "left out: "))
