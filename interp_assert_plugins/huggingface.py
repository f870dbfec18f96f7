"""Deprecated: use ``interp_assert.adapters.huggingface`` (kept for one release)."""

from interp_assert.adapters.huggingface import *  # noqa: F403
