"""The values that moved between two runs: two baseline files, or two results files
(``--interp-json`` / ``--json``), compared check by check and printed as one table."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from interp_assert.errors import InterpAssertError
from interp_assert.output.baseline import SCHEMA as BASELINE_SCHEMA
from interp_assert.output.baseline import BaselineStore
from interp_assert.output.results import SCHEMA as RESULTS_SCHEMA

#: (claim file, check name) -> value (None: not measured)
Values = dict[tuple[str, str], "float | None"]


def read_values(path: Path) -> Values:
    """Every check's value in a baseline file or a results file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InterpAssertError(f"cannot read {path}: {exc}") from None
    schema = data.get("schema") if isinstance(data, dict) else None
    if schema == BASELINE_SCHEMA:
        store = BaselineStore.load(path)
        return {(file, name): entry.value for file, checks in store.files.items()
                for name, entry in checks.items()}
    if schema == RESULTS_SCHEMA:
        values: Values = {}
        for item in data.get("results", []):
            value = item.get("value")
            number = isinstance(value, int | float) and not isinstance(value, bool)
            values[(str(item["file"]), str(item["name"]))] = float(value) if number else None
        return values
    raise InterpAssertError(f"{path} is neither a baseline file nor a results file",
                            hint=f"compare two files of schema {BASELINE_SCHEMA!r} (written by "
                                 f"--interp-baseline-update) or {RESULTS_SCHEMA!r} (--interp-json)")


@dataclass(frozen=True)
class Move:
    """One check whose value moved, appeared or disappeared."""

    file: str
    name: str
    old: float | None
    new: float | None

    @property
    def change(self) -> float | None:
        if self.old is None or self.new is None:
            return None
        return self.new - self.old


def _same(before: float | None, after: float | None, min_change: float) -> bool:
    """Unmoved: both missing, both NaN, or numbers at most ``min_change`` apart."""
    if before is None or after is None:
        return before is after
    if math.isnan(before) or math.isnan(after):
        return math.isnan(before) and math.isnan(after)
    return abs(after - before) <= min_change


def moved(old: Values, new: Values, min_change: float = 0.0) -> list[Move]:
    """The checks whose value changed by more than ``min_change`` (NaN against a number, a
    value that appeared or disappeared count as moved), largest change first."""
    moves = [Move(*key, old.get(key), new.get(key)) for key in sorted(old.keys() | new.keys())
             if not _same(old.get(key), new.get(key), min_change)]

    def size(move: Move) -> float:
        change = move.change
        return math.inf if change is None or math.isnan(change) else abs(change)

    return sorted(moves, key=lambda m: -size(m))


def diff_table(moves: list[Move], compared: int) -> str:
    """The moved values as a table, and a line that counts them."""
    from tabulate import tabulate

    from interp_assert.claims.outcome import fmt

    def cell(value: float | None) -> str:
        return "—" if value is None else fmt(value)

    if not moves:
        return f"no value moved ({compared} checks compared)"
    rows = [[m.file, m.name, cell(m.old), cell(m.new),
             "new" if m.old is None else "gone" if m.new is None else f"{m.change:+.4g}"]
            for m in moves]
    table = tabulate(rows, headers=["claim file", "check", "old", "new", "change"],
                     tablefmt="simple", disable_numparse=True)
    return f"{table}\n{len(moves)} of {compared} checks moved"
