"""Importing this module registers the built-in claim kinds."""

from . import cluster, compare, monotone, ranking  # noqa: F401
