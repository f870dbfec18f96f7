"""``with C% confidence`` on the claim kinds that average over samples (attention scores,
distribution statistics, ablation and patching effects, metrics): the claim holds when the
whole C% interval of its value clears the bound (:func:`~interp_assert.claims.outcome.decide`).

A claim kind measures its value and the per-unit values behind it (in the keys of a value's
meta, :mod:`interp_assert.evaluate.intervals`), then hands both to :func:`with_confidence`,
which records the per-unit values on the outcome (``Outcome.meta``) and, with a confidence
level, builds the interval and decides the verdict from it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from interp_assert.claims.outcome import Outcome, decide, fmt
from interp_assert.errors import QuantityError
from interp_assert.language import ast

UNIT_KEYS = ("samples", "successes", "trials", "clusters", "paired", "change", "statistic",
             "statistic_options", "unit_rows", "unit", "pairing")
"""The keys of a value's meta that intervals read (copied onto ``Outcome.meta``)."""


def unit_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The interval keys of ``meta``."""
    return {key: meta[key] for key in UNIT_KEYS if key in meta}


def method_text(meta: Mapping[str, Any]) -> str:
    """How the interval of ``meta`` is built, for reports: 'paired bootstrap on 200 samples'."""
    from interp_assert.evaluate.intervals import RESAMPLES, SEED, units_of

    n = units_of(meta)
    unit = str(meta.get("unit", "sample"))
    units = f"{n} {unit}{'s' if n != 1 else ''}"
    resampling = f"{RESAMPLES} resamples, seed {SEED}"
    if "paired" in meta:
        return f"paired bootstrap on {units} ({resampling})"
    if "clusters" in meta:
        return f"bootstrap over {units}, ratio of sums ({resampling})"
    if "statistic" in meta:
        return f"bootstrap of the {meta['statistic']} over {units} ({resampling})"
    if "successes" in meta and "trials" in meta:
        return f"Wilson score interval on {int(np.asarray(meta['trials']).reshape(-1)[0])} trials"
    return f"bootstrap of the mean over {units} ({resampling})"


def with_confidence(outcome: Outcome, comparison: ast.Comparison, meta: Mapping[str, Any],
                    bound: float, upper: float | None, what: str = "", also: bool = True,
                    row: dict[str, Any] | None = None) -> Outcome:
    """Record ``meta``'s per-unit values on ``outcome``; with ``with C% confidence`` build the
    C% interval and let it decide: the claim holds only when every value in the interval
    does (an interval straddling the bound fails, and the notes say so) and ``also`` (the
    rest of the claim, e.g. its random controls) holds; ``row`` (the evidence row of the
    value) gets the interval's verdict."""
    outcome.meta.update(unit_meta(meta))
    if comparison.confidence is None:
        return outcome
    from interp_assert.claims.sequential_kinds import sequential_confidence
    from interp_assert.plan.sequential import is_sequential

    if is_sequential(comparison) and sequential_confidence(outcome, comparison, meta, bound,
                                                           upper, also, row):
        return outcome
    from interp_assert.evaluate.intervals import interval_of

    level = comparison.confidence
    outcome.meta["confidence"] = level
    interval = interval_of(dict(meta), level)
    if interval is None:
        raise QuantityError(f"{what or 'this value'} records no per-sample values, so "
                            f"'{comparison}' has no interval to judge",
                            hint="drop 'with ... confidence', or measure a metric that "
                                 "records per-sample values (loss, logit_diff, exact_match, "
                                 "token_accuracy, a custom metric)")
    verdict = decide(interval, comparison, bound, upper)
    from interp_assert.evaluate.pvalues import p_value_for

    outcome.p_value = p_value_for(dict(meta), comparison.op, bound, upper)
    value_ok = outcome.value is None or math.isfinite(outcome.value)
    outcome.passed = bool(verdict is True and value_ok and also)
    if row is not None:
        row["holds"] = bool(verdict is True and value_ok)
    outcome.interval = interval
    outcome.measured += (f" ({level:.0%} CI [{fmt(interval[0])}, {fmt(interval[1])}], "
                         f"{method_text(meta)})")
    outcome.expected += f" for the whole {level:.0%} interval"
    if any(math.isnan(end) for end in interval):
        outcome.notes.append("the interval is NaN (a NaN or infinite per-sample value, or a "
                             "ratio whose denominator vanishes): it never passes")
    elif verdict is None:
        outcome.notes.append(f"the {level:.0%} interval [{fmt(interval[0])}, "
                             f"{fmt(interval[1])}] straddles the bound: not decided at this "
                             "sample size, so the claim fails")
    if meta.get("pairing"):
        outcome.notes.append(str(meta["pairing"]))
    outcome.plot_data.setdefault("interval", interval)
    return outcome


