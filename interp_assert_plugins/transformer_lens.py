"""Deprecated: use ``interp_assert.adapters.transformer_lens`` (kept for one release)."""

from interp_assert.adapters.transformer_lens import *  # noqa: F403
