"""Which attention pattern an attention claim reads: the claim's ``on:`` quantity, else the
quantity owning the named head, else the only pattern quantity of the claim file; with the
dataset it was computed on and that dataset's padding mask.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from interp_assert.claims.base import Context
from interp_assert.errors import InterpAssertError, QuantityError, UnknownNameError, did_you_mean
from interp_assert.evaluate.attention_view import HEAD_LIKE, PatternView, as_view
from interp_assert.labels import Axis, Labelled
from interp_assert.language import ast

if TYPE_CHECKING:
    from interp_assert.loading.data import DatasetSpec

PATTERN_HOOK = "hook_pattern"


def _declares_pattern(definition: Any) -> bool:
    """Whether a quantity definition is an attention pattern before it is computed: an
    ``activation: ...hook_pattern``, or any quantity declaring query and key axes."""
    from interp_assert.evaluate.quantities.behaviour import Activation

    declared = [Axis(name) for name in (getattr(definition, "axes", None) or ())]
    if declared:
        return any(a.matches("query") for a in declared) and any(
            a.matches("key") for a in declared)
    return isinstance(definition.kind, Activation) and str(
        definition.kind.config.get("activation", "")).endswith(PATTERN_HOOK)


def _may_be_pattern(definition: Any) -> bool:
    """Whether an activation without declared axes lies inside attention, so that its value
    may be a pattern (a module whose output is square over positions: derived axes)."""
    from interp_assert.evaluate.quantities.behaviour import Activation, in_attention

    return (isinstance(definition.kind, Activation) and not getattr(definition, "axes", None)
            and in_attention(str(definition.kind.config.get("activation", "")))
            and not _declares_pattern(definition))


def _pattern_quantities(ctx: Context) -> list[str]:
    """The claim file's attention patterns (:func:`_declares_pattern`); without any, its
    activations inside attention whose values have query and key axes."""
    declared = [name for name, definition in ctx.definitions.items()
                if _declares_pattern(definition)]
    if declared:
        return declared
    return [name for name, definition in ctx.definitions.items()
            if _may_be_pattern(definition) and _has_pattern_axes(ctx.quantity(name))]


def _has_pattern_axes(value: Labelled) -> bool:
    """Whether a value has named query and key axes."""
    return any(a.matches("query") for a in value.axes) and any(
        a.matches("key") for a in value.axes)


def _definition_prefix(definition: Any) -> str | None:
    """The head label prefix of a pattern quantity known from its definition ('L1H' for a
    quantity of ``blocks.1.attn.hook_pattern``); None when only its value can tell."""
    from interp_assert.evaluate.quantities.behaviour import Activation

    if isinstance(definition.kind, Activation):
        names = getattr(definition, "axes", None)
        return _hook_head_prefix(str(definition.kind.config["activation"]),
                                 tuple(names) if names else None)
    return None


@functools.lru_cache(maxsize=1024)
def _hook_head_prefix(hook: str, names: tuple[str, ...] | None = None) -> str:
    """The head label prefix of a pattern hook (worked out once per hook, not per claim),
    with the quantity's declared axis names when it has them."""
    from interp_assert.evaluate.quantities.behaviour import declared_axes

    shape = (1,) * (len(names) if names else 4)
    axes = declared_axes(hook, shape, None, list(names) if names else None)
    labels = next((a.labels for a in axes if a.matches("head")), None)
    return labels[0][:-1] if labels else ""


def _head_prefix(ctx: Context, name: str) -> str:
    """'L1H' for a quantity of ``blocks.1.attn.hook_pattern``: its heads' label prefix (for
    other quantities, read from the heads of its value)."""
    prefix = _definition_prefix(ctx.definitions[name])
    if prefix is not None:
        return prefix
    heads = _heads_of(ctx.quantity(name))
    return re.sub(r"\d+$", "", heads[0]) if heads else ""


def on_view(ctx: Context) -> PatternView:
    """The claim's ``on:`` pattern: a quantity by name, or an expression over quantities
    (``on: mean(pattern1, batch)``), as a view."""
    text = str(ctx.on)
    names = getattr(ctx, "definitions", {})
    if text in names:
        return as_view(ctx.value(ast.Ref(text)), text)
    from interp_assert.errors import ClaimSyntaxError
    from interp_assert.language import parse_expression

    try:
        tree = parse_expression(text)
    except ClaimSyntaxError as exc:
        raise QuantityError(f"'on: {text}' is neither a quantity of the claim file nor an "
                            f"expression ({exc.message})" + did_you_mean(text, names),
                            hint="name a quantity with axes [batch, head, query, key], or "
                                 "write an expression over quantities") from None
    return as_view(ctx.value(tree), text)


