"""Behaviour metrics computed from logits during the planned forward pass.

Each metric is a :class:`~interp_assert.evaluate.forward.Sink` on the model output. Rates carry
their counts (``successes``/``trials``: Wilson intervals); means carry per-sample values
(``samples``: bootstrap intervals). By default the logits at position p predict the token at
p + 1 (causal language models); ``predict: same`` reads the logits at p itself.

Positions always name the scored *tokens*, never the logits that predict them: ``answer: A0``
scores the token at A0 (predicted by the logits at A0 - 1 by default), and ``mask: repeated``
scores every token t where the field is true, predicted by the logits at t - 1 (at t with
``predict: same``). A dataset whose field marks the predicting positions must shift it by one.
``docs/definitions.md (Metrics and attention)`` has the formulas.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from interp_assert.errors import QuantityError, SpecError, did_you_mean
from interp_assert.evaluate.forward import Sink
from interp_assert.labels import Axis, Labelled, expand_labels
from interp_assert.loading.data import Dataset
from interp_assert.usercode import call_user, resolve_callable

METRICS: dict[str, type[Metric]] = {}

MASK_HINT = ("a mask marks the scored tokens: the token at t, predicted by the logits at t - 1 "
             "(position 0 is never scored); a field that marks the predicting positions must be "
             "shifted right by one, or use 'predict: same'")


def register_metric(cls: type[Metric]) -> type[Metric]:
    """Class decorator adding a built-in metric (its ``name`` is used as ``metric: name``)."""
    METRICS[cls.name] = cls
    return cls


def _numpy(value: Any) -> np.ndarray:
    """A tensor on the host as numpy (bfloat16, which numpy lacks, as float32)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        return (value.float() if str(value.dtype) == "torch.bfloat16" else value).numpy()
    return np.asarray(value)


class Metric(Sink):
    """Base of metrics: reads answer positions and targets from the dataset."""

    name: ClassVar[str]
    options: ClassVar[frozenset[str]] = frozenset({"answer", "predict", "targets"})
    hook = None

    def __init__(self, config: Mapping[str, Any], dataset: Dataset) -> None:
        self.config = dict(config)
        self.dataset = dataset
        answer = self.config.get("answer")
        self.answer_labels = expand_labels(answer) if answer is not None else None
        self.answer_index = ([dataset.position_index(label) for label in self.answer_labels]
                             if self.answer_labels else None)
        self.shift = 0 if self.config.get("predict", "next") == "same" else 1

    def targets_and_logits(self, logits: Any, batch: dict[str, Any]) -> tuple[np.ndarray,
                                                                               np.ndarray]:
        """[batch, answer] target ids and [batch, answer, vocab] logits that predict them."""
        if self.answer_index is None:
            raise SpecError(f"metric '{self.name}' needs 'answer:' (the answer position labels)")
        tokens = _numpy(batch[self.config.get("targets", self.dataset.spec.input)])
        index = np.array(self.answer_index)
        predicting = index - self.shift
        if predicting.min() < 0:
            raise SpecError(f"metric '{self.name}': answer position {self.answer_labels[0]} "
                            "has no earlier position to predict it from",
                            hint="use 'predict: same' for models that predict in place")
        return tokens[:, index], _numpy(logits.float())[:, predicting]

    def context(self) -> dict[str, Any]:
        return {"dataset": self.dataset.spec.describe(), "samples": self.dataset.n}


@register_metric
class ExactMatch(Metric):
    """Fraction of samples whose every answer token is the argmax prediction."""

    name = "exact_match"

    def __init__(self, config: Mapping[str, Any], dataset: Dataset) -> None:
        super().__init__(config, dataset)
        self.correct = self.total = 0
        self.rows: list[np.ndarray] = []

    def update(self, logits: Any, batch: dict[str, Any]) -> None:
        targets, answer_logits = self.targets_and_logits(logits, batch)
        right = np.all(answer_logits.argmax(-1) == targets, axis=1)
        self.correct += int(right.sum())
        self.total += right.size
        self.rows.append(right.astype(np.float64))

    def per_sample(self) -> tuple[np.ndarray, tuple[float, float]]:
        """Each sample's 0/1 so far, in dataset order, and their range (sequential claims)."""
        return _joined(self.rows), (0.0, 1.0)

    def result(self) -> Labelled:
        value = self.correct / self.total if self.total else float("nan")
        # per-sample 0/1 (paired intervals of ablations); the rate's interval stays Wilson's
        samples = np.concatenate(self.rows) if self.rows else np.zeros(0)
        return Labelled(np.array(value), (), self.name,
                        {"successes": np.array(self.correct), "trials": np.array(self.total),
                         "samples": samples, "range": (0.0, 1.0), "context": self.context()})