def attention_units(pattern: np.ndarray, head: int, keys: np.ndarray,
                    queries: np.ndarray | None) -> dict[str, Any]:
    """Per sample (sentence, sequence) of a (batch, head, query, key) pattern: the summed
    weight of head ``head`` on the target keys of its counted (sample, query) pairs and the
    number of those pairs, as ``attention_scores.set_scores`` pools them. Samples with no
    counted pair are left out. ``samples`` holds each sample's sum over the mean pair count
    (whose plain mean is the score)."""
    n, _, n_query, n_key = pattern.shape
    keys = np.broadcast_to(keys, (n, n_query, n_key))
    pairs = keys.any(axis=2)
    if queries is not None:
        pairs = pairs & queries
    chosen = keys & pairs[:, :, None]
    sums = np.where(chosen, pattern[:, head], 0.0).sum(axis=(1, 2), dtype=np.float64)
    counts = pairs.sum(axis=1).astype(np.float64)
    keep = counts > 0
    sums, counts = sums[keep], counts[keep]
    samples = sums / counts.mean() if counts.size else sums
    return {"clusters": (sums, counts), "samples": samples, "unit": "sample"}




def paired_meta(change: str, before: Mapping[str, Any], after: Mapping[str, Any],
                source: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``paired`` meta of an intervention's effect: the metric's per-sample values before
    and after on the same samples (and, for ``recovers``, on the source dataset, paired by
    index when it has as many samples; else its mean is held fixed). Empty when the metric
    records no per-sample values (then a confidence claim is an error)."""
    if "samples" not in before or "samples" not in after:
        return {}
    b = np.asarray(before["samples"], dtype=np.float64).reshape(-1)
    a = np.asarray(after["samples"], dtype=np.float64).reshape(-1)
    if b.size != a.size:
        return {}
    verb = change.rstrip("s") if change != "changes" else "change"
    if verb == "recover" and (source is None or "samples" not in source):
        return {}
    out: dict[str, Any] = {"paired": (b, a), "change": verb, "unit": "sample",
                           "pairing": f"paired on {b.size} samples: each sample's metric "
                                      "before and after the intervention"}
    for key in ("budget", "range"):  # samples before a stop; a rate's range (sequential)
        if key in before:
            out[key] = before[key]
    if verb == "recover":
        assert source is not None
        s = np.asarray(source["samples"], dtype=np.float64).reshape(-1)
        if s.size == b.size:
            out["paired"] = (b, a, s)
            out["pairing"] += "; source sample i paired with target sample i"
        else:
            out["paired"] = (b, a, np.full(b.size, float(s.mean()) if s.size else math.nan))
            out["pairing"] += (f"; the source ({s.size} samples, not {b.size}) enters through "
                               "its mean, held fixed")
    return out



def baseline_interval(meta: Mapping[str, Any], ctx: Any, level: float
                      ) -> tuple[tuple[float, float] | None, str]:
    """The interval of a value compared with ``baseline``, and a note saying how it was
    built: paired on the same samples when the baseline run recorded them (the interval of
    the mean per-sample difference, shifted by the baseline value), else unpaired."""
    from interp_assert.evaluate.intervals import interval_of, paired_interval, unpaired_interval

    recorded = getattr(ctx, "baseline_samples", None)
    base_value = getattr(ctx, "baseline", None)
    now = meta.get("samples")
    if now is None or base_value is None or not math.isfinite(base_value):
        return interval_of(dict(meta), level), ""
    now = np.asarray(now, dtype=np.float64).reshape(-1)
    if recorded is None:
        return (interval_of(dict(meta), level),
                "unpaired: the baseline file holds no per-sample values of this claim, so the "
                "baseline value counts as exact (record it again with the baseline update)")
    base = np.asarray(recorded["samples"], dtype=np.float64).reshape(-1)
    dataset = str(meta.get("context", {}).get("dataset", ""))
    same = recorded.get("dataset") in (None, "", dataset)
    if base.size == now.size and same:
        low, high = paired_interval(base, now, "rise", level)
        note = f"paired on {now.size} samples with the baseline run"
    else:
        low, high = unpaired_interval(base, now, "rise", level)
        why = ("another dataset" if not same
               else f"{base.size} samples, this run {now.size}")
        note = f"unpaired: the baseline run recorded {why}; both resampled on their own"
    return (base_value + low, base_value + high), note

#: distribution statistics with a bootstrap interval (peaks are counted on a histogram)
BOOTSTRAPPED = frozenset({"mean", "std", "var", "skew", "kurtosis", "min", "max", "median",
                          "quantile", "fraction"})


def statistic_options(stat: Any, argument: float | None, std: float) -> dict[str, Any]:
    """The options of ``evaluate.intervals.statistic_function`` for a distribution claim's
    statistic (a fraction's ``std``-relative threshold is fixed at the whole data's std)."""
    if stat.name in ("std", "var"):
        return {"ddof": stat.option("ddof", 0)}
    if stat.name in ("skew", "kurtosis"):
        return {"unbiased": stat.option("unbiased", False)}
    if stat.name in ("quantile", "median"):
        q = 0.5 if stat.name == "median" else argument
        return {"q": q, "method": stat.option("method", "linear")}
    if stat.name == "fraction":
        assert argument is not None
        threshold = argument * std if stat.relative else argument
        return {"var": stat.var, "op": stat.op, "threshold": threshold}
    return {}


def confident_channels(judged: list[Any], stat: Any, comparison: ast.Comparison,
                       argument: float | None, bound: float, upper: float | None,
                       unit_rows: int) -> dict[str, Any]:
    """``has STATISTIC ... with C% confidence``: each channel holds only when the bootstrap
    interval of its statistic (resampling whole samples: ``unit_rows`` consecutive values
    each, e.g. a sequence's positions) clears the bound. Returns the first channel's meta."""
    from interp_assert.evaluate.intervals import statistic_interval
    from interp_assert.evaluate.pvalues import p_value_for

    level = comparison.confidence
    assert level is not None
    first: dict[str, Any] = {}
    for j in judged:
        ch = j.channel
        if ch.samples is None:
            raise QuantityError(f"'{stat} {comparison}' needs the raw samples of {j.label}, "
                                f"which were not kept: {ch.dropped}",
                                hint="raise the memory limit (--interp-memory-limit) or use a "
                                     "smaller dataset")
        options = statistic_options(stat, argument, ch.std)
        # a channel with no NaN/inf of its own holds only padding NaN (a table's groups of
        # unequal size share one array): resample its values, not the padding
        samples = np.asarray(ch.samples if ch.nonfinite else ch.finite(), dtype=np.float64)
        rows = unit_rows if unit_rows > 0 and samples.size % unit_rows == 0 else 1
        interval = statistic_interval(samples, stat.name, level, rows, **options)
        verdict = decide(interval, comparison, bound, upper)
        j.holds = bool(verdict is True and math.isfinite(j.value) and not ch.nonfinite)
        j.detail += f" ({level:.0%} CI [{fmt(interval[0])}, {fmt(interval[1])}])"
        j.extra["interval"] = interval
        meta = {"samples": samples, "statistic": stat.name, "statistic_options": options,
                "unit_rows": rows, "unit": "sample" if rows > 1 else "value"}
        p_value = p_value_for(meta, comparison.op, bound, upper)
        j.extra["p_value"] = 1.0 if ch.nonfinite or p_value is None else p_value
        first = first or meta
    return first



def attach_units(outcome: Outcome, units: dict[str, Any], judged: list[Any],
                 quantifier: str | None = None) -> None:
    """Record a distribution claim's interval meta on its outcome (see
    :func:`confident_channels`), and the interval of a single channel. The p-value is the
    channel's own, or, when every channel must hold, the largest of theirs (an
    intersection-union test); a claim on a share of its channels (``mostly``, ``at least``,
    ``at most``) has none."""
    if not units:
        return
    outcome.meta.update(units)
    outcome.notes.append(f"interval: {method_text(units)}")
    if len(judged) == 1:
        outcome.interval = judged[0].extra["interval"]
    if len(judged) == 1 or quantifier in (None, "every", "each", "all"):
        outcome.p_value = max(float(j.extra["p_value"]) for j in judged)


__all__ = ["BOOTSTRAPPED", "UNIT_KEYS", "attach_units", "attention_units", "baseline_interval",
           "confident_channels", "method_text", "paired_meta", "statistic_options", "unit_meta",
           "with_confidence"]
