"""What every plain mirror shares: the forward pass with hooks, stores and replacements,
token losses, and loads and data cached so that each checkpoint is loaded once per process."""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable
from pathlib import Path
from statistics import NormalDist
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from examples.tiny_transformer import load  # noqa: E402

Hooks = dict[str, Callable[..., Any]]


@functools.cache
def checkpoint(relative: str) -> Any:
    """The model saved at ``ROOT / relative``, loaded once per process."""
    return load(ROOT / relative)


def passes(model: Any, tokens: torch.Tensor, batch: int, hooks: Hooks) -> torch.Tensor:
    """One forward pass in batches with the given forward hooks; the float32 logits."""
    handles = [model.get_submodule(name).register_forward_hook(hook)
               for name, hook in hooks.items()]
    out = []
    with torch.inference_mode():
        for start in range(0, len(tokens), batch):
            out.append(model(tokens[start:start + batch]))
    for handle in handles:
        handle.remove()
    return torch.cat(out)


def keep(store: dict[str, list[torch.Tensor]], name: str) -> Callable[..., None]:
    def hook(_m: Any, _i: Any, out: torch.Tensor) -> None:
        store[name].append(out.detach().clone())
    return hook


def replace(values: torch.Tensor, heads: list[int], positions: list[int] | None = None,
            per_sample: bool = False) -> Callable[..., torch.Tensor]:
    """A hook writing ``values`` ([pos, head, d] means, or [n, pos, head, d] per sample)
    into the heads' slices of hook_z."""
    offset = [0]

    def hook(_m: Any, _i: Any, z: torch.Tensor) -> torch.Tensor:
        z = z.clone()
        rows = slice(offset[0], offset[0] + len(z))
        offset[0] += len(z)
        source = values[rows] if per_sample else values[None].expand(len(z), *values.shape)
        where = slice(None) if positions is None else positions
        for h in heads:
            z[:, where, h] = source[:, where, h]
        return z
    return hook


def token_losses(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """-log p of each token from position 1 on, predicted by the logits before it (float64)."""
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    return -logp.gather(-1, tokens[:, 1:, None])[..., 0].double()


#: read-only hooks that mirrors ask for (when imported) on a clean pass shared across claim
#: files, by pass key: claim files with equal datasets share one pass in pytest, and so do
#: their mirrors in one process
OBSERVERS: dict[str, list[tuple[str, Callable[..., Any]]]] = {}
_SHARED: dict[str, tuple[torch.Tensor, int]] = {}  # key -> (logits, observers fed)


def observe(key: str, hooks: Hooks) -> None:
    """Ask for ``hooks`` (which only read) on the shared clean pass ``key``."""
    OBSERVERS.setdefault(key, []).extend(hooks.items())


def shared_passes(key: str, model: Any, tokens: torch.Tensor, batch: int,
                  hooks: Hooks | None = None) -> torch.Tensor:
    """The logits of the clean pass ``key``, run once per process with ``hooks`` (which only
    read) and every observer of ``key``; it runs again only for hooks or observers that
    came after it."""
    logits, fed = _SHARED.get(key, (None, 0))
    pending = [*(hooks or {}).items(), *OBSERVERS.get(key, [])[fed:]]
    if logits is not None and not pending:
        return logits
    chained: dict[str, list[Callable[..., Any]]] = {}
    for name, hook in pending:
        chained.setdefault(name, []).append(hook)

    def chain(each: list[Callable[..., Any]]) -> Callable[..., None]:
        def hook(module: Any, args: Any, out: torch.Tensor) -> None:
            for one in each:
                one(module, args, out)
        return hook

    ran = passes(model, tokens, batch, {name: chain(each) for name, each in chained.items()})
    _SHARED[key] = (ran if logits is None else logits, len(OBSERVERS.get(key, [])))
    return ran


def wilson(successes: int, trials: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of ``successes / trials``, clipped to [0, 1]; exactly 0 (1) at
    the end when no (every) trial succeeds."""
    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (
        1 + z * z / trials)
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high
