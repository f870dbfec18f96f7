"""The ``circuits:`` section of a claim file: named sets of heads and neurons that circuit
claims (``circuit induction is faithful: ...``) test.

::

    circuits:
      induction:
        heads: [L0H1, L1H0..L1H3]   # labels L{layer}H{head}; ranges as elsewhere
        neurons: []                 # labels L{layer}N{index}
        doc: previous-token head feeding the induction heads

A kind whose key is present (even as an empty list) is part of the hypothesis: every head
(neuron) outside the circuit is what the circuit claims mean-ablate. A problem with one circuit
stays on it (the claims naming it report it); a section that is not a mapping is a problem of
the whole file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from interp_assert.errors import InterpAssertError, Location, SpecError, did_you_mean
from interp_assert.labels import expand_labels
from interp_assert.loading.yaml_source import check_keys, key_location

CIRCUIT_KEYS = frozenset({"heads", "neurons", "doc"})
_PATTERNS = {"heads": re.compile(r"^L(\d+)H(\d+)$"), "neurons": re.compile(r"^L(\d+)N(\d+)$")}
_EXAMPLE = {"heads": "L1H2", "neurons": "L0N7"}


@dataclass(frozen=True)
class Circuit:
    """A declared circuit: its heads and neurons, and which kinds it speaks for."""

    name: str
    heads: tuple[str, ...] = ()
    neurons: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()  # "head" and/or "neuron": the kinds whose key is present
    doc: str = ""
    location: Location | None = None

    @property
    def members(self) -> tuple[str, ...]:
        """Every member label, heads first."""
        return self.heads + self.neurons


def parse_circuits(value: object, shown: str, raw: Mapping
                   ) -> dict[str, Circuit | InterpAssertError]:
    """Each circuit of the section by name, or the error that keeps it from being used."""
    if value is None:
        return {}
    where = key_location(shown, raw, "circuits") or Location(shown, 1)
    if not isinstance(value, Mapping):
        raise SpecError("'circuits' must be a mapping of name -> {heads: [...], neurons: [...]}",
                        where, hint="circuits: {induction: {heads: [L0H1, L1H2]}}")
    circuits: dict[str, Circuit | InterpAssertError] = {}
    for name, spec in value.items():
        place = key_location(shown, value, name) or where
        try:
            circuits[str(name)] = _circuit(str(name), spec, place)
        except InterpAssertError as exc:
            circuits[str(name)] = exc.at(place)
    return circuits


def _circuit(name: str, spec: object, where: Location) -> Circuit:
    if not isinstance(spec, Mapping):
        raise SpecError(f"circuit '{name}' must be a mapping with 'heads' and/or 'neurons'",
                        where, hint=f"{name}: {{heads: [L0H1, L1H2], neurons: []}}")
    check_keys(spec, CIRCUIT_KEYS, f"circuit '{name}'", where)
    if "heads" not in spec and "neurons" not in spec:
        raise SpecError(f"circuit '{name}' names neither 'heads' nor 'neurons'", where,
                        hint=f"{name}: {{heads: [L0H1, L1H2]}}")
    found: dict[str, tuple[str, ...]] = {}
    for key in ("heads", "neurons"):
        found[key] = _labels(name, key, spec.get(key), where) if key in spec else ()
    doc = spec.get("doc")
    if doc is not None and not isinstance(doc, str):
        raise SpecError(f"circuit '{name}': 'doc' must be text", where)
    kinds = tuple(kind for key, kind in (("heads", "head"), ("neurons", "neuron"))
                  if key in spec)
    return Circuit(name, found["heads"], found["neurons"], kinds, doc or "", where)


def _labels(name: str, key: str, value: object, where: Location) -> tuple[str, ...]:
    """The labels of ``heads:`` or ``neurons:`` (a list, or one comma-separated text),
    each checked for its form (a repeated label is an error)."""
    if value is None:
        return ()
    if not isinstance(value, list | str) or (isinstance(value, list) and not all(
            isinstance(item, str) for item in value)):
        raise SpecError(f"circuit '{name}': '{key}' must be a list of labels like "
                        f"{_EXAMPLE[key]}", where)
    try:
        labels = expand_labels(value)
    except (ValueError, InterpAssertError) as exc:
        raise SpecError(f"circuit '{name}': '{key}': {exc}", where) from None
    other = "neurons" if key == "heads" else "heads"
    for label in labels:
        if _PATTERNS[key].match(label):
            continue
        if _PATTERNS[other].match(label):
            raise SpecError(f"circuit '{name}': '{label}' is one of the {other}, listed under "
                            f"'{key}'", where, hint=f"move it to '{other}:'")
        guess = _normalised(label, key)
        hint = f"did you mean '{guess}'?" if guess else ""
        raise SpecError(f"circuit '{name}': '{label}' is not a label of {key} "
                        f"(L{{layer}}{_EXAMPLE[key][2]}{{index}}, e.g. {_EXAMPLE[key]})"
                        + (f"; {hint}" if hint else ""), where,
                        hint=f"write {key} as {_EXAMPLE[key]}")
    return tuple(labels)  # expand_labels refuses repeated labels


def _normalised(label: str, key: str) -> str:
    """A well-formed label close to a malformed one (``l0h1``, ``L0.H1``, ``0.1``)."""
    numbers = re.findall(r"\d+", label)
    if len(numbers) != 2:
        return ""
    letter = "H" if key == "heads" else "N"
    return f"L{numbers[0]}{letter}{numbers[1]}"


def lookup(circuits: Mapping[str, Circuit | InterpAssertError], name: str) -> Circuit:
    """The circuit ``name``, its own error, or an error naming the declared ones."""
    found = circuits.get(name)
    if found is None:
        declared = ", ".join(sorted(circuits)) or "none"
        raise SpecError(f"no circuit '{name}' is declared (declared: {declared})"
                        + did_you_mean(name, circuits),
                        hint="declare it under 'circuits:' at the top of the claim file: "
                             f"{name}: {{heads: [L0H1, L1H2]}}")
    if isinstance(found, InterpAssertError):
        raise found.copy()
    return found
