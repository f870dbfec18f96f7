"""Where a model keeps the TransformerLens weights: the circuit names, head and neuron labels,
and the claim file's ``layout:`` section that maps a custom model's parameters onto them.

Per-layer weights are stacked over layers as in TransformerLens (``W_Q`` is
``[layer, head, d_model, d_head]``, ``W_O`` ``[layer, head, d_head, d_model]``); see
:mod:`interp_assert.evaluate.circuit_names` for every name and its axes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from interp_assert.errors import QuantityError, SpecError, did_you_mean
from interp_assert.loading.layout_rules import AttentionRule, parse_attention

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
LAYOUT_KEYS = frozenset({*TARGET_AXES, *TL_HOOKS, "n_heads", "convert", "attention"})
_HEAD = re.compile(r"^L(\d+)H(\d+)$")
_NEURON = re.compile(r"^L(\d+)N(\d+)$")


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
    #: a part of a fused attention (``layout: attention:``), split by the rule
    fused: bool = False


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
    ``attention:`` (:mod:`interp_assert.loading.layout_rules`) gives W_Q, W_K, W_V from a fused
    qkv projection, W_O from the output projection, and hook_z from its input.
    """

    sources: tuple[tuple[str, WeightSource], ...] = ()
    hooks: tuple[tuple[str, str], ...] = ()
    n_heads: int | None = None
    convert: str | None = None
    attention: AttentionRule | None = None

    @classmethod
    def parse(cls, raw: Any) -> Layout:
        """The layout of a ``layout:`` section (None: TransformerLens names)."""
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
        attention = parse_attention(raw.get("attention"), n_heads)
        if attention is not None and n_heads is None:
            n_heads = attention.n_heads
        return cls(tuple(sources), hooks, n_heads, convert, attention)

    def source(self, name: str) -> WeightSource:
        """Where weight ``name`` lives (the attention rule's projections, else its
        TransformerLens name, by default)."""
        given = dict(self.sources).get(name)
        if given is not None:
            return given
        rule = self.attention
        module = None if rule is None else rule.out if name == "W_O" else (
            rule.qkv if name in ("W_Q", "W_K", "W_V") else None)
        if module:
            return WeightSource(f"{module}.weight", fused=True)
        return WeightSource(TL_KEYS[name])

    def hook(self, name: str) -> str:
        """The module template of hook ``hook_z`` / ``hook_post`` (``hook_z`` beside the
        attention rule's output projection when it names one)."""
        given = dict(self.hooks).get(name)
        if given is None and name == "hook_z" and self.attention and self.attention.out:
            return self.attention.out.rsplit(".", 1)[0] + ".hook_z"
        return given or TL_HOOKS[name]


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
