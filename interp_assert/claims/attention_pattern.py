"""Which attention pattern an attention claim reads: the claim's ``on:`` quantity, else the
quantity owning the named head, else the only pattern quantity of the claim file; with the
dataset it was computed on and that dataset's padding mask.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from interp_assert.claims.base import Context
from interp_assert.errors import QuantityError, UnknownNameError, did_you_mean
from interp_assert.evaluate.attention_view import HEAD_LIKE, PatternView, as_view
from interp_assert.labels import Labelled
from interp_assert.language import ast

if TYPE_CHECKING:
    from interp_assert.loading.data import DatasetSpec

PATTERN_HOOK = "hook_pattern"


def _pattern_quantities(ctx: Context) -> list[str]:
    """The claim file's ``activation: ...hook_pattern`` quantities."""
    from interp_assert.evaluate.quantities.behaviour import Activation

    return [name for name, definition in ctx.definitions.items()
            if isinstance(definition.kind, Activation)
            and str(definition.kind.config.get("activation", "")).endswith(PATTERN_HOOK)]


def _head_prefix(ctx: Context, name: str) -> str:
    """'L1H' for a quantity of ``blocks.1.attn.hook_pattern``: its heads' label prefix."""
    return _hook_head_prefix(str(ctx.definitions[name].kind.config["activation"]))


@functools.lru_cache(maxsize=1024)
def _hook_head_prefix(hook: str) -> str:
    """The head label prefix of a pattern hook (worked out once per hook, not per claim)."""
    from interp_assert.evaluate.quantities.behaviour import activation_axes

    labels = activation_axes(hook, (1, 1, 1, 1), None)[1].labels
    return labels[0][:-1] if labels else ""


def _forward_dataset(ctx: Context, name: str) -> DatasetSpec | None:
    """The dataset a forward quantity (activation, distribution, ...) runs on; None when
    ``name`` is another kind of quantity."""
    from interp_assert.evaluate.quantities.behaviour import ForwardQuantity

    definition = ctx.definitions.get(name)
    if definition is not None and isinstance(definition.kind, ForwardQuantity):
        return ctx.dataset_spec(definition.kind.config.get("data"))
    return None


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
        view = as_view(ctx.value(ast.Ref(str(ctx.on))), str(ctx.on))
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
                            f"'activation: ...{PATTERN_HOOK}' quantity",
                            hint="add 'pattern: {activation: blocks.0.attn.hook_pattern}' to "
                                 "'quantities', or set 'on: <quantity>' on the claim")
    raise QuantityError(f"several attention patterns ({', '.join(candidates)}); which one?",
                        hint=f"name a head (e.g. '{_head_prefix(ctx, candidates[0])}0: ...') "
                             f"or set 'on: {candidates[0]}' on the claim")


def planned_patterns(definitions: Mapping[str, Any], head: str | None) -> set[str]:
    """The pattern quantities a claim on ``head`` may read (for the plan): those whose heads
    carry its label prefix, or every pattern quantity when no head is named."""
    from interp_assert.evaluate.quantities.behaviour import Activation

    found = set()
    for name, definition in definitions.items():
        hook = str(definition.kind.config.get("activation", "")) if isinstance(
            definition.kind, Activation) else ""
        if not hook.endswith(PATTERN_HOOK):
            continue
        prefix = _hook_head_prefix(hook)
        if head is None or (head.startswith(prefix) and head[len(prefix):].isdigit()):
            found.add(name)
    return found


@functools.lru_cache(maxsize=1024)
def _hook_head_prefix(hook: str) -> str:
    """The prefix of a pattern hook's head labels (``L3H`` of ``blocks.3.attn.hook_pattern``)."""
    from interp_assert.evaluate.quantities.behaviour import activation_axes

    labels = activation_axes(hook, (1, 1, 1, 1), None)[1].labels
    return labels[0][:-1] if labels else ""


def pattern_view(ctx: Context, head: str | None) -> PatternView:
    """The pattern the claim reads, restricted to ``head`` when one is named, with its
    dataset's padding mask when it has one."""
    name = choose_pattern(ctx, head)
    view = as_view(ctx.value(ast.Ref(name)), name)
    if view.batched:
        view.attach_dataset(_forward_dataset(ctx, name), ctx.dataset_spec)
    return view.select_head(head) if head is not None else view


def pattern_tokens(ctx: Context, view: PatternView) -> np.ndarray:
    """The input tokens (batch, position) of the dataset ``view`` was computed on."""
    return view.tokens(lambda: _dataset_of(ctx, view.name))


__all__ = ["PATTERN_HOOK", "choose_pattern", "is_head", "pattern_tokens", "pattern_view",
           "planned_patterns"]
