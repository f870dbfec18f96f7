"""Attribution patching (Nanda 2023): a linear estimate of every head's (or neuron's) patching
effect from one forward-backward pass.

For a metric ``M`` of the target (corrupted) run and a component activation ``a``, patching it
from the source (clean) run changes ``M`` by about
``Σ_{sample, position, unit dims} (a_source − a_target) · ∂M/∂a`` with the gradient taken at
the target run. This pass is the only one that records gradients: it runs on its own, keyed
``("gradient", ...)``, and only when an attribution claim is evaluated; every planned forward
pass (:func:`interp_assert.evaluate.forward.run_forward`) stays under ``torch.inference_mode``.

``M`` must be a mean over the dataset of a differentiable function of the logits: it is
written ``Σ_batches T_b / D`` (:class:`GradientMetric`), so each batch's gradient is that of
``T_b`` and the sums are divided by ``D`` at the end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from interp_assert.errors import QuantityError
from interp_assert.evaluate.batching import model_placement, on_device, sized_batches
from interp_assert.evaluate.circuit_weights import WeightContext
from interp_assert.evaluate.forward import model_output
from interp_assert.evaluate.interventions import Component, activations
from interp_assert.evaluate.metrics import (
    AnswerProbability,
    LogitDifference,
    Loss,
    Metric,
    make_metric,
)
from interp_assert.loading.data import DatasetSpec, load_dataset
from interp_assert.progress import phase

GRADIENT_PASSES: list[tuple[Any, ...]] = []  # a log of gradient passes run (tests read it)
DIFFERENTIABLE = ("loss", "logit_diff", "answer_prob")


class GradientMetric:
    """A ``loss`` or ``logit_diff`` metric as torch operations: ``numerator`` gives a batch's
    ``T_b`` (a differentiable scalar) and adds its share to ``denominator``."""

    def __init__(self, metric: Metric) -> None:
        self.metric = metric
        self.denominator = 0.0
        #: per row of the last batch: whether the metric keeps that sample among its
        #: per-sample values (a sample-averaged loss leaves out samples scoring no token)
        self.kept = np.zeros(0, dtype=bool)

    def numerator(self, logits: Any, batch: dict[str, Any]) -> Any:
        import torch

        metric = self.metric
        array = logits.double()
        if isinstance(metric, LogitDifference):
            rows = array[:, metric.position]
            correct = _ids(batch, metric.config["correct"], rows.device)
            incorrect = _ids(batch, metric.config["incorrect"], rows.device)
            self.denominator += rows.shape[0]
            self.kept = np.ones(rows.shape[0], dtype=bool)
            return (rows.gather(1, correct) - rows.gather(1, incorrect)).sum()
        if isinstance(metric, AnswerProbability):
            return self._probability(array, batch)
        assert isinstance(metric, Loss)
        tokens = _host(batch[metric.config.get("targets", metric.dataset.spec.input)])
        log_probs = array.log_softmax(-1)
        if metric.mask is not None:
            mask = metric.scored(batch, tokens)
            source = np.clip(np.arange(tokens.shape[1]) - metric.shift, 0, None)
            chosen = tokens
        else:
            if metric.answer_index is None:  # pragma: no cover - Loss refuses it
                raise QuantityError("metric 'loss' needs 'answer:' or 'mask:'")
            index = np.asarray(metric.answer_index)
            source = index - metric.shift
            chosen = tokens[:, index]
            mask = np.ones(chosen.shape, dtype=bool)
        target = torch.as_tensor(chosen, device=array.device)[..., None]
        picked = log_probs[:, torch.as_tensor(source, device=array.device)].gather(
            -1, target)[..., 0]
        weights = torch.as_tensor(mask, dtype=array.dtype, device=array.device)
        counts = mask.sum(axis=1)
        self.kept = np.ones(counts.shape[0], dtype=bool) if metric.average == "tokens" \
            else counts > 0
        if metric.average == "tokens":
            self.denominator += float(counts.sum())
        else:  # mean over samples (with a scored token) of each sample's mean loss
            weights = weights / torch.as_tensor(np.maximum(counts, 1), dtype=array.dtype,
                                                device=array.device)[:, None]
            self.denominator += float((counts > 0).sum())
        return -(picked * weights).sum()

    def _probability(self, array: Any, batch: dict[str, Any]) -> Any:
        """``answer_prob``: the batch's sum over samples of the mean answer probability."""
        import torch

        metric = self.metric
        tokens = _host(batch[metric.config.get("targets", metric.dataset.spec.input)])
        index = np.asarray(metric.answer_index)
        chosen = torch.as_tensor(tokens[:, index], device=array.device)[..., None]
        rows = array[:, torch.as_tensor(index - metric.shift, device=array.device)]
        self.denominator += rows.shape[0]
        self.kept = np.ones(rows.shape[0], dtype=bool)
        return rows.softmax(-1).gather(-1, chosen)[..., 0].mean(1).sum()


