"""Metrics read off the logits at the answer: the logit difference between two tokens and the
probability of the answer token (``docs/definitions.md``, "Metrics and attention")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from interp_assert.errors import SpecError
from interp_assert.evaluate.metrics import (
    Metric,
    _joined,
    _logsumexp,
    _numpy,
    register_metric,
)
from interp_assert.labels import Labelled
from interp_assert.loading.data import Dataset


@register_metric
class LogitDifference(Metric):
    """Mean of logit[correct] - logit[incorrect] at ``position``; the token ids per sample come
    from the dataset fields named by ``correct`` and ``incorrect``."""

    name = "logit_diff"
    options = Metric.options | {"position", "correct", "incorrect"}

    def __init__(self, config: Mapping[str, Any], dataset: Dataset) -> None:
        super().__init__(config, dataset)
        for key in ("position", "correct", "incorrect"):
            if key not in self.config:
                raise SpecError(f"metric 'logit_diff' needs '{key}:'")
        self.position = dataset.position_index(str(self.config["position"]))
        self.values: list[np.ndarray] = []

    def update(self, logits: Any, batch: dict[str, Any]) -> None:
        array = _numpy(logits.float())[:, self.position]
        correct = _numpy(batch[self.config["correct"]]).astype(np.int64).reshape(-1, 1)
        incorrect = _numpy(batch[self.config["incorrect"]]).astype(np.int64).reshape(-1, 1)
        diff = (np.take_along_axis(array, correct, 1) - np.take_along_axis(array, incorrect, 1))
        self.values.append(diff[:, 0].astype(np.float64))

    def per_sample(self) -> tuple[np.ndarray, None]:
        """Each sample's logit difference so far, in dataset order; unbounded."""
        return _joined(self.values), None

    def result(self) -> Labelled:
        samples = np.concatenate(self.values)
        return Labelled(np.array(samples.mean()), (), self.name,
                        {"samples": samples, "context": self.context()})


@register_metric
class AnswerProbability(Metric):
    """Probability of the answer token: per sample, the mean over the ``answer:`` positions p of
    softmax(logits at p − 1)[token at p] (``predict: same``: at p); the metric is the mean over
    samples (each sample's value is kept for intervals)."""

    name = "answer_prob"

    def __init__(self, config: Mapping[str, Any], dataset: Dataset) -> None:
        super().__init__(config, dataset)
        if self.answer_index is None:
            raise SpecError("metric 'answer_prob' needs 'answer:' (the answer position labels)",
                            hint="answer_prob: {metric: answer_prob, answer: A0..A10}")
        self.values: list[np.ndarray] = []

    def update(self, logits: Any, batch: dict[str, Any]) -> None:
        targets, rows = self.targets_and_logits(logits, batch)
        probs = np.exp(rows.astype(np.float64) - _logsumexp(rows.astype(np.float64)))
        picked = np.take_along_axis(probs, targets[..., None].astype(np.int64), axis=-1)[..., 0]
        self.values.append(picked.mean(axis=1))

    def result(self) -> Labelled:
        samples = np.concatenate(self.values)
        return Labelled(np.array(samples.mean()), (), self.name,
                        {"samples": samples, "context": self.context()})
