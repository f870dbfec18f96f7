"""Table quantities: a column of a CSV / JSON-lines / parquet file, per row, per group, per step,
or as per-group distributions.

::

    key_scalar:                     # per projector: the mean over its rows of the per-row mean
      table: gates.csv              # relative to the claim file
      column: norm_key_scalar       # cells may hold JSON arrays
      per_row: mean                 # mean|median|max|min|first|last|sum|len|norm|std of a cell
      group_by: projector_index     # -> one value per group, labelled by the group values
      reduce: mean                  # mean|median|min|max|sum|std|first|last|count|unique
      nan: propagate                # or omit: skip NaN values (pandas' skipna, nanmean)
    key_dist:                       # per-group streaming statistics for distribution claims
      {table: gates.csv, column: norm_key_scalar, per_row: mean, group_by: projector_index,
       as: distribution}            # options: bins, thresholds (exact |x| < t fractions)
    val_exact:                      # a series labelled by step, e.g. a training log
      {table: log.jsonl, column: val_exact, index: step}

Without ``group_by`` or ``index`` the quantity is the column, one value per row (axis ``row``).
``index`` and ``group_by`` together give a [group, index] table. Rows sharing an index value are
reduced with ``reduce`` (default ``last``: a resumed run's later rows win); rows of a group with
``reduce`` (default ``mean``). ``unique`` insists the group holds one value (a per-group
constant such as a gate logit). Array cells need ``per_row``, except with ``as: distribution``,
where their elements are pooled as samples.

Missing cells (an empty CSV field or NA/null, an absent or null JSON key, a parquet null, an
empty array) are skipped and counted in the report (``missing: error`` refuses them instead).

NaN values (a NaN cell, or a NaN element of an array cell) follow ``nan:``. ``propagate`` (the
default) keeps them: a reduction over a NaN is NaN (numpy's ``mean``, ``median``, ``std``...),
which never passes a claim, and the quantity's report names the rows holding NaN. ``omit`` drops
NaN values before every reduction, as pandas' ``skipna`` and numpy's ``nanmean`` do: a NaN
element leaves its array cell, a NaN cell (or an array cell of only NaN) leaves its row, and
the report counts them. inf values are kept either way, and never pass a claim. ``std`` is
numpy's (ddof 0) and ``median`` numpy's (linear); see ``docs/definitions.md``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from interp_assert.errors import QuantityError, SpecError, did_you_mean
from interp_assert.evaluate.quantities.base import QuantityKind, register_quantity
from interp_assert.evaluate.quantities.table_io import (
    _MISSING_TEXT,
    _is_nan,
    _missing,
    read_cached,
)
from interp_assert.labels import Axis, Labelled
from interp_assert.loading.data import json_cell
from interp_assert.loading.paths import resolve_path

if TYPE_CHECKING:
    from interp_assert.evaluate.evaluation import Evaluation

PER_ROW: dict[str, Callable[[np.ndarray], float]] = {
    "mean": np.mean, "median": np.median, "max": np.max, "min": np.min,
    "first": lambda a: a[0], "last": lambda a: a[-1], "sum": np.sum, "len": len,
    "norm": np.linalg.norm, "std": np.std,
}
NAN_POLICIES = ("propagate", "omit")
REDUCE = ("mean", "median", "min", "max", "sum", "std", "first", "last", "count", "unique")


@register_quantity
class Table(QuantityKind):
    """A column of a table file (see the module docstring for every option)."""

    key = "table"
    options = frozenset({"column", "per_row", "group_by", "index", "reduce", "as", "bins",
                         "thresholds", "missing", "nan"})

    def validate(self) -> None:
        config = self.config
        where = f"quantity '{self.name}'"

        def fail(message: str, hint: str = "") -> None:
            raise SpecError(f"{where}: {message}", self.location, hint=hint)

        if not isinstance(config["table"], str):
            fail("'table' must be a path to a .csv, .jsonl or .parquet file")
        resolve_path(config["table"], Path.cwd(), f"{where}: 'table'", self.location)
        if not isinstance(config.get("column"), str):
            fail("'column' must name the column to read", "add 'column: <name>'")
        for key in ("group_by", "index"):
            if key in config and not isinstance(config[key], str):
                fail(f"'{key}' must name a column")
        for key, allowed in (("per_row", tuple(PER_ROW)), ("reduce", REDUCE),
                             ("as", ("distribution",)), ("missing", ("skip", "error")),
                             ("nan", NAN_POLICIES)):
            value = config.get(key)
            if value is not None and value not in allowed:
                fail(f"'{key}: {value}' is not one of {', '.join(allowed)}"
                     + did_you_mean(str(value), allowed))
        if config.get("as") == "distribution":
            if "index" in config:
                fail("'as: distribution' works per group, not per index value",
                     "use 'group_by' instead of 'index'")
            bins = config.get("bins", 1024)
            if not isinstance(bins, int) or bins < 8 or bins % 2:
                fail("'bins' must be an even number >= 8")
            thresholds = config.get("thresholds", [])
            if not isinstance(thresholds, list) or not all(
                    isinstance(t, int | float) for t in thresholds):
                fail("'thresholds' must be a list of numbers")
        else:
            for key in ("bins", "thresholds"):
                if key in config:
                    fail(f"'{key}' only applies with 'as: distribution'")

    def _path(self, base: Path | None) -> Path:
        if base is None and self.location is not None and not self.location.path.startswith("<"):
            base = Path(self.location.path).parent
        return resolve_path(str(self.config["table"]), base or Path.cwd(),
                            f"quantity '{self.name}': 'table'", self.location)

    def fingerprint(self) -> str:
        path = self._path(None)
        try:
            stat = path.stat()
            version = f"{stat.st_mtime_ns}:{stat.st_size}"
        except OSError:
            version = "missing"
        return f"table:{path}:{version}:{sorted(self.config.items())!r}"

    def compute(self, ev: Evaluation) -> Labelled:
        path = self._path(ev.folder)
        frame = read_cached(path, self.name, self.location)
        config = self.config
        column = config["column"]
        for key in ("column", "group_by", "index"):
            if key in config and config[key] not in frame.columns:
                raise QuantityError(f"quantity '{self.name}': {path.name} has no column "
                                    f"'{config[key]}'" + did_you_mean(config[key], frame.columns),
                                    hint="columns: " + ", ".join(map(str, frame.columns)))
        as_distribution = config.get("as") == "distribution"
        cells = frame[column].to_numpy(dtype=object)
        missing = _missing(path, column, cells)
        omit = config.get("nan") == "omit"
        parsed = [self._cell(cell, row, as_distribution, omit) for row, cell in enumerate(cells)]
        values = [value for value, _ in parsed]
        with_nan = np.array([had for _, had in parsed], dtype=bool)
        omitted = with_nan & np.array([v is None for v in values], dtype=bool)
        missing |= np.array([v is None for v in values], dtype=bool) & ~omitted
        keys = {key: frame[config[key]].to_numpy(dtype=object)
                for key in ("group_by", "index") if key in config}
        for key, column_values in keys.items():
            missing |= _missing(path, config[key], column_values)
        if missing.any() and config.get("missing") == "error":
            rows = ", ".join(str(i + 2) for i in np.flatnonzero(missing)[:5])
            raise QuantityError(f"quantity '{self.name}': {int(missing.sum())} row(s) of "
                                f"{path.name} have no '{column}' (lines {rows})",
                                hint="fill them, or drop 'missing: error' to skip them")
        used = np.flatnonzero(~missing & ~omitted)
        context: dict[str, Any] = {"table": f"{path.name} ({len(used)} of {len(cells)} rows)"}
        if missing.any():
            context["missing cells skipped"] = int(missing.sum())
        nan_rows = np.flatnonzero(with_nan & ~missing)
        if nan_rows.size:
            where = _rows_text(nan_rows, keys.get("group_by"), config.get("group_by"))
            if omit:
                context["NaN values omitted ('nan: omit')"] = where
            else:
                context["NaN values (they make their reductions NaN)"] = (
                    f"{where}; add 'nan: omit' to the quantity to skip them")
        values = [values[i] for i in used]
        keys = {key: column_values[used] for key, column_values in keys.items()}
        if as_distribution:
            return self._distribution(values, keys.get("group_by"), context)
        numbers = np.array(values, dtype=np.float64)
        meta = {"context": context}
        group, index = keys.get("group_by"), keys.get("index")
        if group is None and index is None:
            return Labelled(numbers, (Axis("row"),), self.name, meta)
        if index is None:
            labels, reduced = _reduce(numbers, group, self._how("mean"), self.name, column)
            return Labelled(reduced, (Axis(config["group_by"], labels),), self.name, meta)
        if group is None:
            labels, reduced = _reduce(numbers, index, self._how("last"), self.name, column)
            return Labelled(reduced, (Axis(config["index"], labels),), self.name, meta)
        return self._grid(numbers, group, index, meta)

    def _how(self, default: str) -> str:
        return str(self.config.get("reduce", default))

    def _cell(self, cell: Any, row: int, pool: bool, omit: bool) -> tuple[Any, bool]:
        """A cell as a number (or, pooled, an array), None when missing (or, with ``omit``,
        when it holds only NaN), and whether it held a NaN value."""
        if isinstance(cell, str | list):
            cell = json_cell(cell)
        if isinstance(cell, np.ndarray):
            array = cell.astype(np.float64).reshape(-1)
            nan = np.isnan(array)
            if omit and nan.any():
                return (self._value(array[~nan], row, pool) if (~nan).any() else None), True
            return self._value(array, row, pool), bool(nan.any())
        value = self._value(cell, row, pool)
        nan = _is_nan(value) or (isinstance(value, np.ndarray) and bool(np.isnan(value).any()))
        return (None if omit and nan else value), nan

    def _value(self, cell: Any, row: int, pool: bool) -> Any:
        """A parsed cell as a number (or, pooled, an array); None when missing."""
        per_row = self.config.get("per_row")
        if isinstance(cell, np.ndarray):
            array = cell
            if per_row is None:
                if pool:
                    return array if array.size else None
                raise QuantityError(
                    f"quantity '{self.name}': column '{self.config['column']}' holds arrays "
                    f"(row {row + 1})", hint="add 'per_row: mean' (or median, max, min, first, "
                    "last, sum, len, norm, std), or 'as: distribution' to pool the elements")
            if not array.size and per_row not in ("len", "sum"):
                return None
            return float(PER_ROW[per_row](array))
        if cell is None:
            return None
        if isinstance(cell, str):
            if cell.strip() in _MISSING_TEXT:
                return None
            raise QuantityError(f"quantity '{self.name}': column '{self.config['column']}' "
                                f"holds text ({cell[:40]!r} in row {row + 1}), not numbers")
        try:
            number = float(cell)
        except (TypeError, ValueError):
            raise QuantityError(f"quantity '{self.name}': column '{self.config['column']}' "
                                f"holds {type(cell).__name__} values (row {row + 1})") from None
        if per_row is not None and math.isfinite(number):
            number = float(PER_ROW[per_row](np.array([number])))
        return np.array([number]) if pool and per_row is None else number

    def _grid(self, numbers: np.ndarray, group: np.ndarray, index: np.ndarray,
              meta: dict[str, Any]) -> Labelled:
        groups = _ordered(group)
        steps = _ordered(index)
        grid = np.full((len(groups), len(steps)), np.nan)
        group_pos = {g: i for i, g in enumerate(groups)}
        step_pos = {s: i for i, s in enumerate(steps)}
        cells: dict[tuple[int, int], list[int]] = {}
        for row, (g, s) in enumerate(zip(group, index)):
            cells.setdefault((group_pos[_key(g)], step_pos[_key(s)]), []).append(row)
        how = self._how("last")
        for (i, j), rows in cells.items():
            grid[i, j] = _apply(how, numbers[rows], self.name, self.config["column"],
                                f"{_label(groups[i])}, {_label(steps[j])}")
        axes = (Axis(self.config["group_by"], tuple(map(_label, groups))),
                Axis(self.config["index"], tuple(map(_label, steps))))
        return Labelled(grid, axes, self.name, meta)

    def _distribution(self, values: list[Any], group: np.ndarray | None,
                      context: dict[str, Any]) -> Labelled:
        samples = [np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in values]
        if group is None:
            pooled = [np.concatenate(samples) if samples else np.array([])]
            labels: tuple[str, ...] = ()
        else:
            order = _ordered(group)
            position = {g: i for i, g in enumerate(order)}
            members: list[list[np.ndarray]] = [[] for _ in order]
            for g, sample in zip(group, samples):
                members[position[_key(g)]].append(sample)
            pooled = [np.concatenate(m) for m in members]
            labels = tuple(map(_label, order))
        bins = int(self.config.get("bins", 1024))
        thresholds = tuple(float(t) for t in self.config.get("thresholds", []))
        stats, nonfinite = grouped_stats(pooled, bins, thresholds)
        means = stats.mean()
        means[nonfinite > 0] = np.nan
        context["values per group" if group is not None else "values"] = (
            ", ".join(str(len(p)) for p in pooled[:8]) + (" ..." if len(pooled) > 8 else ""))
        if group is None:
            return Labelled(np.array(means[0]), (), self.name,
                            {"stats": stats, "nonfinite": np.array(nonfinite[0]),
                             "context": context})
        return Labelled(means, (Axis(self.config["group_by"], labels),), self.name,
                        {"stats": stats, "nonfinite": nonfinite, "context": context})


def grouped_stats(groups: list[np.ndarray], bins: int = 1024, thresholds: tuple[float, ...] = (),
                  chunk: int = 16384) -> tuple[Any, np.ndarray]:
    """Streaming statistics with one channel per group of samples (groups of any size, padded
    with NaN), and each group's own count of NaN/inf values."""
    from interp_assert.evaluate.streaming import StreamingStats

    stats = StreamingStats(max(1, len(groups)), bins, thresholds)
    nonfinite = np.array([int(np.sum(~np.isfinite(g))) for g in groups], dtype=np.int64)
    longest = max((len(g) for g in groups), default=0)
    with warnings.catch_warnings():  # padding makes all-NaN columns; that is expected
        warnings.simplefilter("ignore", RuntimeWarning)
        for start in range(0, longest, chunk):
            stop = min(longest, start + chunk)
            block = np.full((stop - start, len(groups)), np.nan)
            for c, samples in enumerate(groups):
                part = samples[start:stop]
                block[:len(part), c] = part
            stats.update(block)
    return stats, nonfinite


