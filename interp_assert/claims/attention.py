"""Attention claims on data: ``A4 attends to X4, Y4 ≥ 0.6``, ``L0H2 attends to the previous token
≥ 0.9``, ``L3H5 attends to "[SEP]" ≥ 0.5``, ``top-3 sources of A4 include X4, Y4``.

Scores are read from an attention-pattern quantity with axes (batch, head, query, key), as an
``activation: blocks.{l}.attn.hook_pattern`` quantity gives; the batch and head axes are
optional. Without a named head the score is the maximum over heads, and the report names that
head. A score is a mean over (sample, query) pairs of the weight on the pair's target key(s):

* relative targets (the previous token, the first token, itself) use queries >= 1 (under causal
  masking query 0 can only attend to itself); the next token (key ``q + 1``, which only a
  bidirectional model attends to) uses every query that has a next position; the induction
  target skips queries whose token has no earlier occurrence or whose latest one is the
  previous position (its successor would be the query itself);
* explicit keys (``QUERY attends to KEY, ...``) use the summed weight on the keys; a lone head
  as the subject (``L3H5 attends to KEY``) averages over every query.

When the pattern's dataset has a padding mask (sentence datasets: ``attention_mask``), padded
queries are left out, and so are padded target keys (a pair whose every target key is padding
is left out). A key label with a per-sample position field in the dataset (``position:[SEP]``)
means each sample's own position of that token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np
from lark import Tree

from interp_assert.claims.base import Claim, Context, register_claim
from interp_assert.claims.outcome import Outcome, compare, expected_text, fmt
from interp_assert.claims.ranking import ranks
from interp_assert.errors import InterpAssertError, QuantityError, UnknownNameError, did_you_mean
from interp_assert.labels import Axis, Labelled, expand_labels
from interp_assert.language import ast

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from interp_assert.loading.data import Dataset, DatasetSpec

PATTERN_HOOK = "hook_pattern"
RELATIVE_TEXT = {
    "previous": "the previous token",
    "next": "the next token",
    "first": "the first token",
    "itself": "itself",
    "induction": "the token after the previous occurrence",
}
_RELATIVE_RULES = {f"attention_{kind}": kind for kind in RELATIVE_TEXT}
_KEYWORDS = frozenset({"itself", "the"})
_HEAD_LIKE = re.compile(r"^(?:L\d+)?H\d+$")


class _Evaluation(Context, Protocol):
    """The parts of :class:`~interp_assert.evaluate.evaluation.Evaluation` these claims read."""

    file: Any
    on: str | None

    def quantity(self, name: str) -> Labelled: ...

    def dataset_spec(self, name: str | None = None) -> DatasetSpec: ...


# ---- scores (plain numpy) -------------------------------------------------------------------
def induction_targets(tokens: np.ndarray) -> np.ndarray:
    """Key ``j + 1`` per (sample, query ``q``), ``j < q`` the latest earlier position with the
    same token; -1 where there is none, or where ``j + 1 == q`` (that would be ``itself``)."""
    n, length = tokens.shape
    out = np.full((n, length), -1, dtype=np.int64)
    for q in range(1, length):
        same = tokens[:, :q] == tokens[:, q:q + 1]
        target = q - np.argmax(same[:, ::-1], axis=1)  # (latest j) + 1
        out[:, q] = np.where(same.any(axis=1) & (target != q), target, -1)
    return out


def relative_targets(relative: str, n_query: int, tokens: np.ndarray | None = None
                     ) -> np.ndarray:
    """Target key per (sample, query), -1 where none; shape (1, Q) unless token-dependent.

    Query 0 has no previous, first or itself target: under causal masking all its weight is
    forced onto itself. The next token is ``q + 1`` for every query but the last position.
    """
    if relative == "induction":
        if tokens is None:
            raise QuantityError("the induction target needs the input tokens")
        return induction_targets(tokens)
    q = np.arange(n_query)
    if relative == "next":
        return np.where(q + 1 < n_query, q + 1, -1)[None, :]
    keys = {"previous": q - 1, "first": np.zeros_like(q), "itself": q}[relative]
    return np.where(q >= 1, keys, -1)[None, :]


def mask_targets(targets: np.ndarray, mask: np.ndarray | None, n: int) -> np.ndarray:
    """(n, Q) targets with -1 where the query or its target key is padding (``mask`` (n, Q),
    True on real tokens)."""
    targets = np.broadcast_to(targets, (n, targets.shape[1]))
    if mask is None:
        return targets
    at_key = np.take_along_axis(mask, np.clip(targets, 0, mask.shape[1] - 1), axis=1)
    return np.where(mask & at_key & (targets >= 0), targets, -1)


def relative_scores(pattern: np.ndarray, targets: np.ndarray,
                    queries: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """Mean weight on each (sample, query)'s target key, per head, over the pairs that have one
    (and that ``queries``, (n, Q) booleans, allows); ``pattern`` is (batch, head, query, key).
    Returns the per-head scores (NaN when no pair has a target) and the number of pairs."""
    n, _, n_query, _ = pattern.shape
    targets = np.broadcast_to(targets, (n, n_query))
    valid = targets >= 0
    if queries is not None:
        valid = valid & queries
    count = int(valid.sum())
    index = np.clip(targets, 0, None)[:, None, :, None]
    gathered = np.take_along_axis(pattern, np.broadcast_to(index, (*pattern.shape[:3], 1)),
                                  axis=3)[..., 0]
    total = np.where(valid[:, None, :], gathered, 0.0).sum(axis=(0, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count, count


def key_scores(pattern: np.ndarray, selected: np.ndarray, pairs: np.ndarray
               ) -> tuple[np.ndarray, int]:
    """Mean summed weight on each sample's selected keys (``selected`` (n, K) booleans), per
    head, over the (sample, query) pairs in ``pairs`` ((n, Q) booleans). Returns the per-head
    scores (NaN when there is no pair) and the number of pairs."""
    count = int(pairs.sum())
    rows = np.flatnonzero(pairs.any(axis=0))  # only the queries that are used
    part = pattern[:, :, rows]
    summed = np.where(selected[:, None, None, :], part, 0.0).sum(axis=-1)  # (n, head, rows)
    total = np.where(pairs[:, None, rows], summed, 0.0).sum(axis=(0, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count, count


def modal_targets(targets: np.ndarray, n_query: int) -> list[tuple[int, int]]:
    """(query, most frequent target key) for every query that has a target."""
    targets = np.broadcast_to(targets, (targets.shape[0], n_query))
    cells = []
    for q in range(n_query):
        column = targets[:, q]
        column = column[column >= 0]
        if column.size:
            cells.append((q, int(np.argmax(np.bincount(column)))))
    return cells


def masked_mean(pattern: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """(head, query, key) batch mean over the samples where both query and key are real."""
    if mask is None:
        return pattern.mean(axis=0)
    both = (mask[:, :, None] & mask[:, None, :])[:, None]
    total = np.where(both, pattern, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / both.sum(axis=0)


# ---- the pattern a claim reads --------------------------------------------------------------
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
    #: the dataset the pattern was computed on (batched patterns only)
    dataset: Any = None

    @property
    def mean(self) -> np.ndarray:
        """(head, query, key) batch mean; with a mask, over the samples where both are real."""
        return masked_mean(self.values, self.mask)

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
        return [self.query_axis.label(i) for i in range(self.values.shape[2])]

    @property
    def keys(self) -> list[str]:
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
        if _HEAD_LIKE.match(label) and role == "query":
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

    def tokens(self, ev: _Evaluation) -> np.ndarray:
        """The input tokens of the dataset the pattern was computed on, (batch, position)."""
        from interp_assert.loading.data import load_dataset

        if not self.batched:
            raise QuantityError(f"pattern '{self.name}' has no batch axis; the induction target "
                                "needs one pattern per sample",
                                hint="use the activation quantity itself, not a batch mean")
        dataset = self.dataset if self.dataset is not None else load_dataset(
            _dataset_of(ev, self.name))
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
        context = self.context
        samples = context.get("samples", self.values.shape[0] if self.batched else None)
        where = f" of {str(context['dataset']).split(' (')[0]}" if "dataset" in context else ""
        return f"{samples} samples{where}" if samples is not None else f"pattern '{self.name}'"


def _pattern_quantities(ev: _Evaluation) -> list[str]:
    from interp_assert.evaluate.quantities.behaviour import Activation

    return [name for name, definition in ev.file.quantities.items()
            if isinstance(definition.kind, Activation)
            and str(definition.kind.config.get("activation", "")).endswith(PATTERN_HOOK)]


def _head_prefix(ev: _Evaluation, name: str) -> str:
    """'L1H' for a quantity of ``blocks.1.attn.hook_pattern``: its heads' label prefix."""
    from interp_assert.evaluate.quantities.behaviour import activation_axes

    hook = str(ev.file.quantities[name].kind.config["activation"])
    labels = activation_axes(hook, (1, 1, 1, 1), None)[1].labels
    return labels[0][:-1] if labels else ""


