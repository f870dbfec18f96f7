"""The claim-kind registry: each kind is a small class owning its grammar, measurement,
verdict and plot.

A new kind subclasses :class:`Claim`, sets ``kind`` (its grammar rule name) and ``grammar``
(lark rules, the first named ``kind``), implements ``build``, ``evaluate`` and ``__str__``, and
is registered with :func:`register_claim`. Existing kinds never change when one is added.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from interp_assert.claims.outcome import Outcome
from interp_assert.language import ast

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from interp_assert.labels import Labelled

_REGISTRY: dict[str, type[Claim]] = {}


class Context(Protocol):
    """All a claim kind sees of the evaluation: values by name, the dataset, the subject, the
    layout, and a way to derive a context with other interventions or another dataset.

    Claim kinds measure in ``evaluate`` only; ``plot`` draws what ``evaluate`` stored in the
    outcome's ``plot_data``.
    """

    #: the claim's ``on:`` quantity (whose labels its members mean), if any
    on: str | None
    #: the claim's dataset name (None: the file's first dataset)
    dataset: str | None
    #: interventions applied to every forward pass read through this context
    interventions: tuple[Any, ...]
    #: folders searched for user code (``package.module:function`` or ``file.py:function``)
    search_path: tuple[Path, ...]
    #: the run's plan: opaque to claim kinds, handed on to the evaluate functions they call
    plan: Any

    def value(self, node: ast.Node) -> Labelled: ...

    def scalar(self, node: ast.Node) -> float: ...

    def members(self, members: ast.Members) -> Labelled: ...

    def members_source(self, members: ast.Members) -> Labelled | None: ...

    def owner_of(self, label: str) -> str | None: ...

    def quantity(self, name: str) -> Labelled: ...

    def note_used(self, name: str) -> None:
        """Record that the claim read quantity ``name`` without :meth:`quantity` (a summary
        of it streamed by its own sink)."""
        ...

    @property
    def definitions(self) -> Mapping[str, Any]:
        """The claim file's quantity definitions by name (read only)."""
        ...

    @property
    def layout(self) -> Any:
        """The claim file's ``layout:`` section (raw YAML), or None."""
        ...

    @property
    def circuits(self) -> Mapping[str, Any]:
        """The claim file's ``circuits:`` (name -> ``loading.circuits.Circuit`` or its error)."""
        ...

    @property
    def folder(self) -> Path:
        """The claim file's folder (relative paths in quantities start here)."""
        ...

    @property
    def subject(self) -> Any:
        """The loaded subject: ``.model``, ``.checkpoint``, ``.weight(name)``."""
        ...

    def dataset_spec(self, name: str | None = None) -> Any: ...

    def derive(self, *, dataset: str | None = None,
               interventions: tuple[Any, ...] | None = None) -> Context:
        """The same evaluation on another dataset and/or with other interventions."""
        ...


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

    def plot_evidence(self, outcome: Outcome, ctx: Context) -> None:  # noqa: B027
        """Measure what only the plot needs, into ``outcome.plot_data`` (default: nothing).
        The runner calls it in the evaluation, only when a plot will be drawn, so costly
        evidence (a sweep over every head) is paid for only then; ``plot`` just draws."""

    def planned_quantities(self, definitions: Mapping[str, Any]) -> set[str]:
        """Quantities this claim reads beyond the names in its sentence (for the plan: a kind
        that picks a quantity itself, such as an attention pattern, names it here)."""
        return set()

    def lean_quantities(self, definitions: Mapping[str, Any]) -> set[str]:
        """Streamed quantities this claim reads only through statistics that need no raw
        samples (moments, extremes, histogram peaks): the plan keeps no samples for a quantity
        every claim reading it names here."""
        return set()

    def planned_sinks(self, claim_file: Any, dataset: str | None
                      ) -> list[tuple[str | None, Hashable, Callable[[], Any]]]:
        """Forward-pass sinks this claim reads beyond its quantities, as (dataset name, or None
        for ``dataset``, the claim's; sink key; sink factory): planned, so that the pass its
        quantities need serves them too (an ablation's reference activations)."""
        return []

    def planned_passes(self, claim_file: Any, dataset: str | None
                       ) -> list[tuple[Any, tuple[Any, ...], Hashable, Callable[[], Any]]]:
        """Sinks this claim reads on intervened passes, as (dataset spec, interventions, sink
        key, sink factory): planned, so that one intervened pass serves every claim reading
        it. The interventions may be stand-ins (``evaluate.planned_passes.stand_in``) equal
        to those the claim builds once it has read its data."""
        return []

    def plot(self, outcome: Outcome, ax: Axes) -> None:
        """Draw the diagnostic plot; the default shows the value against its bounds."""
        from interp_assert.claims.plots import plot_value_against_bounds

        plot_value_against_bounds(self, outcome, ax)


def planned_dataset(claim_file: Any, dataset: str | None) -> Any:
    """While planning, the spec of the dataset a claim reads: its ``data:`` option, else the
    claim file's first dataset; None when there is none."""
    if dataset:
        return claim_file.datasets.get(dataset)
    return next(iter(claim_file.datasets.values()), None)


def register_claim(cls: type[Claim]) -> type[Claim]:
    """Class decorator adding a claim kind to the language."""
    _REGISTRY[cls.kind] = cls
    return cls


def registered_kinds() -> dict[str, type[Claim]]:
    """The claim kinds registered so far (``claims.builtin.all_kinds`` adds the built-in
    ones first)."""
    return dict(_REGISTRY)
