"""Where the result cache (:mod:`interp_assert.evaluate.result_cache`) lives in this process,
and its size bound. Only the standard library: the pytest plugin sets it at start-up.

``interp-assert`` turns the cache on by default (``--cache DIR``, ``--no-cache``); pytest
with ``--interp-cache DIR`` or the ini option ``interp_assert_cache``; both read
``INTERP_ASSERT_CACHE`` when they are not told (``off`` turns it off) and the bound from
``--cache-size`` / ``interp_assert_cache_size`` / ``INTERP_ASSERT_CACHE_SIZE`` (default 2 GiB).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from interp_assert.resources import parse_size

ENV_VAR = "INTERP_ASSERT_CACHE"
SIZE_ENV_VAR = "INTERP_ASSERT_CACHE_SIZE"
DEFAULT_SIZE = "2GiB"
OFF = frozenset({"", "off", "none", "no", "false", "0"})

_UNSET: Any = object()
_setting: tuple[Path, int | None] | None = _UNSET


def is_off(value: str | os.PathLike[str] | None) -> bool:
    return value is None or str(value).strip().lower() in OFF


def size_bound(size: str | int | None = None) -> int | None:
    """Bytes from ``size``, else ``INTERP_ASSERT_CACHE_SIZE``, else 2 GiB (None: unbounded;
    ValueError for a size that cannot be read)."""
    raw = size if size not in (None, "") else os.environ.get(SIZE_ENV_VAR) or DEFAULT_SIZE
    return parse_size(raw)


def configure(folder: str | os.PathLike[str] | None, size: str | int | None = None) -> None:
    """Use the cache in ``folder`` in this process (None or ``off``: no cache)."""
    global _setting
    _setting = None if is_off(folder) else (Path(folder).absolute(), size_bound(size))


def use(chosen: tuple[Path, int | None] | None) -> None:
    """Use a setting another process resolved (a Ray task gets its driver's :func:`setting`)."""
    global _setting
    _setting = chosen


def reset() -> None:
    """Back to the environment: ``INTERP_ASSERT_CACHE`` (off when unset)."""
    global _setting
    _setting = _UNSET


def setting() -> tuple[Path, int | None] | None:
    """(folder, size bound) of the cache in use, or None."""
    if _setting is not _UNSET:
        return _setting
    folder = os.environ.get(ENV_VAR)
    try:
        return None if is_off(folder) else (Path(str(folder)).absolute(), size_bound())
    except ValueError:
        return None
