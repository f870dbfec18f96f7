"""Importing this module registers the built-in claim kinds."""

from __future__ import annotations

from interp_assert.claims import (  # noqa: F401  (each module registers its claim kinds)
    attention,
    attribution,
    causal,
    circle,
    circuit,
    circuit_test,
    close,
    cluster,
    cluster_of,
    compare,
    composition,
    composition_random,
    distribution,
    feature_causal,
    features,
    forall,
    links,
    logit_attribution,
    logit_lens,
    monotone,
    orthogonal,
    path_patch,
    probe,
    ranking,
    steer,
    trajectory,
    within,
)
from interp_assert.claims.base import Claim, registered_kinds
from interp_assert.language.parser import ParsedClaim
from interp_assert.language.parser import parse_claim as _parse_with


def all_kinds() -> dict[str, type[Claim]]:
    """Every registered claim kind, the built-in ones included."""
    return registered_kinds()


def parse_claim(text: str) -> ParsedClaim:
    """Parse a sentence with every registered claim kind (built-in ones included)."""
    return _parse_with(text, all_kinds())