def _dataset_of(ev: _Evaluation, name: str) -> DatasetSpec:
    from interp_assert.evaluate.quantities.behaviour import ForwardQuantity

    definition = ev.file.quantities.get(name)
    if definition is not None and isinstance(definition.kind, ForwardQuantity):
        return definition.kind.dataset(ev)  # type: ignore[arg-type]
    return ev.dataset_spec()


def _heads_of(value: Labelled) -> list[str]:
    for axis in value.axes:
        if axis.matches("head"):
            return [axis.label(i) for i in range(value.shape[value.axes.index(axis)])]
    return []


def _owner_heads(ev: _Evaluation, label: str) -> str | None:
    """The quantity declaring ``label`` on a head axis, if any."""
    try:
        owner = ev.owner_of(label)
    except UnknownNameError:
        return None
    return owner if owner is not None and label in _heads_of(ev.quantity(owner)) else None


def is_head(ev: _Evaluation, label: str) -> bool:
    """Whether the lone subject of an attends-to claim names a head (else a query)."""
    if ev.on:
        view = _as_view(ev.value(ast.Ref(str(ev.on))), str(ev.on))
        if view.head_axis and label in view.heads:
            return True
        query = view.query_axis
        if label in (query.labels or ()) or (query.labels is None and label.isdigit()):
            return False
        return bool(_HEAD_LIKE.match(label))
    return bool(_HEAD_LIKE.match(label)) or _owner_heads(ev, label) is not None


