"""Circuit weights in TransformerLens layout, read from a subject, and what is computed from
them: W_OV and W_QK, composition scores, head→neuron scores and congruence.

Per-layer weights are stacked over layers as in TransformerLens (``W_Q`` is
``[layer, head, d_model, d_head]``, ``W_O`` ``[layer, head, d_head, d_model]``) and then the
layer axis is merged into the component axis, so that every head has one label ``L{l}H{h}`` and
every MLP neuron one label ``L{l}N{i}``:

=============  =================================  ====================================
name           axes                               from
=============  =================================  ====================================
W_Q W_K W_V    head, d_model, d_head              ``blocks.{l}.attn.W_Q`` ...
W_O            head, d_head, d_model              ``blocks.{l}.attn.W_O``
W_OV           head, d_model, d_model_out         ``W_V @ W_O``
W_QK           head, d_model_q, d_model_k         ``W_Q @ W_Kᵀ``
W_in           d_model, neuron                    ``blocks.{l}.mlp.W_in``
W_out          neuron, d_model                    ``blocks.{l}.mlp.W_out``
W_E W_pos      token / pos, d_model               ``embed.W_E``, ``pos_embed.W_pos``
W_U            d_model, token                     ``unembed.W_U``
Q-composition  writer, reader (heads)             see :func:`composition_scores`
head-neuron    head, neuron                       see :func:`head_neuron_scores`
=============  =================================  ====================================

Models with other parameter names describe them in the claim file's ``layout:`` section (see
:class:`Layout`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from interp_assert.errors import QuantityError, SpecError, did_you_mean
from interp_assert.labels import Axis, Labelled

if TYPE_CHECKING:
    from interp_assert.evaluate.evaluation import Evaluation
    from interp_assert.language import ast

#: TransformerLens state-dict names of the per-layer and global weights
TL_KEYS: dict[str, str] = {
    "W_Q": "blocks.{l}.attn.W_Q", "W_K": "blocks.{l}.attn.W_K", "W_V": "blocks.{l}.attn.W_V",
    "W_O": "blocks.{l}.attn.W_O", "W_in": "blocks.{l}.mlp.W_in", "W_out": "blocks.{l}.mlp.W_out",
    "W_E": "embed.W_E", "W_pos": "pos_embed.W_pos", "W_U": "unembed.W_U",
}
#: TransformerLens hook names that causal claims slice
TL_HOOKS: dict[str, str] = {"hook_z": "blocks.{l}.attn.hook_z",
                            "hook_post": "blocks.{l}.mlp.hook_post"}
#: the TransformerLens layout of every weight (per layer, without the layer axis)
TARGET_AXES: dict[str, tuple[str, ...]] = {
    "W_Q": ("head", "d_model", "d_head"), "W_K": ("head", "d_model", "d_head"),
    "W_V": ("head", "d_model", "d_head"), "W_O": ("head", "d_head", "d_model"),
    "W_in": ("d_model", "d_mlp"), "W_out": ("d_mlp", "d_model"),
    "W_E": ("d_vocab", "d_model"), "W_pos": ("n_ctx", "d_model"), "W_U": ("d_model", "d_vocab"),
}
PER_LAYER = frozenset({"W_Q", "W_K", "W_V", "W_O", "W_in", "W_out"})
COMPOSITIONS = ("Q", "K", "V")
#: names the engine resolves to circuit quantities
CIRCUIT_NAMES = frozenset({*TARGET_AXES, "W_OV", "W_QK", "head-neuron",
                           *(f"{m}-composition" for m in COMPOSITIONS)})
LAYOUT_KEYS = frozenset({*TARGET_AXES, *TL_HOOKS, "n_heads", "convert"})
_HEAD = re.compile(r"^L(\d+)H(\d+)$")
_NEURON = re.compile(r"^L(\d+)N(\d+)$")


def is_circuit_name(name: str) -> bool:
    return name in CIRCUIT_NAMES


def parse_head(label: str) -> tuple[int, int] | None:
    """``L1H2`` -> (1, 2); None for other labels."""
    match = _HEAD.match(label)
    return (int(match[1]), int(match[2])) if match else None


def parse_neuron(label: str) -> tuple[int, int] | None:
    """``L0N17`` -> (0, 17); None for other labels."""
    match = _NEURON.match(label)
    return (int(match[1]), int(match[2])) if match else None


# -- layout --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WeightSource:
    """Where one weight lives: a name template (``{l}`` = layer) and how to rearrange it."""

    template: str
    axes: tuple[tuple[str, ...], ...] | None = None
    transpose: bool = False


def parse_axes(pattern: str, target: tuple[str, ...], where: str) -> tuple[tuple[str, ...], ...]:
    """``"(head d_head) d_model"`` -> (("head", "d_head"), ("d_model",)), checked against the
    target axes (plus an optional ``layer``)."""
    groups: list[tuple[str, ...]] = []
    for match in re.finditer(r"\(([^()]*)\)|(\S+)", pattern):
        names = tuple(match[1].split()) if match[1] is not None else (match[2],)
        if not names or any(not re.fullmatch(r"[A-Za-z_]\w*", n) for n in names):
            raise SpecError(f"{where}: cannot read axes pattern {pattern!r}",
                            hint="write axis names separated by spaces, fused axes in "
                                 "parentheses, e.g. '(head d_head) d_model'")
        groups.append(names)
    flat = [n for g in groups for n in g]
    wanted = set(target) | {"layer"}
    unknown = [n for n in flat if n not in wanted]
    if unknown:
        raise SpecError(f"{where}: unknown axis '{unknown[0]}' in {pattern!r}"
                        + did_you_mean(unknown[0], wanted),
                        hint=f"the TransformerLens layout is {' '.join(target)}")
    missing = [n for n in target if n not in flat]
    if missing or len(flat) != len(set(flat)):
        raise SpecError(f"{where}: axes pattern {pattern!r} must name each of "
                        f"{', '.join(target)} once (and optionally 'layer')")
    return tuple(groups)


@dataclass(frozen=True)
class Layout:
    """A claim file's ``layout:`` section: where a custom model keeps TransformerLens's weights.

    ``W_Q: "layers.{l}.attn.q.weight"`` names a tensor already in TransformerLens layout;
    ``{weight: ..., axes: "(head d_head) d_model"}`` rearranges a stored tensor (fused axes in
    parentheses, an optional leading ``layer`` axis for weights stored stacked), and
    ``transpose: true`` swaps its last two axes. ``n_heads`` splits fused head axes;
    ``hook_z``/``hook_post`` name the hook modules ablations slice; ``convert:
    package.module:function`` instead maps the whole state dict to TransformerLens names.
    """

    sources: tuple[tuple[str, WeightSource], ...] = ()
    hooks: tuple[tuple[str, str], ...] = ()
    n_heads: int | None = None
    convert: str | None = None

    @classmethod
    def parse(cls, raw: Any) -> Layout:
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise SpecError("'layout' must map weight names (W_Q, W_O, ...) to state-dict names")
        for key in raw:
            if key not in LAYOUT_KEYS:
                raise SpecError(f"unknown key '{key}' in 'layout'" + did_you_mean(str(key),
                                                                                   LAYOUT_KEYS),
                                hint="allowed keys: " + ", ".join(sorted(LAYOUT_KEYS)))
        sources: list[tuple[str, WeightSource]] = []
        for name, target in TARGET_AXES.items():
            if name in raw:
                sources.append((name, _source(name, raw[name], target)))
        hooks = tuple((k, str(raw[k])) for k in TL_HOOKS if k in raw)
        n_heads = raw.get("n_heads")
        if n_heads is not None and (isinstance(n_heads, bool) or not isinstance(n_heads, int)):
            raise SpecError("'layout: n_heads' must be a whole number")
        convert = raw.get("convert")
        if convert is not None and not isinstance(convert, str):
            raise SpecError("'layout: convert' must be 'package.module:function'")
        return cls(tuple(sources), hooks, n_heads, convert)

    def source(self, name: str) -> WeightSource:
        return dict(self.sources).get(name) or WeightSource(TL_KEYS[name])

    def hook(self, name: str) -> str:
        return dict(self.hooks).get(name) or TL_HOOKS[name]


def _source(name: str, raw: Any, target: tuple[str, ...]) -> WeightSource:
    where = f"layout '{name}'"
    if isinstance(raw, str):
        return WeightSource(raw)
    if not isinstance(raw, Mapping) or not isinstance(raw.get("weight"), str):
        raise SpecError(f"{where} must be a state-dict name or {{weight: NAME, axes: ..., "
                        "transpose: ...}")
    extra = set(raw) - {"weight", "axes", "transpose"}
    if extra:
        raise SpecError(f"unknown key '{sorted(extra)[0]}' in {where}",
                        hint="allowed keys: weight, axes, transpose")
    axes = raw.get("axes")
    return WeightSource(str(raw["weight"]),
                        parse_axes(str(axes), target, where) if axes is not None else None,
                        bool(raw.get("transpose", False)))


def rearrange(array: np.ndarray, groups: tuple[tuple[str, ...], ...], target: tuple[str, ...],
              known: Mapping[str, int], where: str) -> np.ndarray:
    """Split fused axes (sizes from ``known``; one unknown per group is inferred) and permute
    into ``target`` order (``layer`` first when present)."""
    if array.ndim != len(groups):
        raise QuantityError(f"{where}: the tensor has {array.ndim} axes {array.shape} but the "
                            f"axes pattern names {len(groups)}")
    sizes: dict[str, int] = {}
    for group, size in zip(groups, array.shape):
        unknown = [n for n in group if n not in known]
        product = int(np.prod([known[n] for n in group if n in known]))
        if len(unknown) > 1:
            raise QuantityError(f"{where}: cannot split axis of size {size} into "
                                f"({' '.join(group)})", hint="add 'n_heads:' to 'layout'")
        if size % product or (not unknown and size != product):
            raise QuantityError(f"{where}: axis of size {size} does not split into "
                                f"({' '.join(group)}) with {dict(known)}")
        for n in group:
            sizes[n] = known[n] if n in known else size // product
    flat = [n for g in groups for n in g]
    expanded = array.reshape([sizes[n] for n in flat])
    order = (["layer"] if "layer" in flat else []) + list(target)
    return np.transpose(expanded, [flat.index(n) for n in order])


# -- weights ------------------------------------------------------------------------------------
def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().double().numpy()
    return np.asarray(value, dtype=np.float64)


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
            return np.stack(arrays), tuple(layers)
        found = self.fetch(source.template)
        if found is None:
            raise self._missing(name, source.template)
        array = shaped(found)
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
        return self.stack("W_Q")[1]

    @property
    def n_heads(self) -> int:
        return int(self.stack("W_Q")[0].shape[1])

    def head_labels(self) -> tuple[str, ...]:
        return tuple(f"L{layer}H{h}" for layer in self.attn_layers for h in range(self.n_heads))

    def head_layers(self) -> np.ndarray:
        return np.repeat(np.array(self.attn_layers), self.n_heads)

    def mlp_layers(self) -> tuple[int, ...]:
        return self.stack("W_in")[1]

    def neuron_labels(self) -> tuple[str, ...]:
        array = self.stack("W_in")[0]
        return tuple(f"L{layer}N{i}" for layer in self.mlp_layers() for i in range(array.shape[2]))

    def neuron_layers(self) -> np.ndarray:
        return np.repeat(np.array(self.mlp_layers()), self.stack("W_in")[0].shape[2])

    # per-head matrices, layer merged into the head axis
    def heads(self, name: str) -> np.ndarray:
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
        neuron = Axis("neuron", self.neuron_labels()) if name in ("W_in", "W_out",
                                                                  "head-neuron") else None
        if name == "W_in":
            array = self.stack("W_in")[0]  # [layer, d_model, d_mlp]
            values = np.transpose(array, (1, 0, 2)).reshape(array.shape[1], -1)
            return Labelled(values, (Axis("d_model"), neuron), name)
        if name == "W_out":
            array = self.stack("W_out")[0]  # [layer, d_mlp, d_model]
            return Labelled(array.reshape(-1, array.shape[-1]), (neuron, Axis("d_model")), name)
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


def composition_scores(w_q: np.ndarray, w_k: np.ndarray, w_v: np.ndarray, w_o: np.ndarray,
                       layers: np.ndarray, mode: str) -> np.ndarray:
    """``[writer, reader]`` Q-, K- or V-composition ‖A B‖_F / (‖A‖_F ‖B‖_F) (Elhage et al.
    2021) in row-vector convention, as TransformerLens's ``all_composition_scores``: A is the
    writer's W_OV = W_V W_O; B is the reader's W_QK = W_Q W_Kᵀ (Q), its transpose (K) or its
    W_OV (V). Pairs whose writer is not in an earlier layer score 0.

    Computed from the factors (d_head × d_head matrices): for A = A₁B₁ and B = A₂B₂,
    ‖A B‖²_F = tr(A₁ᵀA₁ · (B₁A₂) · B₂B₂ᵀ · (B₁A₂)ᵀ).
    """
    left_a, left_b = w_v, w_o  # [N, m, d], [N, d, m]
    if mode == "Q":
        right_a, right_b = w_q, np.swapaxes(w_k, -1, -2)
    elif mode == "K":
        right_a, right_b = w_k, np.swapaxes(w_q, -1, -2)
    elif mode == "V":
        right_a, right_b = w_v, w_o
    else:
        raise QuantityError(f"composition must be Q, K or V, not '{mode}'")
    gram_left = np.swapaxes(left_a, -1, -2) @ left_a  # [N, d, d]
    gram_right = right_b @ np.swapaxes(right_b, -1, -2)  # [N, d, d]
    squared = np.empty((left_a.shape[0], right_a.shape[0]))
    for i in range(left_a.shape[0]):  # one writer at a time: memory N·d², not N²·d²
        middle = np.einsum("dm,jme->jde", left_b[i], right_a)  # B₁A₂ for every reader
        squared[i] = np.sum((gram_left[i] @ middle @ gram_right) * middle, axis=(1, 2))
    left_norm = np.sqrt(np.einsum("iab,iba->i", gram_left,
                                  left_b @ np.swapaxes(left_b, -1, -2)))
    right_norm = np.sqrt(np.einsum("iab,iba->i", np.swapaxes(right_a, -1, -2) @ right_a,
                                   gram_right))
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = np.sqrt(np.clip(squared, 0.0, None)) / left_norm[:, None] / right_norm[None, :]
    return np.where(layers[:, None] < layers[None, :], scores, 0.0)


def head_neuron_scores(w_ov: np.ndarray, w_in: np.ndarray, head_layers: np.ndarray,
                       neuron_layers: np.ndarray, k: int) -> np.ndarray:
    """``[head, direction, neuron]``: |cos| between each of a head's top ``k`` output directions
    (right singular vectors of W_OV) and each MLP neuron's input direction (W_in column).
    Neurons in layers before the head's are NaN (the head cannot write to them)."""
    _, _, vh = np.linalg.svd(w_ov, full_matrices=False)
    top = vh[:, :k, :]  # [head, k, d_model], unit rows
    with np.errstate(invalid="ignore", divide="ignore"):
        unit_in = w_in / np.linalg.norm(w_in, axis=0, keepdims=True)
    scores = np.abs(top @ unit_in)
    reachable = head_layers[:, None] <= neuron_layers[None, :]
    return np.where(reachable[:, None, :], scores, np.nan)


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


