"""Attention claims on data: ``A4 attends to X4, Y4 ≥ 0.6``, ``L0H2 attends to the previous token
≥ 0.9``, ``L3H5 attends to "[SEP]" ≥ 0.5``, ``top-3 sources of A4 include X4, Y4``.

Scores are read from an attention-pattern quantity with axes (batch, head, query, key), as an
``activation: blocks.{l}.attn.hook_pattern`` quantity gives; the batch and head axes are
optional. Without a named head the score is the maximum over heads, and the report names that
head. A score is a mean, over the (sample, query) pairs of every sample pooled together, of the
summed weight on the pair's target keys; a pair counts when its target key exists:

* relative targets, in causal and bidirectional models alike: the previous token (key
  ``q - 1``, queries >= 1), the next token (key ``q + 1``, every query but the last), the first
  token (key 0, every query, query 0 included) and itself (key ``q``, every query, query 0
  included: a causal query 0 puts all its weight there); the token after the previous
  occurrence (the induction target: the successors ``j + 1`` of every earlier occurrence
  ``j < q - 1`` of the query's token, weights summed: the standard induction score) and the
  token after the latest previous occurrence (only the latest occurrence ``j``; none when
  ``j + 1 == q``);
* explicit keys (``QUERY attends to KEY, ...``) use the summed weight on the keys; a lone head
  as the subject (``L3H5 attends to KEY``) averages over every query.

When the pattern's dataset has a padding mask (sentence datasets: ``attention_mask``), padded
queries are left out, and so are padded target keys (a pair whose every target key is padding
is left out; occurrences on padding do not count for the induction targets). A key label with a
per-sample position field in the dataset (``position:[SEP]``) means each sample's own position
of that token. ``docs/definitions.md (Metrics and attention)`` has the formulas.

The scores are computed in :mod:`interp_assert.evaluate.attention_scores` on the pattern that
:mod:`interp_assert.claims.attention_pattern` chooses.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from lark import Tree

from interp_assert.claims.attention_pattern import (
    is_head,
    pattern_tokens,
    pattern_view,
    planned_patterns,
)
from interp_assert.claims.attention_stream import stream_sinks, streamed_pattern, streamed_view
from interp_assert.claims.base import Claim, Context, register_claim
from interp_assert.claims.confidence import attention_units, with_confidence
from interp_assert.claims.outcome import Outcome, compare, expected_text, fmt
from interp_assert.claims.ranking import ranks
from interp_assert.errors import QuantityError
from interp_assert.evaluate.attention_scores import (
    TOKEN_KINDS,
    key_scores,
    mask_keys,
    modal_keys,
    modal_targets,
    relative_keys,
    set_scores,
)
from interp_assert.evaluate.attention_view import PatternView
from interp_assert.labels import expand_labels
from interp_assert.language import ast

if TYPE_CHECKING:
    from matplotlib.axes import Axes

RELATIVE_TEXT = {
    "previous": "the previous token",
    "next": "the next token",
    "first": "the first token",
    "itself": "itself",
    "induction": "the token after the previous occurrence",
    "induction_latest": "the token after the latest previous occurrence",
}
_RELATIVE_RULES = {f"attention_{kind}": kind for kind in RELATIVE_TEXT}
_KEYWORDS = frozenset({"itself", "the"})

#: a label that names a head (L1H0), for planning which pattern a claim reads
HEAD_LABEL = re.compile(r"^L\d+H\d+$")


# ---- claim text helpers ---------------------------------------------------------------------
def _quote(label: str) -> str:
    """Labels are quoted exactly when they must be (and when they read as a keyword here)."""
    return ast.quote_if_needed(label, keywords=_KEYWORDS)


def _key_text(item: str) -> str:
    """One key or key range (``X0..X9``) as claim text."""
    if ".." in item:
        first, last = item.split("..", 1)
        return f"{_quote(first)}..{_quote(last)}"
    return _quote(item)


def _keys_text(keys: tuple[str, ...]) -> str:
    """A key list as claim text."""
    return ", ".join(_key_text(k) for k in keys)


def _head_text(head: str | None) -> str:
    """The ``HEAD: `` prefix of a claim, or nothing."""
    return f"{_quote(head)}: " if head is not None else ""


def _expand(keys: tuple[str, ...]) -> list[str]:
    """The key labels with ranges (``X0..X9``) spelled out."""
    return expand_labels(list(keys))


# ---- report and plot helpers ----------------------------------------------------------------
def _best_note(view: PatternView, scores: np.ndarray, best: int) -> str:
    """'best head L0H1 of 4 (next L0H3 0.42)': the chosen head and the runner-up."""
    if len(view.heads) == 1:
        return f"head {view.heads[0]}"
    others = [(s, h) for i, (s, h) in enumerate(zip(scores, view.heads)) if i != best]
    runner = max(others, key=lambda sh: -np.inf if np.isnan(sh[0]) else sh[0])
    return (f"best head {view.heads[best]} of {len(view.heads)} "
            f"(next {runner[1]} {fmt(float(runner[0]))})")


def _plot_data(view: PatternView, head: int, cells: list[tuple[int, int]], what: str
               ) -> dict[str, Any]:
    """What ``plot`` draws: head ``head``'s batch-mean pattern and the cells to outline."""
    return {"matrix": view.mean[head], "queries": view.queries,
            "keys": view.keys, "cells": cells, "head": view.heads[head], "what": what,
            "pattern": view.name, "samples": view.describe()}


