"""A memory limit for single computations: a quantity whose result would not fit fails early,
with its estimate, instead of exhausting the machine.

The limit comes from ``--interp-memory-limit`` / the ini option ``interp_assert_memory_limit``
(pytest), ``--memory-limit`` (the command line tool), :func:`set_memory_limit` (Python) or the
environment variable ``INTERP_ASSERT_MEMORY_LIMIT``, in that order; by default it is half of
the machine's physical memory. Sizes are written ``512MB``, ``4GiB``, ``1.5G``, ``25%`` (of
physical memory) or ``none``.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import gc
import math
import os
import re
from collections.abc import Iterator

from interp_assert.errors import QuantityError

ENV_VAR = "INTERP_ASSERT_MEMORY_LIMIT"
DEFAULT = "50%"
HOW_TO_RAISE = (f"raise the limit with --interp-memory-limit (pytest), the ini option "
                f"interp_assert_memory_limit or {ENV_VAR}, e.g. 8GiB, 75% or none")

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9,
          "gb": 10**9, "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30,
          "tib": 2**40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z%]*)\s*$", re.IGNORECASE)

_UNSET = object()
_configured: int | object | None = _UNSET  # set_memory_limit(); _UNSET: not set


class MemoryLimitError(QuantityError):
    """A computation whose estimated memory exceeds the configured limit."""


def physical_memory() -> int | None:
    """Bytes of physical memory, or None where the platform does not say."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):
        return None


def parse_size(text: str | int | float) -> int | None:
    """Bytes from ``512MB``, ``4GiB``, ``1.5G``, ``25%`` or ``none`` (no limit)."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        if not math.isfinite(text) or text <= 0:
            raise ValueError(f"a memory limit must be positive, not {text!r}")
        return int(text)
    raw = str(text).strip()
    if raw.lower() in ("none", "off", "unlimited", "0"):
        return None
    match = _SIZE.match(raw)
    unit = match.group(2).lower() if match else ""
    if match is None or (unit not in _UNITS and unit != "%"):
        raise ValueError(f"cannot read memory limit {raw!r}; write e.g. 512MB, 4GiB, 50% or none")
    number = float(match.group(1))
    if unit == "%":
        total = physical_memory()
        if total is None:
            return None
        return int(total * number / 100)
    return int(number * _UNITS[unit])


def set_memory_limit(limit: str | int | None) -> None:
    """Set the limit for this process (``None``: back to the environment or the default)."""
    global _configured
    _configured = _UNSET if limit is None else parse_size(limit)


def memory_limit() -> int | None:
    """The limit in bytes, or None for no limit."""
    if _configured is not _UNSET:
        return _configured  # type: ignore[return-value]
    try:
        return parse_size(os.environ.get(ENV_VAR) or DEFAULT)
    except ValueError as exc:
        raise QuantityError(f"{ENV_VAR}: {exc}") from None


def format_bytes(size: float) -> str:
    """``512 B``, ``3.5 MiB``, ``12.0 GiB``."""
    if size < 1024:
        return f"{size:.0f} B"
    exponent = min(3, int(math.log(size, 1024)))
    return f"{size / 1024**exponent:.1f} {('KiB', 'MiB', 'GiB')[exponent - 1]}"


def check_size(nbytes: float, what: str, hint: str = "") -> None:
    """Raise :class:`MemoryLimitError` if ``what`` would need more than the limit."""
    limit = memory_limit()
    if limit is not None and nbytes > limit:
        raise limit_error(what, nbytes, limit, hint)


def limit_error(what: str, nbytes: float, limit: int, hint: str = "") -> MemoryLimitError:
    """The error for ``what``, which would need ``nbytes``; ``hint`` says how to need less."""
    advice = f"{hint}; or {HOW_TO_RAISE}" if hint else HOW_TO_RAISE
    need, have = format_bytes(nbytes), format_bytes(limit)
    if need == have:  # too close to tell apart when rounded
        need, have = f"{int(nbytes):,} bytes", f"{limit:,} bytes"
    return MemoryLimitError(f"{what} would need about {need}, over the memory limit of {have}",
                            hint=advice)


def array_bytes(shape: tuple[int, ...], itemsize: int = 8) -> int:
    return math.prod(int(s) for s in shape) * itemsize


# -- limits on the work one claim file may ask for (README, "Limits") --------------------------
#: labels one label spec or member list may expand to (``N0..N999999``)
MAX_LABELS = 1_000_000
#: instances of one template (``for i in 0..9999``)
MAX_TEMPLATE_INSTANCES = 10_000
#: nesting levels of one expression: operators, unary minus, brackets, indexing and calls,
#: counted together (a flat sum of 50 terms is 49 levels)
MAX_NESTING = 100
#: characters of one claim sentence or quantity expression
MAX_SENTENCE = 5_000
#: digits of one number in a sentence
MAX_DIGITS = 300
#: nesting depth of the YAML of a claim file (lists and mappings in each other)
MAX_YAML_DEPTH = 100
#: values the YAML of a claim file may expand to, aliases (``*name``) counted each time used
MAX_YAML_VALUES = 1_000_000
#: bytes of a claim file
MAX_FILE_BYTES = 4 * 2**20
#: claims of one claim file
MAX_CLAIMS = 10_000
#: files and folders a checkpoint glob may visit, and checkpoints a sweep may hold
MAX_GLOB_VISITS = 100_000
MAX_CHECKPOINTS = 10_000


#: objects the paused collector lets accumulate before it collects anyway (garbage included)
GC_PAUSE_BUDGET = 2_000_000


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while claim files are read and their items
    made: what they build lives on, and each collection on the way would scan every object
    built so far again (a third of the time of collecting 10,000 claims). The collector's
    state is restored; a pause inside a pause changes nothing; :func:`gc_relieve` bounds the
    garbage a pause may hold."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def gc_relieve() -> None:
    """Collect now when the collector is paused and more than GC_PAUSE_BUDGET objects were
    made since (called after work that leaves cyclic garbage, such as an Earley parse)."""
    if not gc.isenabled() and gc.get_count()[0] > GC_PAUSE_BUDGET:
        gc.collect()


def settle_gc() -> None:
    """Once a run's claims are collected: leave every object made so far (claim files,
    checks, test items: they live as long as the run) out of later collections, which then
    scan only what the run itself makes (``gc.freeze``). Give them back with ``gc.unfreeze``
    when the run ends: what became garbage meanwhile (bounded by :func:`gc_relieve`) is freed
    then."""
    gc.freeze()
    freeze_at_exit()


@functools.cache  # registered once per process
def freeze_at_exit() -> None:
    """At the interpreter's exit, leave every object still alive out of its last collection
    (``gc.freeze`` from an ``atexit`` handler): that collection scans everything torch,
    transformers and the run built, about a second of CPU, only to free memory the process is
    about to give back. Python does not promise to finalize objects alive at exit; files and
    reports are written and closed before (pytest's ``sessionfinish``/``unconfigure``, the
    command line tool's end), and atexit handlers registered earlier still run after this one.
    Registered once per process, by runs that collect claims."""
    atexit.register(gc.freeze)