@register_metric
class PositionError(Metric):
    """Error rate per answer position; with ``by: feature`` split into without/with."""

    name = "position_error"
    options = Metric.options | {"by"}

    def __init__(self, config: Mapping[str, Any], dataset: Dataset) -> None:
        super().__init__(config, dataset)
        width = len(self.answer_labels or [])
        self.by = self.config.get("by")
        strata = 2 if self.by else 1
        self.errors = np.zeros((width, strata), dtype=np.int64)
        self.counts = np.zeros((width, strata), dtype=np.int64)

    def update(self, logits: Any, batch: dict[str, Any]) -> None:
        targets, answer_logits = self.targets_and_logits(logits, batch)
        wrong = answer_logits.argmax(-1) != targets
        if self.by:
            feature = _numpy(batch[self.by]) if self.by in batch else None
            if feature is None:
                raise SpecError(f"metric '{self.name}': dataset has no field '{self.by}'"
                                + did_you_mean(self.by, batch))
            if feature.shape[1] != wrong.shape[1]:
                feature = feature[:, np.array(self.answer_index)]
            stratum = (feature != 0).astype(np.int64)
        else:
            stratum = np.zeros_like(wrong, dtype=np.int64)
        for s in range(self.errors.shape[1]):
            mask = stratum == s
            self.errors[:, s] += np.sum(wrong & mask, axis=0)
            self.counts[:, s] += np.sum(mask, axis=0)

    def result(self) -> Labelled:
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = self.errors / self.counts
        meta = {"successes": self.errors, "trials": self.counts, "context": self.context()}
        answer_axis = Axis("answer", tuple(self.answer_labels or ()))
        if self.by:
            return Labelled(rate, (answer_axis, Axis(self.by, ("without", "with"))), self.name,
                            meta)
        return Labelled(rate[:, 0], (answer_axis,), self.name,
                        {**meta, "successes": self.errors[:, 0], "trials": self.counts[:, 0]})


@register_metric
class TokenAccuracy(Metric):
    """Fraction of answer tokens predicted right."""

    name = "token_accuracy"

    def __init__(self, config: Mapping[str, Any], dataset: Dataset) -> None:
        super().__init__(config, dataset)
        self.correct = self.total = 0
        self.rows: list[np.ndarray] = []

    def update(self, logits: Any, batch: dict[str, Any]) -> None:
        targets, answer_logits = self.targets_and_logits(logits, batch)
        right = answer_logits.argmax(-1) == targets
        self.correct += int(right.sum())
        self.total += right.size
        self.rows.append(right.sum(axis=1).astype(np.float64))

    def per_sample(self) -> tuple[np.ndarray, tuple[float, float]]:
        """Each sample's fraction of answer tokens right so far (every sample has the same
        answer positions, so their mean is the pooled rate), and their range."""
        width = float(len(self.answer_index or ())) or 1.0
        return _joined(self.rows) / width, (0.0, 1.0)

    def result(self) -> Labelled:
        # the sampled unit is the sequence: its correct tokens over its scored tokens
        # (``clusters``, a ratio-of-sums bootstrap), not each token (Wilson over tokens)
        correct = np.concatenate(self.rows) if self.rows else np.zeros(0)
        width = float(len(self.answer_index or ()))
        return Labelled(np.array(self.correct / self.total if self.total else np.nan), (),
                        self.name, {"successes": np.array(self.correct),
                                    "trials": np.array(self.total),
                                    "clusters": (correct, np.full(correct.size, width)),
                                    "samples": correct / width if width else correct,
                                    "range": (0.0, 1.0),
                                    "context": self.context()})


