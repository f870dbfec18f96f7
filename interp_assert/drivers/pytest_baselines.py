"""The baseline options of the pytest plugin beyond recording: ``--interp-baseline-prune``
(record the values and remove the entries no claim produces any more). Imports nothing but
pytest."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("interp-assert", "interpretability claims (interp-assert)")
    group.addoption("--interp-baseline-prune", action="store_true", default=False,
                    help="as --interp-baseline-update, and remove the baseline entries of "
                         "claims that no longer exist (the update lists them otherwise)")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("interp_baseline_prune") and not (
            config.getoption("interp_baseline") or config.getini("interp_assert_baseline")):
        raise pytest.UsageError("--interp-baseline-prune needs --interp-baseline FILE")
