"""Attention claims that read a streamed pattern summary instead of the whole pattern.

A claim ``L3H5 attends to the previous token`` (a lone head, a positional relative target, the
head's pattern quantity an ``activation: ...hook_pattern`` of the claim file) reads the pattern
only through what :class:`~interp_assert.evaluate.attention_stream.PatternSummarySink` keeps:
the plan registers that sink instead of the pattern quantity, so no batch of the pattern is
kept past its reduction. Every other attention claim reads the whole pattern
(:mod:`interp_assert.claims.attention_pattern`); the numbers are the same either way.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from interp_assert.claims.base import Context
from interp_assert.errors import UnknownNameError
from interp_assert.evaluate.attention_stream import (
    POSITIONAL,
    PatternSummary,
    PatternSummarySink,
)
from interp_assert.evaluate.attention_view import PatternView, first_samples

if TYPE_CHECKING:
    from interp_assert.claims.attention import AttendsTo


@dataclass
class StreamedView(PatternView):
    """A one-head :class:`PatternView` read from a :class:`PatternSummary`."""

    summary: PatternSummary | None = None
    index: int = 0

    @property
    def mean(self) -> np.ndarray:
        assert self.summary is not None
        return self.summary.mean(self.index)

    def causal(self) -> bool:
        assert self.summary is not None
        return self.summary.causal(self.index)


PATTERN_HOOK = "hook_pattern"


@functools.lru_cache(maxsize=1024)
def _head_prefix(hook: str) -> str:
    """'L1H' for ``blocks.1.attn.hook_pattern``: its heads' label prefix (once per hook)."""
    from interp_assert.evaluate.quantities.behaviour import activation_axes

    labels = activation_axes(hook, (1, 1, 1, 1), None)[1].labels
    return labels[0][:-1] if labels else ""


def streamed_pattern(claim: AttendsTo, definitions: Mapping[str, Any]) -> str | None:
    """The pattern quantity the claim reads through a summary, or None when it reads the
    whole pattern."""
    from interp_assert.claims.attention import HEAD_LABEL

    if claim.relative not in POSITIONAL or claim.head is not None:
        return None
    if not HEAD_LABEL.match(claim.subject):
        return None
    from interp_assert.evaluate.quantities.behaviour import Activation

    names = []
    for name, definition in definitions.items():
        kind = definition.kind
        hook = str(kind.config.get("activation", "")) if isinstance(kind, Activation) else ""
        if hook.endswith(PATTERN_HOOK):
            prefix = _head_prefix(hook)
            if claim.subject.startswith(prefix) and claim.subject[len(prefix):].isdigit():
                names.append(name)
    if len(names) != 1:  # the claim's own checks report none, or several
        return None
    return None if definitions[names[0]].kind.config.get("input") else names[0]


def _sink(hook: str, relative: str) -> tuple[Hashable, Callable[[], PatternSummarySink]]:
    return (("pattern-summary", hook, relative),
            lambda: PatternSummarySink(hook, relative))


def stream_sinks(claim: AttendsTo, definitions: Mapping[str, Any]
                 ) -> list[tuple[str | None, Hashable, Callable[[], Any]]]:
    """The summary sink of a streamed claim (for the plan), on its quantity's dataset."""
    name = streamed_pattern(claim, definitions)
    if name is None:
        return []
    config = definitions[name].kind.config
    assert claim.relative is not None
    key, factory = _sink(str(config["activation"]), claim.relative)
    data = config.get("data")
    return [(str(data) if data is not None else None, key, factory)]


def streamed_view(ctx: Context, claim: AttendsTo) -> PatternView | None:
    """The claim's head of its pattern, read from the summary; None when the claim reads the
    whole pattern (an ``on:`` quantity, another quantity owning the head's label)."""
    from interp_assert.evaluate.forward import request
    from interp_assert.evaluate.quantities.behaviour import activation_axes
    from interp_assert.loading.data import load_dataset
    from interp_assert.loading.text_data import query_mask

    name = streamed_pattern(claim, ctx.definitions) if not ctx.on else None
    if name is None:
        return None
    try:
        owner = ctx.owner_of(claim.subject)
    except UnknownNameError:
        owner = None
    if owner not in (None, name):
        return None
    kind = ctx.definitions[name].kind
    spec = ctx.dataset_spec(kind.config.get("data"))
    assert claim.relative is not None
    key, factory = _sink(str(kind.config["activation"]), claim.relative)
    summary: PatternSummary = request(ctx.plan, ctx.subject, spec, key, factory,
                                      ctx.interventions)
    dataset = load_dataset(spec)
    budget = dataset.n if dataset.n > summary.n else None  # a sequential pass stopped early
    dataset = first_samples(dataset, summary.n)
    mask = query_mask(dataset)
    masked = (mask is not None and mask.shape == (summary.n, summary.n_query)
              and summary.n_query == summary.n_key)
    if masked != summary.masked:  # not what the whole pattern would be masked with
        return None
    axes = activation_axes(str(kind.config["activation"]), summary.shape, dataset.positions)
    heads = [axes[1].label(i) for i in range(summary.shape[1])]
    context = kind.context(spec)
    if budget is not None:
        context["samples"] = summary.n
    view = StreamedView(name, np.broadcast_to(np.float32(0), summary.shape), heads, axes[2],
                        axes[3], True, True, context, summary=summary)
    view.select_head(claim.subject)  # an unknown head: the whole pattern's error
    view.index = heads.index(claim.subject)
    view.values = summary.values(view.index)
    view.dataset, view.mask = dataset, mask if masked else None
    view.budget = budget
    ctx.note_used(name)
    return view


__all__ = ["StreamedView", "stream_sinks", "streamed_pattern", "streamed_view"]
