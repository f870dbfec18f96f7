"""Quantity kinds: how a named quantity in a claim file is computed.

A quantity definition in YAML names exactly one kind key (``weight:``, ``expr:``, ``call:``,
...) plus optional ``axes``, ``labels`` and ``doc``. Each kind is a small class registered with
:func:`register_quantity`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from interp_assert.errors import Location, QuantityError, SpecError, did_you_mean
from interp_assert.labels import Axis, Labelled, expand_labels

if TYPE_CHECKING:
    from interp_assert.evaluate.evaluation import Evaluation

QUANTITY_KINDS: dict[str, type[QuantityKind]] = {}
COMMON_KEYS = frozenset({"axes", "labels", "doc"})


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


@dataclass
class QuantityDef:
    """A named quantity from a claim file: its kind, axis names and labels."""

    name: str
    kind: QuantityKind
    axes: list[str] | None = None
    labels: dict[Any, list[str]] = field(default_factory=dict)
    doc: str = ""
    location: Location | None = None

    @classmethod
    def from_yaml(cls, name: str, raw: Any, location: Location | None) -> QuantityDef:
        from interp_assert.loading.claim_file import check_keys

        _load_builtin_kinds()
        if isinstance(raw, str):
            raw = {"expr": raw}
        if not isinstance(raw, Mapping):
            raise SpecError(f"quantity '{name}' must be a mapping or an expression string",
                            location)
        kinds = [k for k in raw if k in QUANTITY_KINDS]
        if len(kinds) != 1:
            from interp_assert.errors import did_you_mean

            found = f"found {kinds}" if kinds else "found none"
            misspelt = "".join(did_you_mean(str(k), QUANTITY_KINDS) for k in raw
                               if k not in QUANTITY_KINDS and k not in COMMON_KEYS)
            raise SpecError(f"quantity '{name}' needs exactly one of "
                            f"{', '.join(sorted(QUANTITY_KINDS))} ({found}){misspelt}", location)
        kind_cls = QUANTITY_KINDS[kinds[0]]
        check_keys(raw, COMMON_KEYS | {kind_cls.key} | kind_cls.allowed_options(raw),
                   f"quantity '{name}'", location)
        config = {k: v for k, v in raw.items() if k not in COMMON_KEYS}
        axes = raw.get("axes")
        if axes is not None and (not isinstance(axes, list) or not all(
                isinstance(a, str) for a in axes)):
            raise SpecError(f"quantity '{name}': 'axes' must be a list of axis names", location)
        labels = _parse_labels(name, raw.get("labels"), axes, location)
        return cls(name, kind_cls(name, config, location), axes, labels,
                   str(raw.get("doc", "")), location)

    def known_labels(self) -> list[str]:
        """Labels declared in the file (known before anything is computed)."""
        return [label for labels in self.labels.values() for label in labels]

    def to_labelled(self, value: Any) -> Labelled:
        """Convert a computed value and attach the declared axis names and labels."""
        result = as_labelled(value, self.name)
        axes = list(result.axes)
        if self.axes is not None:
            if len(self.axes) != result.ndim:
                raise QuantityError(
                    f"quantity '{self.name}' has {result.ndim} axes (shape {result.shape}) but "
                    f"'axes' names {len(self.axes)}: {self.axes}", self.location)
            axes = [Axis(n, a.labels) for n, a in zip(self.axes, axes)]
        for key, labels in self.labels.items():
            index = key if isinstance(key, int) else [a.name for a in axes].index(key)
            if index >= len(axes):
                raise QuantityError(f"quantity '{self.name}' has no axis {index} for its labels",
                                    self.location)
            axes[index] = Axis(axes[index].name, tuple(labels))
        try:
            return Labelled(result.values, tuple(axes), self.name, result.meta,
                            keep_float32=result.keep_float32)
        except QuantityError as exc:
            raise exc.at(self.location) from None


def _parse_labels(name: str, raw: Any, axes: list[str] | None,
                  location: Location | None) -> dict[Any, list[str]]:
    if raw is None:
        return {}
    if isinstance(raw, str | list):
        return {axes[0] if axes else 0: expand_labels(raw)}
    if isinstance(raw, Mapping):
        out: dict[Any, list[str]] = {}
        for key, spec in raw.items():
            if isinstance(key, str) and axes is not None and key not in axes:
                raise SpecError(f"quantity '{name}': labels for unknown axis '{key}'"
                                + did_you_mean(key, axes), location)
            if isinstance(key, str) and axes is None:
                raise SpecError(f"quantity '{name}': labels name axis '{key}' but the quantity "
                                "has no 'axes' list", location,
                                hint=f"add 'axes: [{key}, ...]' naming every axis")
            out[key] = expand_labels(spec)
        return out
    raise SpecError(f"quantity '{name}': 'labels' must be a label spec or a mapping from axis "
                    "to label spec", location)


def as_labelled(value: Any, name: str) -> Labelled:
    """Turn tensors, arrays, numbers, mappings and pandas objects into :class:`Labelled`."""
    if isinstance(value, Labelled):
        return value.with_name(name)
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        from interp_assert.resources import array_bytes, check_size

        check_size(array_bytes(tuple(value.shape)), f"quantity '{name}' (a tensor of shape "
                   f"{tuple(value.shape)}, as float64)")
        return Labelled(value.detach().cpu().double().numpy(), name=name)
    module = type(value).__module__
    if module.startswith("pandas"):
        if hasattr(value, "columns"):
            return Labelled(value.to_numpy(dtype=float),
                            (Axis(str(value.index.name or "row"), tuple(map(str, value.index))),
                             Axis(str(value.columns.name or "column"),
                                  tuple(map(str, value.columns)))), name)
        return Labelled(value.to_numpy(dtype=float),
                        (Axis(str(value.index.name or "row"), tuple(map(str, value.index))),),
                        name)
    if isinstance(value, Mapping):
        return Labelled(np.array([float(v) for v in value.values()]),
                        (Axis("key", tuple(map(str, value))),), name)
    try:
        return Labelled(np.asarray(value, dtype=np.float64), name=name)
    except (TypeError, ValueError) as exc:
        raise QuantityError(f"quantity '{name}' returned a {type(value).__name__}, which is not "
                            f"numeric ({exc})") from None


def _load_builtin_kinds() -> None:
    from interp_assert.evaluate.quantities import builtin  # noqa: F401