@register_metric
class ErrorDirection(Metric):
    """Among wrong answer tokens, the fraction with (prediction - target) mod m = each offset."""

    name = "error_direction"
    options = Metric.options | {"modulus"}

    def __init__(self, config: Mapping[str, Any], dataset: Dataset) -> None:
        super().__init__(config, dataset)
        self.modulus = int(self.config.get("modulus", 10))
        self.histogram = np.zeros(self.modulus, dtype=np.int64)

    def update(self, logits: Any, batch: dict[str, Any]) -> None:
        targets, answer_logits = self.targets_and_logits(logits, batch)
        predictions = answer_logits.argmax(-1)
        wrong = predictions != targets
        offsets = (predictions[wrong] - targets[wrong]) % self.modulus
        self.histogram += np.bincount(offsets, minlength=self.modulus)[: self.modulus]

    def result(self) -> Labelled:
        total = self.histogram.sum()
        with np.errstate(invalid="ignore", divide="ignore"):
            values = self.histogram / total
        labels = tuple(str(i) for i in range(self.modulus))
        return Labelled(values, (Axis("offset", labels),), self.name,
                        {"successes": self.histogram,
                         "trials": np.full(self.modulus, total), "context": self.context()})


@register_metric
class Loss(Metric):
    """Mean cross-entropy (nats) on the answer tokens, or on the tokens where a boolean field is
    true (``mask: repeated``; ``mask: not repeated`` for the complement). A mask marks scored
    tokens: the token at t, predicted by the logits at t - 1 (``predict: same``: at t); the
    first token, which no logit predicts, is never scored.

    ``average: samples`` (the default) is the mean over samples of each sample's mean loss
    (samples with no scored token left out); ``average: tokens`` pools every scored token of
    every sample (``losses[mask].mean()``, as training scripts compute it)."""

    name = "loss"
    options = Metric.options | {"mask", "average"}

    def __init__(self, config: Mapping[str, Any], dataset: Dataset) -> None:
        super().__init__(config, dataset)
        self.sums: list[np.ndarray] = []
        self.counts: list[np.ndarray] = []
        mask = str(self.config.get("mask", "")).strip()
        self.negate = mask.startswith("not ")
        self.mask = mask[4:].strip() if self.negate else mask or None
        if self.mask is None and self.answer_index is None:
            raise SpecError("metric 'loss' needs 'answer:' positions or a 'mask:' field")
        self.average = str(self.config.get("average", "samples"))
        if self.average not in ("samples", "tokens"):
            raise SpecError(f"metric 'loss': unknown 'average: {self.average}'",
                            hint="'average: samples' (mean of per-sample means, the default) "
                                 "or 'average: tokens' (every scored token pooled)")

    def scored(self, batch: dict[str, Any], tokens: np.ndarray) -> np.ndarray:
        """(batch, position) booleans: the tokens the mask scores (see the class doc)."""
        assert self.mask is not None
        if self.mask not in batch:
            raise QuantityError(f"metric 'loss': dataset has no field '{self.mask}' for 'mask:'"
                                + did_you_mean(self.mask, batch),
                                hint="fields: " + ", ".join(sorted(batch)))
        raw = _numpy(batch[self.mask])
        if raw.shape != tokens.shape:
            raise QuantityError(f"metric 'loss': mask '{self.mask}' has shape {raw.shape} but "
                                f"the tokens have shape {tokens.shape}",
                                hint="a mask marks scored tokens, one entry per token")
        if raw.dtype != np.bool_ and not np.isin(raw, (0, 1)).all():
            raise QuantityError(f"metric 'loss': mask '{self.mask}' holds values other than "
                                "0/1 or true/false")
        mask = ~raw.astype(bool) if self.negate else raw.astype(bool)
        mask[:, : self.shift] = False  # no earlier position predicts the first token
        return mask

    def update(self, logits: Any, batch: dict[str, Any]) -> None:
        array = _numpy(logits.float())
        tokens = _numpy(batch[self.config.get("targets", self.dataset.spec.input)])
        lse = _logsumexp(array)[..., 0]  # [batch, position]; no [batch, position, vocab] copy
        rows = np.arange(array.shape[0])[:, None]
        if self.mask is not None:
            mask = self.scored(batch, tokens)
            source = np.clip(np.arange(tokens.shape[1]) - self.shift, 0, None)
            picked = array[rows, source[None], tokens] - lse[:, source]
            self.sums.append(np.where(mask, -picked, 0.0).sum(axis=1, dtype=np.float64))
            self.counts.append(mask.sum(axis=1))
        else:
            targets, _ = self.targets_and_logits(logits, batch)
            index = np.array(self.answer_index) - self.shift
            picked = array[rows, index[None], targets] - lse[:, index]
            self.sums.append(-picked.sum(axis=1, dtype=np.float64))
            self.counts.append(np.full(picked.shape[0], picked.shape[1]))

    def per_sample(self) -> tuple[np.ndarray, None]:
        """Each scored sample's mean loss so far, in dataset order; unbounded (sequential
        claims with ``average: samples``)."""
        sums, counts = _joined(self.sums), _joined(self.counts)
        return sums[counts > 0] / counts[counts > 0], None

    def result(self) -> Labelled:
        sums, counts = np.concatenate(self.sums), np.concatenate(self.counts)
        if not counts.sum():
            what = f"{'not ' if self.negate else ''}{self.mask}"
            raise QuantityError(f"metric 'loss': mask '{what}' selects no scored token in "
                                f"{counts.size} samples", hint=MASK_HINT)
        if self.average == "tokens":
            value = sums.sum() / counts.sum()
            # per-sample contributions whose plain mean is the pooled value (bootstrap over
            # samples with the token count held at its mean)
            samples = sums / counts.mean()
        else:
            samples = sums[counts > 0] / counts[counts > 0]
            value = samples.mean()
        return Labelled(np.array(value), (), self.name,
                        {"samples": samples, "context": self.context(),
                         "tokens": int(counts.sum())})


