"""Trajectory claims over a series labelled by step (training logs, sweeps)::

    val_exact reaches 0.99 by step 8000      # the first step with val_exact >= 0.99 is <= 8000
    val_exact reaches 0.99                   # at some step
    val_loss reaches <= 0.05 by step 5000    # any of < <= > >= after 'reaches'
    val_loss falls below 0.05 by step 5000   # the same as 'reaches < 0.05'
    val_exact rises above 0.9                # the same as 'reaches > 0.9'
    val_exact stays >= 0.99 from step 8000   # every value from step 8000 on ('after': later)
    final val_exact >= 0.99                  # the value at the last step; any comparison

The series is a one-dimensional quantity whose labels are its steps (a table quantity with
``index: step``); an unlabelled axis counts positions 0, 1, 2, ... Values are ordered by step.
NaN or inf never satisfies a threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from interp_assert.claims.base import Claim, Context, register_claim
from interp_assert.claims.outcome import Outcome, compare, expected_text, fmt
from interp_assert.errors import InterpAssertError, QuantityError
from interp_assert.labels import Axis, Labelled
from interp_assert.language import ast

if TYPE_CHECKING:
    from collections.abc import Iterator

    from matplotlib.axes import Axes

_VERB_OPS = {"falls below": "<", "rises above": ">"}
ROWS_AROUND = 3


@dataclass
class Series:
    """A quantity as (steps, values), ordered by step."""

    name: str
    axis: str
    steps: np.ndarray
    values: np.ndarray
    labels: list[str]


def series_of(quantity: Labelled, shown: str) -> Series:
    """The steps and values of a one-dimensional quantity, sorted by step."""
    if quantity.ndim != 1:
        raise QuantityError(f"'{shown}' has shape {quantity.shape}; a trajectory needs one axis "
                            "of steps", hint="index or reduce the other axes first")
    axis = quantity.axes[0]
    labels = quantity.labels_of(0)
    try:
        steps = np.array([float(label) for label in labels])
    except ValueError:
        raise QuantityError(f"'{shown}': the labels of axis '{axis.name}' are not numbers "
                            f"({labels[0]}, ...)", hint="use a table quantity with 'index: "
                            "step'") from None
    order = np.argsort(steps, kind="stable")
    return Series(shown, axis.name, steps[order], quantity.values[order],
                  [labels[i] for i in order])


def _step_text(step: float) -> str:
    return str(int(step)) if float(step).is_integer() else fmt(step)


def _check_axis(series: Series, word: str | None) -> None:
    if word is not None and not Axis(series.axis).matches(word):
        raise QuantityError(f"'{series.name}' is a series over '{series.axis}', not '{word}'",
                            hint=f"write '... {series.axis} N'")


def _no_confidence(comparison: ast.Comparison) -> None:
    if comparison.confidence is not None:
        raise InterpAssertError("a logged value has no confidence interval; drop 'with ... "
                                "confidence'")


def _rows(series: Series, holds: np.ndarray, marks: list[int]) -> list[dict[str, Any]]:
    """Rows of the series around the marked positions (and the last one)."""
    keep: set[int] = {len(series.values) - 1}
    for i in marks:
        keep.update(range(max(0, i - ROWS_AROUND), min(len(series.values), i + ROWS_AROUND + 1)))
    return [{series.axis: series.labels[i], "value": float(series.values[i]),
             "holds": bool(holds[i])} for i in sorted(keep)]


def _curve_data(series: Series, **extra: Any) -> dict[str, Any]:
    return {"steps": series.steps.tolist(), "values": series.values.tolist(),
            "axis": series.axis, **extra}


def _plot_curve(ax: Axes, data: dict[str, Any], name: str, passed: bool = True) -> None:
    """The series with its bounds and step markers; failing steps red, NaN steps hatched."""
    from interp_assert.claims.plots import FAIL, HOLD, nan_notice, nan_patch

    steps, values = np.asarray(data["steps"], dtype=float), np.asarray(data["values"], dtype=float)
    ax.plot(steps, values, "-", color="C0", marker="o" if len(steps) <= 60 else None,
            markersize=3, label=name)
    for key, style in (("bound", "--"), ("upper", ":")):
        if data.get(key) is not None:
            ax.axhline(data[key], color="k", linestyle=style, label=f"{key} {fmt(data[key])}")
    if data.get("deadline") is not None:
        ax.axvline(data["deadline"], color=FAIL if not passed else "C1", linestyle="--",
                   label=f"deadline {_step_text(data['deadline'])}")
    if data.get("from") is not None:
        ax.axvline(data["from"], color="C1", linestyle=":",
                   label=f"from {_step_text(data['from'])}")
    if data.get("reached") is not None:
        ax.axvline(data["reached"], color=HOLD if passed else FAIL, linewidth=2,
                   label=f"reached at {_step_text(data['reached'])}")
    failing = [x for x in data.get("failing_steps", [])[:200]]
    if failing:
        index = [data["steps"].index(x) for x in failing]
        ax.plot(failing, values[index], "x", color=FAIL, markersize=7, mew=2,
                label=f"failing {data['axis']}s ({len(data.get('failing_steps', []))})")
    if data.get("point") is not None:
        ax.plot(*data["point"], "o", color=HOLD if passed else FAIL, markersize=9,
                label=f"final value ({'holds' if passed else 'fails'})")
    nan = steps[~np.isfinite(values)]
    for x in nan:
        ax.axvline(x, color="lightgrey", linewidth=4, zorder=0)
    handles, _ = ax.get_legend_handles_labels()
    if nan.size:
        handles.append(nan_patch(f"NaN/inf value ({nan.size} {data['axis']}s; never passes)"))
        if not np.isfinite(values).any():
            nan_notice(ax, "every value is NaN: never passes")
    ax.set_xlabel(data["axis"])
    ax.set_ylabel(name)
    ax.legend(handles=handles, loc="best", fontsize=8)
    ax.grid(alpha=0.3)


@register_claim
@dataclass
class Reaches(Claim):
    """``X reaches [op] V [by STEP-AXIS N]``: the first step where X op V holds (op >= by
    default; ``falls below`` is <, ``rises above`` is >) is at or before N."""

    kind = "reaches"
    grammar = r"""reaches: expr TRAJ_REACH [TRAJ_CMP] expr [traj_by]
