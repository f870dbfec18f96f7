"""Plain mirrors of the bundled claim files: one module per ``specs/<stem>.claims.yaml``.

Each module computes, with torch, numpy, scipy and the standard library only (never
``interp_assert``), the numbers that file's claims record, doing the same loads and forward
passes. Its public names:

- ``numbers() -> dict[str, float]``: the computed numbers, by key;
- ``SAME: dict[tuple[str, str | None], str]``: (claim id, row label or None) -> key;
- optionally ``key(record) -> str | None`` for rows the table cannot list (sweeps).

``bench/main_job_plain.py`` runs them in one process; ``bench/bench_main_job.py`` times that
against ``pytest`` on the same files and compares every mapped value.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

SPECS = Path(__file__).resolve().parents[2] / "specs"


def mirrored() -> list[str]:
    """The stems of ``specs/`` that have a plain mirror here, in file order."""
    here = Path(__file__).resolve().parent
    return [path.name.split(".")[0] for path in sorted(SPECS.glob("*.claims.yaml"))
            if (here / f"{path.name.split('.')[0]}.py").exists()]


def module(stem: str) -> ModuleType:
    """The plain mirror of ``specs/<stem>.claims.yaml``."""
    return importlib.import_module(f"bench.plain.{stem}")


def key_of(stem: str, record: dict[str, Any]) -> str | None:
    """The plain number a claim's JSON record corresponds to, or None."""
    mirror = module(stem)
    if hasattr(mirror, "key"):
        found = mirror.key(record)
        if found is not None:
            return found
    return mirror.SAME.get((record["id"], record.get("label")))
