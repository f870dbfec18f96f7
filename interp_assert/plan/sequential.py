"""Which claims of a plan are sequential, and which forward passes they may stop early.

A claim is *sequential* when it says ``with C% confidence, sequentially``, or says ``with C%
confidence`` while the run makes every confidence claim sequential (``--interp-sequential``,
ini ``interp_sequential``, env ``INTERP_ASSERT_SEQUENTIAL``). The plan notes, per forward pass,
the sinks that sequential claims *watch* (a comparison of a rate metric against literal bounds:
its per-sample values can be judged between batches) and the passes some other claim reads
whole. A pass may stop early only when every sink it feeds is watched and no claim reads it
whole (:mod:`interp_assert.evaluate.sequential` builds the stop rule from this).

Also here: what an undecided claim becomes (``--interp-undecided``, ini
``interp_undecided``, env ``INTERP_ASSERT_UNDECIDED``: ``fail``, the default, or ``xfail``).
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from interp_assert.errors import InterpAssertError
from interp_assert.language import ast

if TYPE_CHECKING:
    from interp_assert.loading.claim_file import ClaimEntry, ClaimFile

SEQUENTIAL_ENV = "INTERP_ASSERT_SEQUENTIAL"
UNDECIDED_ENV = "INTERP_ASSERT_UNDECIDED"
UNDECIDED_POLICIES = ("fail", "xfail")
#: metrics whose sinks give per-sample values during the pass ([0, 1] rates, and unbounded
#: values judged by the asymptotic sequence; loss only with ``average: samples``)
WATCHABLE_METRICS = frozenset({"exact_match", "token_accuracy", "loss", "logit_diff"})

_settings: dict[str, Any] = {"sequential": None, "undecided": None}


def set_sequential(every: bool | None) -> None:
    """Make every ``with C% confidence`` claim sequential (None: the environment decides)."""
    _settings["sequential"] = every


def sequential_all() -> bool:
    """Whether every confidence claim is sequential in this run."""
    if _settings["sequential"] is not None:
        return bool(_settings["sequential"])
    return parse_flag(os.environ.get(SEQUENTIAL_ENV, ""), SEQUENTIAL_ENV)


def parse_flag(text: str, where: str) -> bool:
    """``1/true/yes/on`` or ``0/false/no/off/''``; anything else is an error naming ``where``."""
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("", "0", "false", "no", "off"):
        return False
    raise InterpAssertError(f"{where}: '{text}' is not true or false",
                            hint="write true or false")


def set_undecided(policy: str | None) -> None:
    """What an undecided claim becomes: 'fail' or 'xfail' (None: the environment decides)."""
    if policy is not None:
        check_policy(policy, "--interp-undecided")
    _settings["undecided"] = policy


def check_policy(policy: str, where: str) -> str:
    """``policy`` if it is 'fail' or 'xfail', else an error naming ``where``."""
    if policy not in UNDECIDED_POLICIES:
        raise InterpAssertError(f"{where}: '{policy}' is not fail or xfail",
                                hint="undecided claims fail by default; 'xfail' reports them "
                                     "as expected failures")
    return policy


def undecided_policy() -> str:
    """'fail' (the default) or 'xfail'."""
    if _settings["undecided"] is not None:
        return str(_settings["undecided"])
    value = os.environ.get(UNDECIDED_ENV, "").strip()
    return check_policy(value, UNDECIDED_ENV) if value else "fail"


def is_sequential(comparison: ast.Comparison | None) -> bool:
    """Whether a comparison is judged by a confidence sequence."""
    return comparison is not None and comparison.confidence is not None and (
        comparison.sequential or sequential_all())


@dataclass(frozen=True)
class PlannedWatch:
    """A sequential claim's comparison with its bounds evaluated (literal numbers)."""

    op: str
    bound: float
    upper: float | None
    level: float


def _literal(node: ast.Node | None) -> float | None:
    """A literal number (or its negation), else None."""
    if isinstance(node, ast.Number):
        return float(node.value)
    if isinstance(node, ast.Neg):
        inner = _literal(node.operand)
        return -inner if inner is not None else None
    return None


