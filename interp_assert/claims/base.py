"""The claim-kind registry: each kind is a small class owning its grammar, measurement,
verdict and plot.

A new kind subclasses :class:`Claim`, sets ``kind`` (its grammar rule name) and ``grammar``
(lark rules, the first named ``kind``), implements ``build``, ``evaluate`` and ``__str__``, and
is registered with :func:`register_claim`. Existing kinds never change when one is added.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ..language import ast
from ..verdict import Outcome

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from ..labels import Labelled

_REGISTRY: dict[str, type[Claim]] = {}
_VERSION = 0


class Context(Protocol):
    """What a claim may ask of the evaluation: values of expressions and members."""

    def value(self, node: ast.Node) -> Labelled: ...

    def scalar(self, node: ast.Node) -> float: ...

    def members(self, members: ast.Members) -> Labelled: ...

    def members_source(self, members: ast.Members) -> Labelled | None: ...

    def owner_of(self, label: str) -> str | None: ...


class Claim(ABC):
    """A predicate about a subject. Subclasses are dataclasses built from parse trees."""

    kind: ClassVar[str]
    grammar: ClassVar[str]
    sentence: str = ""

    @classmethod
    @abstractmethod
    def build(cls, children: list[Any]) -> Claim:
        """Make the claim from its rule's transformed children."""

    @abstractmethod
    def evaluate(self, ctx: Context) -> Outcome:
        """Measure and judge."""

    @abstractmethod
    def __str__(self) -> str:
        """Canonical claim-language text (parses back to an equal claim)."""

    def expressions(self) -> Iterator[ast.Node | ast.Members]:
        """Every expression and member list in the claim (for planning and name checks)."""
        for value in vars(self).values():
            if isinstance(value, ast.Node | ast.Members):
                yield value
            elif isinstance(value, ast.Comparison):
                yield value.value
                if value.upper is not None:
                    yield value.upper

    def plot(self, outcome: Outcome, ax: Axes) -> None:
        """Draw the diagnostic plot; the default shows the value against its bounds."""
        from ..plotting import plot_value_against_bounds

        plot_value_against_bounds(self, outcome, ax)


def register_claim(cls: type[Claim]) -> type[Claim]:
    """Class decorator adding a claim kind to the language."""
    global _VERSION
    _REGISTRY[cls.kind] = cls
    _VERSION += 1
    return cls


def registered_kinds() -> dict[str, type[Claim]]:
    _load_builtin_kinds()
    return dict(_REGISTRY)


def registry_version() -> int:
    _load_builtin_kinds()
    return _VERSION


def _load_builtin_kinds() -> None:
    from . import builtin  # noqa: F401  (registers the built-in kinds on import)