def choose_pattern(ev: _Evaluation, head: str | None) -> str:
    """The claim's ``on:`` quantity, else the owner of the head, else the only pattern."""
    if ev.on:
        return str(ev.on)
    candidates = _pattern_quantities(ev)
    if head is not None:
        owner = _owner_heads(ev, head)
        if owner is not None:
            return owner
        matches = [name for name in candidates if head.startswith(_head_prefix(ev, name))
                   and head[len(_head_prefix(ev, name)):].isdigit()]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise UnknownNameError(f"head '{head}' is in several pattern quantities "
                                   f"({', '.join(matches)})",
                                   hint=f"say which with 'on: {matches[0]}' on the claim")
        if candidates:
            known = [h for name in candidates for h in _heads_of(ev.quantity(name))]
            raise UnknownNameError(f"unknown head '{head}'" + did_you_mean(head, known),
                                   hint="heads: " + ", ".join(known[:12]))
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise QuantityError("this claim needs an attention pattern, but the claim file has no "
                            f"'activation: ...{PATTERN_HOOK}' quantity",
                            hint="add 'pattern: {activation: blocks.0.attn.hook_pattern}' to "
                                 "'quantities', or set 'on: <quantity>' on the claim")
    raise QuantityError(f"several attention patterns ({', '.join(candidates)}); which one?",
                        hint=f"name a head (e.g. '{_head_prefix(ev, candidates[0])}0: ...') "
                             f"or set 'on: {candidates[0]}' on the claim")


