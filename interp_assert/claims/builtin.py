"""Importing this module registers the built-in claim kinds."""

from interp_assert.claims import (  # noqa: F401  (each module registers its claim kinds)
    attention,
    causal,
    circuit,
    cluster,
    compare,
    composition,
    distribution,
    forall,
    monotone,
    ranking,
    trajectory,
    within,
)
