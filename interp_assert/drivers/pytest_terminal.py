"""What pytest's terminal shows of a claim beyond its outcome: with ``-v``, the claim's
``why`` on the line after its verbose status line (the failure report itself carries it too,
see :func:`~interp_assert.drivers.pytest_items.claim_repr`). Imports nothing but pytest."""

from __future__ import annotations

from typing import Any

import pytest


def pytest_configure(config: pytest.Config) -> None:
    if config.option.verbose > 0 and not hasattr(config, "workerinput"):
        config.pluginmanager.register(_WhyLines(config), "interp-assert-why")


class _WhyLines:
    """Writes ``    why: ...`` under a claim's ``PASSED`` / ``FAILED`` line (``-v``)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record: dict[str, Any] | None = getattr(report, "interp_result", None)
        if record is None or not record.get("why"):
            return
        terminal = self.config.pluginmanager.getplugin("terminalreporter")
        if terminal is not None:
            # the status line is still open: pytest ends the line when it writes the next one
            terminal.write("\n    why: " + " ".join(str(record["why"]).split()))
