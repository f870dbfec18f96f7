"""Labelled arrays: numbers with named axes whose positions carry labels (N0..N255, L1H0, X3)."""

from __future__ import annotations

import collections
import functools
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from interp_assert.errors import QuantityError, SpecError, UnknownNameError, did_you_mean
from interp_assert.resources import MAX_LABELS

#: ``N0..N15``, ``L1H0..L1H3``: a prefix (which may hold digits, as ``L1H`` does, but does not
#: end in a digit or a dot) and a number, twice
_RANGE = re.compile(r"^(?P<prefix>(?:\S*[^\d\s.])?)(?P<start>\d+)\.\."
                    r"(?P<prefix2>(?:\S*[^\d\s.])?)(?P<stop>\d+)$")
_BRACES = re.compile(r"\{(\d+)\.\.(\d+)\}")


def expand_labels(spec: str | Iterable[Any]) -> list[str]:
    """Expand a label spec into labels.

    ``"N0..N3"`` gives N0, N1, N2, N3; ``"0..9"`` gives the digits; ``"L{0..1}H{0..2}"`` gives
    L0H0, L0H1, L0H2, L1H0, ...; a comma-separated string or a list mixes these with plain
    labels (``"X0..X9, +, Y0..Y9"``).

    Linear in the number of labels, which is counted before any is made: a spec of more than
    :data:`~interp_assert.resources.MAX_LABELS` labels is refused before any work.
    """
    items: list[Any]
    if isinstance(spec, str):
        items = [part.strip() for part in _split_top_level(spec)]
    else:
        items = list(spec)
    plans: list[str | tuple[int, Callable[[], list[str]]]] = []
    total = 0
    for item in items:
        if not isinstance(item, str | int | float) or isinstance(item, bool):
            raise SpecError(f"a label must be a name or a number, not {_short(item)}",
                            hint="write labels as names (N0) or ranges (N0..N15)")
        text = str(item).strip()
        if not text:
            continue
        if ".." not in text:  # a plain label (most of a long list)
            plans.append(text)
            total += 1
            continue
        plan = _plan_one(text)
        plans.append(plan)
        total += plan[0]
    if total > MAX_LABELS:
        raise SpecError(f"label spec {_short(spec)} has {total:,} labels, over the limit of "
                        f"{MAX_LABELS:,}", hint="label a smaller range (one label per position "
                        "of an axis is enough)")
    labels: list[str] = []
    for plan in plans:
        if isinstance(plan, str):
            labels.append(plan)
        else:
            labels.extend(plan[1]())
    if len(set(labels)) != len(labels):
        counts = collections.Counter(labels)
        duplicates = sorted(x for x, n in counts.items() if n > 1)
        raise SpecError(f"duplicate labels {duplicates[:5]} in label spec {_short(spec)}")
    return labels


