"""Machine-readable results: one JSON record per claim, written deterministically and
atomically."""

from __future__ import annotations

import json
import math
import os
import platform
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .engine import ClaimResult

SCHEMA = "interp-assert/results/1"


def _plain(value: Any) -> Any:
    """JSON-safe copy: numpy scalars/arrays to Python, NaN/inf to strings."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Path):
        return value.as_posix()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def record(result: ClaimResult, root: Path | None = None) -> dict[str, Any]:
    """The JSON record of one result (no timings, so reruns give identical files)."""
    outcome = result.outcome
    plot = result.plot
    if plot is not None and root is not None:
        try:
            plot = plot.resolve().relative_to(root.resolve())
        except ValueError:
            pass
    data: dict[str, Any] = {
        "file": Path(result.file).as_posix(), "id": result.claim_id,
        "line": result.location.line, "claim": result.sentence, "why": result.why,
        "status": result.status, "checkpoint": result.subject, "sha256": result.sha256,
        "quantities": result.quantities,
    }
    if outcome is not None:
        data.update(value=outcome.value, measured=outcome.measured, expected=outcome.expected,
                    interval=list(outcome.interval) if outcome.interval else None,
                    context=outcome.context, notes=outcome.notes, rows=outcome.rows[:200])
    if result.error is not None:
        data["error"] = str(result.error)
    data["plot"] = plot
    return _plain(data)


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for package in ("interp-assert", "torch", "numpy"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            pass
    return out


def write_json(path: Path, payload: Any) -> None:
    """Write JSON atomically (a temp file in the same folder, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(payload, stream, indent=2, sort_keys=True, ensure_ascii=False)
            stream.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_results(path: Path, results: Iterable[ClaimResult], root: Path | None = None) -> None:
    """All results, sorted by file, claim and checkpoint, with tool versions."""
    records = sorted((record(r, root) for r in results),
                     key=lambda r: (r["file"], r["id"], str(r.get("checkpoint"))))
    summary: dict[str, int] = {}
    for item in records:
        summary[item["status"]] = summary.get(item["status"], 0) + 1
    write_json(path, {"schema": SCHEMA, "versions": versions(), "summary": summary,
                      "results": records})
