"""An asymptotic confidence sequence for the mean of unbounded per-sample values (losses, logit
differences, the paired differences of an ablation or patching effect).

Waudby-Smith, Arbour, Sinha, Kennedy & Ramdas, "Time-uniform central limit theory and
asymptotic confidence sequences" (2021, arXiv 2103.06476), Theorem 2.2 with the Robbins
normal-mixture boundary (their eq. (12)-(13)): with the running mean ``mu_t``, the plug-in
standard deviation ``sigma_t`` (``ddof = 0``) and a tuning ``rho > 0``::

    C_t = mu_t +- sigma_t * sqrt(2 (t rho^2 + 1) / (t^2 rho^2) * log(sqrt(t rho^2 + 1) / alpha))

``rho`` is chosen to make the boundary tightest at a target sample size ``t*`` (the claim's
budget, the dataset's ``n``): ``rho^2 = (-2 log alpha + log(-2 log alpha + 1)) / t*``
(their Section 3.3). The coverage ``P(exists t >= m: mu not in C_t) <= alpha`` holds only
*asymptotically* (as the first time checked, ``m``, grows, for i.i.d. values with a finite
variance); nothing is decided before :data:`MIN_SAMPLES` samples. It is not intersected over
time (the sequence is reported at the current ``t``).
"""

from __future__ import annotations

import math

import numpy as np

from interp_assert.errors import QuantityError

#: no decision before this many samples (the bounds are infinite until then)
MIN_SAMPLES = 30


def finite_values(values: np.ndarray) -> np.ndarray:
    """The next observations as a flat float64 array; NaN or infinite values are an error (a
    sequential claim cannot be decided on them)."""
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(x)):
        raise QuantityError("a per-sample value is NaN or infinite: a sequential claim "
                            "cannot be decided on it")
    return x


def rho_for(alpha: float, target: int) -> float:
    """The Robbins-mixture tuning that makes the boundary tightest at ``target`` samples."""
    log_term = -2 * math.log(alpha)
    return math.sqrt((log_term + math.log(log_term + 1)) / max(int(target), 1))


def half_width(sigma: np.ndarray | float, t: np.ndarray | float, alpha: float, rho: float
               ) -> np.ndarray | float:
    """The boundary's half-width at time(s) ``t`` for standard deviation(s) ``sigma``."""
    t_rho = np.asarray(t, dtype=np.float64) * rho * rho
    return sigma * np.sqrt(2 * (t_rho + 1) / (np.asarray(t, dtype=np.float64) * t_rho)
                           * np.log(np.sqrt(t_rho + 1) / alpha))


class AsymptoticCS:
    """The asymptotic confidence sequence of a stream, updated batch by batch (the same
    interface as :class:`interp_assert.evaluate.sequential.BettingCS`)."""

    def __init__(self, alpha: float, target: int) -> None:
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must lie in (0, 1), not {alpha}")
        self.alpha, self.target = alpha, max(int(target), 1)
        self.rho = rho_for(alpha, self.target)
        self.n = 0
        self.total = 0.0
        self.squares = 0.0  # sum of squared deviations from the running mean (Welford)

    def update(self, values: np.ndarray) -> AsymptoticCS:
        """Feed the next observations (in order); NaN or infinite values are an error."""
        x = finite_values(values)
        if x.size == 0:
            return self
        mean_before = self.total / self.n if self.n else 0.0
        batch_mean = float(x.mean())
        batch_squares = float(((x - batch_mean) ** 2).sum())
        n = self.n + x.size
        delta = batch_mean - mean_before
        self.squares += batch_squares + delta * delta * self.n * x.size / n
        self.total += float(x.sum())
        self.n = n
        return self

    @property
    def mean(self) -> float:
        """The running mean (NaN before any sample)."""
        return self.total / self.n if self.n else float("nan")

    @property
    def sigma(self) -> float:
        """The plug-in standard deviation (ddof 0)."""
        return math.sqrt(max(self.squares, 0.0) / self.n) if self.n else float("nan")

    def bounds(self) -> tuple[float, float]:
        """(lower, upper) at the current time; infinite before :data:`MIN_SAMPLES`."""
        if self.n < MIN_SAMPLES:
            return (-math.inf, math.inf)
        width = float(half_width(self.sigma, self.n, self.alpha, self.rho))
        return (self.mean - width, self.mean + width)


def running_bounds(values: np.ndarray, alpha: float, target: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The sequence's (lower, upper) after each of ``values`` (infinite before MIN_SAMPLES),
    vectorised over time (for traces and simulations)."""
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    t = np.arange(1, x.size + 1, dtype=np.float64)
    mean = np.cumsum(x) / t
    var = np.maximum(np.cumsum(x * x) / t - mean * mean, 0.0)
    width = half_width(np.sqrt(var), t, alpha, rho_for(alpha, target))
    width = np.where(t >= MIN_SAMPLES, width, np.inf)
    return mean - width, mean + width


def asymptotic_p_value(values: np.ndarray, alpha: float, target: int, op: str, bound: float,
                       upper: float | None = None) -> float:
    """The anytime p-value of ``mean OP bound`` (asymptotic, for run-level error control): half
    the smallest two-sided level at which the sequence (with the claim's ``rho``) excludes the
    bound on the passing side at some ``t >= MIN_SAMPLES``, i.e. ``min_t sqrt(t rho^2 + 1) / 2 *
    exp(-t^2 rho^2 g_t^2 / (2 sigma_t^2 (t rho^2 + 1)))`` over the times where the running
    mean lies on the passing side at distance ``g_t``; 1 when it never does."""
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if x.size < MIN_SAMPLES or not np.all(np.isfinite(x)) or not math.isfinite(bound):
        return 1.0
    if op == "in" and upper is not None:
        return max(asymptotic_p_value(x, alpha, target, ">=", bound),
                   asymptotic_p_value(x, alpha, target, "<=", upper))
    rho = rho_for(alpha, target)
    t = np.arange(1, x.size + 1, dtype=np.float64)
    mean = np.cumsum(x) / t
    sigma = np.sqrt(np.maximum(np.cumsum(x * x) / t - mean * mean, 0.0))
    gap = mean - bound if op in (">", ">=") else bound - mean
    ok = (t >= MIN_SAMPLES) & (gap > 0)
    if not ok.any():
        return 1.0
    t_rho = t[ok] * rho * rho
    with np.errstate(divide="ignore"):
        z2 = np.where(sigma[ok] > 0, (gap[ok] / sigma[ok]) ** 2, np.inf)
    log_p = np.log(np.sqrt(t_rho + 1) / 2) - t[ok] * t_rho * z2 / (2 * (t_rho + 1))
    return float(min(1.0, math.exp(float(log_p.min()))))


__all__ = ["MIN_SAMPLES", "AsymptoticCS", "asymptotic_p_value", "half_width", "rho_for",
           "running_bounds"]
