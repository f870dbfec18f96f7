"""The stop rule of the intervened pass of a sequential ablation or patching claim: the pass
stops once the confidence sequence of the per-sample differences (intervened
against clean, sample by sample in dataset order) decides the claim.

The clean pass runs first (it is shared with other claims, so it usually runs whole); the
claim then watches the intervened pass while it runs (:class:`PairedPlannedWatch`, added to
the run's plan for that pass only while the claim measures, see
:meth:`interp_assert.plan.plan.RunPlan.watch_now`). Claims sharing the intervened pass stop
together as on any pass; a claim that reads that pass whole later makes it run again. The
differences of a rate in [a, b] lie in [a − b, b − a] (the betting sequence); others are
unbounded (the asymptotic sequence).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from interp_assert.evaluate.sequential import Watch


@dataclass
class PairedWatch(Watch):
    """A :class:`Watch` fed ``sign * (intervened_i − clean_i)`` for the samples seen so far."""

    clean: np.ndarray = field(default_factory=lambda: np.zeros(0), compare=False)
    sign: float = 1.0
    #: the differences' range (a rate's [a − b, b − a]) or None (unbounded: asymptotic)
    difference: tuple[float, float] | None = None

    def decided(self, values: np.ndarray, span: tuple[float, float] | None,
                budget: int = 0) -> bool:
        after = np.asarray(values, dtype=np.float64).reshape(-1)
        k = min(after.size, self.clean.size)
        return super().decided(self.sign * (after[:k] - self.clean[:k]), self.difference,
                               budget)


@dataclass(eq=False)  # compared by identity: each claim's watch is its own
class PairedPlannedWatch:
    """A sequential effect claim's watch on its intervened pass: ``sign`` is +1 for ``rises``
    (after − before) and −1 for ``drops`` (before − after); ``clean`` the clean pass's
    per-sample values."""

    op: str
    bound: float
    upper: float | None
    level: float
    clean: np.ndarray
    sign: float
    difference: tuple[float, float] | None = None

    def make_watch(self) -> PairedWatch:
        """The watch a pass's stop rule updates."""
        return PairedWatch(self.op, self.bound, self.upper, self.level,
                           clean=np.asarray(self.clean, dtype=np.float64).reshape(-1),
                           sign=self.sign, difference=self.difference)


__all__ = ["PairedPlannedWatch", "PairedWatch"]
