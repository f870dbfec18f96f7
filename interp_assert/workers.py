"""One small thread pool for numpy work that releases the GIL (streaming statistics split by
channels, the results of the sinks of a pass). Threads, not processes: the arrays are shared."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

_POOL: ThreadPoolExecutor | None = None
_PREFIX = "interp-assert-worker"


def thread_count() -> int:
    """Threads of the pool: the machine's cores, at most four."""
    return max(1, min(4, os.cpu_count() or 1))


def parallel_map(function: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``[function(item) for item in items]``, spread over the pool's threads (in order;
    the first exception is raised). One item runs on the calling thread."""
    items = list(items)
    nested = threading.current_thread().name.startswith(_PREFIX)  # never wait on itself
    if len(items) <= 1 or thread_count() == 1 or nested:
        return [function(item) for item in items]
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(thread_count(), thread_name_prefix=_PREFIX)
    return list(_POOL.map(function, items))
