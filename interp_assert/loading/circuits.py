"""The ``circuits:`` section of a claim file: named sets of heads and neurons that circuit
claims (``circuit induction is faithful: ...``) test.

::

    circuits:
      induction:
        heads: [L0H1, L1H0..L1H3]   # labels L{layer}H{head}; ranges as elsewhere
        neurons: []                 # labels L{layer}N{index}
        doc: previous-token head feeding the induction heads
      induction-edges:
        edges: [L0H1 -> L1H2.k, L1H2 -> logits]   # sender -> receiver input (.q, .k, .v)

A kind whose key is present (even as an empty list) is part of the hypothesis: every head
(neuron) outside the circuit is what the circuit claims mean-ablate. A problem with one circuit
stays on it (the claims naming it report it); a section that is not a mapping is a problem of
the whole file.

A circuit of ``edges`` is a set of paths from a sender head to a receiving head's query, key or
value input (``L1H2.q`` / ``.k`` / ``.v``; ``L1H2`` alone stands for all three) or to the
``logits``; every edge outside it is mean-ablated (:mod:`interp_assert.evaluate.circuit_edges`).
It lists edges only: its nodes are the edges' ends.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from interp_assert.errors import InterpAssertError, Location, SpecError, did_you_mean
from interp_assert.labels import expand_labels
from interp_assert.loading.yaml_source import check_keys, key_location

CIRCUIT_KEYS = frozenset({"heads", "neurons", "edges", "doc"})
_PATTERNS = {"heads": re.compile(r"^L(\d+)H(\d+)$"), "neurons": re.compile(r"^L(\d+)N(\d+)$")}
_EXAMPLE = {"heads": "L1H2", "neurons": "L0N7"}


@dataclass(frozen=True)
class Circuit:
    """A declared circuit: its heads and neurons, and which kinds it speaks for."""

    name: str
    heads: tuple[str, ...] = ()
    neurons: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()  # "head" and/or "neuron", or "edge": the kinds whose key is present
    doc: str = ""
    location: Location | None = None
    edges: tuple[str, ...] = ()  # "L0H1 -> L1H2.k", "L1H2 -> logits"

    @property
    def members(self) -> tuple[str, ...]:
        """Every member label, heads first (the edges of an edge circuit)."""
        return self.heads + self.neurons + self.edges


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
    if "edges" in spec:
        return _edge_circuit(name, spec, where)
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


def _edge_circuit(name: str, spec: Mapping, where: Location) -> Circuit:
    """A circuit of edges (and nothing else: its nodes are the edges' ends)."""
    mixed = sorted(k for k in ("heads", "neurons") if k in spec)
    if mixed:
        raise SpecError(f"circuit '{name}' lists both 'edges' and {', '.join(mixed)}: an edge "
                        "circuit's nodes are its edges' ends", where,
                        hint=f"drop '{mixed[0]}:', or declare the node circuit under another name")
    value = spec.get("edges")
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise SpecError(f"circuit '{name}': 'edges' must be a list like [L0H1 -> L1H2.k]", where)
    edges: list[str] = []
    for text in value:
        for edge in parse_edge(text, name, where):
            if edge in edges:
                raise SpecError(f"circuit '{name}': the edge '{edge}' is listed twice", where,
                                hint="list each edge once")
            edges.append(edge)
    doc = spec.get("doc")
    if doc is not None and not isinstance(doc, str):
        raise SpecError(f"circuit '{name}': 'doc' must be text", where)
    return Circuit(name, kinds=("edge",), doc=doc or "", location=where, edges=tuple(edges))


_EDGE = re.compile(r"^\s*(\S+?)\s*(?:->|→)\s*(\S+?)\s*$")
_RECEIVER = re.compile(r"^L(\d+)H(\d+)(?:\.([qkv]))?$")


def parse_edge(text: str, name: str = "", where: Location | None = None) -> list[str]:
    """``L0H1 -> L1H2.k`` in its normal form (``L1H2`` alone: its .q, .k and .v edges)."""
    match = _EDGE.match(text)
    owner = f"circuit '{name}': " if name else ""
    example = "L0H1 -> L1H2.k (or -> L1H2.q, .v, or -> logits)"
    if match is None:
        raise SpecError(f"{owner}'{text}' is not an edge (sender -> receiver)", where,
                        hint=f"write edges as {example}")
    sender, receiver = match[1], match[2]
    found = _PATTERNS["heads"].match(sender)
    if found is None:
        guess = _normalised(sender, "heads")
        raise SpecError(f"{owner}edge '{text}': the sender '{sender}' is not a head "
                        "(L{layer}H{head})" + (f"; did you mean '{guess}'?" if guess else ""),
                        where, hint=f"write edges as {example}")
    if receiver == "logits":
        return [f"{sender} -> logits"]
    head = _RECEIVER.match(receiver)
    if head is None:
        raise SpecError(f"{owner}edge '{text}': the receiver '{receiver}' is not a head's input "
                        "(L{layer}H{head}.q, .k or .v) or 'logits'", where,
                        hint=f"write edges as {example}")
    if int(head[1]) <= int(found[1]):
        raise SpecError(f"{owner}edge '{text}': the sender sits in layer {found[1]}, not "
                        f"before its receiver's layer {head[1]}", where,
                        hint="an edge runs from a head to a head of a later layer")
    base = f"L{head[1]}H{head[2]}"
    return [f"{sender} -> {base}.{x}" for x in ((head[3],) if head[3] else ("q", "k", "v"))]


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
