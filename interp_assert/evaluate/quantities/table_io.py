"""Reading table files for table quantities: a cache of parsed frames, and which cells are
missing (as opposed to NaN values, which pandas reads alike)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from interp_assert.errors import SpecError

_MISSING_TEXT = frozenset({"", "NA", "N/A", "n/a", "null", "NULL", "None", "<NA>", "#N/A"})
_FRAMES: dict[tuple[str, int, int], Any] = {}
_FRAME_LIMIT = 8


def read_cached(path: Path, name: str, location: Any) -> Any:
    """:func:`interp_assert.loading.data.read_table`, cached by path, size and modification time."""
    from interp_assert.loading.data import read_table

    try:
        stat = path.stat()
    except OSError:
        raise SpecError(f"quantity '{name}': table file not found: {path}", location,
                        hint="'table:' paths are relative to the claim file") from None
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key not in _FRAMES:
        try:
            frame = read_table(path)
        except SpecError:
            raise
        except Exception as exc:
            raise SpecError(f"quantity '{name}': cannot read {path.name}: {exc}",
                            location) from None
        while len(_FRAMES) >= _FRAME_LIMIT:
            _FRAMES.pop(next(iter(_FRAMES)))
        _FRAMES[key] = frame
    return _FRAMES[key]


def _is_nan(cell: Any) -> bool:
    return isinstance(cell, float | np.floating) and math.isnan(cell)


def _missing(path: Path, column: str, cells: np.ndarray) -> np.ndarray:
    """Which cells are missing (not NaN values): pandas reads both as NaN, so NaN cells are
    looked up in the file itself."""
    missing = np.array([cell is None or (isinstance(cell, str) and cell.strip() in _MISSING_TEXT)
                        for cell in cells], dtype=bool)
    nan_rows = np.array([_is_nan(cell) for cell in cells], dtype=bool)
    if not nan_rows.any():
        return missing
    raw = _raw_missing(path, column, len(cells))
    if raw is None:  # the file could not be matched row by row: NaN stays a value
        return missing
    return missing | (nan_rows & raw)


def _raw_missing(path: Path, column: str, rows: int) -> np.ndarray | None:
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            with open(path, newline="", encoding="utf-8") as handle:
                reader = csv.reader(handle)
                header = next(reader)
                i = header.index(column)
                flags = [len(r) <= i or r[i].strip() in _MISSING_TEXT for r in reader if r]
        elif suffix == ".jsonl":
            flags = []
            with open(path, encoding="utf-8") as handle:
                for line in handle:
                    if line.strip():
                        record = json.loads(line)
                        flags.append(record.get(column) is None)
        elif suffix == ".parquet":
            import pyarrow.parquet as pq

            flags = pq.read_table(path, columns=[column]).column(column).is_null().to_pylist()
        else:
            return None
    except (OSError, ValueError, KeyError, ImportError):
        return None
    return np.array(flags, dtype=bool) if len(flags) == rows else None


__all__ = ["read_cached"]
