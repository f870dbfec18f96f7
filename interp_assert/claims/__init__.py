"""Claim kinds: a registry of small predicate classes (see :mod:`.base`).

``parse_claim`` and ``all_kinds`` (from :mod:`.builtin`) load the built-in kinds first.
"""

from typing import Any

from interp_assert.claims.base import Claim, Context, register_claim, registered_kinds

__all__ = ["Claim", "Context", "all_kinds", "parse_claim", "register_claim", "registered_kinds"]


def __getattr__(name: str) -> Any:
    if name in ("parse_claim", "all_kinds"):  # importing the built-in kinds on first use
        from interp_assert.claims import builtin

        return getattr(builtin, name)
    raise AttributeError(f"module 'interp_assert.claims' has no attribute {name!r}")