traj_by: "by" [NAME] expr
TRAJ_REACH: /reaches\b|falls\s+below\b|rises\s+above\b/
TRAJ_CMP: /<=|>=|[<>≤≥]/"""

    subject: ast.Node
    op: str
    threshold: ast.Node
    axis: str | None = None
    deadline: ast.Node | None = None

    @classmethod
    def build(cls, children: list[Any]) -> Reaches:
        subject, verb, op, threshold, by = children
        verb_text = " ".join(str(verb).split())
        if verb_text in _VERB_OPS:
            if op is not None:
                raise InterpAssertError(f"'{verb_text}' already says the comparison; write "
                                        f"'{verb_text} X' or 'reaches {op} X'")
            symbol = _VERB_OPS[verb_text]
        else:
            symbol = ast.comparison_op(op) if op is not None else ">="
        axis = deadline = None
        if by is not None:
            axis_token, deadline = by.children
            axis = str(axis_token) if axis_token is not None else None
        return cls(subject, symbol, threshold, axis, deadline)

    def __str__(self) -> str:
        verb = {"<": "falls below", ">": "rises above", ">=": "reaches"}.get(
            self.op, f"reaches {self.op}")
        text = f"{self.subject} {verb} {self.threshold}"
        if self.deadline is not None:
            text += f" by {self.axis + ' ' if self.axis else ''}{self.deadline}"
        return text

    def expressions(self) -> Iterator[ast.Node | ast.Members]:
        yield self.subject
        yield self.threshold
        if self.deadline is not None:
            yield self.deadline

    def evaluate(self, ctx: Context) -> Outcome:
        series = series_of(ctx.value(self.subject), str(self.subject))
        _check_axis(series, self.axis)
        bound = ctx.scalar(self.threshold)
        deadline = ctx.scalar(self.deadline) if self.deadline is not None else None
        comparison = ast.Comparison(self.op, self.threshold)
        holds = np.array([compare(float(v), comparison, bound) for v in series.values])
        hits = np.flatnonzero(holds)
        goal = expected_text(comparison, bound)
        expected = f"{goal} at some {series.axis}"
        if deadline is not None:
            expected = f"{goal} at or before {series.axis} {_step_text(deadline)}"
        if hits.size:
            first = int(hits[0])
            reached = float(series.steps[first])
            passed = deadline is None or reached <= deadline
            measured = (f"first {goal} at {series.axis} {series.labels[first]} "
                        f"(value {fmt(float(series.values[first]))})")
            value: float | None = reached
            marks = [first]
        else:
            passed, reached, value, first = False, None, None, -1
            best = _best(series.values, self.op)
            measured = f"never {goal} in {len(series.values)} values"
            if series.steps.size:
                measured += (f" ({series.axis} {series.labels[0]} to {series.labels[-1]})")
            if best is not None:
                measured += (f"; best {fmt(float(series.values[best]))} at {series.axis} "
                             f"{series.labels[best]}")
            marks = [best] if best is not None else []
            if deadline is not None and series.steps.size and series.steps[-1] < deadline:
                measured += f"; the series ends at {series.axis} {series.labels[-1]}"
        if deadline is not None:
            after = np.flatnonzero(series.steps <= deadline)
            if after.size:
                marks.append(int(after[-1]))
        outcome = Outcome(passed, measured, expected, value=value,
                          rows=_rows(series, holds, marks),
                          plot_data=_curve_data(series, bound=bound, deadline=deadline,
                                                reached=reached))
        if not np.all(np.isfinite(series.values)):
            outcome.notes.append(f"{int(np.sum(~np.isfinite(series.values)))} value(s) are NaN "
                                 "or inf; they never reach the threshold")
        return outcome

    def plot(self, outcome: Outcome, ax: Axes) -> None:
        _plot_curve(ax, outcome.plot_data, str(self.subject), outcome.passed)
        ax.set_title(f"{self.subject}: first {self.op} threshold", fontsize=9)


def _best(values: np.ndarray, op: str) -> int | None:
    finite = np.flatnonzero(np.isfinite(values))
    if not finite.size:
        return None
    pick = np.argmax if op in (">", ">=") else np.argmin
    return int(finite[pick(values[finite])])


@register_claim
@dataclass
class Stays(Claim):
    """``X stays COMPARISON [from|after STEP-AXIS N]``: every value (from step N on, or after
    it) satisfies the comparison."""

    kind = "stays"
    grammar = r"""stays: expr "stays" comparison [traj_from]
