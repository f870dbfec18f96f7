"""Plans: which forward-pass sinks the selected claims of a run will read.

A :class:`Plan` is built once per (claim file, target) from the claims that will run: a
deselected claim, a claim with an error and a quantity no selected claim uses register
nothing. The run owns a :class:`RunPlan` holding every plan; the forward pass for a
(subject, dataset, interventions) key serves the sinks of all plans sharing that key, so claim
files on one checkpoint and dataset still share one pass.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from interp_assert.errors import InterpAssertError
from interp_assert.language import templates
from interp_assert.language.ast import referenced_names
from interp_assert.plan import sequential

if TYPE_CHECKING:
    from interp_assert.loading.claim_file import ClaimEntry, ClaimFile
    from interp_assert.loading.data import DatasetSpec
    from interp_assert.loading.subject import SubjectSpec

#: (subject spec, dataset spec, interventions): one forward pass
PassKey = tuple[Any, Any, tuple[Any, ...]]
SinkFactory = Callable[[], Any]


def quantities_read(claim_file: ClaimFile, entry: ClaimEntry,
                    names: tuple[dict[str, str], dict[str, list[str]]] | None = None
                    ) -> set[str]:
    """The quantities a claim reads: the names in its sentence (quantities, or the quantities
    declaring its labels), its ``on:`` quantity, what its kind says it reads beyond its
    sentence, and, transitively, what those quantities are computed from. ``names`` is
    :func:`file_names` of the file, when the caller reads many claims."""
    if entry.parsed is None:
        return set()
    definitions = claim_file.quantities
    read: set[str] = set()
    for node in entry.parsed.claim.expressions():
        read.update(referenced_names(node))
    read.update(entry.parsed.claim.planned_quantities(definitions))
    if entry.options.get("on"):
        read.update(_on_names(str(entry.options["on"]), definitions))
    return quantities_named(claim_file, read, names)


def quantities_named(claim_file: ClaimFile, read: Iterable[str],
                     names: tuple[dict[str, str], dict[str, list[str]]] | None = None
                     ) -> set[str]:
    """The quantities the names ``read`` stand for (quantities, or the quantities declaring
    them as labels) and, transitively, what those quantities are computed from."""
    definitions = claim_file.quantities
    normalized, owners = names or file_names(claim_file)
    found: set[str] = set()
    pending = list(read)
    while pending:
        name = pending.pop()
        matches = ([name] if name in definitions else [normalized[_normal(name)]]
                   if _normal(name) in normalized else owners.get(name, []))
        for match in matches:
            if match not in found:
                found.add(match)
                pending.extend(definitions[match].kind.references())
    return found


def _on_names(on: str, definitions: Mapping[str, Any]) -> set[str]:
    """The names an ``on:`` option reads: a quantity, or those of an expression."""
    if on in definitions:
        return {on}
    from interp_assert.language import parse_expression

    try:
        return set(referenced_names(parse_expression(on)))
    except InterpAssertError:  # the claim reports it when it runs
        return {on}


def file_names(claim_file: ClaimFile) -> tuple[dict[str, str], dict[str, list[str]]]:
    """The file's quantities by normalized name, and its declared labels' owners."""
    return ({_normal(name): name for name in claim_file.quantities},
            claim_file.label_owners())


def _normal(name: str) -> str:
    return name.replace("·", "").replace(".", "").replace("⋅", "")


@dataclass
class Plan:
    """One claim file on one target: the sinks its selected claims read, per forward pass."""

    subject: SubjectSpec
    #: pass key -> sink key -> factory
    passes: dict[PassKey, dict[Hashable, SinkFactory]] = field(default_factory=dict)
    #: sequential claims' watches (pass -> sink -> watches) and the passes read whole
    watches: dict[PassKey, dict[Hashable, list[Any]]] = field(default_factory=dict)
    whole: set[PassKey] = field(default_factory=set)

    @classmethod
    def build(cls, claim_file: ClaimFile, subject: SubjectSpec,
              entries: Iterable[ClaimEntry]) -> Plan:
        """The plan of ``entries`` (the claims of ``claim_file`` that will run)."""
        plan = cls(subject)
        names = file_names(claim_file)
        added: set[tuple[str, str | None, bool]] = set()
        for entry in entries:
            dataset = entry.options.get("data")
            data = str(dataset) if dataset is not None else None
            lean = (entry.parsed.claim.lean_quantities(claim_file.quantities)
                    if entry.parsed is not None else set())
            read = sorted(quantities_read(claim_file, entry, names))
            sequential.note_reads(plan, claim_file, entry, read, data, _dataset)
            for name in read:
                key = (name, data, name in lean)
                if key not in added:  # the same sinks for every claim reading it alike
                    added.add(key)
                    plan._add(claim_file, name, data, name in lean)
            plan._add_sinks(claim_file, entry, data)
        return plan

    @classmethod
    def build_all(cls, claim_file: ClaimFile, subject: SubjectSpec) -> Plan:
        """Every forward quantity of ``claim_file``: for the Python API, whose sentences are
        not known in advance (each ``check`` still shares the one pass)."""
        plan = cls(subject)
        for name in claim_file.quantities:
            plan._add(claim_file, name, None)
        return plan

    def _add(self, claim_file: ClaimFile, name: str, claim_dataset: str | None,
             lean: bool = False) -> None:
        need = getattr(claim_file.quantities[name].kind, "need", None)
        if need is None:  # not read from a forward pass
            return
        spec = _dataset(claim_file, claim_file.quantities[name].kind.config.get("data")
                        or claim_dataset)
        if spec is None:  # evaluating it reports the missing dataset
            return
        try:
            key, factory = need(spec, claim_file.search_path)
        except InterpAssertError:  # reported on the claims that read it
            return
        if lean and hasattr(factory, "without_samples"):
            factory = factory.without_samples()
        _merge(self.passes.setdefault((self.subject, spec, ()), {}), key, factory)


    def _add_sinks(self, claim_file: ClaimFile, entry: ClaimEntry, data: str | None) -> None:
        """The sinks a claim kind reads beyond its quantities (reference activations)."""
        if entry.parsed is None:
            return
        claims = [entry.parsed.claim]
        each = entry.parsed.for_each
        if (getattr(entry.parsed.claim, "plans_instances", False) and each is not None
                and templates.uses(entry.parsed.text, each.variable)):  # each instance's sinks
            claims = [templates.substitute(entry.parsed.claim, each.variable, i)
                      for i in range(each.start, each.stop + 1)]
        try:
            sinks = [sink for claim in claims for sink in claim.planned_sinks(claim_file, data)]
        except InterpAssertError:  # reported on the claim when it runs
            return
        for name, key, factory in sinks:
            spec = _dataset(claim_file, name or data)
            if spec is not None:
                _merge(self.passes.setdefault((self.subject, spec, ()), {}), key, factory)
        try:  # sinks of intervened passes whose interventions are known before any pass
            planned = [p for claim in claims for p in claim.planned_passes(claim_file, data)]
        except InterpAssertError:  # reported on the claim when it runs
            return
        for spec, interventions, key, factory in planned:
            _merge(self.passes.setdefault((self.subject, spec, interventions), {}), key,
                   factory)


def _merge(sinks: dict[Hashable, SinkFactory], key: Hashable, factory: SinkFactory) -> None:
    """Plan sink ``key``: the first factory, unless it keeps no raw samples and this one does
    (one claim needing the samples is enough to keep them), or it is a guess the pass may skip
    (``optional``) and this one is not."""
    known = sinks.get(key)
    if known is None or (not getattr(known, "keeps_samples", True)
                         and getattr(factory, "keeps_samples", True)) or (
            getattr(known, "optional", False) and not getattr(factory, "optional", False)):
        sinks[key] = factory


def _dataset(claim_file: ClaimFile, name: str | None) -> DatasetSpec | None:
    datasets: Mapping[str, DatasetSpec] = claim_file.datasets
    if name is None:
        return next(iter(datasets.values()), None)
    return datasets.get(name)


class RunPlan:
    """Every plan of one run, merged by forward pass. Thread-safe."""

    def __init__(self) -> None:
        self._passes: dict[PassKey, dict[Hashable, SinkFactory]] = {}
        self._watches: dict[PassKey, dict[Hashable, list[Any]]] = {}
        self._whole: set[PassKey] = set()
        self._lock = threading.Lock()

    def add(self, plan: Plan) -> None:
        with self._lock:
            sequential.merge_watches(self._watches, plan.watches)
            self._whole |= plan.whole
            for key, sinks in plan.passes.items():
                merged = self._passes.setdefault(key, {})
                for sink_key, factory in sinks.items():
                    _merge(merged, sink_key, factory)

    def sinks(self, key: PassKey, wanted: Hashable, factory: SinkFactory
              ) -> dict[Hashable, SinkFactory]:
        """The sinks the pass ``key`` serves: every planned one, and ``wanted`` (a sink no
        plan foresaw is added, so a later pass on the same key serves it too)."""
        with self._lock:
            sinks = self._passes.setdefault(key, {})
            sinks.setdefault(wanted, factory)
            return dict(sinks)

    def alias(self, planned: PassKey, real: PassKey) -> None:
        """Serve on the pass ``real`` every sink planned on ``planned``: a pass whose
        interventions depend on data (a steering direction) is planned under a stand-in key,
        and the first claim to know the real interventions says so before requesting."""
        with self._lock:
            sinks = self._passes.get(planned)
            if sinks:
                merged = self._passes.setdefault(real, {})
                for sink_key, factory in sinks.items():
                    _merge(merged, sink_key, factory)

    def watch_now(self, key: PassKey, sink: Hashable, watch: Any) -> Callable[[], None]:
        """Watch sink ``sink`` of pass ``key`` while a claim measures (a sequential effect
        claim's intervened pass); returns the function that removes the watch again."""
        with self._lock:  # new lists: a stop recorded earlier keeps the watches it had
            sinks = self._watches.setdefault(key, {})
            sinks[sink] = [*sinks.get(sink, []), watch]

        def remove() -> None:
            with self._lock:
                sinks = self._watches.get(key, {})
                sinks[sink] = [w for w in sinks.get(sink, []) if w is not watch]
        return remove

    def watches(self, key: PassKey) -> dict[Hashable, list[Any]] | None:
        """The sequential claims' watches on pass ``key`` (sink -> watches), or None when some
        claim reads the pass whole (then it cannot stop early)."""
        with self._lock:
            return None if key in self._whole else dict(self._watches.get(key, {}))