def _host(value: Any) -> np.ndarray:
    """A batch field as an int64 numpy array."""
    return np.asarray(value.cpu() if hasattr(value, "cpu") else value).astype(np.int64)


def _ids(batch: dict[str, Any], field: str, device: Any) -> Any:
    """Token ids of a batch field as a [batch, 1] tensor."""
    import torch

    return torch.as_tensor(_host(batch[field]), device=device).reshape(-1, 1)


def gradient_metric(config: Mapping[str, Any], target: DatasetSpec, what: str) -> GradientMetric:
    """The differentiable form of a ``metric:`` quantity's config on ``target``."""
    name = str(config.get("metric", ""))
    if name not in DIFFERENTIABLE:
        raise QuantityError(f"{what}: attribution patching needs a differentiable metric, and "
                            f"'{name}' is not one",
                            hint="use a 'metric: loss', 'logit_diff' or 'answer_prob' quantity")
    options = {k: v for k, v in config.items() if k not in ("metric", "data")}
    return GradientMetric(make_metric(name, options, load_dataset(target), ()))


#: the most per-sample attribution values a gradient pass keeps (float64, all hooks together)
PER_SAMPLE_LIMIT = 1 << 23


@dataclass
class Attribution:
    """Per hook, ``[position, unit]`` (heads, neurons) or ``[position]`` (modules) sums of
    ``(a_source − a_target) · ∂M/∂a``; ``metric``: M on the target from the same pass.

    ``per_sample``: the same products per sample (``[sample, position, unit]`` or
    ``[sample, position]``, not divided), None when they would exceed
    :data:`PER_SAMPLE_LIMIT` values; ``kept``: the samples the metric's per-sample values
    cover; ``denominator``: D of ``M = Σ T_b / D``."""

    sums: dict[str, np.ndarray]
    metric: float
    per_sample: dict[str, np.ndarray] | None = None
    kept: np.ndarray | None = None
    denominator: float = 1.0

    def estimate(self, part: Component, positions: Sequence[int] | None = None) -> float:
        """The estimated change of M when ``part`` is patched (at ``positions``)."""
        table = self.sums[part.hook]
        if positions is not None:
            table = table[list(positions)]
        if part.kind == "module":
            return float(table.sum())
        if not 0 <= (part.index or 0) < table.shape[1]:
            raise QuantityError(f"{part.label}: layer {part.layer} has {table.shape[1]} units")
        return float(table[:, part.index].sum())

    def sample_estimates(self, part: Component, positions: Sequence[int] | None = None
                         ) -> np.ndarray | None:
        """Per sample the metric keeps, the estimated change of that sample's value when
        ``part`` is patched: ``e_i · n / D`` (``e_i`` the sample's summed products, ``n`` the
        kept samples), whose mean is :meth:`estimate`. None without per-sample values."""
        if self.per_sample is None or self.kept is None:
            return None
        table = self.per_sample[part.hook]
        if positions is not None:
            table = table[:, list(positions)]
        if part.kind == "module":
            values = table.reshape(table.shape[0], -1).sum(axis=1)
        else:
            if not 0 <= (part.index or 0) < table.shape[2]:
                raise QuantityError(f"{part.label}: layer {part.layer} has {table.shape[2]} "
                                    "units")
            values = table[:, :, part.index].sum(axis=1)
        kept = values[self.kept]
        return kept * (kept.size / self.denominator)


