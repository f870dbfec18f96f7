"""The pair of passes of a sequential ablation or patching claim (``ablate L0H3 (mean): loss
rises by ≥ 0.3 with 95% confidence, sequentially``): while the claim reads its intervened
pass, that pass stops as soon as the asymptotic sequence of the per-sample differences
against the clean pass decides the claim (:mod:`interp_assert.evaluate.paired_stop`); the
clean values are then cut to the same samples, so the effect, its sequence and the verdict
are on one prefix of the dataset.

It applies to ``drops`` / ``rises`` (and ``changes`` / ``recovers``, whose watch decides them
as :mod:`interp_assert.claims.sequential_effects` does) of a metric quantity named alone whose
sink gives per-sample values during the pass (``exact_match``, ``token_accuracy``, ``loss`` with
``average: samples``, ``logit_diff``), with literal bounds; anything else reads the
intervened pass whole (and is still judged sequentially on every sample).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from interp_assert.labels import Labelled
from interp_assert.language import ast


@contextmanager
def paired_stop(effect: Any, ctx: Any, target: Any, interventions: tuple[Any, ...],
                clean: Labelled, source: Labelled | None = None) -> Iterator[None]:
    """Watch the intervened pass of ``effect`` (on dataset ``target`` with ``interventions``)
    while the block reads it; nothing when the claim cannot stop it (``source``: the source
    run's value, which a ``recovers`` claim needs)."""
    watch = _planned(effect, ctx, target, clean, source) if effect is not None else None
    plan = getattr(ctx, "plan", None)
    if watch is None or not hasattr(plan, "watch_now"):
        yield
        return
    key, planned = watch
    remove = plan.watch_now((ctx.subject.spec, target, interventions), key, planned)
    try:
        yield
    finally:
        remove()


def _planned(effect: Any, ctx: Any, target: Any, clean: Labelled,
             source: Labelled | None = None) -> tuple[Any, Any] | None:
    """(sink key, planned watch) of a claim that may stop its intervened pass, else None."""
    from interp_assert.evaluate.paired_stop import PairedPlannedWatch
    from interp_assert.plan.sequential import WATCHABLE_METRICS, _literal, is_sequential

    comparison = effect.comparison
    if (not is_sequential(comparison) or effect.metric.mask is not None
            or not isinstance(effect.metric.expr, ast.Ref) or "samples" not in clean.meta):
        return None
    definition = ctx.definitions.get(effect.metric.expr.name)
    kind = getattr(definition, "kind", None)
    config = getattr(kind, "config", {})
    if config.get("metric") not in WATCHABLE_METRICS or config.get("average") == "tokens":
        return None
    bound, upper = _literal(comparison.value), _literal(comparison.upper)
    if bound is None or (comparison.upper is not None and upper is None):
        return None
    key, _ = kind.need(target, ctx.search_path)
    if effect.change in ("changes", "recovers"):
        from interp_assert.claims.sequential_effects import effect_watch

        found = effect_watch(effect.change, comparison, bound, upper, clean, source)
        return (key, found) if found is not None else None
    sign = 1.0 if effect.change == "rises" else -1.0
    from interp_assert.claims.sequential_kinds import difference_range

    return key, PairedPlannedWatch(comparison.op, bound, upper, comparison.confidence,
                                   np.asarray(clean.meta["samples"], dtype=np.float64), sign,
                                   difference_range(clean.meta.get("range")))


def same_samples(clean: Labelled, intervened: Labelled) -> Labelled:
    """``clean`` cut to the samples of an intervened pass that stopped early (its mean, and
    for rates its counts, recomputed on them); ``clean`` itself otherwise."""
    before = clean.meta.get("samples")
    after = intervened.meta.get("samples")
    if before is None or after is None or len(after) >= len(before):
        return clean
    kept = np.asarray(before, dtype=np.float64).reshape(-1)[:len(after)]
    meta = {**clean.meta, "samples": kept, "budget": len(before)}
    if "successes" in meta and "trials" in meta:
        meta["successes"], meta["trials"] = np.array(int(kept.sum())), np.array(kept.size)
    return Labelled(np.array(kept.mean() if kept.size else np.nan), (), clean.name, meta)


def same_source(source: Labelled | None, clean: Labelled, intervened: Labelled
                ) -> Labelled | None:
    """The source run of a ``recovers`` claim cut to the samples of an intervened pass that
    stopped early, when it is paired with the target sample by sample (as many samples);
    ``source`` itself otherwise (a source of another size enters through its mean)."""
    if source is None or source.meta.get("samples") is None or clean.meta.get("samples") is None:
        return source
    if len(source.meta["samples"]) != len(clean.meta["samples"]):
        return source
    return same_samples(source, intervened)


__all__ = ["paired_stop", "same_samples", "same_source"]
