"""Quantity kinds: how a named quantity in a claim file is computed.

A quantity definition in YAML names exactly one kind key (``weight:``, ``expr:``, ``call:``,
...) plus optional ``axes``, ``labels`` and ``doc``. Each kind is a small class registered with
:func:`register_quantity`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from interp_assert.errors import Location

if TYPE_CHECKING:
    from interp_assert.evaluate.evaluation import Evaluation

QUANTITY_KINDS: dict[str, type[QuantityKind]] = {}


class QuantityKind(ABC):
    """Computes one named quantity. ``options`` are the kind's allowed extra YAML keys."""

    key: ClassVar[str]
    options: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, name: str, config: Mapping[str, Any], location: Location | None) -> None:
        self.name = name
        self.config = dict(config)
        self.location = location
        self.validate()

    @classmethod
    def allowed_options(cls, raw: Mapping[str, Any]) -> frozenset[str]:
        """Extra YAML keys allowed beside the kind key (may depend on the definition)."""
        return cls.options

    def validate(self) -> None:  # noqa: B027  (optional hook; most kinds need no check)
        """Check the configuration statically (raise :class:`SpecError`)."""

    def references(self) -> set[str]:
        """Names of other quantities this one is computed from."""
        return set()

    def fingerprint(self) -> str:
        """Identity of the computation, for caching across claim files."""
        return f"{self.key}:{sorted(self.config.items())!r}"

    @abstractmethod
    def compute(self, ev: Evaluation) -> Any:
        """Return a tensor, array, number, mapping, pandas object or :class:`Labelled`."""


def register_quantity(cls: type[QuantityKind]) -> type[QuantityKind]:
    """Class decorator adding a quantity kind (its ``key`` becomes a YAML key)."""
    QUANTITY_KINDS[cls.key] = cls
    return cls


def quantity_kinds() -> dict[str, type[QuantityKind]]:
    """Every registered quantity kind by YAML key, the built-in ones included."""
    from interp_assert.evaluate.quantities import builtin  # noqa: F401  (registers them)

    return dict(QUANTITY_KINDS)
