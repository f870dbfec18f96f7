"""Circuit weights of one subject in TransformerLens layout: read lazily through the claim
file's ``layout:``, stacked per layer, with layers merged into head and neuron labels."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from interp_assert.errors import QuantityError, SpecError, did_you_mean
from interp_assert.evaluate.circuit_layout import (
    CIRCUIT_NAMES,
    PER_LAYER,
    TARGET_AXES,
    Layout,
    parse_head,
    rearrange,
)
from interp_assert.evaluate.circuit_scores import composition_scores, head_neuron_scores
from interp_assert.evaluate.fused_attention import fused_weight
from interp_assert.labels import Axis, Labelled


class WeightContext(Protocol):
    """What reading a subject's circuit weights needs of an evaluation (a claim's
    :class:`~interp_assert.claims.base.Context` has it all)."""

    #: folders searched for user code (``layout: convert``)
    search_path: tuple[Path, ...]
    #: the run's plan, handed on to forward-pass requests (None outside a run)
    plan: Any

    @property
    def subject(self) -> Any:
        """The loaded subject: ``.model``, ``.checkpoint``, ``.weight(name)``, ``.cache``."""
        ...

    @property
    def layout(self) -> Any:
        """The claim file's ``layout:`` section (raw YAML), or None."""
        ...


def _numpy(value: Any) -> np.ndarray:
    """A weight on the host: a float32 or float64 CPU tensor as a view of its own memory (no
    copy: the float64 stack :meth:`CircuitWeights._read` builds is the only one), any other
    tensor as float64."""
    if hasattr(value, "detach"):
        value = value.detach()
        if value.device.type != "cpu" or str(value.dtype) not in ("torch.float32",
                                                                   "torch.float64"):
            value = value.cpu().double()
        return value.numpy()
    array = np.asarray(value)
    return array if array.dtype in (np.float32, np.float64) else array.astype(np.float64)


