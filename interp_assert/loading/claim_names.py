"""Static checks of a claim's names against its claim file: member labels against the labels
the file declares, and quantities whose definitions are broken (reported with their own
error, not as unknown names)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from interp_assert.errors import UnknownNameError, did_you_mean
from interp_assert.language import ast
from interp_assert.language.ast import referenced_names

if TYPE_CHECKING:
    from interp_assert.language.parser import ParsedClaim
    from interp_assert.loading.claim_file import ClaimFile

_COMPONENT = re.compile(r"^L\d+[HN]\d+$")


def normalize_name(name: str) -> str:
    """Spelling-insensitive key: 'A·V', 'A.V' and 'AV' are the same quantity."""
    return name.replace("·", "").replace(".", "").replace("⋅", "")


def check_names(parsed: ParsedClaim, claim_file: ClaimFile,
                names: tuple[dict[str, list[str]], set[str]] | None = None) -> None:
    """Statically check member labels against the labels the file declares, and report a
    quantity the claim uses (directly or through other quantities) whose definition is
    broken with that quantity's own error (not as an unknown name). ``names`` is
    :func:`declared_names` of the file, when the caller checks many claims."""
    owners, quantity_keys = names or declared_names(claim_file)
    if claim_file.quantity_errors:
        _check_broken_quantities(parsed, claim_file, owners)
    for node in parsed.claim.expressions():
        if not isinstance(node, ast.Members) or node.source is not None:
            continue
        for label in node.labels:
            if "{" in label or label in owners or normalize_name(label) in quantity_keys:
                continue
            if "." in label:  # a weight name; checked against the checkpoint when evaluated
                continue
            if _COMPONENT.match(label):  # L1H2, L0N7: heads and neurons known from the model
                continue
            raise UnknownNameError(f"unknown label '{label}'"
                                   + did_you_mean(label, [*owners, *claim_file.quantities]),
                                   hint=_declared_labels(claim_file))


def declared_names(claim_file: ClaimFile) -> tuple[dict[str, list[str]], set[str]]:
    """The file's declared labels (label -> quantities declaring it) and its quantity names
    as :func:`normalize_name` spells them."""
    return claim_file.label_owners(), {normalize_name(n) for n in claim_file.quantities}


def _declared_labels(claim_file: ClaimFile) -> str:
    """``declared labels: neurons: N0..N15; A·V: 0..9`` (empty when the file declares none)."""
    ranges = [f"{name}: {labels[0]}..{labels[-1]}"
              for name, definition in claim_file.quantities.items()
              for labels in definition.labels.values() if labels]
    return "declared labels: " + "; ".join(ranges) if ranges else ""


def _check_broken_quantities(parsed: ParsedClaim, claim_file: ClaimFile,
                             owners: dict[str, list[str]]) -> None:

    healthy = {normalize_name(n): n for n in claim_file.quantities}
    broken = {normalize_name(n): n for n in claim_file.quantity_errors}
    pending = [name for node in parsed.claim.expressions() for name in referenced_names(node)]
    seen: set[str] = set()
    while pending:
        name = pending.pop(0)
        if name in seen:
            continue
        seen.add(name)
        quantity = name if name in claim_file.quantities else healthy.get(normalize_name(name))
        if quantity is None and name not in owners:
            quantity = name if name in claim_file.quantity_errors else broken.get(
                normalize_name(name))
        if quantity is None:
            continue
        if quantity in claim_file.quantity_errors:  # a copy: each claim names itself in it
            raise claim_file.quantity_errors[quantity].copy()
        pending.extend(sorted(claim_file.quantities[quantity].kind.references()))
