"""Claim kinds: a registry of small predicate classes (see :mod:`.base`)."""

from interp_assert.claims.base import (
    Claim,
    Context,
    parse_claim,
    register_claim,
    registered_kinds,
)

__all__ = ["Claim", "Context", "parse_claim", "register_claim", "registered_kinds"]