@dataclass
class CircuitWeights:
    """TransformerLens-layout weights of one model, read lazily through ``fetch``."""

    fetch: Callable[[str], np.ndarray | None]
    layout: Layout = field(default_factory=Layout)
    _raw: dict[str, tuple[np.ndarray, tuple[int, ...]]] = field(default_factory=dict)
    _cache: dict[Any, Any] = field(default_factory=dict)

    # raw stacks
    def stack(self, name: str) -> tuple[np.ndarray, tuple[int, ...]]:
        """A per-layer weight stacked ``[layer, ...]`` with its layer numbers, or a global one."""
        if name not in self._raw:
            self._raw[name] = self._read(name)
        return self._raw[name]

    def _read(self, name: str) -> tuple[np.ndarray, tuple[int, ...]]:
        source = self.layout.source(name)
        target = TARGET_AXES[name]
        where = f"weight {name} ('{source.template}')"
        known = {"head": self.layout.n_heads} if self.layout.n_heads else {}

        def shaped(array: np.ndarray) -> np.ndarray:
            if source.fused and self.layout.attention is not None:
                return fused_weight(array, self.layout.attention, name, where)
            if source.transpose:
                array = np.swapaxes(array, -1, -2)
            if source.axes is not None:
                array = rearrange(array, source.axes, target, known, where)
            return array

        if "{l}" in source.template:
            layers, arrays = [], []
            layer = 0
            while (found := self.fetch(source.template.replace("{l}", str(layer)))) is not None:
                layers.append(layer)
                arrays.append(shaped(found))
                layer += 1
            if not arrays:
                raise self._missing(name, source.template.replace("{l}", "0"))
            return np.stack(arrays, dtype=np.float64), tuple(layers)  # one float64 copy
        found = self.fetch(source.template)
        if found is None:
            raise self._missing(name, source.template)
        array = np.array(shaped(found), dtype=np.float64)  # a copy: never the weight itself
        if name in PER_LAYER:
            stacked = source.axes is not None and any("layer" in g for g in source.axes)
            if not stacked:
                raise SpecError(f"layout '{name}': a per-layer weight needs '{{l}}' in its name "
                                "or a 'layer' axis in 'axes'")
            return array, tuple(range(array.shape[0]))
        return array, ()

    def _missing(self, name: str, key: str) -> QuantityError:
        return QuantityError(
            f"{name} needs the weight '{key}', which the subject does not have",
            hint="circuit names read TransformerLens weight names (blocks.{l}.attn.W_Q, ...); "
                 "for another model add a 'layout:' section mapping W_Q, W_K, W_V, W_O, W_in, "
                 "W_out, W_E, W_pos, W_U to its names, or 'layout: {convert: module:function}'")

    # shapes and labels
    @property
    def attn_layers(self) -> tuple[int, ...]:
        """The layer numbers that have attention weights."""
        return self.stack("W_Q")[1]

    @property
    def n_heads(self) -> int:
        """Heads per attention layer."""
        return int(self.stack("W_Q")[0].shape[1])

    def head_labels(self) -> tuple[str, ...]:
        """``L{l}H{h}`` of every head, layer by layer."""
        return tuple(f"L{layer}H{h}" for layer in self.attn_layers for h in range(self.n_heads))

    def head_layers(self) -> np.ndarray:
        """The layer of every head (in :meth:`head_labels` order)."""
        return np.repeat(np.array(self.attn_layers), self.n_heads)

    def mlp_layers(self) -> tuple[int, ...]:
        """The layer numbers that have MLP weights."""
        return self.stack("W_in")[1]

    def neuron_labels(self) -> tuple[str, ...]:
        """``L{l}N{i}`` of every MLP neuron, layer by layer."""
        array = self.stack("W_in")[0]
        return tuple(f"L{layer}N{i}" for layer in self.mlp_layers() for i in range(array.shape[2]))

    def neuron_layers(self) -> np.ndarray:
        """The layer of every neuron (in :meth:`neuron_labels` order)."""
        return np.repeat(np.array(self.mlp_layers()), self.stack("W_in")[0].shape[2])

    # per-head matrices, layer merged into the head axis
    def heads(self, name: str) -> np.ndarray:
        """A per-head weight with the layer axis merged into the head axis."""
        array = self.stack(name)[0]
        return array.reshape((-1, *array.shape[2:]))

    def labelled(self, name: str) -> Labelled:
        """The circuit quantity ``name`` as a labelled array (cached)."""
        if name not in self._cache:
            self._cache[name] = self._compute(name)
        return self._cache[name]

    def _compute(self, name: str) -> Labelled:
        head = Axis("head", self.head_labels()) if name in (
            "W_Q", "W_K", "W_V", "W_O", "W_OV", "W_QK") else None
        if name in ("W_Q", "W_K", "W_V"):
            return Labelled(self.heads(name), (head, Axis("d_model"), Axis("d_head")), name)
        if name == "W_O":
            return Labelled(self.heads(name), (head, Axis("d_head"), Axis("d_model")), name)
        if name == "W_OV":
            values = self.heads("W_V") @ self.heads("W_O")
            return Labelled(values, (head, Axis("d_model"), Axis("d_model_out")), name)
        if name == "W_QK":
            values = self.heads("W_Q") @ np.swapaxes(self.heads("W_K"), -1, -2)
            return Labelled(values, (head, Axis("d_model_q"), Axis("d_model_k")), name)
        if name == "W_out":  # its neuron labels from its own layers (W_in is not read)
            array, layers = self.stack("W_out")  # [layer, d_mlp, d_model]
            labels = tuple(f"L{layer}N{i}" for layer in layers for i in range(array.shape[1]))
            return Labelled(array.reshape(-1, array.shape[-1]),
                            (Axis("neuron", labels), Axis("d_model")), name)
        neuron = Axis("neuron", self.neuron_labels()) if name in ("W_in",
                                                                  "head-neuron") else None
        if name == "W_in":
            array = self.stack("W_in")[0]  # [layer, d_model, d_mlp]
            values = np.transpose(array, (1, 0, 2)).reshape(array.shape[1], -1)
            return Labelled(values, (Axis("d_model"), neuron), name)
        if name == "W_E":
            return Labelled(self.stack(name)[0], (Axis("token"), Axis("d_model")), name)
        if name == "W_pos":
            return Labelled(self.stack(name)[0], (Axis("pos"), Axis("d_model")), name)
        if name == "W_U":
            return Labelled(self.stack(name)[0], (Axis("d_model"), Axis("token")), name)
        if name.endswith("-composition"):
            scores = composition_scores(self.heads("W_Q"), self.heads("W_K"),
                                        self.heads("W_V"), self.heads("W_O"),
                                        self.head_layers(), name[0])
            labels = self.head_labels()
            return Labelled(scores, (Axis("writer", labels), Axis("reader", labels)), name)
        if name == "head-neuron":
            scores = self.head_neuron(1)
            return Labelled(scores, (Axis("head", self.head_labels()), neuron), name)
        raise QuantityError(f"unknown circuit quantity '{name}'"
                            + did_you_mean(name, CIRCUIT_NAMES))

    def head_neuron(self, k: int) -> np.ndarray:
        """[head, neuron] scores (max over the top ``k`` output directions); NaN where the
        neuron's MLP comes before the head's layer."""
        key = ("head-neuron", k)
        if key not in self._cache:
            directions = self.head_neuron_directions(k)  # [head, k, neuron]
            self._cache[key] = np.max(directions, axis=1)
        return self._cache[key]

    def head_neuron_directions(self, k: int) -> np.ndarray:
        """[head, direction, neuron] = |v_i · ŵ_in|, NaN for neurons before the head."""
        w_ov = self.labelled("W_OV").values
        w_in = self.labelled("W_in").values  # [d_model, neuron]
        return head_neuron_scores(w_ov, w_in, self.head_layers(), self.neuron_layers(), k)


