"""The sha256 of files, hashed once per process: a checkpoint's identity (its results record
it) and the result cache's keys read the same memo, so a checkpoint is hashed once."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

#: a file modified this recently is hashed again on every look-up ("racy" timestamps)
RACY_SECONDS = 2.0

_FILE_DIGESTS: dict[tuple[str, int, int, int], str] = {}
_FILE_LOCK = threading.Lock()


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes (remembered per (path, size, mtime, inode) unless the file
    changed within the last :data:`RACY_SECONDS`, when a rewrite could keep its mtime)."""
    stat = path.stat()
    memo = (str(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    with _FILE_LOCK:
        if memo in _FILE_DIGESTS:
            return _FILE_DIGESTS[memo]
    started = time.time()
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    value = sha.hexdigest()
    if stat.st_mtime_ns / 1e9 < started - RACY_SECONDS:
        with _FILE_LOCK:
            _FILE_DIGESTS[memo] = value
    return value


__all__ = ["RACY_SECONDS", "file_digest"]
