"""Checks of claim files that need no model (``pytest --collect-only``, ``interp-assert
lint``): YAML syntax and keys, sentence syntax, declared labels, and every name that the file
alone can settle.

What a file settles: its quantities, the labels they declare, its datasets and their
``positions``, the claim ids ``requires`` names, and the built-in circuit names. What only a
model settles: weight and hook names (``blocks.0.mlp.W_out``, a bare ``readout``), model
components (``L1H2``, ``L0N7``), and labels that a quantity gets from the model rather than
from its ``labels:``. A bare name that is none of the file's but is close to one of them is
reported as a misspelling; the others are listed as unchecked.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interp_assert.claims.measure import instances
from interp_assert.errors import InterpAssertError, UnknownNameError, did_you_mean
from interp_assert.evaluate.circuit_names import is_circuit_name
from interp_assert.language import ast
from interp_assert.loading.claim_file import ClaimEntry, ClaimFile
from interp_assert.loading.claim_names import normalize_name

_COMPONENT = re.compile(r"^L\d+([HN]\d+)?$")
#: claim fields that name sequence positions (attention claims)
_POSITION_FIELDS = ("subject", "keys", "query")


@dataclass
class LintResult:
    """The problems of one claim file, and the names only a model can confirm."""

    path: str
    problems: list[str] = field(default_factory=list)
    unchecked: set[str] = field(default_factory=set)


@dataclass
class _Known:
    """What the file declares, worked out once per file (a lint runs on every claim)."""

    claim_file: ClaimFile
    owners: dict[str, list[str]]
    quantities: set[str]
    unchecked: set[str]

    @classmethod
    def of(cls, claim_file: ClaimFile, unchecked: set[str]) -> _Known:
        return cls(claim_file, claim_file.label_owners(),
                   {normalize_name(n) for n in claim_file.quantities}, unchecked)

    def declared(self, name: str) -> bool:
        return name in self.owners or normalize_name(name) in self.quantities


def lint_claim_file(claim_file: ClaimFile, shown: str | Path) -> LintResult:
    """Every problem of a loaded claim file that can be found without a model."""
    result = LintResult(str(shown))
    result.problems += [str(error) for error in claim_file.quantity_errors.values()]
    known = _Known.of(claim_file, result.unchecked)
    for entry in claim_file.claims:
        error = entry.error
        if error is None and entry.parsed is not None:
            error = _check_entry(entry, known)
        if error is not None:
            result.problems.append(str(error))
    return result


def lint_error(shown: str | Path, error: InterpAssertError) -> LintResult:
    """A file that cannot be read as a claim file at all."""
    return LintResult(str(shown), [str(error)])


def _check_entry(entry: ClaimEntry, known: _Known) -> InterpAssertError | None:
    """The first name of the claim that the file shows to be wrong, as an error."""
    try:
        _check_options(entry, known.claim_file)
        assert entry.parsed is not None
        positions = _positions(entry, known.claim_file)
        seen: set[tuple[str, str]] = set()
        for _, claim in instances(entry.parsed):
            for kind, name in _names(claim):
                if (kind, name) not in seen:
                    seen.add((kind, name))
                    _check_name(kind, name, entry, known, positions)
    except InterpAssertError as exc:
        exc.at(entry.location)
        if f"claim '{entry.id}'" not in exc.message:
            exc.message = f"claim '{entry.id}': {exc.message}"
        return exc
    return None


def _check_options(entry: ClaimEntry, claim_file: ClaimFile) -> None:
    on, data = entry.options.get("on"), entry.options.get("data")
    if on is not None and str(on) not in claim_file.quantities:
        raise UnknownNameError(f"'on: {on}' is not a quantity of this file"
                               + did_you_mean(str(on), claim_file.quantities))
    if data is not None and str(data) not in claim_file.datasets:
        raise UnknownNameError(f"unknown dataset '{data}'"
                               + did_you_mean(str(data), claim_file.datasets),
                               hint="datasets: " + (", ".join(claim_file.datasets) or "none"))


def _names(claim: Any) -> list[tuple[str, str]]:
    """(kind, name) of every name in a claim instance: ``ref`` (a value), ``at`` (a label of
    a per-position quantity) and ``position`` (a sequence position of an attention claim)."""
    found: list[tuple[str, str]] = []

    def walk(node: Any) -> None:
        if isinstance(node, ast.Ref):
            found.append(("ref", node.name))
        elif isinstance(node, ast.At):
            found.append(("ref", node.quantity))
            found.append(("at", node.label))
        elif isinstance(node, ast.Members):
            if node.source is not None:
                walk(node.source)
        elif isinstance(node, tuple):
            for item in node:
                walk(item)
        elif dataclasses.is_dataclass(node) and not isinstance(node, type):
            for item in dataclasses.fields(node):
                walk(getattr(node, item.name))

    walk(claim)
    head = getattr(claim, "head", None)
    if isinstance(head, str):
        found.append(("component", head))
    for name in _POSITION_FIELDS:
        value = getattr(claim, name, None)
        labels = (value,) if isinstance(value, str) else value if isinstance(value, tuple) else ()
        found += [("position", label) for label in labels if isinstance(label, str)]
    return found


def _check_name(kind: str, name: str, entry: ClaimEntry, known: _Known,
                positions: tuple[str, ...] | None) -> None:
    unchecked = known.unchecked
    if "{" in name or known.declared(name):
        return
    if kind == "component":
        unchecked.add(name)  # a head or neuron of the model
        return
    if kind == "ref":
        if name == "baseline" or is_circuit_name(name):
            return
        if "." in name or _COMPONENT.match(name):
            unchecked.add(name)  # a weight, hook or component of the model
            return
        close = did_you_mean(name, [*known.claim_file.quantities, *known.owners])
        if close:
            raise UnknownNameError(f"unknown name '{name}'{close}",
                                   hint="a weight of that name would be found only when the "
                                        "model is loaded; rename it if it is one")
        unchecked.add(name)
        return
    if positions is None or entry.options.get("on") is not None or (
            kind == "position" and _COMPONENT.match(name)):
        unchecked.add(name)  # positions come from the model, or the claim is on a quantity
        return
    if name not in positions:
        raise UnknownNameError(f"unknown position '{name}'" + did_you_mean(name, positions),
                               hint="positions of the dataset: " + ", ".join(positions[:12])
                               + (" ..." if len(positions) > 12 else ""))


def _positions(entry: ClaimEntry, claim_file: ClaimFile) -> tuple[str, ...] | None:
    """The declared positions of the claim's dataset (the file's first by default)."""
    datasets = claim_file.datasets
    name = entry.options.get("data")
    spec = datasets.get(str(name)) if name is not None else next(iter(datasets.values()), None)
    return getattr(spec, "positions", None) if spec is not None else None
