"""Where a forward pass's batches go and how many samples each holds.

Inputs go to the device of the model's first parameter (floating inputs in its dtype); the
batch's tensor fields follow them, so that metrics and user code find logits and labels on
one device. Activations leave the device in the sinks, batch by batch.

A dataset without ``batch_size:`` gets one derived from the memory of the model's device
(``docs/definitions.md``, "Batch sizes"): the pass's first batch holds one sample, with a
hook on every module summing the bytes of the outputs, and the later batches hold as many
samples as fit :data:`HEADROOM` times over in the device's budget, at most :data:`MAX_BATCH`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from interp_assert.resources import memory_limit, physical_memory

if TYPE_CHECKING:
    from interp_assert.loading.data import Dataset
    from interp_assert.loading.subject import LoadedSubject

#: the most samples per batch when the dataset gives no ``batch_size``
MAX_BATCH = 512
#: the derived batch's activations may use at most 1/HEADROOM of the device's budget (the rest
#: covers the temporaries inside modules and what the sinks copy out)
HEADROOM = 2


def model_placement(model: Any, default: str = "cpu") -> tuple[Any, Any]:
    """(device, floating dtype) of the model's first parameter: where its inputs go (a model
    without parameters: ``default`` and no dtype)."""
    params = getattr(model, "parameters", None)
    try:
        first = next(iter(params())) if params is not None else None
    except (StopIteration, TypeError):
        first = None
    if first is None:
        return default, None
    return first.device, first.dtype if first.is_floating_point() else None


def to_device(value: Any, device: Any, dtype: Any = None) -> Any:
    """``value`` as a tensor on ``device``; floating values in ``dtype`` (the model's)."""
    import torch

    if not isinstance(value, torch.Tensor):
        value = torch.as_tensor(np.asarray(value))
    if dtype is not None and value.is_floating_point():
        return value.to(device=device, dtype=dtype)
    return value.to(device)


def on_device(batch: dict[str, Any], device: Any) -> dict[str, Any]:
    """The batch with its tensor fields on the model's device (so that metrics and user code
    compare logits with them where they are); arrays and ``_index`` stay on the host."""
    import torch

    if str(device) == "cpu":
        return batch
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def sized_batches(subject: LoadedSubject, model: Any, dataset: Dataset
                  ) -> Iterator[dict[str, Any]]:
    """The dataset's batches of its ``batch_size``; without one, a first batch of one sample
    while a hook on every module adds up the bytes of their outputs, then batches of the size
    :func:`derived_batch_size` gives (remembered per subject and dataset). The caller runs the
    model on each batch before asking for the next."""
    key = ("batch size", dataset.spec)
    size = dataset.spec.batch_size or subject.cache.get(key)
    if size is not None or dataset.n == 0:
        yield from dataset.batches(size)
        return
    total = [0]

    def count(_module: Any, _args: Any, output: Any) -> None:
        total[0] += tensor_bytes(output)

    modules = list(model.modules()) if hasattr(model, "modules") else []
    handles = [module.register_forward_hook(count) for module in modules]
    try:
        yield from dataset.batches(1, stop=1)
    finally:
        for handle in handles:
            handle.remove()
    device = model_placement(model, dataset.spec.device)[0]
    size = subject.cache[key] = derived_batch_size(total[0], device_budget(device), dataset.n)
    yield from dataset.batches(size, start=1)


def derived_batch_size(per_sample: int, budget: int | None, n: int) -> int:
    """``budget // (HEADROOM * per_sample)`` samples, at least 1, at most MAX_BATCH and n."""
    most = max(1, min(MAX_BATCH, n))
    if budget is None or per_sample <= 0:
        return most
    return max(1, min(most, budget // (HEADROOM * per_sample)))


def tensor_bytes(value: Any, depth: int = 0) -> int:
    """Bytes of the tensors in ``value`` (a tensor, or tuples, lists and dicts of them)."""
    if hasattr(value, "element_size") and hasattr(value, "numel"):
        return int(value.element_size()) * int(value.numel())
    if depth > 3:
        return 0
    if isinstance(value, dict):
        return sum(tensor_bytes(v, depth + 1) for v in value.values())
    if isinstance(value, tuple | list):
        return sum(tensor_bytes(v, depth + 1) for v in value)
    return 0


def device_budget(device: Any) -> int | None:
    """Bytes a forward pass may use on ``device``: on a GPU its free memory
    (``torch.cuda.mem_get_info``; on Apple's MPS the recommended maximum less what is
    allocated), capped by the memory limit; on the CPU the memory limit (None: no limit and
    the platform does not say how much memory it has)."""
    import torch

    limit = memory_limit()
    kind = torch.device(device).type
    free: int | None = None
    if kind == "cuda":
        free = int(torch.cuda.mem_get_info(torch.device(device))[0])
    elif kind == "mps":
        free = int(torch.mps.recommended_max_memory() - torch.mps.current_allocated_memory())
    if free is None:
        return limit if limit is not None else physical_memory()
    return min(free, limit) if limit is not None else free
