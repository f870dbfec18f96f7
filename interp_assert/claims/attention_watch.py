"""Sequential attention claims that stop their forward pass early.

``L0H1 attends to the previous token ≥ 0.2 with 95% confidence, sequentially`` is judged by the
betting confidence sequence of its per-sample scores (:mod:`interp_assert.claims.
sequential_kinds`). For the pass to stop once such claims are decided, the plan registers, on
the sink the claim reads (the pattern quantity's capture, or the streamed summary of
:mod:`interp_assert.claims.attention_stream`), a watch that works out those per-sample scores
from what the sink holds so far: the samples read, as a pattern with the claim's head, the
first samples of the dataset (padding mask, tokens, per-sample positions), and the claim's own
scoring (``AttendsTo._scores`` and ``attention_units``), so that the values watched during
the pass are the very values the claim is judged on after it.

A claim can stop its pass when the plan can tell, from the claim file alone, which pattern it
reads and which head: a named head (``L0H3: A1 attends to ...``) or a lone head-like subject
(``L0H1 attends to ...``); an ``activation: ...hook_pattern`` quantity (no ``input:``, no
declared ``axes:`` or ``labels:``) that is the only one with that head; literal bounds; no
``on:``. Every other sequential attention claim reads its pass whole, as before. A watch that
cannot work out the scores (an error the claim will report) never lets the pass stop.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from interp_assert.evaluate.attention_view import HEAD_LIKE, PatternView, as_view, first_samples
from interp_assert.evaluate.sequential import SEQUENTIAL_OPS, Watch
from interp_assert.labels import Labelled


@dataclass(eq=False)  # compared by identity: each claim's watch is its own
class AttentionPlannedWatch:
    """A sequential attention claim's watch on the sink of its pattern (see the module)."""

    op: str
    bound: float
    upper: float | None
    level: float
    claim: Any
    head: str
    query: str | None
    name: str
    definition: Any
    dataset: Any
    streamed: bool

    def make_watch(self) -> AttentionWatch:
        """The watch a pass's stop rule updates."""
        return AttentionWatch(self.op, self.bound, self.upper, self.level, planned=self)


@dataclass
class AttentionWatch(Watch):
    """A :class:`Watch` fed the claim's per-sample scores over the samples its sink holds."""

    planned: AttentionPlannedWatch | None = field(default=None, compare=False)
    #: set when the scores cannot be worked out (the claim reports why after a whole pass)
    broken: bool = False

    def read(self, sink: Any) -> tuple[np.ndarray, tuple[float, float]]:
        """The claim's per-sample scores so far and their range [0, 1]."""
        from interp_assert.errors import QuantityError

        if self.broken or self.planned is None:
            raise QuantityError("the attention scores cannot be read during the pass")
        try:
            return prefix_scores(self.planned, sink), (0.0, 1.0)
        except Exception:  # the claim itself reports it after a whole pass
            self.broken = True
            raise QuantityError("the attention scores cannot be read during the pass") from None


def prefix_scores(planned: AttentionPlannedWatch, sink: Any) -> np.ndarray:
    """Per-sample scores of the claim over the samples ``sink`` holds, in dataset order."""
    from interp_assert.claims.confidence import attention_units
    from interp_assert.claims.sequential_kinds import per_unit_values
    from interp_assert.loading.data import load_dataset
    from interp_assert.loading.text_data import query_mask

    view = _prefix_view(planned, sink)
    dataset = first_samples(load_dataset(planned.dataset), view.values.shape[0])
    view.dataset = dataset
    mask = query_mask(dataset)
    n, _, n_query, n_key = view.values.shape
    if mask is not None and mask.shape == (n, n_query) and n_query == n_key:
        view.mask = mask
    _, _, _, _, units = planned.claim._scores(None, view, planned.query)
    found = per_unit_values(attention_units(view.values, 0, *units))
    assert found is not None
    return found[0]


def _prefix_view(planned: AttentionPlannedWatch, sink: Any) -> PatternView:
    """The claim's head of the pattern over the samples ``sink`` holds: the whole capture
    read as the quantity's value is, or the streamed summary's cells (zeros elsewhere)."""
    from interp_assert.evaluate.quantities.behaviour import activation_axes, declared_axes
    from interp_assert.loading.data import load_dataset

    positions = load_dataset(planned.dataset).positions
    hook = str(planned.definition.kind.config["activation"])
    if not planned.streamed:
        array = np.concatenate(sink.parts, axis=0)
        axes = declared_axes(hook, array.shape, positions, None)
        value = planned.definition.to_labelled(
            Labelled(array, axes, planned.name, {}, keep_float32=True))
        return as_view(value, planned.name).select_head(planned.head)
    parts = list(sink.parts)
    n = sum(part.shape[0] for part in parts)
    heads, (n_query, n_key) = parts[0].shape[1], sink.shape
    axes = activation_axes(hook, (n, heads, n_query, n_key), positions)
    index = list(axes[1].labels or ()).index(planned.head)
    values = np.zeros((n, 1, n_query, n_key), dtype=parts[0].dtype)
    values[:, 0, sink.cells[0], sink.cells[1]] = np.concatenate(parts, axis=0)[:, index]
    return PatternView(planned.name, values, [planned.head], axes[2], axes[3], True, True)


def planned_watches(claim: Any, definitions: Mapping[str, Any], data: str | None,
                    dataset_of: Callable[[str | None], Any]
                    ) -> list[tuple[Any, Hashable, AttentionPlannedWatch]]:
    """(dataset spec, sink key, watch) of a sequential attention claim that can stop its pass
    (see the module); empty for every other claim."""
    from interp_assert.claims.attention_pattern import planned_patterns
    from interp_assert.claims.attention_stream import _sink, streamed_pattern
    from interp_assert.evaluate.quantities.behaviour import Activation
    from interp_assert.plan.sequential import _literal, is_sequential

    comparison = claim.comparison
    if not is_sequential(comparison) or comparison.op not in SEQUENTIAL_OPS:
        return []
    bound, upper = _literal(comparison.value), _literal(comparison.upper)
    if bound is None or (comparison.upper is not None and upper is None):
        return []
    head, query = claim.head, claim.subject
    if head is None:
        if not HEAD_LIKE.match(claim.subject):
            return []
        head, query = claim.subject, None
    if not HEAD_LIKE.match(head):
        return []
    streamed = streamed_pattern(claim, definitions)
    names = [streamed] if streamed is not None else sorted(planned_patterns(definitions, head))
    if len(names) != 1:
        return []
    name = names[0]
    definition = definitions[name]
    kind = definition.kind
    if (not isinstance(kind, Activation) or kind.config.get("input")
            or getattr(definition, "axes", None) or getattr(definition, "labels", None)
            or not str(kind.config.get("activation", "")).endswith("hook_pattern")):
        return []
    spec = dataset_of(kind.config.get("data") or data)
    if spec is None:
        return []
    if streamed is not None:
        key = _sink(str(kind.config["activation"]), claim.relative)[0]
    else:
        key = kind.need(spec, ())[0]
    assert comparison.confidence is not None
    watch = AttentionPlannedWatch(comparison.op, bound, upper, comparison.confidence, claim,
                                  head, query, name, definition, spec, streamed is not None)
    return [(spec, key, watch)]


__all__ = ["AttentionPlannedWatch", "AttentionWatch", "planned_watches", "prefix_scores"]
