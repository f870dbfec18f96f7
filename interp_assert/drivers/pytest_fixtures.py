"""Fixtures for ordinary tests: ``interp_subject`` gives a test the subject of a claim file
(its checkpoint, loader and quantities), loaded once per run::

    def test_carry_head(interp_subject):
        adder = interp_subject("specs/adder.claims.yaml")
        adder.check("ablate L0H3 (mean): exact-match drops by ≥ 90 points")
        assert adder.weight("blocks.0.attn.W_Q").shape == (4, 128, 32)

A relative path is relative to the rootdir. Without a path it is the test's
``@pytest.mark.interp_subject("specs/adder.claims.yaml")``, else the ini option
``interp_assert_subject``. Imports nothing but pytest at start-up.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("interp_assert_subject", "claim file whose subject the interp_subject "
                                           "fixture gives by default (relative to the rootdir)",
                  default="")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "interp_subject(path): the claim file whose subject "
                                       "the interp_subject fixture gives this test")


@pytest.fixture(scope="session")
def _interp_subjects() -> dict[Path, Any]:
    """Claim file -> its Subject, shared by every test of the run."""
    return {}


@pytest.fixture
def interp_subject(request: pytest.FixtureRequest,
                   _interp_subjects: dict[Path, Any]) -> Callable[..., Any]:
    """``interp_subject(path=None)``: the subject of a claim file (an
    :class:`interp_assert.Subject`: ``.check(sentence)``, ``.run()``, ``.model``,
    ``.weight(name)``)."""
    marker = request.node.get_closest_marker("interp_subject")
    default = (marker.args[0] if marker and marker.args else None) or request.config.getini(
        "interp_assert_subject") or None

    def load(path: str | Path | None = None) -> Any:
        chosen = path or default
        if not chosen:
            pytest.fail(
                "interp_subject() needs a claim file: interp_subject('specs/x.claims.yaml'), "
                "@pytest.mark.interp_subject('specs/x.claims.yaml') or the ini option "
                "interp_assert_subject", pytrace=False)
        full = Path(chosen)
        if not full.is_absolute():
            full = request.config.rootpath / full
        full = full.resolve()
        if full not in _interp_subjects:
            from interp_assert.drivers.api import load as load_claim_file

            _interp_subjects[full] = load_claim_file(full)
        return _interp_subjects[full]

    return load
