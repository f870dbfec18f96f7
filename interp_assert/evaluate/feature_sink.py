"""Feature activations of a sparse dictionary, encoded batch by batch during the planned pass.

The sink reads the dictionary's hook, encodes each batch in float64 (``f = act((x − b_dec) @
W_enc + b_enc)``, the ``− b_dec`` only with ``apply_b_dec_to_input``) and keeps only the nonzero
activations, as (sample, position, feature, value) rows: memory grows with the number of active
(token, feature) pairs, not with tokens × d_sae. Frequencies, top activations and histograms
are read from those rows (:class:`FeatureActivations`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from interp_assert.errors import QuantityError
from interp_assert.evaluate.forward import Sink
from interp_assert.loading.dictionary import SparseDictionary, activate

_ROW_BYTES = 8 + 4 + 4 + 8  # sample (int64), position, feature (int32), value (float64)


def encode_torch(dictionary: SparseDictionary, x: Any) -> Any:
    """Feature activations of a tensor ``x [..., d_in]`` in float64 on its device."""
    import torch

    weights = dictionary.tensors(x.device, torch.float64)
    x = x.to(torch.float64)
    if dictionary.apply_b_dec_to_input:
        x = x - weights["b_dec"]
    pre = x @ weights["W_enc"] + weights["b_enc"]
    return activate(pre, dictionary.architecture, weights.get("threshold"), dictionary.k)


def check_width(dictionary: SparseDictionary, hook: str, shape: tuple[int, ...]) -> None:
    """A hook whose last axis is not the dictionary's ``d_in`` is a clear error."""
    if not shape or shape[-1] != dictionary.d_in:
        raise QuantityError(
            f"{dictionary.describe()}: hook '{hook}' gives activations of shape {shape}, but "
            f"the dictionary reads vectors of {dictionary.d_in}",
            hint="point the dictionary at the hook it was trained on ('hook_name' in its "
                 "cfg.json, or 'hook:' in the quantity)")


class FeatureSink(Sink):
    """Keeps the nonzero feature activations of every token of the pass."""

    def __init__(self, dictionary: SparseDictionary, hook: str) -> None:
        self.dictionary, self.hook = dictionary, hook
        self.parts: list[tuple[np.ndarray, ...]] = []
        self.n = 0
        self.n_pos = 1

    def update(self, value: Any, batch: dict[str, Any]) -> None:
        tensor = value[0] if isinstance(value, tuple | list) else value
        check_width(self.dictionary, str(self.hook), tuple(tensor.shape))
        x = tensor.detach()
        if x.ndim == 2:  # one vector per sample: a single position
            x = x[:, None, :]
        if x.ndim != 3:
            raise QuantityError(f"hook '{self.hook}' gives {x.ndim}-d activations; a "
                                "dictionary reads [batch, pos, d_in] or [batch, d_in]")
        self.n_pos = int(x.shape[1])
        features = encode_torch(self.dictionary, x)
        rows = features.nonzero()
        values = features[rows[:, 0], rows[:, 1], rows[:, 2]].cpu().numpy()
        rows = rows.cpu().numpy()
        index = np.asarray(batch["_index"])
        self.parts.append((index[rows[:, 0]].astype(np.int64), rows[:, 1].astype(np.int32),
                           rows[:, 2].astype(np.int32), values.astype(np.float64)))
        self.n = max(self.n, int(index[-1]) + 1) if len(index) else self.n

    def bytes_needed(self, seen: int, total: int) -> int:
        kept = sum(len(part[0]) for part in self.parts) * _ROW_BYTES
        return 2 * kept * total // max(seen, 1)

    def result(self) -> FeatureActivations:
        if self.parts:
            columns = [np.concatenate([part[i] for part in self.parts]) for i in range(4)]
        else:
            columns = [np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int32),
                       np.zeros(0)]
        return FeatureActivations(self.dictionary, self.n, self.n_pos, *columns)

    def release(self) -> None:
        self.parts = []


@dataclass(eq=False)
class FeatureActivations:
    """The nonzero activations of a pass: row r is feature ``feature[r]`` of the token at
    ``(sample[r], position[r])`` with activation ``value[r]`` (> 0 for ReLU-type dictionaries);
    every other (token, feature) is 0."""

    dictionary: SparseDictionary
    n: int
    n_pos: int
    sample: np.ndarray
    position: np.ndarray
    feature: np.ndarray
    value: np.ndarray

    @property
    def d_sae(self) -> int:
        return self.dictionary.d_sae

    def dense(self, feature: int) -> np.ndarray:
        """Feature ``feature``'s activation on every token, ``[sample, position]``."""
        out = np.zeros((self.n, self.n_pos))
        rows = self.feature == feature
        out[self.sample[rows], self.position[rows]] = self.value[rows]
        return out

    def all_dense(self) -> np.ndarray:
        """Every activation ``[sample, position, feature]`` (tests and small dictionaries)."""
        out = np.zeros((self.n, self.n_pos, self.d_sae))
        out[self.sample, self.position, self.feature] = self.value
        return out

    def _where(self, positions: tuple[int, ...] | None) -> np.ndarray:
        if positions is None:
            return np.ones(len(self.value), dtype=bool)
        return np.isin(self.position, np.asarray(positions))

    def token_counts(self, positions: tuple[int, ...] | None = None) -> tuple[np.ndarray, int]:
        """Per feature, the tokens (at ``positions``) where it is nonzero, and the tokens."""
        where = self._where(positions)
        counts = np.bincount(self.feature[where], minlength=self.d_sae)
        width = self.n_pos if positions is None else len(positions)
        return counts.astype(np.int64), self.n * width

    def sample_counts(self, positions: tuple[int, ...] | None = None
                      ) -> tuple[np.ndarray, int]:
        """Per feature, the samples where it is nonzero on some token (at ``positions``)."""
        where = self._where(positions)
        pairs = np.unique(np.stack([self.feature[where], self.sample[where]]), axis=1)
        return np.bincount(pairs[0], minlength=self.d_sae).astype(np.int64), self.n

    def top(self, feature: int, count: int, positions: tuple[int, ...] | None = None
            ) -> list[tuple[int, int, float]]:
        """The ``count`` largest activations of ``feature`` as (sample, position, value),
        largest first (ties: lower sample, then lower position first)."""
        rows = np.flatnonzero((self.feature == feature) & self._where(positions))
        order = np.lexsort((self.position[rows], self.sample[rows], -self.value[rows]))
        chosen = rows[order[:count]]
        return [(int(self.sample[r]), int(self.position[r]), float(self.value[r]))
                for r in chosen]
