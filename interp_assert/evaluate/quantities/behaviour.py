"""Quantities read from forward passes on a dataset: ``activation``, ``distribution``, ``metric``.

All of them register a sink with the planner, so one forward pass per (checkpoint, dataset)
serves every claim that needs it.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Callable, Hashable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interp_assert.errors import SpecError
from interp_assert.evaluate.distribution_sink import DistributionFactory
from interp_assert.evaluate.forward import CaptureSink, Sink, request
from interp_assert.evaluate.quantities.base import QuantityKind, register_quantity
from interp_assert.evaluate.streaming import NOT_KEPT
from interp_assert.labels import Axis, Labelled
from interp_assert.loading.data import DatasetSpec, load_dataset

if TYPE_CHECKING:
    from interp_assert.evaluate.evaluation import Evaluation

_LAYER = re.compile(r"(?:blocks|layers?|layer|h)\.(\d+)\.")
#: a module path inside an attention block (``attn``, ``self_attn``, ``attention.self``)
_ATTENTION = re.compile(r"(?:^|[._])(?:attn|attention)(?:$|[._])", re.IGNORECASE)
#: module names (last part of a path inside an MLP) whose output is the hidden layer: one
#: channel per neuron (nanoGPT's c_fc and gelu, Llama's up/gate projections, HF's fc1/act)
_MLP_HIDDEN = frozenset({"hook_pre", "hook_post", "hook_pre_linear", "c_fc", "fc1", "fc_in",
                         "up_proj", "gate_proj", "act", "act_fn", "gelu", "relu",
                         "intermediate", "dense_h_to_4h", "w1", "w3"})


#: declared axis names whose positions take labels: heads, sequence positions, MLP neurons
_POSITION_ROLES = frozenset({"pos", "position", "query", "key", "token", "seq", "source",
                             "destination", "src", "dest"})


def declared_axes(hook: str, shape: tuple[int, ...], positions: tuple[str, ...] | None,
                  names: list[str] | None) -> tuple[Axis, ...]:
    """The axes of an activation whose quantity declares ``axes: names``: each axis labelled
    by what its declared name says it is (``head``: L{layer}H{i}; ``query``, ``key``, ``pos``:
    the dataset's positions when their number matches; ``neuron``: L{layer}N{i}), else with
    the labels the hook's own axes carry. Without a declaration (or with the wrong number of
    names, which the quantity reports), the hook's axes."""
    computed = activation_axes(hook, shape, positions)
    if names is None or len(names) != len(shape):
        return computed
    layer = match.group(1) if (match := _LAYER.search(hook + ".")) else None
    out = []
    for name, size, axis in zip(names, shape, computed):
        role = Axis(name, None)
        labels = axis.labels
        if role.matches("head"):
            labels = tuple(f"{'L' + layer if layer is not None else ''}H{h}" for h in range(size))
        elif any(role.matches(r) for r in _POSITION_ROLES):
            labels = positions if positions is not None and len(positions) == size else None
        elif role.matches("neuron"):
            labels = tuple(f"{'L' + layer if layer is not None else ''}N{i}" for i in range(size))
        out.append(Axis(name, labels))
    return tuple(out)


def in_attention(hook: str) -> bool:
    """Whether a module path lies inside an attention block (``attn``, ``attention``)."""
    return bool(_ATTENTION.search(hook))


def head_channels(hook: str) -> bool:
    """Whether ``hook``'s last two axes are (head, d_head), as TransformerLens's ``hook_z``:
    its distribution then has one channel per (head, d_head) pair."""
    axes = activation_axes(hook, (2, 3, 5, 7), None)
    return axes[-2].matches("head") and not axes[-1].matches("key")


