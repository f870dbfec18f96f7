"""Evaluation: names resolved to quantities, labels and weights; claims measured and judged."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from interp_assert.errors import (
    InterpAssertError,
    QuantityError,
    SpecError,
    UnknownNameError,
    did_you_mean,
)
from interp_assert.evaluate import centring, geometry, masks, pairwise  # noqa: F401
from interp_assert.evaluate.circuit_names import (
    call_context_function,
    circuit_quantity,
    is_circuit_name,
)
from interp_assert.evaluate.indexing import take_index
from interp_assert.evaluate.intervals import combined_samples
from interp_assert.evaluate.quantities.functions import apply_function, lookup
from interp_assert.labels import Axis, Labelled
from interp_assert.language import ast
from interp_assert.loading.claim_file import ClaimFile, normalize_name
from interp_assert.loading.data import DatasetSpec
from interp_assert.loading.subject import LoadedSubject
from interp_assert.resources import array_bytes, check_size

if TYPE_CHECKING:
    from interp_assert.plan.plan import RunPlan

_BINARY: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "^": np.power,
}


class Evaluation:
    """Evaluates expressions of one claim file against one subject (implements the claim
    :class:`~interp_assert.claims.base.Context`)."""

    def __init__(self, claim_file: ClaimFile, subject: LoadedSubject | None,
                 on: str | None = None, dataset: str | None = None,
                 interventions: tuple[Any, ...] = ()) -> None:
        self.file = claim_file
        self._subject = subject
        self.on = on
        self.dataset = dataset
        self.interventions = interventions
        self.search_path = claim_file.search_path
        self._owners = claim_file.label_owners()
        self._names = {normalize_name(n): n for n in claim_file.quantities}
        self._stack: list[str] = []
        self.used: list[str] = []
        #: the run's plan: which sinks each forward pass serves (None: only what is asked)
        self.plan: RunPlan | None = None
        #: this claim's recorded value: what the name ``baseline`` means in its expressions
        self.baseline: float | None = None
        #: the baseline run's per-sample values of this claim, {"samples", "dataset"}, when it
        #: recorded them (confidence claims: paired comparisons with the baseline)
        self.baseline_samples: dict[str, Any] | None = None

    @property
    def subject(self) -> LoadedSubject:
        if self._subject is None:
            raise InterpAssertError("this claim needs a subject (a checkpoint or loader)",
                                    hint="add 'subject: checkpoint: path/to/model.pt' to the "
                                         "claim file")
        return self._subject

    # -- the claim kinds' view (see claims.base.Context) -------------------------------------
    @property
    def definitions(self) -> Mapping[str, Any]:
        return MappingProxyType(self.file.quantities)

    @property
    def layout(self) -> Any:
        return self.file.raw.get("layout")

    @property
    def circuits(self) -> Mapping[str, Any]:
        return MappingProxyType(self.file.circuits)

    @property
    def folder(self) -> Path:
        return Path(self.file.path).resolve().parent

    def derive(self, *, dataset: str | None = None,
               interventions: tuple[Any, ...] | None = None) -> Evaluation:
        """The same evaluation on another dataset and/or with other interventions (values
        are cached per dataset and interventions, so nothing computed is shared wrongly)."""
        other = Evaluation(self.file, self._subject, self.on,
                           self.dataset if dataset is None else dataset,
                           self.interventions if interventions is None else interventions)
        other.baseline = self.baseline
        other.baseline_samples = self.baseline_samples
        other.used = self.used
        other.plan = self.plan
        return other

    # -- quantities ------------------------------------------------------------------------
    def quantity(self, name: str) -> Labelled:
        """The named quantity, computed once per subject and definition."""
        if name in self.file.quantity_errors:
            raise self.file.quantity_errors[name]
        definition = self.file.quantities[name]
        if name in self._stack:
            raise QuantityError("circular quantity definition: " + " -> ".join(
                [*self._stack, name]), definition.location)
        key = ("quantity", self.fingerprint(name), self.dataset, self.interventions)
        cache = self._subject.cache if self._subject is not None else {}
        stale = getattr(definition.kind, "stale", None)
        if key not in cache or (stale is not None and stale(self, cache[key])):
            self._stack.append(name)
            try:
                cache[key] = definition.to_labelled(definition.kind.compute(self))
            except InterpAssertError as exc:
                raise exc.at(definition.location) from None
            finally:
                self._stack.pop()
        self.note_used(name)
        return cache[key].with_name(name)

    def note_used(self, name: str) -> None:
        """Record that the claim read quantity ``name`` (its record lists it)."""
        if name not in self.used:
            self.used.append(name)

    def fingerprint(self, name: str, _trail: tuple[str, ...] = ()) -> str:
        """Identity of quantity ``name``'s value (its cache key): its definition and, for an
        expression, what each name in it means in this file, so that the same text over
        differently defined quantities (another claim file, another subject()) never shares a
        value."""
        from interp_assert.evaluate.quantities.behaviour import ForwardQuantity
        from interp_assert.evaluate.quantities.builtin import CallQuantity

        definition = self.file.quantities[name]
        kind = definition.kind
        parts = [kind.fingerprint(), repr(definition.axes), repr(definition.labels)]
        if isinstance(kind, CallQuantity):  # 'file.py:f' is found through the search path
            parts.append(f"search_path={self.search_path!r}")
        layout = self.layout
        if layout is not None and kind.key in ("expr", "circuit"):  # circuit names read it
            parts.append(f"layout={layout!r}")
        if isinstance(kind, ForwardQuantity):  # the dataset, not just its name
            try:
                spec = self.dataset_spec(kind.config.get("data"))
            except InterpAssertError:  # computing the value reports it (nothing is cached)
                parts.append("no dataset")
            else:
                parts.append(repr(dataclasses.replace(spec, search_path=(), location=None)))
        if name not in _trail:  # a cycle is reported when the value is computed
            for ref in sorted(kind.references()):
                parts.append(f"{ref}={self._name_fingerprint(ref, (*_trail, name))}")
        return "|".join(parts)

    def _name_fingerprint(self, name: str, trail: tuple[str, ...]) -> str:
        """What a name in an expression stands for, as part of a fingerprint."""
        quantity = self._quantity_name(name)
        if quantity is not None:
            return f"({self.fingerprint(quantity, trail)})"
        try:
            owners = [self.owner_of(name)]
        except InterpAssertError:  # declared by several quantities
            owners = self._owners.get(name, [])
        if owners and owners[0] is not None:
            return "label of " + ", ".join(f"({self.fingerprint(o, trail)})" for o in owners)
        if name == "baseline":
            return f"baseline {self.baseline!r}"
        return "weight"  # a weight or circuit of the subject, whose cache this is

    def dataset_spec(self, name: str | None = None) -> DatasetSpec:
        """A dataset of the file by name; by default the claim's, else the file's first."""
        datasets = self.file.datasets
        name = name or self.dataset
        if name is None:
            if not datasets:
                raise SpecError("this claim needs data, but the claim file has no 'data:' "
                                "section", hint="add 'data: {name: {generate: "
                                "package.module:function, n: 1000, seed: 0}}'")
            return next(iter(datasets.values()))
        if name not in datasets:
            raise UnknownNameError(f"unknown dataset '{name}'" + did_you_mean(name, datasets))
        return datasets[name]

    def _quantity_name(self, name: str) -> str | None:
        if name in self.file.quantities:
            return name
        return self._names.get(normalize_name(name))

    def owner_of(self, label: str) -> str | None:
        owners = self._owners.get(label, [])
        if self.on in owners:
            return self.on
        if len(owners) > 1:
            raise UnknownNameError(
                f"label '{label}' is declared by several quantities ({', '.join(owners)})",
                hint=f"say which: '... of {owners[0]}', or set 'on: {owners[0]}' on the claim")
        return owners[0] if owners else None

    def resolve(self, name: str) -> Labelled:
        """A name as a value: a quantity, a declared label (its row), or a weight."""
        quantity = self._quantity_name(name)
        if quantity is not None:
            return self.quantity(quantity)
        owner = self.owner_of(name)
        if owner is not None:
            whole = self.quantity(owner)
            axis = whole.find_label(name)
            return whole.take(axis, [whole.axes[axis].index_of(name)], keep=False).with_name(name)
        if name == "baseline":
            return self._baseline()
        subject = self._subject
        circuit = subject is not None and is_circuit_name(name)  # W_OV, K-composition, ...
        if subject is not None and ("." in name or subject.has_weight(name, model=not circuit)):
            return self._weight(name)
        if circuit:  # read from the checkpoint: the loader's model is built only when needed
            try:
                return circuit_quantity(self, name)
            except InterpAssertError:
                assert subject is not None
                if subject.has_weight(name):  # the loader's model's own weight of that name
                    return self._weight(name)
                raise
        candidates = [*self.file.quantities, *self._owners]
        if self._subject is not None:
            with contextlib.suppress(InterpAssertError):
                candidates += self._subject.weight_names()
        raise UnknownNameError(f"unknown name '{name}' (not a quantity, label or weight)"
                               + did_you_mean(name, candidates))

    def _baseline(self) -> Labelled:
        if self.baseline is None:
            raise SpecError("'baseline' is this claim's recorded value, but no baseline file was "
                            "given", hint="run with --interp-baseline FILE (record the values "
                                          "with --interp-baseline-update)")
        return Labelled(np.array(self.baseline), (), "baseline")

    def _weight(self, name: str) -> Labelled:
        key = ("weight", name)
        cache = self.subject.cache
        if key not in cache:
            from interp_assert.labels import as_labelled

            cache[key] = as_labelled(self.subject.weight(name), name)
        return cache[key]

    # -- expressions -----------------------------------------------------------------------
    def value(self, node: ast.Node) -> Labelled:
        """Evaluate an expression node."""
        method = getattr(self, f"_eval_{type(node).__name__.lower()}", None)
        if method is None:
            raise QuantityError(f"cannot evaluate '{node}' here")
        return method(node)

    def scalar(self, node: ast.Node) -> float:
        return self.value(node).scalar()

    def _eval_number(self, node: ast.Number) -> Labelled:
        return Labelled(np.array(node.value), (), str(node))

    def _eval_ref(self, node: ast.Ref) -> Labelled:
        return self.resolve(node.name)

    def _eval_neg(self, node: ast.Neg) -> Labelled:
        operand = self.value(node.operand)
        return Labelled(-operand.values, operand.axes, f"-{operand.name}")

    def _eval_transpose(self, node: ast.Transpose) -> Labelled:
        return apply_function("transpose", [self.value(node.operand)])

    def _eval_call(self, node: ast.Call) -> Labelled:
        weighted = call_context_function(self, node)  # congruence(...): reads the weights
        if weighted is not None:
            return weighted
        function = lookup(node.func)
        args: list[Any] = []
        for i, arg in enumerate(node.args):
            if i in function.axis_params:
                if not isinstance(arg, ast.Ref):
                    raise QuantityError(f"argument {i + 1} of {node.func}() must be an axis name")
                args.append(arg.name)
            else:
                args.append(self.value(arg))
        result = apply_function(node.func, args)
        return result.with_name(str(node))

    def _eval_binop(self, node: ast.BinOp) -> Labelled:
        left, right = self.value(node.left), self.value(node.right)
        if node.op == "@":
            return _matmul(left, right, str(node))
        try:
            check_size(array_bytes(np.broadcast_shapes(left.shape, right.shape)), f"'{node}'")
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                values = _BINARY[node.op](left.values, right.values)
        except ValueError:
            raise QuantityError(f"cannot combine shapes {left.shape} and {right.shape} in "
                                f"'{node}'") from None
        axes = left.axes if left.ndim >= right.ndim else right.axes
        context = {**right.meta.get("context", {}), **left.meta.get("context", {})}
        meta: dict[str, Any] = {"context": context} if context else {}
        samples = combined_samples(node.op, left, right)
        if samples is not None:  # per-sample values of a sum or difference, for intervals
            meta["samples"] = samples
        return Labelled(values, axes, str(node), meta)

    def _eval_mask(self, node: ast.Mask) -> Labelled:
        return masks.mask(node.op, self.value(node.left), self.value(node.right), str(node))

    def _eval_where(self, node: ast.Where) -> Labelled:
        return masks.where(self.value(node.value), self.value(node.condition), str(node))

    def _eval_vector(self, node: ast.Vector) -> Labelled:
        return masks.vector([self.value(item) for item in node.items], str(node))

    def _eval_at(self, node: ast.At) -> Labelled:
        whole = self.resolve(node.quantity)
        axis = whole.find_label(node.label)
        result = whole.take(axis, [whole.axes[axis].index_of(node.label)], keep=False)
        if node.stratum is not None:
            assert node.feature is not None
            feature_axis = result.axis(node.feature)
            index = result.axes[feature_axis].index_of(node.stratum)
            result = result.take(feature_axis, [index], keep=False)
        return result.with_name(str(node))

    def _eval_index(self, node: ast.Index) -> Labelled:
        return take_index(self.value(node.target), node)

    # -- members ---------------------------------------------------------------------------
    def members(self, members: ast.Members) -> Labelled:
        """The members as rows of one quantity, stacked along axis 0."""
        if members.source is not None:
            source = self.value(members.source)
            axis = source.find_label(members.labels[0])
            rows = source.select(list(members.labels), axis)
            return _move_to_front(rows, axis)
        if len(members.labels) == 1:
            only = members.labels[0]
            if self._quantity_name(only) is not None or (
                    self.owner_of(only) is None and "." in only):
                return self.resolve(only)
        owners = {label: self.owner_of(label) for label in members.labels}
        missing = [label for label, owner in owners.items() if owner is None]
        if missing:
            raise UnknownNameError(f"unknown label '{missing[0]}'"
                                   + did_you_mean(missing[0], self._owners))
        distinct = sorted(set(owners.values()))
        if len(distinct) > 1:
            raise UnknownNameError("members come from different quantities: " + ", ".join(
                f"{label} ({owner})" for label, owner in owners.items()))
        source = self.quantity(distinct[0])
        axis = source.find_label(members.labels[0])
        return _move_to_front(source.select(list(members.labels), axis), axis)

    def members_source(self, members: ast.Members) -> Labelled | None:
        if members.source is not None:
            return self.value(members.source)
        owner = self.owner_of(members.labels[0])
        return self.quantity(owner) if owner else None


def _move_to_front(value: Labelled, axis: int) -> Labelled:
    if axis == 0:
        return value
    order = [axis] + [i for i in range(value.ndim) if i != axis]
    return Labelled(np.transpose(value.values, order), tuple(value.axes[i] for i in order),
                    value.name, value.meta)


def _matmul(left: Labelled, right: Labelled, name: str) -> Labelled:
    try:
        check_size(array_bytes(_matmul_shape(left.shape, right.shape)), f"'{name}'")
        values = np.matmul(left.values, right.values)
    except ValueError:
        raise QuantityError(f"cannot multiply shapes {left.shape} @ {right.shape} in '{name}'",
                            hint="transpose one side with .T, or check which axis is which"
                            ) from None
    if left.ndim == 1 and right.ndim == 1:
        axes: tuple[Axis, ...] = ()
    elif left.ndim == 1:
        axes = right.axes[:-2] + right.axes[-1:]
    elif right.ndim == 1:
        axes = left.axes[:-1]
    else:
        batch = left.axes[:-2] if left.ndim >= right.ndim else right.axes[:-2]
        axes = (*batch, left.axes[-2], right.axes[-1])
    return Labelled(values, axes, name)


def _matmul_shape(left: tuple[int, ...], right: tuple[int, ...]) -> tuple[int, ...]:
    """The shape of ``left @ right`` (ValueError where they do not multiply)."""
    a = (1, *left) if len(left) == 1 else left
    b = (*right, 1) if len(right) == 1 else right
    if not a or not b or a[-1] != b[-2]:
        raise ValueError("shapes do not multiply")
    return (*np.broadcast_shapes(a[:-2], b[:-2]), a[-2], b[-1])