def _as_view(value: Labelled, name: str) -> PatternView:
    """Normalise a pattern to (batch, head, query, key)."""
    if value.ndim < 2:
        raise QuantityError(f"'{name}' has shape {value.shape}; an attention pattern needs "
                            "(query, key) axes", hint="use an 'activation: ...hook_pattern' "
                                                      "quantity")
    axes = list(range(value.ndim))
    named = {role: next((i for i, a in enumerate(value.axes) if a.matches(role)), None)
             for role in ("batch", "head", "query", "key")}
    query = named["query"] if named["query"] is not None else value.ndim - 2
    key = named["key"] if named["key"] is not None else value.ndim - 1
    rest = [i for i in axes if i not in (query, key, named["batch"], named["head"])]
    if rest or query == key:
        raise QuantityError(
            f"'{name}' has axes {[a.name for a in value.axes]}; an attention pattern has "
            "(batch, head, query, key), batch and head optional",
            hint="index or average the other axes in an 'expr:' quantity")
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


def _pattern_dataset(ev: _Evaluation, name: str) -> Dataset | None:
    """The dataset a batched pattern quantity was computed on, if one can be told: a forward
    quantity's own; for other quantities (expressions) the claim's, when it loads."""
    from interp_assert.evaluate.quantities.behaviour import ForwardQuantity
    from interp_assert.loading.data import load_dataset

    definition = ev.file.quantities.get(name)
    if definition is not None and isinstance(definition.kind, ForwardQuantity):
        return load_dataset(definition.kind.dataset(ev))  # type: ignore[arg-type]
    try:
        return load_dataset(ev.dataset_spec())
    except InterpAssertError:  # no data, or data the pattern does not use: no mask then
        return None


def pattern_view(ctx: Context, head: str | None) -> PatternView:
    """The pattern the claim reads, restricted to ``head`` when one is named, with its
    dataset's padding mask when it has one."""
    from interp_assert.loading.text_data import query_mask

    ev = cast(_Evaluation, ctx)
    name = choose_pattern(ev, head)
    view = _as_view(ev.value(ast.Ref(name)), name)
    if view.batched:
        view.dataset = _pattern_dataset(ev, name)
        mask = query_mask(view.dataset) if view.dataset is not None else None
        n, n_query, n_key = view.values.shape[0], view.values.shape[2], view.values.shape[3]
        if mask is not None and mask.shape == (n, n_query) and n_query == n_key:
            view.mask = mask
    return view.select_head(head) if head is not None else view


# ---- claim text helpers ---------------------------------------------------------------------
def _quote(label: str) -> str:
    """Labels are quoted exactly when they must be (and when they read as a keyword here)."""
    return ast.quote_if_needed(label, keywords=_KEYWORDS)


def _key_text(item: str) -> str:
    if ".." in item:
        first, last = item.split("..", 1)
        return f"{_quote(first)}..{_quote(last)}"
    return _quote(item)


def _keys_text(keys: tuple[str, ...]) -> str:
    return ", ".join(_key_text(k) for k in keys)


def _head_text(head: str | None) -> str:
    return f"{_quote(head)}: " if head is not None else ""


def _expand(keys: tuple[str, ...]) -> list[str]:
    return expand_labels(list(keys))


def _is_causal(values: np.ndarray) -> bool:
    """Whether a (batch, head, query, key) pattern puts no weight on any later key."""
    if values.shape[2] != values.shape[3] or values.shape[2] < 2:
        return False
    later = np.triu(np.ones(values.shape[2:], dtype=bool), 1)
    return not np.any(np.abs(values[..., later]) > 0)


def _best_note(view: PatternView, scores: np.ndarray, best: int) -> str:
    if len(view.heads) == 1:
        return f"head {view.heads[0]}"
    others = [(s, h) for i, (s, h) in enumerate(zip(scores, view.heads)) if i != best]
    runner = max(others, key=lambda sh: -np.inf if np.isnan(sh[0]) else sh[0])
    return (f"best head {view.heads[best]} of {len(view.heads)} "
            f"(next {runner[1]} {fmt(float(runner[0]))})")


def _heatmap(ax: Axes, data: dict[str, Any], title: str) -> None:
    from interp_assert.claims.plots import heatmap

    matrix = data["matrix"]
    top = float(np.nanmax(matrix)) if np.isfinite(matrix).any() else 1.0
    heatmap(ax, matrix, data["queries"], data["keys"], vmin=0.0, vmax=max(top, 1e-9),
            cmap="Blues", outline=[tuple(c) for c in data["cells"]], outline_color="red")
    ax.set_xlabel("key (attended-to position)")
    ax.set_ylabel("query (attending position)")
    ax.set_title(title, fontsize=8)


