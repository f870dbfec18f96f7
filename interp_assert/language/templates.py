"""Template placeholders in names and labels: ``{i}``, ``{i+1}``, ``{9-i}``, ``{2*i+1}``.

A placeholder is integer arithmetic (``+``, ``-``, ``*`` with the usual precedence) on one
template variable and integer literals; it is filled with the value of the ``for`` clause's
variable (``N{9-i} > 0 for i in 0..9``). It is read by a small tokenizer, never ``eval``'d.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

#: one placeholder, as the grammar's NAME terminal and the substitution both match it
PLACEHOLDER = r"\{(?:\d+[-+*])*[A-Za-z_]\w*(?:[-+*]\d+)*\}"
_PLACEHOLDER = re.compile(r"\{((?:\d+[-+*])*)([A-Za-z_]\w*)((?:[-+*]\d+)*)\}")
_TOKEN = re.compile(r"\d+|[A-Za-z_]\w*|[-+*]")


def evaluate(expression: str, variable: str, value: int) -> int:
    """The value of ``expression`` (the inside of a placeholder) with ``variable = value``."""
    tokens = _TOKEN.findall(expression)
    total, term, sign = 0, 1, 1
    for token in tokens:
        if token in "+-":
            total += sign * term
            term, sign = 1, (1 if token == "+" else -1)
        elif token == "*":
            continue
        else:
            term *= value if token == variable else int(token)
    return total + sign * term


def fill(text: str, variable: str, value: int) -> str:
    """``text`` with every placeholder of ``variable`` replaced by its value."""
    def replace(match: re.Match[str]) -> str:
        if match.group(2) != variable:
            return match.group(0)  # another template's variable
        return str(evaluate(match.group(0)[1:-1], variable, value))

    return _PLACEHOLDER.sub(replace, text)


def uses(text: str, variable: str) -> bool:
    """Whether ``text`` holds a placeholder of ``variable``."""
    return any(match.group(2) == variable for match in _PLACEHOLDER.finditer(text))


def substitute(obj: Any, variable: str, value: int) -> Any:
    """Fill the placeholders of ``variable`` (``{i}``, ``{i+1}``, ``{9-i}``, ``{2*i}``) in every
    name and label of a claim (strings, tuples and dataclass fields, recursively)."""
    if isinstance(obj, str):
        return fill(obj, variable, value)
    if isinstance(obj, tuple):
        return tuple(substitute(item, variable, value) for item in obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        changes = {f.name: substitute(getattr(obj, f.name), variable, value)
                   for f in dataclasses.fields(obj) if f.init}
        return dataclasses.replace(obj, **changes)
    return obj