def quantiles(values: np.ndarray, levels: tuple[float, ...] = (0.5, 0.9, 0.99, 0.999)
              ) -> dict[str, float]:
    """Named quantiles of the finite values."""
    finite = values[np.isfinite(values)]
    return {f"{level:.1%}".replace(".0%", "%"): float(np.quantile(finite, level))
            for level in levels}


def spectrum(matrix: np.ndarray) -> np.ndarray:
    """Singular values, descending."""
    return np.linalg.svd(matrix, compute_uv=False)


def energy_rank(singular: np.ndarray, fraction: float) -> int:
    """Smallest k whose top-k singular values hold ``fraction`` of the squared total (the same
    rule as the expression function ``effective_rank``)."""
    cumulative = np.cumsum(singular**2) / np.sum(singular**2)
    return int(1 + np.sum(cumulative < fraction - 1e-12))


# -- congruence ---------------------------------------------------------------------------------
def _residual_axis(x: Labelled, size: int, prefer_last: bool) -> int:
    named = [i for i, a in enumerate(x.axes) if a.name.startswith("d_model")]
    if named:
        return named[-1] if prefer_last else named[0]
    order = range(x.ndim - 1, -1, -1) if prefer_last else range(x.ndim)
    for i in order:
        if x.shape[i] == size:
            return i
    raise QuantityError(f"'{x.name}' (shape {x.shape}) has no axis of the residual width {size}")