def activation_axes(hook: str, shape: tuple[int, ...],
                    positions: tuple[str, ...] | None) -> tuple[Axis, ...]:
    """Axis names and labels following TransformerLens's hook conventions.

    Heads are labelled L{layer}H{head}, MLP neurons L{layer}N{i} (the output of an MLP's
    hidden layer under TransformerLens's, nanoGPT's, Llama's or Hugging Face's module names),
    positions by the dataset.
    """
    match = _LAYER.search(hook + ".")
    layer = match.group(1) if match else None
    suffix = hook.rsplit(".", 1)[-1]

    def pos_axis(name: str, size: int) -> Axis:
        labels = positions if positions is not None and len(positions) == size else None
        return Axis(name, labels)

    def heads(size: int) -> Axis:
        prefix = f"L{layer}H" if layer is not None else "H"
        return Axis("head", tuple(f"{prefix}{h}" for h in range(size)))

    if suffix in ("hook_pattern", "hook_attn_scores") and len(shape) == 4:
        return (Axis("batch"), heads(shape[1]), pos_axis("query", shape[2]),
                pos_axis("key", shape[3]))
    if suffix in ("hook_q", "hook_k", "hook_v", "hook_z", "hook_result") and len(shape) == 4:
        return (Axis("batch"), pos_axis("pos", shape[1]), heads(shape[2]), Axis("d_head"))
    if len(shape) == 4 and shape[2] == shape[3] and _ATTENTION.search(hook) and (
            not suffix.startswith("hook_")) and (positions is None or len(positions) == shape[2]):
        # a module inside attention whose output is square over positions (nanoGPT's
        # attn_dropout, HF's attention dropout): an attention pattern [batch, head, query, key]
        return (Axis("batch"), heads(shape[1]), pos_axis("query", shape[2]),
                pos_axis("key", shape[3]))
    inside_mlp = suffix.startswith("hook_") or any(
        part in ("mlp", "ffn", "feed_forward", "intermediate") for part in hook.split(".")[:-1])
    if suffix in _MLP_HIDDEN and len(shape) == 3 and (inside_mlp or suffix == "intermediate"):
        prefix = f"L{layer}N" if layer is not None else "N"
        return (Axis("batch"), pos_axis("pos", shape[1]),
                Axis("neuron", tuple(f"{prefix}{i}" for i in range(shape[2]))))
    axes = [Axis("batch")]
    if len(shape) >= 3:
        axes.append(pos_axis("pos", shape[1]))
        axes += [Axis("d_model" if i == len(shape) - 1 else f"dim{i}")
                 for i in range(2, len(shape))]
    else:
        axes += [Axis(f"dim{i}") for i in range(1, len(shape))]
    return tuple(axes)


class ForwardQuantity(QuantityKind):
    """Base of quantities measured during the planned forward pass."""

    options = frozenset({"data"})

    def dataset(self, ev: Evaluation) -> DatasetSpec:
        return ev.dataset_spec(self.config.get("data"))

    @abstractmethod
    def need(self, dataset: DatasetSpec, search_path: tuple[Path, ...]
             ) -> tuple[Hashable, Callable[[], Sink]]:
        """The sink this quantity reads, as (key, factory)."""

    def read(self, ev: Evaluation) -> tuple[Any, DatasetSpec]:
        dataset = self.dataset(ev)
        key, factory = self.need(dataset, ev.search_path)
        return request(ev.plan, ev.subject, dataset, key, factory, ev.interventions), dataset

    def context(self, dataset: DatasetSpec) -> dict[str, Any]:
        return {"dataset": dataset.describe(), "samples": load_dataset(dataset).n}


@register_quantity
class Activation(ForwardQuantity):
    """A module's output (``input: true``: its input) over the dataset, captured by a forward
    hook: ``activation: blocks.1.attn.hook_pattern``. Axis names follow TransformerLens."""

    key = "activation"
    options = frozenset({"data", "input"})

    def need(self, dataset: DatasetSpec, search_path: tuple[Path, ...]
             ) -> tuple[Hashable, Callable[[], Sink]]:
        hook, read_input = self.config["activation"], bool(self.config.get("input", False))
        return ("capture", hook, read_input), lambda: CaptureSink(hook, read_input)

    def compute(self, ev: Evaluation) -> Labelled:
        from interp_assert.evaluate.sequential import is_cut_short

        array, dataset = self.read(ev)
        positions = load_dataset(dataset).positions  # a text dataset derives them from tokens
        definition = ev.definitions.get(self.name)
        axes = declared_axes(self.config["activation"], array.shape, positions,
                             getattr(definition, "axes", None))
        meta: dict[str, Any] = {"context": self.context(dataset)}
        if ev.subject is not None and is_cut_short(ev.subject, dataset, ev.interventions):
            meta["cut_short"] = True  # a sequential pass stopped early: its first samples
            meta["context"]["samples"] = int(array.shape[0]) if array.ndim else 0
        return Labelled(array, axes, self.name, meta, keep_float32=True)

    def stale(self, ev: Evaluation, value: Labelled) -> bool:
        """Whether a value read from a pass that stopped early no longer stands for this
        evaluation's plan (evaluate/sequential.py): then it is computed again."""
        from interp_assert.evaluate.sequential import cut_short_stale

        return cut_short_stale(ev.plan, ev.subject, self.dataset(ev), ev.interventions, value)


