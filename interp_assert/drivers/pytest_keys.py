"""What the pytest plugin's modules share, importing nothing but pytest: the claim-file
patterns and the stash key of the run's :class:`~.pytest_session.ClaimSession`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    pass

DEFAULT_PATTERNS = ["*.claims.yaml", "*.claims.yml"]
SESSION_KEY = pytest.StashKey["ClaimSession"]()


def claim_patterns(config: pytest.Config) -> list[str]:
    """The glob patterns of claim files (ini ``interp_assert_patterns``)."""
    return list(config.getini("interp_assert_patterns") or DEFAULT_PATTERNS)