def _short(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to about ``limit`` characters (a spec may be huge, or a YAML alias
    bomb whose full text would never end)."""
    if isinstance(value, list | tuple):
        text = "[" + ", ".join(_short(v, limit) for v in value[:4]) + (
            ", ...]" if len(value) > 4 else "]")
    elif isinstance(value, str | int | float | bool) or value is None:
        text = repr(value)
    else:
        text = f"a {type(value).__name__}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, []
    for char in text:
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _bound(text: str, digits: str) -> int:
    if len(digits) > 18:
        raise SpecError(f"label range {_short(text)} has a number of {len(digits)} digits",
                        hint=f"label ranges hold at most {MAX_LABELS:,} labels")
    return int(digits)


def _plan_one(text: str) -> tuple[int, Callable[[], list[str]]]:
    """How many labels ``text`` gives, and how to make them (counted first, made later)."""
    if "{" in text:
        pieces = _BRACES.split(text)
        literals, ranges = pieces[0::3], list(zip(pieces[1::3], pieces[2::3]))
        choices = []
        for a, b in ranges:
            start, stop = _bound(text, a), _bound(text, b)
            if stop < start:
                raise SpecError(f"label range {{{a}..{b}}} in {_short(text)} runs backwards",
                                hint=f"write {{{b}..{a}}}")
            choices.append(range(start, stop + 1))
        size = math.prod(len(c) for c in choices)

        def braces() -> list[str]:
            made = [literals[0]]
            for choice, literal in zip(choices, literals[1:]):
                texts = [f"{n}{literal}" for n in choice]
                made = [head + tail for head in made for tail in texts]
            return made

        return size, braces
    match = _RANGE.match(text)
    if match and match["prefix"] != match["prefix2"]:
        raise SpecError(f"label range {_short(text)} changes its prefix "
                        f"({_short(match['prefix'], 20)} to {_short(match['prefix2'], 20)}), so "
                        "it is not one range",
                        hint="vary one number per range, or use braces for several: "
                             "L{0..1}H{0..3}")
    if match:
        start, stop = _bound(text, match["start"]), _bound(text, match["stop"])
        if stop < start:
            raise SpecError(f"label range {text!r} runs backwards",
                            hint=f"write {match['prefix']}{stop}..{match['prefix']}{start}")
        prefix = match["prefix"]
        return stop - start + 1, lambda: [f"{prefix}{i}" for i in range(start, stop + 1)]
    return 1, lambda: [text]


def singular(name: str) -> str:
    """Lower-case and drop a plural 's' so 'over digits' finds axis 'digit'."""
    name = name.lower()
    return name[:-1] if name.endswith("s") and len(name) > 1 else name


@dataclass(frozen=True)
class Axis:
    """One axis of a labelled array: a name and, optionally, one label per position."""

    name: str
    labels: tuple[str, ...] | None = None

    @functools.cached_property
    def positions(self) -> dict[str, int]:
        """Label -> position (the first, should a label repeat), built once per axis."""
        found: dict[str, int] = {}
        for i, label in enumerate(self.labels or ()):
            found.setdefault(label, i)
        return found

    def index_of(self, label: str) -> int:
        """Position of ``label`` on this axis (numeric labels work on unlabelled axes)."""
        if self.labels is not None and label in self.positions:
            return self.positions[label]
        if self.labels is None and re.fullmatch(r"-?\d+", label):
            return int(label)
        pool = self.labels or ()
        raise UnknownNameError(f"unknown label '{label}' on axis '{self.name}'"
                               + did_you_mean(label, pool),
                               hint=f"its labels are {pool[0]}..{pool[-1]}" if pool else "")

    def label(self, i: int) -> str:
        return self.labels[i] if self.labels is not None else str(i)

    def matches(self, name: str) -> bool:
        return singular(self.name) == singular(name)


@dataclass
class Labelled:
    """A numpy array whose axes have names and labels; the value type of every quantity."""

    values: np.ndarray
    axes: tuple[Axis, ...] = field(default=())
    name: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    #: keep a float32 array as it is (captured activations: a float64 copy would double their
    #: memory and cost); reductions of it still accumulate in float64
    keep_float32: bool = field(default=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not (self.keep_float32 and getattr(self.values, "dtype", None) == np.float32):
            self.values = np.asarray(self.values, dtype=np.float64)
        if not self.axes:
            self.axes = tuple(Axis(f"dim{i}") for i in range(self.values.ndim))
        if len(self.axes) != self.values.ndim:
            raise QuantityError(
                f"quantity '{self.name}' has {self.values.ndim} axes but {len(self.axes)} axis "
                f"names were given ({[a.name for a in self.axes]})")
        for axis, size in zip(self.axes, self.values.shape):
            if axis.labels is not None and len(axis.labels) != size:
                raise QuantityError(
                    f"quantity '{self.name}': axis '{axis.name}' has {size} entries but "
                    f"{len(axis.labels)} labels ({axis.labels[0]}..{axis.labels[-1]})",
                    hint="fix the label range in the quantity's 'labels' so it matches the shape "
                         f"{tuple(self.values.shape)}")

    @property
    def ndim(self) -> int:
        return self.values.ndim

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.values.shape)

    def scalar(self) -> float:
        if self.values.size != 1:
            raise QuantityError(f"'{self.name or 'expression'}' has shape {self.shape}, "
                                "expected a single number",
                                hint="reduce it with all/any/mean/max/min of ..., or index it")
        return float(self.values.reshape(()))

    def axis(self, name: str) -> int:
        """Index of the axis called ``name`` (plural-insensitive)."""
        for i, axis in enumerate(self.axes):
            if axis.matches(name):
                return i
        names = [a.name for a in self.axes]
        raise UnknownNameError(f"'{self.name}' has no axis '{name}'" + did_you_mean(name, names),
                               hint=f"its axes: {', '.join(names) or 'none (a single number)'}")

    def find_label(self, label: str) -> int:
        """Index of the first axis whose labels include ``label``."""
        for i, axis in enumerate(self.axes):
            if axis.labels is not None and label in axis.positions:
                return i
        for i, axis in enumerate(self.axes):  # a position (from the end when negative)
            if axis.labels is None and re.fullmatch(r"-?\d+", label) and (
                    -self.shape[i] <= int(label) < self.shape[i]):
                return i
        pool = [lab for axis in self.axes for lab in (axis.labels or ())]
        ranges = [f"{axis.name}: {axis.labels[0]}..{axis.labels[-1]}" for axis in self.axes
                  if axis.labels]
        raise UnknownNameError(f"unknown label '{label}' in '{self.name}'"
                               + did_you_mean(label, pool),
                               hint="its labels: " + "; ".join(ranges) if ranges else "")

    def take(self, axis: int, indices: Sequence[int], keep: bool = True) -> Labelled:
        """Select positions along ``axis``; ``keep=False`` drops the axis (single index)."""
        values = np.take(self.values, list(indices), axis=axis)
        meta = {key: _take_meta(item, self.values.shape, axis, indices, keep)
                for key, item in self.meta.items()}
        old = self.axes[axis]
        if not keep:
            values = values.reshape(values.shape[:axis] + values.shape[axis + 1:])
            axes = self.axes[:axis] + self.axes[axis + 1:]
        else:
            labels = tuple(old.label(i) for i in indices)
            axes = (*self.axes[:axis], Axis(old.name, labels), *self.axes[axis + 1:])
        return Labelled(values, axes, self.name, meta, keep_float32=self.keep_float32)

    def select(self, labels: Sequence[str], axis: int | None = None) -> Labelled:
        """Rows (or slices along ``axis``) with the given labels, keeping their labels."""
        if axis is None:
            axis = self.find_label(labels[0])
        indices = [self.axes[axis].index_of(lab) for lab in labels]
        size = self.shape[axis]
        outside = [lab for lab, i in zip(labels, indices) if not -size <= i < size]
        if outside:
            raise UnknownNameError(f"position {outside[0]} is outside axis '{self.axes[axis].name}'"
                                   f" of '{self.name}' ({size} positions: 0..{size - 1})")
        return self.take(axis, indices)

    def labels_of(self, axis: int) -> list[str]:
        return [self.axes[axis].label(i) for i in range(self.shape[axis])]

    def with_name(self, name: str) -> Labelled:
        return Labelled(self.values, self.axes, name, self.meta, keep_float32=self.keep_float32)

    def to_dict(self) -> dict[str, float]:
        """A 1-D quantity as {label: value}."""
        if self.ndim != 1:
            raise QuantityError(f"'{self.name}' is not one-dimensional (shape {self.shape})")
        return {self.axes[0].label(i): float(v) for i, v in enumerate(self.values)}


def _take_meta(item: Any, shape: tuple[int, ...], axis: int, indices: Sequence[int],
               keep: bool) -> Any:
    """Metadata aligned with the values (same-shape arrays, per-channel stats) follows a take."""
    if isinstance(item, np.ndarray) and item.shape == shape:
        taken = np.take(item, list(indices), axis=axis)
        return taken if keep else taken.reshape(taken.shape[:axis] + taken.shape[axis + 1:])
    channels = getattr(item, "channels", None) if hasattr(item, "take") else None
    if channels == shape[axis] and axis == len(shape) - 1:
        return item.take(list(indices))
    if len(shape) > 1 and channels == int(np.prod(shape)):  # channels laid out as the values
        flat = np.take(np.arange(channels).reshape(shape), list(indices), axis=axis)
        return item.take([int(i) for i in flat.reshape(-1)])
    return item


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
