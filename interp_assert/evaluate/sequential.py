"""Anytime-valid sequential evaluation: betting confidence sequences for bounded means, the
verdict they give, and the stop rule a forward pass consults between batches.

The confidence sequence is the *hedged capital* sequence of Waudby-Smith & Ramdas,
"Estimating means of bounded random variables by betting", JRSS-B 86(1), 2024 (arXiv
2010.09686), Theorem 3 with the predictable plug-in bets of their eq. (26)-(27). Observations
``x_i`` in a declared range ``[a, b]`` are rescaled to ``z_i = (x_i - a) / (b - a)`` in [0, 1];
for a candidate mean ``m`` in (0, 1)::

    mu_t      = (1/2 + sum_{i<=t} z_i) / (t + 1)
    var_t     = (1/4 + sum_{i<=t} (z_i - mu_i)^2) / (t + 1)
    lam_t     = sqrt(2 log(2 / alpha) / (var_{t-1} * t * log(1 + t)))        (predictable)
    K+_t(m)   = prod_{i<=t} (1 + min(lam_i, c / m)       (z_i - m))
    K-_t(m)   = prod_{i<=t} (1 - min(lam_i, c / (1 - m)) (z_i - m))
    K_t(m)    = max(theta K+_t(m), (1 - theta) K-_t(m))          theta = 1/2, c = 1/2

``K_t(m)`` is a nonnegative supermartingale when the true mean is ``m`` (each factor has
conditional mean 1 and the bets use only earlier samples), so by Ville's inequality
``P(exists t: K_t(m) >= 1/alpha) <= alpha``. The confidence sequence is
``C_t = {m : K_s(m) < 1/alpha for every s <= t}`` (intersected over time, so it only
shrinks). It is evaluated on a grid of :data:`GRID` points and reported conservatively: each
end is widened to the neighbouring grid point that was excluded (or the range's end).
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from interp_assert.errors import QuantityError
from interp_assert.evaluate.asymptotic_cs import finite_values

#: grid points of candidate means across the declared range
GRID = 1000
#: truncation of the bets (the paper's c) and the hedge weight (theta)
TRUNCATION = 0.5
HEDGE = 0.5
#: samples in the first batch of a pass that may stop early (a smaller batch_size stays);
#: each later batch doubles, up to the dataset's batch_size (default 512)
SEQUENTIAL_BATCH = 50
#: operators a sequential claim may use
SEQUENTIAL_OPS = (">", ">=", "<", "<=", "in")


class BettingCS:
    """The hedged betting confidence sequence of a stream, updated batch by batch."""

    def __init__(self, alpha: float, low: float = 0.0, high: float = 1.0,
                 grid: int = GRID) -> None:
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must lie in (0, 1), not {alpha}")
        if not (math.isfinite(low) and math.isfinite(high) and high > low):
            raise ValueError(f"the range [{low}, {high}] is not a finite interval")
        self.alpha, self.low, self.high = alpha, float(low), float(high)
        self.m = np.arange(1, grid) / grid  # interior candidates (0, 1)
        self.log_plus = np.zeros(self.m.size)
        self.log_minus = np.zeros(self.m.size)
        self.excluded = np.zeros(self.m.size, dtype=bool)
        self.n = 0
        self.total = 0.0  # sum of z
        self.squares = 0.0  # sum of (z_i - mu_i)^2
        self._threshold = math.log(1 / alpha)

    def update(self, values: np.ndarray) -> BettingCS:
        """Feed the next observations (in order); values outside the range are an error."""
        x = finite_values(values)
        if x.size == 0:
            return self
        if x.min() < self.low or x.max() > self.high:
            raise QuantityError(
                f"per-sample values leave the declared range [{self.low:g}, {self.high:g}] "
                f"(seen {x.min():g} .. {x.max():g})",
                hint="sequential evaluation needs values within a known range")
        z = (x - self.low) / (self.high - self.low)
        t = self.n + np.arange(1, z.size + 1)  # 1-based times of the new samples
        sums = self.total + np.cumsum(z)
        mu = (0.5 + sums) / (t + 1)  # mu_t, using samples up to t
        dev = (z - mu) ** 2
        squares = self.squares + np.cumsum(dev)
        var_before = np.concatenate(([(0.25 + self.squares) / (self.n + 1)],
                                     ((0.25 + squares) / (t + 1))[:-1]))
        lam = np.sqrt(2 * math.log(2 / self.alpha) / (var_before * t * np.log1p(t)))
        m = self.m[None, :]
        lam_plus = np.minimum(lam[:, None], TRUNCATION / m)
        lam_minus = np.minimum(lam[:, None], TRUNCATION / (1 - m))
        step = z[:, None] - m
        plus = self.log_plus + np.cumsum(np.log1p(lam_plus * step), axis=0)
        minus = self.log_minus + np.cumsum(np.log1p(-lam_minus * step), axis=0)
        hedged = _hedged_max(plus, minus)
        self.excluded |= np.any(hedged >= self._threshold, axis=0)
        self.log_plus, self.log_minus = plus[-1], minus[-1]
        self.n += z.size
        self.total, self.squares = float(sums[-1]), float(squares[-1])
        return self

    def bounds(self) -> tuple[float, float]:
        """(lower, upper) of the sequence so far, widened to the excluded grid neighbours;
        the whole range before any sample (an empty set cannot happen at a valid level, but
        is reported as the point estimate's grid cell)."""
        inside = np.flatnonzero(~self.excluded)
        width = self.high - self.low
        if inside.size == 0:
            centre = self.total / max(self.n, 1)
            cell = 1 / (self.m.size + 1)
            return (self.low + width * max(0.0, centre - cell),
                    self.low + width * min(1.0, centre + cell))
        first, last = int(inside[0]), int(inside[-1])
        lower = 0.0 if first == 0 else float(self.m[first - 1])
        upper = 1.0 if last == self.m.size - 1 else float(self.m[last + 1])
        return (self.low + width * lower, self.low + width * upper)

    @property
    def mean(self) -> float:
        """The running mean of the observations (in their own units)."""
        if self.n == 0:
            return float("nan")
        return self.low + (self.high - self.low) * self.total / self.n


def _hedged_max(plus: np.ndarray, minus: np.ndarray) -> np.ndarray:
    """log max(theta K+, (1 - theta) K-), the paper's hedged capital."""
    return np.maximum(math.log(HEDGE) + plus, math.log(1 - HEDGE) + minus)


def betting_cs(values: np.ndarray, alpha: float, low: float = 0.0, high: float = 1.0,
               grid: int = GRID) -> tuple[float, float]:
    """The confidence sequence's (lower, upper) after every value of ``values`` (in order)."""
    return BettingCS(alpha, low, high, grid).update(values).bounds()


@dataclass(frozen=True)
class Decision:
    """What a confidence sequence says about a comparison."""

    #: True holds, False fails, None undecided
    holds: bool | None
    lower: float
    upper: float
    mean: float
    used: int


def decide(cs: Any, op: str, bound: float, upper: float | None = None) -> Decision:
    """Holds when the whole sequence lies on the passing side of the bound, fails when it lies
    wholly on the failing side, undecided otherwise (``in [bound, upper]``: inside / outside)."""
    low, high = cs.bounds()
    verdict: bool | None = None
    if op in (">", ">="):
        verdict = True if (low > bound if op == ">" else low >= bound) else (
            False if (high <= bound if op == ">" else high < bound) else None)
    elif op in ("<", "<="):
        verdict = True if (high < bound if op == "<" else high <= bound) else (
            False if (low >= bound if op == "<" else low > bound) else None)
    elif op == "in" and upper is not None:
        verdict = True if bound <= low and high <= upper else (
            False if high < bound or low > upper else None)
    else:
        raise QuantityError(f"'{op}' cannot be decided sequentially",
                            hint="use >, >=, <, <= or 'in [a, b]' with ', sequentially'")
    return Decision(verdict, low, high, cs.mean, cs.n)


def samples_to_decide(decision: Decision, op: str, bound: float,
                      upper: float | None = None) -> int | None:
    """About how many samples would decide an undecided claim: the sequence's half-width on
    the side facing the bound shrinks about as 1/sqrt(n), so n (width / gap)^2 where gap is
    the distance from the running mean to the nearest bound. None when the mean sits on it."""
    mean, n = decision.mean, decision.used
    bounds = [bound] if upper is None or op != "in" else [bound, upper]
    gap = min(abs(mean - b) for b in bounds)
    nearest = min(bounds, key=lambda b: abs(mean - b))
    width = decision.upper - mean if nearest >= mean else mean - decision.lower
    if not (gap > 0 and math.isfinite(gap) and 0 < width < math.inf) or n == 0:
        return None
    return math.ceil(n * (width / gap) ** 2)


def anytime_p_value(values: np.ndarray, alpha: float, low: float, high: float, op: str,
                    bound: float, upper: float | None = None) -> float:
    """The anytime-valid p-value of a sequential claim (for run-level error control): for
    ``≥ b`` / ``> b``, ``min(1, 1 / max_t K+_t(b))``, the one-sided capital of the sequence's
    own bets at ``m = b`` (for ``≤``, ``<``: ``K-``; ``in [a, b]``: the larger of the two
    sides). ``K+_t(b)`` is a nonnegative supermartingale whenever the true mean is at most
    ``b``, so by Ville's inequality ``P(p ≤ x) ≤ x`` at every stopping time. The claim's hedged
    sequence (weight 1/2 on each side) excludes ``b`` from the passing side exactly when
    ``K+_t(b) / 2 ≥ 1 / (1 − C)``, i.e. ``p ≤ (1 − C)/2``: the convention of the other
    confidence claims (``evaluate/pvalues.py``), up to the grid the sequence is reported on."""
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if x.size == 0 or not np.all(np.isfinite(x)) or not math.isfinite(bound):
        return 1.0
    if op == "in" and upper is not None:
        return max(anytime_p_value(x, alpha, low, high, ">=", bound),
                   anytime_p_value(x, alpha, low, high, "<=", upper))
    m = (bound - low) / (high - low)
    if op in (">", ">="):
        if m < 0 or (m == 0 and op == ">="):
            return 0.0
        if m >= 1:
            return 1.0
    elif op in ("<", "<="):
        if m > 1 or (m == 1 and op == "<="):
            return 0.0
        if m <= 0:
            return 1.0
    else:
        return 1.0
    z = (x - low) / (high - low)
    t = np.arange(1, z.size + 1)
    mu = (0.5 + np.cumsum(z)) / (t + 1)
    squares = np.cumsum((z - mu) ** 2)
    var_before = np.concatenate(([0.25], ((0.25 + squares) / (t + 1))[:-1]))
    lam = np.sqrt(2 * math.log(2 / alpha) / (var_before * t * np.log1p(t)))
    if op in (">", ">="):
        log_capital = np.cumsum(np.log1p(np.minimum(lam, TRUNCATION / m) * (z - m)))
    else:
        log_capital = np.cumsum(np.log1p(-np.minimum(lam, TRUNCATION / (1 - m)) * (z - m)))
    return float(min(1.0, math.exp(-max(0.0, float(log_capital.max())))))


# ---- the stop rule of a forward pass ---------------------------------------------------------
@dataclass
class Watch:
    """One sequential claim watching a sink's per-sample values during a pass."""

    op: str
    bound: float
    upper: float | None
    level: float
    cs: Any = None
    seen: int = 0

    def decided(self, values: np.ndarray, span: tuple[float, float] | None,
                budget: int = 0) -> bool:
        """Feed the values not seen yet; whether the claim is decided. ``span`` is the values'
        declared range (a betting sequence), or None for unbounded values (the asymptotic
        sequence of :mod:`interp_assert.evaluate.asymptotic_cs`, tuned for ``budget``)."""
        if self.cs is None:
            self.cs = make_cs(1 - self.level, span, budget)
        fresh = np.asarray(values, dtype=np.float64).reshape(-1)[self.seen:]
        self.seen += fresh.size
        self.cs.update(fresh)
        return decide(self.cs, self.op, self.bound, self.upper).holds is not None


def make_cs(alpha: float, span: tuple[float, float] | None, budget: int) -> Any:
    """The confidence sequence of a claim: the betting sequence on a declared range, else the
    asymptotic one tuned for ``budget`` samples."""
    if span is None:
        from interp_assert.evaluate.asymptotic_cs import AsymptoticCS

        return AsymptoticCS(alpha, budget)
    return BettingCS(alpha, span[0], span[1])


@dataclass
class StopRule:
    """Stop a pass when every watched sink's claims are decided (``sinks``: sink -> watches).

    A sink taking part exposes ``per_sample() -> (values so far, (low, high) or None)``."""

    sinks: list[tuple[Any, list[Watch]]] = field(default_factory=list)
    batch_size: int = SEQUENTIAL_BATCH
    #: samples seen when the pass stopped (None: it ran to the end)
    stopped_at: int | None = None
    #: the dataset's size (the asymptotic sequences are tuned for it)
    budget: int = 0

    def batches(self, dataset: Any) -> Iterator[dict[str, Any]]:
        """The dataset in order, in batches of ``batch_size`` samples, then twice as many
        each time, at most the dataset's ``batch_size`` (default 512)."""
        most = max(dataset.spec.batch_size or 512, self.batch_size)
        self.budget = dataset.n
        start, size = 0, self.batch_size
        while start < dataset.n:
            yield from dataset.batches(size, start=start, stop=start + size)
            start += size
            size = min(2 * size, most)

    def __call__(self, seen: int) -> bool:
        for sink, watches in self.sinks:
            if sink.error is not None:
                return False  # the claims report the error after a whole pass
            try:
                for w in watches:  # a watch with ``read`` works out its own values
                    values, span = w.read(sink) if hasattr(w, "read") else sink.per_sample()
                    if not w.decided(values, span, self.budget):
                        return False
            except QuantityError:
                return False
        self.stopped_at = seen
        return True


def stop_rule(watches: dict[Any, list[Any]], sinks: dict[Any, Any],
              dataset_batch: int | None) -> StopRule | None:
    """The stop rule of a pass whose sinks (key -> sink) are all watched by sequential claims
    (``watches``: key -> planned watches); None when any sink is read whole by some claim.
    The pass then runs in batches of min(the dataset's batch_size, SEQUENTIAL_BATCH), doubling
    (:meth:`StopRule.batches`)."""
    if not sinks or any(key not in watches or not watches[key] for key in sinks):
        return None
    made = {k: [w.make_watch() if hasattr(w, "make_watch") else Watch(w.op, w.bound, w.upper,
                                                                       w.level)
                for w in watches[k]] for k in sinks}
    if any(not hasattr(sinks[k], "per_sample") and not all(hasattr(w, "read") for w in made[k])
           for k in sinks):  # nothing gives this sink's per-sample values during the pass
        return None
    size = min(dataset_batch or SEQUENTIAL_BATCH, SEQUENTIAL_BATCH)
    return StopRule([(sinks[k], made[k]) for k in sinks], size)


def pass_rule(plan: Any, pass_key: Any, sinks: dict[Any, Any], dataset_batch: int | None
              ) -> StopRule | None:
    """The stop rule the run's plan gives the pass ``pass_key`` feeding ``sinks``, or None."""
    watches = plan.watches(pass_key) if plan is not None and hasattr(plan, "watches") else None
    return stop_rule(watches, sinks, dataset_batch) if watches else None


_STOPPED = "sequential stop"


def note_stop(rule: StopRule | None, cache: dict[Any, Any], pass_key: Any, plan: Any) -> bool:
    """Whether the pass stopped early; if so its sinks' results are marked cut short in the
    subject's cache, for this plan and its watches only (and must not go to the result
    cache)."""
    if rule is None or rule.stopped_at is None:
        return False
    cache[(_STOPPED, pass_key)] = (weakref.ref(plan), plan.watches(pass_key), rule.stopped_at)
    return True


def reopen(plan: Any, cache: dict[Any, Any], pass_key: Any) -> None:
    """Forget the cut-short results of ``pass_key`` unless they were cut for this very plan
    and the same watching claims: a claim planned later (one reading the pass whole, another
    sequential claim) or another run makes the next request run the pass again."""
    marker = cache.get((_STOPPED, pass_key))
    if marker is None:
        return
    owner, watches, _ = marker
    if plan is not None and owner() is plan and plan.watches(pass_key) == watches:
        return
    del cache[(_STOPPED, pass_key)]
    for key in [k for k in cache if isinstance(k, tuple) and k and k[0] == "quantity"]:
        del cache[key]  # values computed from the cut-short results
    _, dataset_spec, interventions = pass_key
    for key in [k for k in cache if isinstance(k, tuple) and len(k) == 4
                and k[0] == "forward" and k[1] == dataset_spec and k[2] == interventions]:
        del cache[key]


def is_cut_short(subject: Any, dataset_spec: Any, interventions: Any) -> bool:
    """Whether the pass of (``subject``, ``dataset_spec``, ``interventions``) whose results
    the subject's cache holds stopped early."""
    return (_STOPPED, (subject.spec, dataset_spec, interventions)) in subject.cache


def cut_short_stale(plan: Any, subject: Any, dataset_spec: Any, interventions: Any,
                    value: Any) -> bool:
    """Whether a quantity value read from a pass that stopped early must be computed again:
    the stop does not stand for ``plan`` (see :func:`reopen`, which forgets it)."""
    if subject is None or not getattr(value, "meta", {}).get("cut_short"):
        return False
    pass_key = (subject.spec, dataset_spec, interventions)
    reopen(plan, subject.cache, pass_key)
    return (_STOPPED, pass_key) not in subject.cache


__all__ = ["GRID", "SEQUENTIAL_BATCH", "BettingCS", "Decision", "StopRule", "Watch",
           "betting_cs", "decide", "make_cs", "samples_to_decide", "stop_rule"]
