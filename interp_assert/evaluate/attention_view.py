"""The attention pattern a claim reads: a pattern quantity normalised to (batch, head, query,
key), with its head and position labels, its dataset and padding mask, and its provenance.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from interp_assert.errors import InterpAssertError, QuantityError, UnknownNameError, did_you_mean
from interp_assert.evaluate.attention_scores import is_causal, masked_mean
from interp_assert.labels import Axis, Labelled

if TYPE_CHECKING:
    from interp_assert.loading.data import Dataset, DatasetSpec

HEAD_LIKE = re.compile(r"^(?:L\d+)?H\d+$")
"""A label that reads as a head (``H3``, ``L1H3``)."""


@dataclass
class PatternView:
    """An attention pattern as (batch, head, query, key) with its labels and provenance."""

    name: str
    values: np.ndarray
    heads: list[str]
    query_axis: Axis
    key_axis: Axis
    batched: bool
    head_axis: bool
    context: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: (batch, position) True on real tokens, when the dataset has a padding mask
    mask: np.ndarray | None = None
    #: the dataset the pattern was computed on (batched patterns only); its first samples
    #: only, when a sequential pass stopped early
    dataset: Dataset | None = None
    #: the dataset's size when the pattern holds only its first samples (a pass that
    #: stopped early), else None
    budget: int | None = None

    @property
    def mean(self) -> np.ndarray:
        """(head, query, key) batch mean; with a mask, over the samples where both are real."""
        return masked_mean(self.values, self.mask)

    def causal(self) -> bool:
        """Whether the pattern puts no weight on any later key."""
        return is_causal(self.values)

    def real_queries(self) -> np.ndarray:
        """(batch, query) True where the query is a real token."""
        n, n_query = self.values.shape[0], self.values.shape[2]
        return self.mask if self.mask is not None else np.ones((n, n_query), dtype=bool)

    def sample_positions(self, label: str) -> np.ndarray | None:
        """Each sample's own index of ``label`` (-1 where absent) from the dataset's
        ``position:`` field, or None when there is no such field."""
        from interp_assert.loading.text_data import sample_positions

        if self.dataset is None:
            return None
        index = sample_positions(self.dataset, label)
        if index is None or index.shape != (self.values.shape[0],):
            return None
        return index

    def indices(self, label: str, role: str) -> tuple[np.ndarray, bool]:
        """(batch,) index of ``label`` on the query or key axis in each sample, -1 where absent
        (from the dataset's ``position:`` field when it has one, else the label's position),
        and whether that index moves from sample to sample."""
        own = self.sample_positions(label)
        if own is not None:
            size = self.values.shape[2 if role == "query" else 3]
            own = np.where(own < size, own, -1)
            return own, bool(own.size) and bool((own != own[0]).any())
        return np.full(self.values.shape[0], self.position(label, role)), False

    @property
    def queries(self) -> list[str]:
        """The query position labels."""
        return [self.query_axis.label(i) for i in range(self.values.shape[2])]

    @property
    def keys(self) -> list[str]:
        """The key position labels."""
        return [self.key_axis.label(i) for i in range(self.values.shape[3])]

    def position(self, label: str, role: str) -> int:
        """Index of a position label on the query or key axis, with a did-you-mean error."""
        axis = self.query_axis if role == "query" else self.key_axis
        if axis.labels is not None and label in axis.labels:
            return axis.labels.index(label)
        size = self.values.shape[2 if role == "query" else 3]
        if axis.labels is None and re.fullmatch(r"\d+", label) and int(label) < size:
            return int(label)
        hint = ("name a position of the dataset's 'positions'" if axis.labels is not None else
                "the pattern's positions are unlabelled: use position numbers, or add "
                "'positions: ...' to the dataset")
        if HEAD_LIKE.match(label) and role == "query":
            hint = f"'{label}' looks like a head: write '{label}: <query> attends to ...'"
        raise UnknownNameError(f"unknown {role} position '{label}' in pattern '{self.name}'"
                               + did_you_mean(label, axis.labels or ()), hint=hint)

    def select_head(self, head: str) -> PatternView:
        """The view restricted to one named head."""
        if not self.head_axis:
            self.notes.append(f"pattern '{self.name}' has no head axis; it is taken to be "
                              f"head {head}")
            self.heads = [head]
            return self
        if head not in self.heads:
            raise UnknownNameError(f"unknown head '{head}' in pattern '{self.name}'"
                                   + did_you_mean(head, self.heads),
                                   hint="heads: " + ", ".join(self.heads[:12]))
        i = self.heads.index(head)
        self.values, self.heads = self.values[:, i:i + 1], [head]
        return self

    def attach_dataset(self, spec: DatasetSpec | None, fallback: Callable[[], DatasetSpec]
                       ) -> None:
        """Hold the dataset a batched pattern was computed on, and its padding mask when it has
        one: ``spec`` when known (a forward quantity's own), else ``fallback()``, the claim's,
        when it loads (no data, or data the pattern does not use: no mask then)."""
        from interp_assert.loading.data import load_dataset
        from interp_assert.loading.text_data import query_mask

        if spec is not None:  # the pattern's own dataset: a pass cut short read its first rows
            self.dataset = load_dataset(spec)
            if self.dataset.n > self.values.shape[0]:
                self.budget = self.dataset.n
                self.dataset = first_samples(self.dataset, self.values.shape[0])
        else:
            try:
                self.dataset = load_dataset(fallback())
            except InterpAssertError:
                self.dataset = None
        mask = query_mask(self.dataset) if self.dataset is not None else None
        n, n_query, n_key = self.values.shape[0], self.values.shape[2], self.values.shape[3]
        if mask is not None and mask.shape == (n, n_query) and n_query == n_key:
            self.mask = mask

    def note_own_position(self, label: str) -> None:
        """Note that ``label`` means each sample's own position (a dataset field)."""
        from interp_assert.loading.text_data import position_field

        self.notes.append(f"'{label}' is each sample's own position (dataset field "
                          f"'{position_field(label)}')")

    def tokens(self, dataset_spec: Callable[[], DatasetSpec]) -> np.ndarray:
        """The input tokens of the dataset the pattern was computed on, (batch, position);
        ``dataset_spec()`` names that dataset when the view does not hold it."""
        from interp_assert.loading.data import load_dataset

        if not self.batched:
            raise QuantityError(f"pattern '{self.name}' has no batch axis; the induction target "
                                "needs one pattern per sample",
                                hint="use the activation quantity itself, not a batch mean")
        dataset = self.dataset if self.dataset is not None else load_dataset(dataset_spec())
        spec = dataset.spec
        raw = dataset.field(spec.input)
        tokens = np.asarray(raw.detach().cpu() if hasattr(raw, "detach") else raw)
        expected = self.values.shape[0], self.values.shape[2]
        if tokens.ndim != 2 or tokens.shape != expected:
            raise QuantityError(f"the tokens of dataset '{spec.name}' have shape "
                                f"{tuple(tokens.shape)} but pattern '{self.name}' needs "
                                f"(batch, query) = {expected}",
                                hint="compute the pattern on the claim's dataset ('data:')")
        return tokens

    def describe(self) -> str:
        """What the batch mean is over, for reports: '200 samples of sums'."""
        context = self.context
        samples = context.get("samples", self.values.shape[0] if self.batched else None)
        where = f" of {str(context['dataset']).split(' (')[0]}" if "dataset" in context else ""
        return f"{samples} samples{where}" if samples is not None else f"pattern '{self.name}'"


def first_samples(dataset: Dataset, n: int) -> Dataset:
    """The first ``n`` samples of ``dataset`` (every field sliced), what a forward pass that
    stopped early after ``n`` samples read."""
    from interp_assert.loading.data import Dataset

    if n >= dataset.n:
        return dataset
    return Dataset(dataset.spec, {k: v[:n] for k, v in dataset.fields.items()}, n)


_ROLES = ("batch", "head", "query", "key")
#: axis names that say what an axis is, so that it cannot be taken for a pattern axis
_NAMED = re.compile(r"^(?!dim\d+$).+")


def _shape_error(value: Labelled, name: str, problem: str) -> QuantityError:
    """Why ``value`` is not an attention pattern, naming the quantity, its axes and the fix."""
    axes = ", ".join(f"{a.name} ({n})" for a, n in zip(value.axes, value.shape))
    return QuantityError(
        f"'{name}' cannot be read as an attention pattern: its axes are [{axes}]; {problem}. "
        "An attention claim reads a quantity with axes [batch, head, query, key] (batch and "
        "head optional)",
        hint=f"use an 'activation: blocks.<layer>.attn.hook_pattern' quantity; if '{name}' "
             "holds a pattern under other axis names, declare them on its definition "
             "('axes: [batch, head, query, key]'); otherwise index or average the other axes "
             f"in an 'expr:' quantity (e.g. 'mean({name}, <axis>)'), or set 'on:' to one")


def as_view(value: Labelled, name: str) -> PatternView:
    """Normalise a pattern to (batch, head, query, key): its axes found by name (``batch``,
    ``head``, ``query``, ``key``); unnamed query and key axes are the last two. A 4-axis value
    none of whose axes has a name (``dim0``..``dim3``, e.g. a ``call:`` quantity's tensor) is
    taken as [batch, head, query, key] when its last two axes have the same size."""
    if value.ndim < 2:
        raise _shape_error(value, name, "a pattern needs query and key axes")
    if value.ndim == 4 and not any(_NAMED.match(a.name) for a in value.axes):
        if value.shape[2] != value.shape[3]:
            raise _shape_error(value, name, "its last two axes (query, key) differ in size")
        value = Labelled(value.values, tuple(Axis(role) for role in _ROLES), value.name,
                         value.meta, keep_float32=value.keep_float32)
    named = {role: next((i for i, a in enumerate(value.axes) if a.matches(role)), None)
             for role in _ROLES}
    # unnamed query and key axes: the last two axes without a name (dim0, dim1, ...)
    free = [i for i in range(value.ndim) if i not in named.values()
            and not _NAMED.match(value.axes[i].name)]
    query = named["query"] if named["query"] is not None else (
        free.pop(-2 if named["key"] is None and len(free) > 1 else -1) if free else None)
    key = named["key"] if named["key"] is not None else (free.pop(-1) if free else None)
    if query is None or key is None:
        missing = " and ".join(r for r, i in (("query", query), ("key", key)) if i is None)
        raise _shape_error(value, name, f"it has no {missing} axis")
    rest = [i for i in range(value.ndim) if i not in (query, key, named["batch"],
                                                       named["head"])]
    if rest:
        others = ", ".join(value.axes[i].name for i in rest)
        raise _shape_error(value, name, f"axis {others} is not one of them")
    order = [i for i in (named["batch"], named["head"]) if i is not None] + [query, key]
    values = np.transpose(value.values, order)
    if named["head"] is None:
        values = values[:, None] if named["batch"] is not None else values[None]
    if named["batch"] is None:
        values = values[None]
    heads = ([value.axes[named["head"]].label(i) for i in range(values.shape[1])]
             if named["head"] is not None else [name])
    context = dict(value.meta.get("context", {}))
    return PatternView(name, values, heads, value.axes[query], value.axes[key],
                       named["batch"] is not None, named["head"] is not None, context)


__all__ = ["HEAD_LIKE", "PatternView", "as_view", "first_samples"]