# -- grouping --------------------------------------------------------------------------------
def _key(value: Any) -> Any:
    """A hashable, comparable group key (integral floats become ints)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _label(value: Any) -> str:
    value = _key(value)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _ordered(values: np.ndarray) -> list[Any]:
    """Distinct values, sorted (numbers numerically), else in order of appearance."""
    distinct = list(dict.fromkeys(_key(v) for v in values))
    try:
        return sorted(distinct)
    except TypeError:
        return distinct


def _rows_text(rows: np.ndarray, groups: np.ndarray | None, group_name: str | None) -> str:
    """``rows 3, 7 (head L0H1, L1H0)``: 1-based data rows holding NaN, and their groups."""
    shown = ", ".join(str(int(r) + 1) for r in rows[:8]) + (" ..." if rows.size > 8 else "")
    text = f"{rows.size} row(s): {'row' if rows.size == 1 else 'rows'} {shown}"
    if groups is not None:
        labels = list(dict.fromkeys(_label(groups[r]) for r in rows))
        text += f" ({group_name} {', '.join(labels[:8])}{' ...' if len(labels) > 8 else ''})"
    return text


def _apply(how: str, values: np.ndarray, name: str, column: str, where: str) -> float:
    if how == "count":
        return float(values.size)
    if not values.size:
        return math.nan
    if how == "first":
        return float(values[0])
    if how == "last":
        return float(values[-1])
    if how == "unique":
        distinct = np.unique(values)
        if distinct.size > 1 and not (np.isnan(distinct).all()):
            shown = ", ".join(f"{v:g}" for v in distinct[:4])
            raise QuantityError(f"quantity '{name}': column '{column}' takes {distinct.size} "
                                f"values at {where} ({shown}), not one",
                                hint="use 'reduce: mean' or 'first' if that is intended")
        return float(distinct[0])
    return float(getattr(np, how)(values))


def _reduce(numbers: np.ndarray, keys: np.ndarray, how: str, name: str, column: str
            ) -> tuple[tuple[str, ...], np.ndarray]:
    order = _ordered(keys)
    position = {k: i for i, k in enumerate(order)}
    rows: list[list[int]] = [[] for _ in order]
    for row, key in enumerate(keys):
        rows[position[_key(key)]].append(row)
    reduced = np.array([_apply(how, numbers[r], name, column, _label(k))
                        for k, r in zip(order, rows)])
    return tuple(map(_label, order)), reduced


__all__ = ["PER_ROW", "REDUCE", "Table", "grouped_stats", "read_cached"]
