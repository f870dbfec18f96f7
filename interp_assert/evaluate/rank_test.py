"""Monte-Carlo rank tests: an observed statistic against K random draws of the same statistic
(random control sets of a causal claim, random head pairs of a composition claim).

The p-value is

    p = (1 + #{k : draw_k at least as extreme as the observed value}) / (1 + K)

(Phipson & Smyth 2010, "Permutation p-values should never be zero: calculating exact p-values
when permutations are randomly drawn", Stat. Appl. Genet. Mol. Biol. 9(1)). When the observed
statistic and the K draws are exchangeable under the null hypothesis ("the claimed components
are no different from random ones"), ``P(p ≤ u) ≤ u`` for every u, exactly; the smallest
p-value K draws can give is ``1 / (1 + K)``. "At least as extreme" means ``≥`` the observed
value (a larger effect, a larger score): ties count against the claim. The observed value's
rank is ``r = 1 + #{at least as extreme}``, so ``p = r / (1 + K)``.

NaN policy: a NaN observed value gives p = 1 (rank K + 1); a NaN draw counts as at least as
extreme. A claim ``with C% confidence`` holds when ``p ≤ 1 − C`` (up to a relative 1e-9 for
the rounding of ``1 − C``), which needs ``K ≥ 1/(1 − C) − 1`` draws (19 for 95%, 99 for 99%).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from interp_assert.errors import QuantityError

#: relative slack on ``1 − C``: ``1 − 0.9`` is 0.09999999999999998 in floating point
SLACK = 1e-9


@dataclass(frozen=True)
class RankTest:
    """The rank of an observed value among K random draws and its p-value."""

    observed: float
    draws: tuple[float, ...]
    rank: int
    p_value: float

    @property
    def k(self) -> int:
        """The number of random draws."""
        return len(self.draws)

    def holds(self, level: float) -> bool:
        """Whether ``p ≤ 1 − level``."""
        return clears(self.p_value, level)

    def text(self) -> str:
        """``rank 1 of 20, p = 1/20 = 0.05``."""
        return (f"rank {self.rank} of {self.k + 1}, p = {self.rank}/{self.k + 1} = "
                f"{self.p_value:.3g}")


def rank_test(observed: float, draws: Sequence[float]) -> RankTest:
    """The Monte-Carlo rank p-value of ``observed`` (larger is more extreme) among ``draws``."""
    values = np.asarray(list(draws), dtype=np.float64).reshape(-1)
    if math.isnan(observed):
        extreme = values.size
    else:
        extreme = int(np.sum(np.isnan(values) | (values >= observed)))
    rank = 1 + extreme
    return RankTest(float(observed), tuple(float(v) for v in values), rank,
                    rank / (1 + values.size))


def clears(p_value: float, level: float) -> bool:
    """``p ≤ 1 − level`` up to the rounding of ``1 − level`` (NaN never clears)."""
    return bool(p_value <= (1 - level) * (1 + SLACK))


def draws_needed(level: float) -> int:
    """The fewest draws K with ``1 / (1 + K) ≤ 1 − level``: 19 for 95%, 99 for 99%."""
    return max(1, math.ceil((1 / (1 - level)) * (1 - SLACK) - 1))


def check_draws(draws: int, level: float, what: str, fix: str) -> None:
    """Raise when ``draws`` random draws cannot reach ``level`` at all (``1/(1 + K) > 1 −
    level``): the claim could never hold. ``fix`` is a sentence template with ``{n}``."""
    if not clears(1 / (1 + draws), level):
        need = draws_needed(level)
        raise QuantityError(
            f"{draws} {what} cannot give {level:.0%} confidence: the smallest rank p-value of "
            f"K draws is 1/(K+1) = {1 / (1 + draws):.3g} > {1 - level:.3g}",
            hint=f"draw at least {need}: {fix.format(n=need)}")


__all__ = ["RankTest", "check_draws", "clears", "draws_needed", "rank_test"]