def _plot_data(view: PatternView, head: int, cells: list[tuple[int, int]], what: str
               ) -> dict[str, Any]:
    return {"matrix": view.mean[head], "queries": view.queries,
            "keys": view.keys, "cells": cells, "head": view.heads[head], "what": what,
            "pattern": view.name, "samples": view.describe()}


# ---- claims ---------------------------------------------------------------------------------
@register_claim
@dataclass
class AttendsTo(Claim):
    """``[HEAD:] QUERY attends to KEY[, KEY...] CMP x``, ``HEAD attends to KEY[, KEY...] CMP x``
    (every query) or ``HEAD|QUERY attends to the previous token | the next token | the first
    token | itself | the token after the previous occurrence CMP x``."""

    kind = "attends_to"
    grammar = r"""attends_to: [label ":"] label "attends" "to" attention_target comparison
attention_target: member ("," member)*                          -> attention_keys
    | "the" "previous" "token"                                  -> attention_previous
    | "the" "next" "token"                                      -> attention_next
    | "the" "first" "token"                                     -> attention_first
    | "itself"                                                  -> attention_itself
    | "the" "token" "after" "the" "previous" "occurrence"       -> attention_induction
    | "the" "induction" "target"                                -> attention_induction"""

    head: str | None
    subject: str
    keys: tuple[str, ...]
    relative: str | None
    comparison: ast.Comparison

    @classmethod
    def build(cls, children: list[Any]) -> AttendsTo:
        head, subject, target, comparison = children
        assert isinstance(target, Tree)
        keys: tuple[str, ...] = tuple(ast.label_text(item) for item in target.children)
        relative = _RELATIVE_RULES.get(str(target.data))
        if keys == ("itself",):  # the bare word reads as the relative target, never a label
            keys, relative = (), "itself"
        head_text = ast.label_text(head) if head is not None else None
        return cls(head_text, ast.label_text(subject), keys, relative, comparison)

    def __str__(self) -> str:
        target = RELATIVE_TEXT[self.relative] if self.relative else _keys_text(self.keys)
        return (f"{_head_text(self.head)}{_quote(self.subject)} attends to {target} "
                f"{self.comparison}")

    def roles(self, ctx: Context) -> tuple[str | None, str | None]:
        """(head, query): a lone subject may be a head (then every query counts)."""
        if self.head is None and is_head(cast(_Evaluation, ctx), self.subject):
            return self.subject, None
        return self.head, self.subject

    def evaluate(self, ctx: Context) -> Outcome:
        head, query_label = self.roles(ctx)
        view = pattern_view(ctx, head)
        scores, cells, what, count = self._scores(ctx, view, query_label)
        nan = np.isnan(scores)
        best = int(np.argmax(nan)) if nan.any() else int(np.argmax(scores))
        value = float("nan") if nan.any() else float(scores[best])
        bound = ctx.scalar(self.comparison.value)
        upper = ctx.scalar(self.comparison.upper) if self.comparison.upper is not None else None
        passed = compare(value, self.comparison, bound, upper)
        rows: list[dict[str, Any]] = [
            {"head": h, "score": float(s), "holds": compare(float(s), self.comparison, bound,
                                                            upper)}
            for h, s in zip(view.heads, scores)]
        if len(rows) > 1:
            for i, row in enumerate(rows):
                row["best"] = i == best
        if nan.any():
            head_text = f"head {view.heads[best]} (NaN weights)"
        elif head is None and len(view.heads) > 1:
            head_text = _best_note(view, scores, best)
        else:
            head_text = f"head {view.heads[best]}"
        padding = "; padding left out" if view.mask is not None else ""
        pairs = f" ({count} sample-query pairs{padding})" if count is not None else ""
        measured = f"{fmt(value)} in {head_text}; mean over {view.describe()}{pairs}"
        notes = list(view.notes)
        if count == 0:
            target = (RELATIVE_TEXT[self.relative] if self.relative is not None
                      else f"a real key among {_keys_text(self.keys)}")
            notes.append(f"no (sample, query) pair has {target}")
        if self.relative == "next" and _is_causal(view.values):
            notes.append(f"pattern '{view.name}' is causal (no weight on any later key), so no "
                         "query can attend to the next token")
        outlined = ("outlined: each query's most frequent induction target"
                    if self.relative == "induction" else "outlined: the target cells")
        return Outcome(passed, measured,
                       f"{what} {expected_text(self.comparison, bound, upper)}",
                       value=value, rows=rows, notes=notes,
                       context={**view.context, "pattern": view.name, "head": view.heads[best]},
                       plot_data=_plot_data(view, best, cells, outlined))

    def _queries(self, view: PatternView, query_label: str | None
                 ) -> tuple[np.ndarray, int | None]:
        """(batch, query) booleans: the real queries the claim is about; and the query's fixed
        index (None for every query, or for a per-sample query such as ``"[SEP]"``)."""
        real = view.real_queries()
        if query_label is None:
            return real, None
        index, per_sample = view.indices(query_label, "query")
        chosen = np.arange(real.shape[1])[None, :] == index[:, None]
        return real & chosen, int(index[0]) if index.size and not per_sample else None

    def _scores(self, ctx: Context, view: PatternView, query_label: str | None
                ) -> tuple[np.ndarray, list[tuple[int, int]], str, int | None]:
        """Per-head scores, the cells to outline, the description and the pairs averaged
        (None where that count says nothing: one fixed query, no padding)."""
        queries, query = self._queries(view, query_label)
        source = f"from {query_label} " if query_label is not None else ""
        if self.relative is None:
            return self._key_scores(view, queries, query, source)
        n, n_query = view.values.shape[0], view.values.shape[2]
        if query == 0 and self.relative in ("previous", "first", "itself"):
            raise QuantityError(f"query '{query_label}' is the first position: its causal "
                                "attention is forced onto itself, so no relative target applies")
        tokens = view.tokens(cast(_Evaluation, ctx)) if self.relative == "induction" else None
        targets = mask_targets(relative_targets(self.relative, n_query, tokens), view.mask, n)
        scores, count = relative_scores(view.values, targets, queries)
        cells = modal_targets(np.where(queries, targets, -1), n_query)
        return scores, cells, f"weight {source}on {RELATIVE_TEXT[self.relative]}", count

    def _key_scores(self, view: PatternView, queries: np.ndarray, query: int | None, source: str
                    ) -> tuple[np.ndarray, list[tuple[int, int]], str, int | None]:
        n, n_query, n_key = view.values.shape[0], view.values.shape[2], view.values.shape[3]
        selected = np.zeros((n, n_key), dtype=bool)
        indices, per_sample = [], []
        for label in _expand(self.keys):
            index, own = view.indices(label, "key")
            present = index >= 0
            selected[np.flatnonzero(present), index[present]] = True
            indices.append(index)
            if own:
                per_sample.append(label)
        if view.mask is not None:
            selected &= view.mask
        pairs = queries & selected.any(axis=1)[:, None]
        scores, count = key_scores(view.values, selected, pairs)
        cells: set[tuple[int, int]] = set()
        for index in indices:
            real_key = (index >= 0) & selected[np.arange(n), np.clip(index, 0, None)]
            cells.update(modal_targets(np.where(pairs & real_key[:, None], index[:, None], -1),
                                       n_query))
        from interp_assert.loading.text_data import position_field

        for label in per_sample:
            view.notes.append(f"'{label}' is each sample's own position (dataset field "
                              f"'{position_field(label)}')")
        legacy = query is not None and view.mask is None and not per_sample
        return (scores, sorted(cells), f"weight {source}on {_keys_text(self.keys)}",
                None if legacy else count)

    def plot(self, outcome: Outcome, ax: Axes) -> None:
        data = outcome.plot_data
        _heatmap(ax, data, f"{data['pattern']} {data['head']}: batch-mean attention over "
                           f"{data['samples']}\n{data['what']}")