def attribution(ctx: WeightContext, config: Mapping[str, Any], source: DatasetSpec,
                target: DatasetSpec, hooks: Sequence[tuple[str, str]], what: str
                ) -> Attribution:
    """One gradient pass over ``target`` (cached on the subject): the attribution sums at each
    ``(hook, kind)``, against the source's activations from a planned clean pass."""
    subject = ctx.subject
    frozen = tuple(sorted((k, repr(v)) for k, v in config.items()))
    key = ("gradient", source, target, frozen, tuple(hooks))
    with subject.lock:
        if key in subject.cache:
            return subject.cache[key]
    parts = [Component(hook, hook, "module") for hook, _ in hooks]
    clean = activations(ctx, source, parts)
    metric = gradient_metric(config, target, what)
    with subject.lock:
        if key not in subject.cache:
            with phase("pass", f"gradients of {target.name} on {subject.spec.label}"):
                subject.cache[key] = _gradient_pass(ctx, metric, target, hooks, clean)
            GRADIENT_PASSES.append(key)
        return subject.cache[key]


def _gradient_pass(ctx: WeightContext, metric: GradientMetric, target: DatasetSpec,
                   hooks: Sequence[tuple[str, str]], clean: dict[str, np.ndarray]
                   ) -> Attribution:
    import torch

    from interp_assert.evaluate.forward import find_module

    subject = ctx.subject
    model = subject.model
    if model is None:
        raise subject.no_model_error()
    dataset = load_dataset(target)
    device = model_placement(model, dataset.spec.device)[0]
    seen: dict[str, Any] = {}

    def keep(hook: str, output: Any) -> None:
        tensor = output[0] if isinstance(output, tuple | list) else output
        if not tensor.requires_grad and tensor.is_leaf:
            tensor.requires_grad_(True)
        seen[hook] = tensor

    handles = [find_module(model, hook, subject.spec.attention).register_forward_hook(
        lambda _m, _a, out, _h=hook: keep(_h, out)) for hook, _ in hooks]
    sums: dict[str, np.ndarray] = {}
    per_sample: dict[str, np.ndarray] | None = {}
    kept = np.zeros(dataset.n, dtype=bool)
    total = 0.0
    try:
        for batch in sized_batches(subject, model, dataset):
            batch = on_device(batch, device)
            seen.clear()
            with torch.enable_grad():
                logits, _ = model_output(model, batch, dataset)
                value = metric.numerator(logits, batch)
                missing = [hook for hook, _ in hooks if hook not in seen]
                if missing:
                    raise QuantityError(f"hook '{missing[0]}' never fired during the gradient "
                                        "pass")
                grads = torch.autograd.grad(value, [seen[h] for h, _ in hooks],
                                            allow_unused=True)
            total += float(value.detach())
            index = np.asarray(batch["_index"])
            kept[index] = metric.kept
            for (hook, kind), grad in zip(hooks, grads):
                act = seen[hook].detach().double().cpu().numpy()
                delta = clean[hook][index].astype(np.float64) - act
                gradient = np.zeros_like(act) if grad is None else \
                    grad.detach().double().cpu().numpy()
                rows = _per_sample(delta * gradient, kind)
                part = rows.sum(axis=0)
                sums[hook] = part if hook not in sums else sums[hook] + part
                per_sample = _keep_rows(per_sample, hook, rows, index, dataset.n, len(hooks))
    finally:
        for handle in handles:
            handle.remove()
    if not metric.denominator:
        raise QuantityError("attribution patching: the metric scores no token on "
                            f"'{target.name}'")
    return Attribution({hook: table / metric.denominator for hook, table in sums.items()},
                       total / metric.denominator, per_sample, kept, metric.denominator)


def _per_sample(product: np.ndarray, kind: str) -> np.ndarray:
    """A [batch, pos, ...] product summed over every axis past the unit, per sample."""
    if kind == "head":  # [batch, pos, head, d_head]
        return product.sum(axis=3)
    if kind == "neuron":  # [batch, pos, neuron]
        return product
    return product.reshape(product.shape[0], product.shape[1], -1).sum(axis=2)


def _keep_rows(per_sample: dict[str, np.ndarray] | None, hook: str, rows: np.ndarray,
               index: np.ndarray, n: int, hooks: int) -> dict[str, np.ndarray] | None:
    """Place a batch's per-sample rows of ``hook`` (None once the limit is passed)."""
    if per_sample is None:
        return None
    if hook not in per_sample:
        if (sum(t.size for t in per_sample.values()) + n * rows[0].size) > PER_SAMPLE_LIMIT:
            return None
        per_sample[hook] = np.zeros((n, *rows.shape[1:]), dtype=np.float64)
    per_sample[hook][index] = rows
    return per_sample