def head_neuron_table(weights: CircuitWeights, k: int = 1) -> list[dict[str, Any]]:
    """The long table (layer, head, direction, neuron, score) of every reachable pair."""
    scores = weights.head_neuron_directions(k)
    heads, neurons = weights.head_labels(), weights.neuron_labels()
    rows = []
    for h, i, n in zip(*np.nonzero(np.isfinite(scores))):
        layer = (parse_head(heads[h]) or (0, 0))[0]
        rows.append({"layer": layer, "head": heads[h], "direction": f"S{i}",
                     "neuron": neurons[n], "score": float(scores[h, i, n])})
    return rows


def weights_for(ctx: WeightContext) -> CircuitWeights:
    """The subject's circuit weights under the claim file's layout (cached on the subject)."""
    from interp_assert.usercode import call_user, resolve_callable

    layout = Layout.parse(ctx.layout)
    subject = ctx.subject
    key = ("circuits", layout)
    if key not in subject.cache:
        if layout.convert:
            function = resolve_callable(layout.convert, ctx.search_path, "layout 'convert'")
            checkpoint = subject.checkpoint
            model = subject.model
            state = (checkpoint.state_dict if checkpoint is not None
                     else model.state_dict() if model is not None else {})
            converted = dict(call_user(function, f"layout convert '{layout.convert}'", state))

            def fetch(name: str) -> np.ndarray | None:
                return _numpy(converted[name]) if name in converted else None
        else:
            fetch = _subject_fetch(subject)
        subject.cache[key] = CircuitWeights(fetch, layout)
    return subject.cache[key]


_DIGITS = re.compile(r"\d+")


def _subject_fetch(subject: Any) -> Callable[[str], np.ndarray | None]:
    """Reads weights from the checkpoint's state dict; only a name whose pattern (its numbers
    aside) the state dict lacks is looked for in the loader's model, so that reading the
    checkpoint's layers (up to the first missing one) never builds the model."""
    checkpoint = subject.checkpoint
    stored = checkpoint.state_dict if checkpoint is not None else {}
    patterns = {_DIGITS.sub("#", name) for name in stored}
    model_names: set[str] = set()

    def fetch(name: str) -> np.ndarray | None:
        if name in stored:
            return _numpy(stored[name])
        if _DIGITS.sub("#", name) in patterns:  # e.g. one layer past the checkpoint's last
            return None
        if not model_names:
            model_names.update(subject.weight_names())
        return _numpy(subject.weight(name)) if name in model_names else None

    return fetch
