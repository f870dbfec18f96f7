"""pytest entry point of interp-assert (``pytest11``).

Only wires options and hooks. It imports nothing heavy: the library is imported when the
first claim file is collected, torch and matplotlib only when a claim is evaluated.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ._pytest_session import ClaimSession

DEFAULT_PATTERNS = ["*.claims.yaml", "*.claims.yml"]
SESSION_KEY = pytest.StashKey["ClaimSession"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("interp-assert", "interpretability claims (interp-assert)")
    group.addoption("--interp-artifacts", metavar="DIR", default=None,
                    help="folder for plots and results (ini: interp_assert_artifacts; "
                         "default .interp-assert)")
    group.addoption("--interp-plots", choices=("failed", "all", "never"), default=None,
                    help="which claims get a diagnostic plot (ini: interp_assert_plots; "
                         "default failed)")
    group.addoption("--interp-json", metavar="FILE", default=None,
                    help="write the claims' results as JSON to FILE")
    group.addoption("--interp-checkpoint", metavar="PATH", default=None,
                    help="run every claim file against this checkpoint instead of its own "
                         "(env: INTERP_ASSERT_CHECKPOINT)")
    group.addoption("--interp-summary", action="store_true", default=False,
                    help="print a table of every claim's value and verdict at the end")
    parser.addini("interp_assert_artifacts", "folder for interp-assert plots and results",
                  default=".interp-assert")
    parser.addini("interp_assert_plots", "failed, all or never", default="failed")
    parser.addini("interp_assert_patterns", "glob patterns of claim files", type="args",
                  default=DEFAULT_PATTERNS)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "interp_claim: an interp-assert claim (added to every "
                                       "claim item)")


def _session(config: pytest.Config) -> ClaimSession:
    session = config.stash.get(SESSION_KEY, None)
    if session is None:
        from ._pytest_session import ClaimSession

        session = ClaimSession.from_config(config)
        config.stash[SESSION_KEY] = session
    return session


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> Any:
    patterns = parent.config.getini("interp_assert_patterns") or DEFAULT_PATTERNS
    if not any(file_path.match(pattern) for pattern in patterns):
        return None
    from ._pytest_items import ClaimFileCollector

    _session(parent.config)
    return ClaimFileCollector.from_parent(parent, path=file_path)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        session.finish(terminalreporter)