# ---- claims ---------------------------------------------------------------------------------
@register_claim
@dataclass
class AttendsTo(Claim):
    """``[HEAD:] QUERY attends to KEY[, KEY...] CMP x``, ``HEAD attends to KEY[, KEY...] CMP x``
    (every query) or ``HEAD|QUERY attends to the previous token | the next token | the first
    token | itself | the token after the [latest] previous occurrence CMP x``."""

    kind = "attends_to"
    grammar = r"""attends_to: [label ":"] label "attends" "to" attention_target comparison
attention_target: member ("," member)*                          -> attention_keys
    | "the" "previous" "token"                                  -> attention_previous
    | "the" "next" "token"                                      -> attention_next
    | "the" "first" "token"                                     -> attention_first
    | "itself"                                                  -> attention_itself
    | "the" "token" "after" "the" "previous" "occurrence"       -> attention_induction
    | "the" "induction" "target"                                -> attention_induction
    | "the" "token" "after" "the" "latest" "previous" "occurrence" -> attention_induction_latest"""

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

    def planned_quantities(self, definitions: Mapping[str, Any]) -> set[str]:
        """The pattern quantities of its head (a lone head-like subject counts as one); none
        when it reads a streamed summary (:mod:`interp_assert.claims.attention_stream`)."""
        if streamed_pattern(self, definitions) is not None:
            return set()
        head = self.head
        if head is None and HEAD_LABEL.match(self.subject):
            head = self.subject
        found = planned_patterns(definitions, head)
        return found or planned_patterns(definitions, None)

    def planned_sinks(self, claim_file: Any, dataset: str | None
                      ) -> list[tuple[str | None, Hashable, Callable[[], Any]]]:
        return stream_sinks(self, claim_file.quantities)

    def planned_watches(self, definitions: Mapping[str, Any], data: str | None,
                        dataset_of: Callable[[str | None], Any]) -> list[Any]:
        """With ``, sequentially``: the watch on its pattern's sink that lets the pass stop
        (:mod:`interp_assert.claims.attention_watch`)."""
        from interp_assert.claims.attention_watch import planned_watches

        return planned_watches(self, definitions, data, dataset_of)

    def roles(self, ctx: Context) -> tuple[str | None, str | None]:
        """(head, query): a lone subject may be a head (then every query counts)."""
        if self.head is None and is_head(ctx, self.subject):
            return self.subject, None
        return self.head, self.subject

    def evaluate(self, ctx: Context) -> Outcome:
        head, query_label = self.roles(ctx)
        view = streamed_view(ctx, self) or pattern_view(ctx, head)
        scores, cells, what, count, units = self._scores(ctx, view, query_label)
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
        if self.relative == "next" and view.causal():
            notes.append(f"pattern '{view.name}' is causal (no weight on any later key), so no "
                         "query can attend to the next token")
        outlined = ("outlined: each query's most frequent induction target"
                    if self.relative in TOKEN_KINDS else "outlined: the target cells")
        outcome = Outcome(passed, measured,
                          f"{what} {expected_text(self.comparison, bound, upper)}",
                          value=value, rows=rows, notes=notes,
                          context={**view.context, "pattern": view.name,
                                   "head": view.heads[best]},
                          plot_data=_plot_data(view, best, cells, outlined))
        meta = attention_units(view.values, best, *units) if view.batched else {}
        if view.budget is not None:  # a sequential pass stopped early: the dataset's size
            meta["budget"] = view.budget
        return with_confidence(outcome, self.comparison, meta, bound, upper, "an unbatched "
                               "pattern (no sample axis)")

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
                ) -> tuple[np.ndarray, list[tuple[int, int]], str, int | None, Any]:
        """Per-head scores, the cells to outline, the description and the pairs averaged
        (None where that count says nothing: one fixed query, no padding)."""
        queries, query = self._queries(view, query_label)
        source = f"from {query_label} " if query_label is not None else ""
        if self.relative is None:
            return self._key_scores(view, queries, query, source)
        n_query, n_key = view.values.shape[2], view.values.shape[3]
        if query is not None:
            self._check_fixed_query(query, query_label, n_query)
        tokens = pattern_tokens(ctx, view) if self.relative in TOKEN_KINDS else None
        keys = mask_keys(relative_keys(self.relative, n_query, n_key, tokens, view.mask),
                         view.mask)
        scores, count = set_scores(view.values, keys, queries)
        pairs = np.broadcast_to(keys, (queries.shape[0], n_query, n_key)).any(axis=2) & queries
        cells = modal_keys(keys, pairs)
        if self.relative in ("itself", "first") and pairs[:, 0].any() and view.causal():
            view.notes.append(f"query 0 counts ({int(pairs[:, 0].sum())} of {count} pairs): "
                              "causal masking puts all its weight on itself, the first token")
        return (scores, cells, f"weight {source}on {RELATIVE_TEXT[self.relative]}", count,
                (keys, queries))

    def _check_fixed_query(self, query: int, label: str | None, n_query: int) -> None:
        """A fixed query whose position rules out the relative target is an error."""
        if query == 0 and self.relative == "previous":
            raise QuantityError(f"query '{label}' is the first position: it has no previous "
                                "token")
        if query == n_query - 1 and self.relative == "next":
            raise QuantityError(f"query '{label}' is the last position: it has no next token")

    def _key_scores(self, view: PatternView, queries: np.ndarray, query: int | None, source: str
                    ) -> tuple[np.ndarray, list[tuple[int, int]], str, int | None, Any]:
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
        for label in per_sample:
            view.note_own_position(label)
        legacy = query is not None and view.mask is None and not per_sample
        return (scores, sorted(cells), f"weight {source}on {_keys_text(self.keys)}",
                None if legacy else count, (selected[:, None, :] & pairs[:, :, None], pairs))

    def plot(self, outcome: Outcome, ax: Axes) -> None:
        from interp_assert.claims.attention_plot import draw_pattern

        draw_pattern(ax, outcome, outcome.plot_data["what"].removeprefix("outlined: "))


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

    def planned_quantities(self, definitions: Mapping[str, Any]) -> set[str]:
        return planned_patterns(definitions, self.head) or planned_patterns(definitions, None)

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
        from interp_assert.claims.attention_plot import draw_pattern

        top = [tuple(cell) for cell in outcome.plot_data.get("top", [])]
        draw_pattern(ax, outcome, f"the listed sources of {self.query}",
                     (top, "orange", f"the actual top {self.k}"))


__all__ = ["AttendsTo", "TopSources"]
