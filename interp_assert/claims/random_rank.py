"""``with C% confidence`` on a causal claim's random controls: a Monte-Carlo rank test of the
claimed components' effect against the K random sets' effects
(:mod:`interp_assert.evaluate.rank_test`).

``ablate L1H0, L1H1: loss drops by ≥ 1 nat while 19 random sets of the same size drop by
≤ 0.5 nats with 95% confidence`` holds when the effect clears its bound, every random set
clears the control's bound (as without confidence), and the claimed effect ranks high enough
among the random sets' effects: ``p = r / (K + 1) ≤ 1 − C``, where ``r`` is 1 plus the number of
random sets whose effect, measured as the claim's own effect (its ``drops``/``rises``/
``changes``/``recovers``), is at least as large. That p-value is the claim's p-value in the
run-level error control (the larger of it and the effect's own, when the effect has a
confidence too: the claim holds only when both do).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from interp_assert.errors import QuantityError
from interp_assert.evaluate.interventions import effect_of
from interp_assert.evaluate.rank_test import RankTest, check_draws, rank_test

if TYPE_CHECKING:
    from interp_assert.claims.causal_base import Control, Effect, Measurement
    from interp_assert.claims.outcome import Outcome

FIX = "write 'while {n} random sets of the same size ...'"


def control_level(control: Control | None) -> float | None:
    """The confidence level of a control clause (None without one); ``, sequentially`` is
    refused."""
    if control is None or control.comparison.confidence is None:
        return None
    if control.comparison.sequential:
        raise QuantityError("random controls are not evaluated sequentially",
                            hint="drop ', sequentially' from the random-sets clause")
    return control.comparison.confidence


def check_requested(control: Control | None, default: int) -> None:
    """Before measuring: the requested number of random sets must be able to reach the
    control's confidence."""
    level = control_level(control)
    if control is not None and level is not None:
        check_draws(control.draws or default, level, "random sets", FIX)


def control_rank(effect: Effect, control: Control, main: Measurement,
                 control_rows: Sequence[dict[str, Any]]) -> RankTest | None:
    """The rank test of the claimed effect among the random sets' effects (each measured as
    the claim's own effect from the row's before/after), or None without a confidence."""
    level = control_level(control)
    if level is None:
        return None
    check_draws(len(control_rows), level, "distinct random sets (every set of this size the "
                "model has)", "claim a larger set of components, or ask for a lower confidence "
                "(K sets reach 1 − 1/(K+1))")
    draws = [effect_of(effect.change, row["before"], row["after"], main.source)
             for row in control_rows]
    return rank_test(main.effect, draws)


def apply_rank(outcome: Outcome, rank: RankTest | None, level: float | None) -> Outcome:
    """Let the rank test decide with the rest: the claim holds only when it does too; the
    claim's p-value becomes the larger of the two (an intersection of tests)."""
    if rank is None or level is None:
        return outcome
    holds = rank.holds(level)
    outcome.passed = bool(outcome.passed and holds)
    outcome.p_value = max(rank.p_value, outcome.p_value or 0.0)
    outcome.measured += f"; claimed effect {rank.text()} among the random sets"
    outcome.expected += f", and a rank p-value ≤ {1 - level:.3g} ({level:.0%} confidence)"
    outcome.meta["rank_test"] = {"rank": rank.rank, "draws": rank.k, "p_value": rank.p_value,
                                 "confidence": level}
    outcome.plot_data["rank"] = rank.text()
    if not holds:
        outcome.notes.append(f"the claimed effect is {rank.text()} among {rank.k} random sets: "
                             f"not beyond them at {level:.0%} confidence")
    return outcome


__all__ = ["apply_rank", "check_requested", "control_level", "control_rank"]
