"""Machine-readable results: one JSON record per claim and checkpoint, written deterministically
and atomically, and the terminal summary built from the same records.

A record is plain JSON data, so it can travel from pytest-xdist workers to the controller
inside a test report. The results file is::

    {"schema": "interp-assert/results/2", "versions": {...}, "summary": {"holds": 3, ...},
     "results": [record, ...], "trajectories": [...]}

sorted by file, claim and checkpoint, without timings: the same run gives the same bytes.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    from interp_assert.evaluate.evaluation import ClaimResult
    from interp_assert.loading.targets import Trajectory
    from interp_assert.output.baseline import BaselineEntry

SCHEMA = "interp-assert/results/2"
#: verdicts of a record; expected failures are those before a claim's ``holds_from`` step
VERDICTS = ("holds", "fails", "error", "xfail", "xpass")


def _plain(value: Any) -> Any:
    """JSON-safe copy: numpy scalars/arrays to Python, NaN/inf to strings."""
    import numpy as np

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


def relative(path: Path | str, root: Path | None) -> str:
    """``path`` relative to ``root`` when inside it, as a POSIX string."""
    path = Path(path)
    if root is not None:
        try:
            return path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            pass
    return path.as_posix()


def verdict(status: str, expect_failure: bool = False) -> str:
    """holds / fails / error, or xfail / xpass for a claim not expected to hold yet."""
    if status == "error":
        return "error"
    if expect_failure:
        return "xpass" if status == "passed" else "xfail"
    return "holds" if status == "passed" else "fails"


def record(result: ClaimResult, root: Path | None = None, *, file: Path | None = None,
           name: str | None = None,
           label: str | None = None, step: int | None = None, holds_from: int | None = None,
           expect_failure: bool = False, baseline: BaselineEntry | None = None,
           baseline_used: bool = False) -> dict[str, Any]:
    """The JSON record of one claim on one checkpoint (no timings: reruns give equal files).

    ``file`` is the claim file (default: as the result names it), ``label``/``step`` place it in
    a sweep; ``baseline`` is the recorded entry it was judged
    against (``baseline_used`` without an entry: the entry was missing).
    """
    outcome = result.outcome
    data: dict[str, Any] = {
        "file": relative(file or result.file, root), "id": result.claim_id,
        "name": name or result.claim_id, "line": result.location.line,
        "claim": result.sentence, "why": result.why, "status": result.status,
        "verdict": verdict(result.status, expect_failure), "checkpoint": result.subject,
        "label": label, "step": step, "holds_from": holds_from, "sha256": result.sha256,
        "quantities": result.quantities, "value": None, "measured": None, "expected": None,
        "interval": None, "context": {}, "notes": [], "rows": [],
    }
    if outcome is not None:
        data.update(value=outcome.value, measured=outcome.measured, expected=outcome.expected,
                    interval=list(outcome.interval) if outcome.interval else None,
                    context=outcome.context, notes=outcome.notes, rows=outcome.rows[:200])
    if baseline is not None:
        change = None
        if outcome is not None and outcome.value is not None and math.isfinite(outcome.value):
            change = outcome.value - baseline.value
        data["baseline"] = {**baseline.as_dict(), "change": change}
    elif baseline_used:
        data["baseline"] = {"missing": True}
    if result.error is not None:
        data["error"] = str(result.error)
    data["plot"] = relative(result.plot, root) if result.plot is not None else None
    return _plain(data)


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for package in ("interp-assert", "torch", "numpy"):
        with contextlib.suppress(PackageNotFoundError):
            out[package] = version(package)
    return out


def write_atomically(path: Path, fill: Callable[[BinaryIO], object]) -> None:
    """Write a file atomically: ``fill`` writes into a temp file in the same folder, which is
    then renamed over ``path``.

    An interrupted or failed write (Ctrl-C, a full disk, a killed process before the rename)
    leaves the earlier file as it was, and no temp file behind. The file gets the permissions
    of a plain ``open(path, "w")`` (0o666 less the umask), not mkstemp's 0o600.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    handle = os.open(tmp, flags, 0o666)
    try:
        with os.fdopen(handle, "wb") as stream:
            fill(stream)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_text(path: Path, text: str) -> None:
    """Write UTF-8 ``text`` atomically (see :func:`write_atomically`)."""
    write_atomically(path, lambda stream: stream.write(text.encode("utf-8")))


