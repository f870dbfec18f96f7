"""Machine-readable results: one JSON record per claim and checkpoint, written deterministically
and atomically, and the terminal summary built from the same records.

A record is plain JSON data, so it can travel from pytest-xdist workers to the controller
inside a test report. The results file is::

    {"schema": "interp-assert/results/3", "versions": {...}, "summary": {"holds": 3, ...},
     "results": [record, ...], "trajectories": [...]}

sorted by file, claim and checkpoint, without timings: the same run gives the same bytes.
"""

from __future__ import annotations

import contextlib
import math
import platform
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interp_assert.judge.verdict import WORDS, Verdict
from interp_assert.output.files import relative, write_json

if TYPE_CHECKING:
    from interp_assert.judge.verdict import ClaimResult
    from interp_assert.output.trajectories import Trajectory

SCHEMA = "interp-assert/results/3"


def _plain(value: Any) -> Any:
    """JSON-safe copy: numpy scalars/arrays to Python, NaN/inf to strings."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:  # most leaves: as they are
        return value
    if kind is float:
        return value if math.isfinite(value) else str(value)
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


def record(result: ClaimResult, root: Path | None = None) -> dict[str, Any]:
    """The JSON record of one claim on one target (no timings: reruns give equal files)."""
    outcome = result.outcome
    data: dict[str, Any] = {
        "file": relative(result.file, root), "id": result.claim_id, "name": result.name,
        "line": result.location.line, "claim": result.sentence, "why": result.why,
        "verdict": result.verdict.value, "reason": result.judgement.reason,
        "fails_run": result.judgement.fails_run,
        "checkpoint": result.subject, "label": result.label, "step": result.step,
        "holds_from": result.holds_from, "sha256": result.sha256,
        "quantities": result.quantities, "value": None, "measured": None, "expected": None,
        "interval": None, "p_value": None, "context": {}, "notes": [], "rows": [],
    }
    if outcome is not None:
        data.update(value=outcome.value, measured=outcome.measured, expected=outcome.expected,
                    interval=list(outcome.interval) if outcome.interval else None,
                    p_value=outcome.p_value,
                    context=outcome.context, notes=outcome.notes, rows=outcome.rows[:200])
        if outcome.sequential is not None:  # samples used of the budget (absent otherwise)
            data["sequential"] = dict(outcome.sequential)
    if outcome is not None and outcome.meta.get("confidence") and "samples" in outcome.meta \
            and "statistic" not in outcome.meta:  # per-sample values a baseline can pair with
        from interp_assert.output.unit_samples import encode_samples

        data.update(samples=encode_samples(outcome.meta["samples"]),
                    dataset=str(outcome.context.get("dataset", "")))
    if result.baseline is not None:
        change = None
        if outcome is not None and outcome.value is not None and math.isfinite(outcome.value):
            change = outcome.value - result.baseline.value
        data["baseline"] = {**result.baseline.as_dict(), "change": change}
    elif result.baseline_used:
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


# -- terminal summary ----------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    from interp_assert.claims.outcome import fmt

    return fmt(value) if isinstance(value, int | float) else ("n/a" if value is None else
                                                              str(value))


def summary_text(records: Iterable[dict[str, Any]]) -> str:
    """The claims' table: one row per claim for single checkpoints, and per sweep a pivot of
    claims × checkpoints with the step from which each claim holds."""
    from tabulate import tabulate

    from interp_assert.output.trajectories import sweep_grid, trajectories

    ordered = sort_records(records)
    single = [r for r in ordered if r.get("label") is None]
    parts = []
    if single:
        with_baseline = any("baseline" in r for r in single)
        rows = []
        for item in single:
            row = [item["file"], item["name"], item.get("checkpoint") or "",
                   _fmt(item.get("value")), WORDS[Verdict(item["verdict"])].table]
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
        labels, grid = sweep_grid(group)
        rows = []
        for trajectory, cells in zip(group, grid):
            row = [trajectory.claim_id]
            for label in labels:
                value, shown = cells.get(label, (None, None))
                row.append("" if shown is None else "ERROR" if shown == "error"
                           else f"{_fmt(value)} {WORDS[Verdict(shown)].mark}")
            observed = trajectory.observed
            row.append("never" if observed is None else str(observed))
            rows.append(row)
        parts.append(f"sweep {file}:\n" + tabulate(rows, headers=["claim", *labels, "holds from"],
                                                   tablefmt="simple", disable_numparse=True))
    return "\n\n".join(parts)


def _signed(value: Any) -> str:
    return f"{value:+.4g}" if isinstance(value, int | float) else ""