def _logsumexp(array: np.ndarray, chunk_bytes: int = 1 << 25) -> np.ndarray:
    """log Σ exp over the last axis (max-shifted, in the array's dtype), keeping the last
    axis as size 1. Worked in chunks of rows of about ``chunk_bytes``, so that a batch of
    logits never gets a same-sized temporary; each row's arithmetic is unchanged."""
    flat = array.reshape(-1, array.shape[-1])
    out = np.empty((flat.shape[0], 1), dtype=np.result_type(array.dtype, np.float32))
    step = max(1, chunk_bytes // max(1, flat.shape[1] * flat.itemsize))
    for start in range(0, flat.shape[0], step):
        part = flat[start:start + step]
        top = part.max(axis=-1, keepdims=True)
        out[start:start + step] = top + np.log(np.sum(np.exp(part - top), axis=-1,
                                                      keepdims=True))
    return out.reshape(*array.shape[:-1], 1)


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    """Per-batch arrays as one (empty before any batch)."""
    return np.concatenate(parts) if parts else np.zeros(0)


class CustomMetric(Metric):
    """A user callable ``f(logits, batch) -> per-sample values``; the metric is their mean."""

    name = "custom"
    options = Metric.options | {"args"}

    def __init__(self, config: Mapping[str, Any], dataset: Dataset, reference: str,
                 search_path: Any) -> None:
        super().__init__(config, dataset)
        self.reference = reference
        self.function = resolve_callable(reference, search_path, "metric")
        self.values: list[np.ndarray] = []

    def update(self, logits: Any, batch: dict[str, Any]) -> None:
        out = call_user(self.function, f"metric '{self.reference}'", logits, batch,
                        **dict(self.config.get("args") or {}))
        self.values.append(np.atleast_1d(_numpy(out)).astype(np.float64).reshape(-1))

    def result(self) -> Labelled:
        samples = np.concatenate(self.values)
        return Labelled(np.array(samples.mean()), (), self.reference,
                        {"samples": samples, "context": self.context()})


def make_metric(reference: str, config: Mapping[str, Any], dataset: Dataset,
                search_path: Any) -> Metric:
    """A built-in metric by name, or a custom one by 'module:function'."""
    if ":" in reference:
        return CustomMetric(config, dataset, reference, search_path)
    if reference not in METRICS:
        raise SpecError(f"unknown metric '{reference}'" + did_you_mean(reference, METRICS),
                        hint="built-in metrics: " + ", ".join(sorted(METRICS))
                        + "; or 'package.module:function'")
    return METRICS[reference](config, dataset)


# the metrics read off the logits of one answer (registered on import; re-exported here)
from interp_assert.evaluate.logit_metrics import (  # noqa: E402
    AnswerProbability,
    LogitDifference,
)

__all__ = ["METRICS", "AnswerProbability", "CustomMetric", "LogitDifference", "Metric",
           "make_metric", "register_metric"]
