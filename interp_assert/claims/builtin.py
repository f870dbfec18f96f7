"""Importing this module registers the built-in claim kinds."""

from . import (  # noqa: F401  (each module registers its claim kinds)
    attention,
    baseline,
    causal,
    circuit,
    cluster,
    compare,
    distribution,
    forall,
    monotone,
    ranking,
    trajectory,
)