def _width(directions: Labelled, target: Labelled) -> int:
    """The residual width: the target vector's length, else an axis named d_model*, else the
    one size both share."""
    if target.ndim == 1:
        return target.shape[0]
    for x in (directions, target):
        for axis, size in zip(x.axes, x.shape):
            if axis.name.startswith("d_model"):
                return size
    common = set(directions.shape) & set(target.shape)
    if len(common) != 1:
        raise QuantityError(f"cannot tell the residual axis of '{directions.name}' "
                            f"{directions.shape} and '{target.name}' {target.shape}",
                            hint="pass a single target direction, or name the axes d_model")
    return common.pop()


def congruence(directions: Labelled, target: Labelled, cosine: bool = True) -> Labelled:
    """Cosine (or, with ``cosine=False``, projection onto the unit target) between each
    direction (a row or column of width d_model) and a target direction or matrix of them.

    ``directions`` [neuron, d_model] or [d_model, neuron]; ``target`` [d_model] gives
    [neuron], ``target`` [d_model, token] (or [token, d_model]) gives [neuron, token]."""
    if directions.ndim not in (1, 2) or target.ndim not in (1, 2):
        raise QuantityError("congruence takes vectors or matrices of directions")
    width = _width(directions, target)
    d_axis = _residual_axis(directions, width, prefer_last=True)
    rows = np.moveaxis(directions.values, d_axis, -1)
    row_axes = tuple(a for i, a in enumerate(directions.axes) if i != d_axis)
    t_axis = _residual_axis(target, width, prefer_last=False)
    cols = np.moveaxis(target.values, t_axis, 0)
    col_axes = tuple(a for i, a in enumerate(target.axes) if i != t_axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        cols = cols / np.linalg.norm(cols, axis=0, keepdims=True)
        if cosine:
            rows = rows / np.linalg.norm(rows, axis=-1, keepdims=True)
    values = rows @ cols
    if row_axes and col_axes and row_axes[0].name == col_axes[0].name:
        col_axes = (Axis(col_axes[0].name + "_2", col_axes[0].labels),)
    return Labelled(values, row_axes + col_axes, "congruence" if cosine else "projection")


def layer_norm_rows(x: Labelled, axis: int) -> Labelled:
    """Parameter-free layer norm (centre, unit variance) along ``axis``."""
    values = np.moveaxis(x.values, axis, -1)
    centred = values - values.mean(axis=-1, keepdims=True)
    scaled = centred / np.sqrt(np.mean(centred**2, axis=-1, keepdims=True) + 1e-5)
    return Labelled(np.moveaxis(scaled, -1, axis), x.axes, x.name, x.meta)


# -- evaluation glue ----------------------------------------------------------------------------
def weights_for(ev: Evaluation) -> CircuitWeights:
    """The subject's circuit weights under the claim file's layout (cached on the subject)."""
    from interp_assert.usercode import call_user, resolve_callable

    layout = Layout.parse(ev.file.raw.get("layout"))
    subject = ev.subject
    key = ("circuits", layout)
    if key not in subject.cache:
        if layout.convert:
            function = resolve_callable(layout.convert, ev.search_path, "layout 'convert'")
            checkpoint = subject.checkpoint
            model = subject.model
            state = (checkpoint.state_dict if checkpoint is not None
                     else model.state_dict() if model is not None else {})
            converted = dict(call_user(function, f"layout convert '{layout.convert}'", state))

            def fetch(name: str) -> np.ndarray | None:
                return _numpy(converted[name]) if name in converted else None
        else:
            names = set(subject.weight_names())

            def fetch(name: str) -> np.ndarray | None:
                return _numpy(subject.weight(name)) if name in names else None

        subject.cache[key] = CircuitWeights(fetch, layout)
    return subject.cache[key]


def circuit_quantity(ev: Evaluation, name: str) -> Labelled:
    """A built-in circuit name (``W_OV``, ``K-composition`` ...) as a labelled array."""
    return weights_for(ev).labelled(name).with_name(name)


CONTEXT_FUNCTIONS = frozenset({"congruence", "projection"})


def call_context_function(ev: Evaluation, node: ast.Call) -> Labelled | None:
    """Functions that read the model's weights: ``congruence(target)`` (cosine of every MLP
    neuron's output direction with ``target``), ``congruence(directions, target)``, and
    ``projection(...)`` (the same with unnormalised directions). A number as the target means
    that token's unembedding direction (a column of W_U). None for other functions."""
    from interp_assert.language import ast as language_ast

    if node.func not in CONTEXT_FUNCTIONS:
        return None
    if len(node.args) not in (1, 2):
        raise QuantityError(f"{node.func}() takes (target) or (directions, target)")

    def direction(arg: ast.Node) -> Labelled:
        if isinstance(arg, language_ast.Number):
            w_u = circuit_quantity(ev, "W_U")
            token = int(arg.value)
            if not 0 <= token < w_u.shape[1]:
                raise QuantityError(f"token {token} is outside the vocabulary (0..{w_u.shape[1]})")
            return Labelled(w_u.values[:, token], (Axis("d_model"),), f"W_U[:, {token}]")
        return ev.value(arg)

    if len(node.args) == 1:
        directions, target = circuit_quantity(ev, "W_out"), direction(node.args[0])
    else:
        directions, target = ev.value(node.args[0]), direction(node.args[1])
    return congruence(directions, target, cosine=node.func == "congruence").with_name(str(node))
