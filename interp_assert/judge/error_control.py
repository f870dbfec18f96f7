"""Run-level error control: Holm (family-wise error) or Benjamini–Hochberg (false-discovery
rate) across the confidence claims of a run.

Each claim's verdict is decided alone by :func:`interp_assert.judge.verdict.judge` as its check
finishes (a pytest item reports it then). Whether it also survives the correction depends on
every other confidence claim of the run, so it is decided here, once, where the run's records
are gathered (``Runner.finish``, for every driver): a claim that holds alone but whose adjusted
p-value exceeds α gets the run-level verdict ``fails`` (``xfail`` for an ``xpass``) with the
reason, and its record says so. The correction only ever turns holds into fails.

The family is every record with a p-value (``with N% confidence`` claims, on every target of
every claim file) that was evaluated (not an error, not skipped). A NaN p-value counts as 1.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from interp_assert.errors import InterpAssertError
from interp_assert.judge.verdict import Judgement, Verdict

METHODS = {"holm": "Holm", "bh": "Benjamini–Hochberg"}
ALPHA_ENV, METHOD_ENV = "INTERP_ASSERT_ALPHA", "INTERP_ASSERT_ERROR_CONTROL"
DEFAULT_ALPHA = 0.05
#: verdicts that a p-value's correction may turn, and what they become
DEMOTED = {Verdict.HOLDS.value: Verdict.FAILS.value, Verdict.XPASS.value: Verdict.XFAIL.value}


@dataclass(frozen=True)
class ErrorControl:
    """Which correction, at which α."""

    alpha: float = DEFAULT_ALPHA
    method: str = "holm"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise InterpAssertError(f"unknown error control {self.method!r}",
                                    hint=f"use one of {', '.join(METHODS)} (holm: family-wise "
                                         f"error, bh: false-discovery rate)")
        if not 0 < self.alpha < 1:
            raise InterpAssertError(f"alpha must lie between 0 and 1, not {self.alpha}",
                                    hint="for example 0.05")

    @property
    def name(self) -> str:
        """``Holm`` or ``Benjamini–Hochberg``."""
        return METHODS[self.method]

    def describe(self) -> str:
        """``Holm at α = 0.05``."""
        return f"{self.name} at α = {self.alpha:g}"


def parse_control(alpha: str | float | None, method: str | None,
                  where: str = "--interp-alpha") -> ErrorControl | None:
    """The run's error control from an option's α and method (either may be None; then the
    environment's ``INTERP_ASSERT_ALPHA``/``INTERP_ASSERT_ERROR_CONTROL``); None when neither
    sets it, or α is ``off``/``none``. A method alone uses α = 0.05, an α alone Holm."""
    alpha = alpha if alpha not in (None, "") else os.environ.get(ALPHA_ENV) or None
    method = method or os.environ.get(METHOD_ENV) or None
    if alpha is None and method is None:
        return None
    if isinstance(alpha, str) and alpha.strip().lower() in ("off", "none"):
        return None
    try:
        value = DEFAULT_ALPHA if alpha is None else float(alpha)
    except ValueError:
        raise InterpAssertError(f"{where}: {alpha!r} is not a number",
                                hint="write the run's error rate, e.g. 0.05, or off") from None
    return ErrorControl(value, (method or "holm").strip().lower())


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values: sorted ascending, the i-th (from 1) of m is
    ``max over j ≤ i of min(1, (m − j + 1) p_(j))``."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    m, running = len(p_values), 0.0
    adjusted = [1.0] * m
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini–Hochberg step-up adjusted p-values: sorted ascending, the i-th (from 1) of m
    is ``min over j ≥ i of min(1, m p_(j) / j)``."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i], reverse=True)
    m, running = len(p_values), 1.0
    adjusted = [1.0] * m
    for rank, index in enumerate(order):
        running = min(running, m * p_values[index] / (m - rank))
        adjusted[index] = running
    return adjusted


ADJUST = {"holm": holm, "bh": benjamini_hochberg}


def in_family(record: Mapping[str, Any]) -> bool:
    """Whether a record is one of the run's confidence claims."""
    return record.get("p_value") is not None and record.get("verdict") not in (
        Verdict.ERROR.value, Verdict.SKIPPED.value)


def control(records: Iterable[MutableMapping[str, Any]],
            error_control: ErrorControl | None) -> list[MutableMapping[str, Any]]:
    """Apply the run-level correction to the records, in place (again: the same result; a
    record keeps its verdict alone), and return them. Each member of the family gets an
    ``error_control`` entry: method, α, family size, p-value, adjusted p-value, survives."""
    records = list(records)
    for item in records:  # undo an earlier application: the family is judged afresh
        earlier = item.pop("error_control", None)
        if earlier is not None:
            item.update(verdict=earlier["verdict_alone"], reason=earlier["reason_alone"],
                        fails_run=earlier["fails_run_alone"])
    if error_control is None:
        return records
    family = [item for item in records if in_family(item)]
    p_values = [_p(item["p_value"]) for item in family]
    adjusted = ADJUST[error_control.method](p_values)
    for item, p, q in zip(family, p_values, adjusted):
        holds_alone = item["verdict"] in DEMOTED
        survives = holds_alone and q <= error_control.alpha
        item["error_control"] = {
            "method": error_control.method, "alpha": error_control.alpha, "family": len(family),
            "p_value": p, "adjusted_p": q, "survives": survives,
            "verdict_alone": item["verdict"], "reason_alone": item["reason"],
            "fails_run_alone": item["fails_run"]}
        if holds_alone and not survives:
            item.update(verdict=DEMOTED[item["verdict"]], fails_run=item["verdict"] == "holds",
                        reason=f"does not survive {error_control.describe()} (adjusted p = "
                               f"{q:.3g}, {claims(len(family))})")
    return records


def claims(count: int) -> str:
    """``1 confidence claim``, ``5 confidence claims``."""
    return f"{count} confidence claim{'' if count == 1 else 's'}"


def _p(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):  # "nan" as JSON writes it
        return 1.0
    return 1.0 if math.isnan(number) else min(1.0, max(0.0, number))


def judgement_of(record: Mapping[str, Any]) -> Judgement:
    """The run-level judgement of a record (for results handed back to Python code)."""
    strict = record["verdict"] == Verdict.XPASS.value and record["fails_run"]
    return Judgement(Verdict(record["verdict"]), record["reason"], strict)