traj_from: TRAJ_FROM [NAME] expr
TRAJ_FROM: /(from|after)\b/"""

    subject: ast.Node
    comparison: ast.Comparison
    start_word: str | None = None
    axis: str | None = None
    start: ast.Node | None = None

    @classmethod
    def build(cls, children: list[Any]) -> Stays:
        subject, comparison, start = children
        _no_confidence(comparison)
        if start is None:
            return cls(subject, comparison)
        word, axis, value = start.children
        return cls(subject, comparison, str(word), str(axis) if axis is not None else None,
                   value)

    def __str__(self) -> str:
        text = f"{self.subject} stays {self.comparison}"
        if self.start is not None:
            text += f" {self.start_word} {self.axis + ' ' if self.axis else ''}{self.start}"
        return text

    def expressions(self) -> Iterator[ast.Node | ast.Members]:
        yield self.subject
        yield self.comparison.value
        if self.comparison.upper is not None:
            yield self.comparison.upper
        if self.start is not None:
            yield self.start

    def evaluate(self, ctx: Context) -> Outcome:
        series = series_of(ctx.value(self.subject), str(self.subject))
        _check_axis(series, self.axis)
        bound = ctx.scalar(self.comparison.value)
        upper = ctx.scalar(self.comparison.upper) if self.comparison.upper is not None else None
        start = ctx.scalar(self.start) if self.start is not None else None
        if start is None:
            window = np.ones(series.steps.size, dtype=bool)
        elif self.start_word == "after":
            window = series.steps > start
        else:
            window = series.steps >= start
        holds = np.array([compare(float(v), self.comparison, bound, upper)
                          for v in series.values])
        judged = np.flatnonzero(window)
        failing = [int(i) for i in judged if not holds[i]]
        goal = expected_text(self.comparison, bound, upper)
        where = (f" {self.start_word} {series.axis} {_step_text(start)}"
                 if start is not None else "")
        expected = f"every value{where} {goal}"
        if not judged.size:
            passed, measured = False, f"no {series.axis}s{where}"
        elif failing:
            passed = False
            first = failing[0]
            measured = (f"{len(failing)}/{judged.size} {series.axis}s fail; first at "
                        f"{series.axis} {series.labels[first]} (value "
                        f"{fmt(float(series.values[first]))})")
        else:
            passed = True
            measured = f"all {judged.size} {series.axis}s{where} hold"
        inside = series.values[judged]
        worst = (float(np.min(inside)) if self.comparison.op in (">", ">=") else
                 float(np.max(inside))) if inside.size else None
        if worst is not None and not math.isnan(worst) and passed:
            measured += f"; worst {fmt(worst)}"
        return Outcome(passed, measured, expected,
                       value=(len(judged) - len(failing)) / len(judged) if judged.size else None,
                       rows=_rows(series, holds, failing[:1]),
                       plot_data=_curve_data(series, bound=bound, upper=upper,
                                             failing_steps=[float(series.steps[i])
                                                            for i in failing],
                                             **{"from": start}))

    def plot(self, outcome: Outcome, ax: Axes) -> None:
        _plot_curve(ax, outcome.plot_data, str(self.subject), outcome.passed)
        ax.set_title(f"{self.subject}: expected to stay {self.comparison}", fontsize=9)


@register_claim
@dataclass
class FinalValue(Claim):
    """``final X COMPARISON``: the value at the last step satisfies the comparison."""

    kind = "final_value"
    grammar = r"""final_value: "final" expr comparison"""

    subject: ast.Node
    comparison: ast.Comparison

    @classmethod
    def build(cls, children: list[Any]) -> FinalValue:
        _no_confidence(children[1])
        return cls(children[0], children[1])

    def __str__(self) -> str:
        return f"final {self.subject} {self.comparison}"

    def evaluate(self, ctx: Context) -> Outcome:
        series = series_of(ctx.value(self.subject), str(self.subject))
        if not series.values.size:
            raise QuantityError(f"'{self.subject}' is an empty series")
        bound = ctx.scalar(self.comparison.value)
        upper = ctx.scalar(self.comparison.upper) if self.comparison.upper is not None else None
        last = float(series.values[-1])
        passed = compare(last, self.comparison, bound, upper)
        holds = np.array([compare(float(v), self.comparison, bound, upper)
                          for v in series.values])
        measured = f"{fmt(last)} at {series.axis} {series.labels[-1]} (the last)"
        return Outcome(passed, measured, expected_text(self.comparison, bound, upper),
                       value=last, rows=_rows(series, holds, []),
                       plot_data=_curve_data(series, bound=bound, upper=upper,
                                             point=(float(series.steps[-1]), last)))

    def plot(self, outcome: Outcome, ax: Axes) -> None:
        _plot_curve(ax, outcome.plot_data, str(self.subject), outcome.passed)
        ax.set_title(f"final {self.subject}: expected {self.comparison}", fontsize=9)


__all__ = ["FinalValue", "Reaches", "Series", "Stays", "series_of"]
