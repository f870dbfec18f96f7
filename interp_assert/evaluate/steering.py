"""Steering: adding ``scale × direction`` to a hook's output at some positions, as a planned
forward-pass intervention (see :class:`interp_assert.evaluate.forward.Intervention`).

The direction has one entry per feature of the hook at one position (``d_model`` for the
residual stream; ``n_heads × d_head``, flattened, for ``hook_z``); it is added to every sample
in the batch, at each named position (every position when none is named).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from interp_assert.errors import QuantityError
from interp_assert.evaluate.forward import Intervention


@dataclass(frozen=True)
class Steering:
    """Adds ``scale * direction`` at ``positions`` (None: all) of a hook's output."""

    hook: str
    scale: float
    direction: np.ndarray
    positions: tuple[int, ...] | None = None

    def apply(self, output: Any, batch: dict[str, Any]) -> Any:
        import torch

        tensor = output[0] if isinstance(output, tuple | list) else output
        if tensor.ndim < 3:
            raise QuantityError(f"steering '{self.hook}': its output has shape "
                                f"{tuple(tensor.shape)}; steering needs [batch, position, ...]")
        per_position = tuple(tensor.shape[2:])
        if int(np.prod(per_position)) != self.direction.size:
            raise QuantityError(f"steering '{self.hook}': the direction has "
                                f"{self.direction.size} entries, the hook {per_position} per "
                                "position", hint="use a direction of the hook's width (e.g. "
                                                 "d_model for the residual stream)")
        delta = torch.as_tensor(self.scale * self.direction, dtype=tensor.dtype,
                                device=tensor.device).reshape(per_position)
        new = tensor.clone()
        if self.positions is None:
            new += delta
        else:
            for position in self.positions:
                if not -new.shape[1] <= position < new.shape[1]:
                    raise QuantityError(f"steering '{self.hook}': position {position} is "
                                        f"outside the sequence ({new.shape[1]} positions)")
                new[:, position] += delta
        if isinstance(output, tuple):
            return (new, *output[1:])
        return new


def direction_digest(direction: np.ndarray) -> str:
    """A short digest of a direction's float64 bytes (part of the intervention's key)."""
    data = np.ascontiguousarray(direction, dtype=np.float64).tobytes()
    return hashlib.blake2b(data, digest_size=12).hexdigest()


def steering(hook: str, scale: float, direction: np.ndarray,
             positions: tuple[int, ...] | None) -> Intervention:
    """The intervention adding ``scale * direction`` to ``hook`` at ``positions``."""
    vector = np.asarray(direction, dtype=np.float64).reshape(-1)
    if vector.size == 0 or not np.all(np.isfinite(vector)):
        raise QuantityError("the steering direction is empty or has NaN/infinite entries",
                            hint="check the direction's quantity")
    steer = Steering(hook, float(scale), vector, positions)
    key = ("steer", hook, positions, float(scale), direction_digest(vector))
    return Intervention(hook, key, steer.apply)


def unit(direction: np.ndarray) -> np.ndarray:
    """The direction divided by its L2 norm (a zero direction is an error)."""
    norm = float(np.linalg.norm(direction))
    if not np.isfinite(norm) or norm == 0:
        raise QuantityError("the steering direction has zero (or non-finite) norm: it cannot "
                            "be made a unit vector")
    return np.asarray(direction, dtype=np.float64) / norm