def save_figure(figure: Any, path: Path) -> Path:
    """Save a matplotlib figure as PNG atomically (see :func:`write_atomically`)."""
    write_atomically(path, lambda stream: figure.savefig(stream, format="png"))
    return path


def write_json(path: Path, payload: Any) -> None:
    """Write JSON atomically (see :func:`write_text`), sorted and indented."""
    write_text(path, json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def sort_records(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records by file, claim, then step order within a sweep."""
    from interp_assert.loading.targets import natural_key

    return sorted(records, key=lambda r: (r["file"], r["id"], r.get("label") is not None,
                                          r.get("step") is None, r.get("step") or 0,
                                          natural_key(str(r.get("label") or r.get("checkpoint")))))


def counts(records: Iterable[dict[str, Any]]) -> dict[str, int]:
    summary: dict[str, int] = {}
    for item in records:
        summary[item["verdict"]] = summary.get(item["verdict"], 0) + 1
    return summary


def write_records(path: Path, records: Iterable[dict[str, Any]],
                  trajectories: Iterable[Trajectory] = (), root: Path | None = None) -> None:
    """All records, sorted, with tool versions, verdict counts and sweep trajectories."""
    ordered = sort_records(records)
    write_json(path, {"schema": SCHEMA, "versions": versions(), "summary": counts(ordered),
                      "results": ordered,
                      "trajectories": [_plain(t.as_dict(root)) for t in trajectories]})


def write_results(path: Path, results: Iterable[ClaimResult], root: Path | None = None) -> None:
    """Results of single-checkpoint runs (see :func:`write_records`)."""
    write_records(path, [record(r, root) for r in results], root=root)


# -- terminal summary ----------------------------------------------------------------------------
_SHOWN = {"holds": "holds", "fails": "FAILS", "error": "ERROR", "xfail": "xfail",
          "xpass": "XPASS"}
_MARK = {"holds": "✓", "fails": "✗", "error": "ERROR", "xfail": "✗ xfail", "xpass": "✓ XPASS"}


def _fmt(value: Any) -> str:
    from interp_assert.claims.outcome import fmt

    return fmt(value) if isinstance(value, int | float) else ("n/a" if value is None else
                                                              str(value))


def summary_text(records: Iterable[dict[str, Any]]) -> str:
    """The claims' table: one row per claim for single checkpoints, and per sweep a pivot of
    claims × checkpoints with the step from which each claim holds."""
    from tabulate import tabulate

    from interp_assert.loading.targets import natural_key, trajectories

    ordered = sort_records(records)
    single = [r for r in ordered if r.get("label") is None]
    parts = []
    if single:
        with_baseline = any("baseline" in r for r in single)
        rows = []
        for item in single:
            row = [item["file"], item["name"], item.get("checkpoint") or "",
                   _fmt(item.get("value")), _SHOWN[item["verdict"]]]
            if with_baseline:
                base = item.get("baseline") or {}
                row += ["missing" if base.get("missing") else _fmt(base.get("value")),
                        _signed(base.get("change"))]
            rows.append(row)
        headers = ["file", "claim", "checkpoint", "value", "verdict"]
        headers += ["baseline", "change"] if with_baseline else []
        parts.append(tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True))
    by_file: dict[str, list[Any]] = {}
    for trajectory in trajectories(ordered):
        by_file.setdefault(trajectory.file, []).append(trajectory)
    for file, group in by_file.items():
        order: dict[str, tuple[Any, ...]] = {}
        for trajectory in group:
            for label, step in zip(trajectory.labels, trajectory.steps):
                order[label] = (step is None, step or 0, natural_key(label))
        labels = sorted(order, key=order.__getitem__)
        rows = []
        for trajectory in group:
            cells = dict(zip(trajectory.labels, zip(trajectory.values, trajectory.verdicts)))
            row = [trajectory.claim_id]
            for label in labels:
                value, shown = cells.get(label, (None, None))
                row.append("" if shown is None else "ERROR" if shown == "error"
                           else f"{_fmt(value)} {_MARK[shown]}")
            observed = trajectory.observed
            row.append("never" if observed is None else str(observed))
            rows.append(row)
        parts.append(f"sweep {file}:\n" + tabulate(rows, headers=["claim", *labels, "holds from"],
                                                   tablefmt="simple", disable_numparse=True))
    return "\n\n".join(parts)


def _signed(value: Any) -> str:
    return f"{value:+.4g}" if isinstance(value, int | float) else ""