def _forward_dataset(ctx: Context, name: str, _seen: frozenset[str] | set[str] = frozenset()
                     ) -> DatasetSpec | None:
    """The dataset a forward quantity (activation, distribution, ...) runs on; for an
    expression (``on: mean(p, batch)``, an ``expr:`` quantity) the one dataset of the forward
    quantities it reads; None otherwise."""
    from interp_assert.evaluate.quantities.behaviour import ForwardQuantity

    definition = ctx.definitions.get(name)
    if definition is not None and isinstance(definition.kind, ForwardQuantity):
        return ctx.dataset_spec(definition.kind.config.get("data"))
    if definition is None:
        from interp_assert.language import parse_expression
        from interp_assert.language.ast import referenced_names

        try:
            names = set(referenced_names(parse_expression(name)))
        except InterpAssertError:
            return None
    else:
        names = set(definition.kind.references())
    seen = set(_seen) | {name}
    found = {spec for spec in (_forward_dataset(ctx, n, seen) for n in names
                               if n in ctx.definitions and n not in seen) if spec is not None}
    return found.pop() if len(found) == 1 else None


def _dataset_of(ctx: Context, name: str) -> DatasetSpec:
    """The dataset quantity ``name`` is computed on: a forward quantity's own, else the
    claim's."""
    spec = _forward_dataset(ctx, name)
    return spec if spec is not None else ctx.dataset_spec()


def _heads_of(value: Labelled) -> list[str]:
    """The labels of a value's head axis (none without one)."""
    for axis in value.axes:
        if axis.matches("head"):
            return [axis.label(i) for i in range(value.shape[value.axes.index(axis)])]
    return []


def _owner_heads(ctx: Context, label: str) -> str | None:
    """The quantity declaring ``label`` on a head axis, if any."""
    try:
        owner = ctx.owner_of(label)
    except UnknownNameError:
        return None
    return owner if owner is not None and label in _heads_of(ctx.quantity(owner)) else None


def is_head(ctx: Context, label: str) -> bool:
    """Whether the lone subject of an attends-to claim names a head (else a query)."""
    if ctx.on:
        view = on_view(ctx)
        if view.head_axis and label in view.heads:
            return True
        query = view.query_axis
        if label in (query.labels or ()) or (query.labels is None and label.isdigit()):
            return False
        return bool(HEAD_LIKE.match(label))
    return bool(HEAD_LIKE.match(label)) or _owner_heads(ctx, label) is not None


def choose_pattern(ctx: Context, head: str | None) -> str:
    """The claim's ``on:`` quantity, else the owner of the head, else the only pattern."""
    if ctx.on:
        return str(ctx.on)
    candidates = _pattern_quantities(ctx)
    if head is not None:
        owner = _owner_heads(ctx, head)
        if owner is not None:
            return owner
        matches = [name for name in candidates if head.startswith(_head_prefix(ctx, name))
                   and head[len(_head_prefix(ctx, name)):].isdigit()]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise UnknownNameError(f"head '{head}' is in several pattern quantities "
                                   f"({', '.join(matches)})",
                                   hint=f"say which with 'on: {matches[0]}' on the claim")
        if candidates:
            known = [h for name in candidates for h in _heads_of(ctx.quantity(name))]
            raise UnknownNameError(f"unknown head '{head}'" + did_you_mean(head, known),
                                   hint="heads: " + ", ".join(known[:12]))
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise QuantityError("this claim needs an attention pattern, but the claim file has no "
                            f"'activation: ...{PATTERN_HOOK}' quantity and none declares "
                            "'axes: [batch, head, query, key]'",
                            hint="add 'pattern: {activation: blocks.0.attn.hook_pattern}' to "
                                 "'quantities', or set 'on: <quantity>' on the claim")
    raise QuantityError(f"several attention patterns ({', '.join(candidates)}); which one?",
                        hint=f"name a head (e.g. '{_head_prefix(ctx, candidates[0])}0: ...') "
                             f"or set 'on: {candidates[0]}' on the claim")


def planned_patterns(definitions: Mapping[str, Any], head: str | None) -> set[str]:
    """The pattern quantities a claim on ``head`` may read (for the plan): those whose heads
    carry its label prefix (or whose prefix only their value tells), or every pattern
    quantity when no head is named."""
    found = set()
    declared = any(_declares_pattern(d) for d in definitions.values())
    for name, definition in definitions.items():
        if not (_declares_pattern(definition) if declared else _may_be_pattern(definition)):
            continue
        prefix = _definition_prefix(definition)
        if head is None or prefix is None or (head.startswith(prefix)
                                              and head[len(prefix):].isdigit()):
            found.add(name)
    return found


def pattern_view(ctx: Context, head: str | None) -> PatternView:
    """The pattern the claim reads, restricted to ``head`` when one is named, with its
    dataset's padding mask when it has one."""
    name = choose_pattern(ctx, head)
    view = on_view(ctx) if ctx.on else as_view(ctx.value(ast.Ref(name)), name)
    if view.batched:
        view.attach_dataset(_forward_dataset(ctx, name), ctx.dataset_spec)
    return view.select_head(head) if head is not None else view


def pattern_tokens(ctx: Context, view: PatternView) -> np.ndarray:
    """The input tokens (batch, position) of the dataset ``view`` was computed on."""
    return view.tokens(lambda: _dataset_of(ctx, view.name))


__all__ = ["PATTERN_HOOK", "choose_pattern", "is_head", "pattern_tokens", "pattern_view",
           "planned_patterns"]
