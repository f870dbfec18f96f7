"""A quantity as a claim file declares it: its kind (chosen from the kinds handed in), axis
names and labels. Computing it is the evaluation's job; this only reads and checks the YAML."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from interp_assert.errors import Location, QuantityError, SpecError, did_you_mean
from interp_assert.labels import Axis, Labelled, as_labelled, expand_labels
from interp_assert.loading.yaml_source import check_keys

if TYPE_CHECKING:
    from interp_assert.evaluate.quantities.base import QuantityKind

COMMON_KEYS = frozenset({"axes", "labels", "doc"})


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
    def from_yaml(cls, name: str, raw: Any, location: Location | None,
                  kinds: Mapping[str, type[QuantityKind]]) -> QuantityDef:
        """The definition ``raw`` (YAML) of quantity ``name``, its kind chosen from ``kinds``
        (YAML key -> class, handed in: loading never imports the quantity kinds)."""
        if isinstance(raw, str):
            raw = {"expr": raw}
        if not isinstance(raw, Mapping):
            raise SpecError(f"quantity '{name}' must be a mapping or an expression string",
                            location)
        chosen = [k for k in raw if k in kinds]
        if len(chosen) != 1:
            found = f"found {chosen}" if chosen else "found none"
            misspelt = "".join(did_you_mean(str(k), kinds) for k in raw
                               if k not in kinds and k not in COMMON_KEYS)
            raise SpecError(f"quantity '{name}' needs exactly one of "
                            f"{', '.join(sorted(kinds))} ({found}){misspelt}", location)
        kind_cls = kinds[chosen[0]]
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


