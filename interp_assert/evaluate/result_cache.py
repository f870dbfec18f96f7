"""A result cache across runs: the reduced results of forward-pass sinks (captured arrays,
streamed statistics, metric values) stored on disk, so that a second run (``--lf``, ``-k``,
``interp-assert report`` after ``pytest``) reuses every pass whose inputs did not change.

Each entry is one ``.npz`` file (``allow_pickle=False``, never a pickle): the arrays plus a
JSON manifest holding the entry's full key (:mod:`interp_assert.evaluate.cache_keys`), which
is compared on every read. Writes go to a temporary file and ``os.replace``; eviction (least
recently used first, a hit refreshing the entry's time) runs under a file lock. An entry that
cannot be read is removed and recomputed; nothing the cache does stops a run.

The cache is off unless a driver turns it on: ``interp-assert`` does by default
(``--cache DIR``, ``--no-cache``), pytest with ``--interp-cache DIR`` (ini
``interp_assert_cache``), both also through ``INTERP_ASSERT_CACHE``.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import numpy as np

from interp_assert.evaluate import cache_config
from interp_assert.evaluate.cache_keys import Uncacheable, digest, entry_key, pass_key
from interp_assert.evaluate.streaming import KEEP_FRACTION, NOT_KEPT, StreamingStats
from interp_assert.labels import Axis, Labelled
from interp_assert.loading.data import DatasetSpec
from interp_assert.loading.subject import LoadedSubject
from interp_assert.resources import memory_limit

MANIFEST = "__manifest__"
STALE_TEMP_SECONDS = 3600.0
LOCK_TIMEOUT = 10.0

MISS = object()


class ResultCache:
    """Entries under ``folder/entries``; at most ``max_bytes`` in all (None: no bound)."""

    def __init__(self, folder: str | Path, max_bytes: int | None = None) -> None:
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self.hits = self.misses = self.stores = 0

    def path(self, key: str) -> Path:
        name = digest(key)
        return self.folder / "entries" / name[:2] / f"{name}.npz"

    # -- reading ---------------------------------------------------------------------------
    def get(self, key: str) -> Any:
        """The value stored under ``key``, or :data:`MISS`."""
        path = self.path(key)
        try:
            with np.load(path, allow_pickle=False) as archive:
                manifest = json.loads(bytes(archive[MANIFEST]).decode("utf-8"))
                if manifest.get("key") != key:
                    raise ValueError("the entry holds another key")
                value = decode(manifest["value"], archive)
        except FileNotFoundError:
            self.misses += 1
            return MISS
        except Exception:  # truncated, corrupt or foreign: never served, removed
            _remove(path)
            self.misses += 1
            return MISS
        if isinstance(value, StreamingStats) and not _samples_fit(value):
            self.misses += 1
            return MISS
        with contextlib.suppress(OSError):
            os.utime(path)  # least recently used: a hit makes the entry recent
        self.hits += 1
        return value

    # -- writing ---------------------------------------------------------------------------
    def put(self, key: str, value: Any) -> bool:
        """Store ``value`` (atomically); False when it cannot be stored safely or does not
        fit the size bound. Never raises for a problem of the cache folder."""
        arrays: dict[str, np.ndarray] = {}
        try:
            encoded = encode(value, arrays)
        except Uncacheable:
            return False
        manifest = json.dumps({"key": key, "value": encoded}, ensure_ascii=True)
        arrays[MANIFEST] = np.frombuffer(manifest.encode("utf-8"), dtype=np.uint8)
        size = sum(a.nbytes for a in arrays.values())
        if self.max_bytes is not None and size > self.max_bytes:
            return False
        path = self.path(key)
        temp = self.folder / "tmp" / f"{os.getpid()}-{uuid.uuid4().hex}.npz"
        try:
            temp.parent.mkdir(parents=True, exist_ok=True)
            with open(temp, "wb") as handle:
                np.savez(handle, allow_pickle=False, **arrays)
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temp, path)
        except Exception:  # a full disk, a read-only folder: the run goes on uncached
            _remove(temp)
            return False
        self.stores += 1
        return True

    def evict(self) -> None:
        """Remove the least recently used entries until the rest fit the size bound, and
        temporary files that a killed run left behind."""
        from filelock import FileLock, Timeout

        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with FileLock(str(self.folder / "lock"), timeout=LOCK_TIMEOUT):
                self._evict()
        except (OSError, Timeout):
            return

    def _evict(self) -> None:
        import time

        now = time.time()
        for temp in (self.folder / "tmp").glob("*.npz"):
            try:
                if now - temp.stat().st_mtime > STALE_TEMP_SECONDS:
                    temp.unlink()
            except OSError:
                continue
        if self.max_bytes is None:
            return
        entries = []
        for path in (self.folder / "entries").glob("*/*.npz"):
            try:
                stat = path.stat()
            except OSError:
                continue
            entries.append((stat.st_mtime_ns, stat.st_size, path))
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries, key=lambda e: (e[0], str(e[2]))):
            if total <= self.max_bytes:
                break
            _remove(path)
            total -= size

    def size(self) -> int:
        """Bytes the entries take."""
        return sum(p.stat().st_size for p in (self.folder / "entries").glob("*/*.npz"))


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def _samples_fit(stats: StreamingStats) -> bool:
    """Whether a cached statistic's raw samples fit this run's memory limit (as they must
    while streaming, :data:`~interp_assert.evaluate.streaming.KEEP_FRACTION`)."""
    limit = memory_limit()
    samples = stats.samples()
    return limit is None or samples is None or 2 * samples.nbytes <= KEEP_FRACTION * limit


# -- values <-> npz arrays and JSON --------------------------------------------------------
def encode(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    """A JSON description of ``value`` whose arrays go into ``arrays``; :class:`Uncacheable`
    for anything that could not be restored exactly without a pickle."""
    if value is None or isinstance(value, bool | int | str):
        return value
    kind = type(value)
    if kind is float:
        return {"t": "float", "v": repr(value)}
    if kind is np.ndarray:
        if value.dtype.hasobject:
            raise Uncacheable("an object array")
        name = f"a{len(arrays)}"
        arrays[name] = value
        return {"t": "array", "ref": name}
    if isinstance(value, np.generic) and not isinstance(value, np.object_):
        return {"t": "scalar", "v": encode(np.asarray(value), arrays)}
    if kind in (tuple, list):
        return {"t": kind.__name__, "v": [encode(v, arrays) for v in value]}
    if kind is dict:
        if not all(isinstance(k, str) for k in value):
            raise Uncacheable("a mapping with keys that are not strings")
        return {"t": "dict", "v": [[k, encode(v, arrays)] for k, v in value.items()]}
    if kind is Labelled:
        return {"t": "labelled", "values": encode(value.values, arrays),
                "axes": [[a.name, encode(a.labels, arrays)] for a in value.axes],
                "name": value.name, "meta": encode(value.meta, arrays),
                "keep_float32": value.keep_float32}
    if kind is StreamingStats:
        if not value.exact and value.dropped != NOT_KEPT:  # dropped under the memory limit:
            # a later run may keep them (statistics that were never to keep them are cached,
            # and served only to sinks that keep none: forward.request)
            raise Uncacheable("statistics whose raw samples were dropped")
        samples = value.samples()
        state = {k: v for k, v in vars(value).items() if k not in ("_kept", "_gathered")}
        return {"t": "stats", "state": encode(state, arrays),
                "samples": encode(samples, arrays)}
    from interp_assert.evaluate.attention_stream import PatternSummary  # it imports forward

    if kind is PatternSummary:
        return {"t": "pattern-summary", "state": encode(value.state(), arrays)}
    raise Uncacheable(f"a {kind.__name__}")


def decode(encoded: Any, arrays: Any) -> Any:
    """The value :func:`encode` described (``arrays``: the open npz archive)."""
    if not isinstance(encoded, dict):
        return encoded
    kind = encoded["t"]
    if kind == "float":
        return float(encoded["v"])
    if kind == "array":
        return np.asarray(arrays[encoded["ref"]])
    if kind == "scalar":
        return decode(encoded["v"], arrays)[()]
    if kind in ("tuple", "list"):
        items = [decode(v, arrays) for v in encoded["v"]]
        return tuple(items) if kind == "tuple" else items
    if kind == "dict":
        return {k: decode(v, arrays) for k, v in encoded["v"]}
    if kind == "labelled":
        axes = tuple(Axis(name, decode(labels, arrays)) for name, labels in encoded["axes"])
        return Labelled(decode(encoded["values"], arrays), axes, encoded["name"],
                        decode(encoded["meta"], arrays), keep_float32=encoded["keep_float32"])
    if kind == "stats":
        stats = StreamingStats.__new__(StreamingStats)
        stats.__dict__.update(decode(encoded["state"], arrays))
        samples = decode(encoded["samples"], arrays)
        stats._kept = None if samples is None else [samples.T]
        stats._gathered = samples
        return stats
    if kind == "pattern-summary":
        from interp_assert.evaluate.attention_stream import PatternSummary

        return PatternSummary(**decode(encoded["state"], arrays))
    raise ValueError(f"unknown entry part {kind!r}")


# -- the cache of this process, and its use by a pass --------------------------------------
_CACHES: dict[tuple[Path, int | None], ResultCache] = {}


def active() -> ResultCache | None:
    """The cache this process uses (:mod:`interp_assert.evaluate.cache_config`), or None."""
    setting = cache_config.setting()
    if setting is None:
        return None
    if setting not in _CACHES:
        _CACHES[setting] = ResultCache(*setting)
    return _CACHES[setting]


class PassEntries:
    """The cache as one pass sees it: look-ups and stores by sink key."""

    def __init__(self, cache: ResultCache, base: dict[str, Any]) -> None:
        self.cache, self.base = cache, base

    def _key(self, sink: Hashable) -> str | None:
        try:
            return entry_key(self.base, sink)
        except Uncacheable:
            return None

    def get(self, sink: Hashable) -> Any:
        key = self._key(sink)
        return MISS if key is None else self.cache.get(key)

    def put(self, sink: Hashable, value: Any) -> None:
        key = self._key(sink)
        if key is not None:
            self.cache.put(key, value)

    def close(self) -> None:
        self.cache.evict()


def entries_for(subject: LoadedSubject, dataset: DatasetSpec, interventions: tuple[Any, ...]
                ) -> PassEntries | None:
    """The cached entries of a pass, or None (no cache, or a key that cannot be stated)."""
    cache = active()
    if cache is None:
        return None
    try:
        return PassEntries(cache, pass_key(subject, dataset, interventions))
    except Uncacheable:
        return None