@register_quantity
class Distribution(ForwardQuantity):
    """Streaming per-channel statistics of an activation, pooled over batch and positions:
    ``distribution: blocks.0.mlp.hook_post``. Its value is the per-channel mean; distribution
    claims read the histograms, moments and peaks."""

    key = "distribution"
    options = frozenset({"data", "input", "bins", "thresholds"})

    def validate(self) -> None:
        bins = self.config.get("bins", 1024)
        if not isinstance(bins, int) or bins < 8 or bins % 2:
            raise SpecError(f"quantity '{self.name}': 'bins' must be an even number >= 8",
                            self.location)

    def need(self, dataset: DatasetSpec, search_path: tuple[Path, ...]
             ) -> tuple[Hashable, Callable[[], Sink]]:
        hook, read_input = self.config["distribution"], bool(self.config.get("input", False))
        bins = int(self.config.get("bins", 1024))
        thresholds = tuple(float(t) for t in self.config.get("thresholds", ()))
        if head_channels(hook):  # one channel per (head, d_head): heads are not pooled
            from interp_assert.evaluate.head_channels import HeadChannelSink

            return (("distribution", hook, read_input, bins, thresholds, "head×d_head"),
                    lambda: HeadChannelSink(hook, read_input, bins, thresholds))
        return (("distribution", hook, read_input, bins, thresholds),
                DistributionFactory(hook, read_input, bins, thresholds))

    def stale(self, ev: Evaluation, value: Labelled) -> bool:
        """Whether a value computed earlier kept no raw samples where this evaluation's plan
        keeps them (a claim reading quantiles or fractions): then it is computed again."""
        stats = value.meta.get("stats")
        if stats is None or stats.exact or stats.dropped != NOT_KEPT:
            return False
        if ev.plan is None:
            return True
        dataset = self.dataset(ev)
        key, factory = self.need(dataset, ev.search_path)
        planned = ev.plan.sinks((ev.subject.spec, dataset, ev.interventions), key, factory)
        return bool(getattr(planned[key], "keeps_samples", True))

    def compute(self, ev: Evaluation) -> Labelled:
        result, dataset = self.read(ev)
        hook = self.config["distribution"]
        if isinstance(result, tuple):  # (stats, (heads, d_head)): channels head × d_head
            stats, (n_heads, d_head) = result
            axes = activation_axes(hook, (1, 1, n_heads, d_head), None)[-2:]
            mean = stats.mean().reshape(n_heads, d_head)
        else:
            stats = result
            axes = activation_axes(hook, (1, 1, stats.channels), None)[-1:]
            mean = stats.mean()
        return Labelled(mean, axes, self.name,
                        {"stats": stats, "context": {**self.context(dataset),
                                                     "values per channel": int(stats.n)}})


@register_quantity
class MetricQuantity(ForwardQuantity):
    """A behaviour metric (``metric: exact_match`` ... or ``metric: package.module:function``)
    computed from the logits of the planned forward pass."""

    key = "metric"

    @classmethod
    def allowed_options(cls, raw: Mapping[str, Any]) -> frozenset[str]:
        from interp_assert.evaluate.metrics import METRICS, CustomMetric

        metric = METRICS.get(str(raw.get("metric", "")), CustomMetric)
        return metric.options | {"data"}

    def validate(self) -> None:
        from interp_assert.evaluate.metrics import METRICS

        name = self.config["metric"]
        if not isinstance(name, str) or (":" not in name and name not in METRICS):
            from interp_assert.errors import did_you_mean

            raise SpecError(f"quantity '{self.name}': unknown metric '{name}'"
                            + did_you_mean(str(name), METRICS), self.location,
                            hint="built-in metrics: " + ", ".join(sorted(METRICS)))

    def need(self, dataset: DatasetSpec, search_path: tuple[Path, ...]
             ) -> tuple[Hashable, Callable[[], Sink]]:
        from interp_assert.evaluate.metrics import make_metric

        config = {k: v for k, v in self.config.items() if k not in ("metric", "data")}
        frozen = tuple(sorted((k, repr(v)) for k, v in config.items()))
        reference = self.config["metric"]
        return (("metric", reference, frozen),
                lambda: make_metric(reference, config, load_dataset(dataset), search_path))

    def compute(self, ev: Evaluation) -> Labelled:
        value, _dataset = self.read(ev)
        return Labelled(value.values, value.axes, self.name, dict(value.meta))

    def stale(self, ev: Evaluation, value: Labelled) -> bool:
        """Whether a value read from a pass that stopped early no longer stands for this
        evaluation's plan (evaluate/sequential.py): then it is computed again."""
        from interp_assert.evaluate.sequential import cut_short_stale

        return cut_short_stale(ev.plan, ev.subject, self.dataset(ev), ev.interventions, value)