@register_claim
@dataclass
class TopSources(Claim):
    """``[HEAD:] top-K sources of QUERY include KEY[, KEY...]``: in the batch-mean pattern row
    of the query, every listed key is among the K largest weights (and has weight > 0)."""

    kind = "top_sources"
    grammar = r"""top_sources: [label ":"] ATTENTION_TOP "sources" "of" label "include" _att_keys
_att_keys: member ("," member)*
ATTENTION_TOP: /top-[1-9]\d*\b/"""

    head: str | None
    k: int
    query: str
    keys: tuple[str, ...]

    @classmethod
    def build(cls, children: list[Any]) -> TopSources:
        head, top, query, *keys = children
        k = int(str(top).split("-", 1)[1])
        return cls(ast.label_text(head) if head is not None else None, k, ast.label_text(query),
                   tuple(ast.label_text(item) for item in keys))

    def __str__(self) -> str:
        return (f"{_head_text(self.head)}top-{self.k} sources of {_quote(self.query)} include "
                f"{_keys_text(self.keys)}")

    def evaluate(self, ctx: Context) -> Outcome:
        view = pattern_view(ctx, self.head)
        query = view.position(self.query, "query")
        labels = _expand(self.keys)
        key_index = [view.position(k, "key") for k in labels]
        weights = view.mean[:, query, :]  # (head, key); with a mask, over real samples
        per_head = []
        for h in range(len(view.heads)):
            rank = ranks(weights[h])
            chosen = [(int(rank[k]), float(weights[h, k])) for k in key_index]
            ok = [r <= self.k and np.isfinite(w) and w > 0 for r, w in chosen]
            worst = max(r for r, _ in chosen)
            total = sum(w for _, w in chosen)
            per_head.append((all(ok), worst, total, chosen, ok))
        best = min(range(len(per_head)), key=lambda h: (
            not per_head[h][0], per_head[h][1], -np.nan_to_num(per_head[h][2], nan=-np.inf)))
        passed, worst, _total, chosen, ok = per_head[best]
        row = weights[best]
        n_keys = row.size
        cutoff = float(np.sort(np.nan_to_num(row, nan=-np.inf))[::-1][min(self.k, n_keys) - 1])
        rows = [{"key": label, "weight": w, "rank": r, "holds": bool(good)}
                for label, (r, w), good in zip(labels, chosen, ok)]
        head_text = (f"head {view.heads[best]}" if self.head is not None or len(view.heads) == 1
                     else f"best head {view.heads[best]} of {len(view.heads)}")
        ranks_text = ", ".join(f"{label} rank {r} (weight {fmt(w)})"
                               for label, (r, w) in zip(labels, chosen))
        measured = (f"in {head_text}: {ranks_text} of {n_keys} sources; rank-{self.k} weight "
                    f"{fmt(cutoff)}; mean over {view.describe()}")
        notes = list(view.notes)
        if len(view.heads) > 1:
            notes.append("worst rank per head: " + ", ".join(
                f"{h} {p[1]}" for h, p in zip(view.heads, per_head)))
        cells = [(query, k) for k in key_index]
        data = _plot_data(view, best, cells, "outlined: the listed sources (red), the actual "
                          f"top {self.k} (dashed)")
        order = np.argsort(-np.nan_to_num(row, nan=-np.inf), kind="stable")
        data["top"] = [(query, int(k)) for k in order[:self.k]]
        return Outcome(bool(passed), measured,
                       f"{_keys_text(self.keys)} among the top {self.k} sources of {self.query}"
                       " (weight > 0)", value=float(worst), rows=rows, notes=notes,
                       context={**view.context, "pattern": view.name, "head": view.heads[best]},
                       plot_data=data)

    def plot(self, outcome: Outcome, ax: Axes) -> None:
        from matplotlib.patches import Rectangle

        data = outcome.plot_data
        _heatmap(ax, data, f"{data['pattern']} {data['head']}: batch-mean attention over "
                           f"{data['samples']}\n{data['what']} of {self.query}")
        for i, j in data.get("top", []):
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="orange",
                                   linestyle="--", linewidth=1.5))