def planned_watch(claim: Any, definitions: Any) -> tuple[str, PlannedWatch] | None:
    """(quantity name, watch) of a claim that can stop a pass: ``METRIC CMP number with C%
    confidence[, sequentially]`` on a watchable metric; None for every other claim."""
    comparison = getattr(claim, "comparison", None)
    subject = getattr(claim, "subject", None)
    if getattr(claim, "kind", "") != "compare" or not is_sequential(comparison):
        return None
    assert comparison is not None and comparison.confidence is not None
    if not isinstance(subject, ast.Ref) or subject.name not in definitions:
        return None
    config = getattr(definitions[subject.name].kind, "config", {})
    if config.get("metric") not in WATCHABLE_METRICS or config.get("average") == "tokens":
        return None
    bound, upper = _literal(comparison.value), _literal(comparison.upper)
    if bound is None or (comparison.upper is not None and upper is None):
        return None
    return subject.name, PlannedWatch(comparison.op, bound, upper, comparison.confidence)


def note_reads(plan: Any, claim_file: ClaimFile, entry: ClaimEntry, names: Iterable[str],
               data: str | None, dataset_of: Any) -> None:
    """Record in ``plan`` what ``entry`` reads: a watch on its metric's sink, or the passes
    it reads whole (``names``: its quantities; ``dataset_of(file, name)``: a dataset spec)."""
    if entry.parsed is None:
        return
    claim = entry.parsed.claim
    watched = planned_watch(claim, claim_file.quantities)
    own = own_watches(plan, claim_file, entry, data, dataset_of)
    for name in names:
        kind = claim_file.quantities[name].kind
        need = getattr(kind, "need", None)
        if need is None:
            continue
        spec = dataset_of(claim_file, kind.config.get("data") or data)
        if spec is None:
            continue
        try:
            key, _ = need(spec, claim_file.search_path)
        except InterpAssertError:
            continue
        pass_key = (plan.subject, spec, ())
        if (pass_key, key) in own:
            continue
        if watched is not None and watched[0] == name:
            plan.watches.setdefault(pass_key, {}).setdefault(key, []).append(watched[1])
        else:
            plan.whole.add(pass_key)
    try:
        sinks = claim.planned_sinks(claim_file, data)
    except InterpAssertError:
        return
    for name, key, _factory in sinks:
        spec = dataset_of(claim_file, name or data)
        if spec is not None and ((plan.subject, spec, ()), key) not in own:
            plan.whole.add((plan.subject, spec, ()))


def own_watches(plan: Any, claim_file: ClaimFile, entry: ClaimEntry, data: str | None,
                dataset_of: Any) -> set[tuple[Any, Hashable]]:
    """Add the watches a claim kind makes itself (``claim.planned_watches``: a sequential
    attention claim watching its pattern's sink) to ``plan``; the (pass, sink) pairs they
    watch. Nothing for a claim read through ``on:`` or a template (``for i in ...``)."""
    claim = entry.parsed.claim if entry.parsed is not None else None
    make = getattr(claim, "planned_watches", None)
    if make is None or entry.options.get("on") or entry.parsed.for_each is not None:
        return set()
    try:
        found = make(claim_file.quantities, data, lambda name: dataset_of(claim_file, name))
    except InterpAssertError:
        return set()
    watched = set()
    for spec, key, watch in found:
        pass_key = (plan.subject, spec, ())
        plan.watches.setdefault(pass_key, {}).setdefault(key, []).append(watch)
        watched.add((pass_key, key))
    return watched


def merge_watches(into: dict[Any, dict[Hashable, list[PlannedWatch]]],
                  watches: dict[Any, dict[Hashable, list[PlannedWatch]]]) -> None:
    """Add one plan's watches to the run's."""
    for pass_key, sinks in watches.items():
        for key, found in sinks.items():
            into.setdefault(pass_key, {}).setdefault(key, []).extend(found)


__all__ = ["PlannedWatch", "is_sequential", "merge_watches", "note_reads", "planned_watch",
           "sequential_all", "set_sequential", "set_undecided", "undecided_policy"]
