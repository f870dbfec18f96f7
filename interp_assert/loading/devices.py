"""Where and in what precision a subject's model runs, and how xdist workers share a host.

The device comes from ``--interp-device`` (pytest) / ``--device`` (the command line tool), the
ini option ``interp_assert_device``, the environment variable ``INTERP_ASSERT_DEVICE`` and the
claim file's ``subject: device:``, in that order (default ``cpu``); the dtype likewise from
``--interp-dtype`` / ``--dtype``, ``interp_assert_dtype``, ``INTERP_ASSERT_DTYPE`` and
``subject: dtype:`` (default: as the loader built the model).

``auto`` is ``cuda`` when a CUDA GPU is available, else ``mps``, else ``cpu``. Only the
resolution (:func:`resolve_device`) imports torch; checking the spelling does not.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from interp_assert.errors import InterpAssertError, Location, SpecError, did_you_mean

DEVICE_ENV = "INTERP_ASSERT_DEVICE"
DTYPE_ENV = "INTERP_ASSERT_DTYPE"
DEVICES = ("cpu", "cuda", "cuda:N", "mps", "auto")
DTYPES = ("float32", "bfloat16", "float16")
if TYPE_CHECKING:
    from interp_assert.loading.targets import Target

_DEVICE = re.compile(r"^(cpu|cuda|cuda:\d+|mps|auto)$")

#: (worker index, worker count) of this process when it is a pytest-xdist worker
_worker: tuple[int, int] | None = None
#: torch threads this process should use (set in xdist workers), applied when a model loads
_threads: int | None = None


class DeviceError(InterpAssertError):
    """A device or dtype that is misspelt or not available on this machine."""


def check_device(text: str, where: str = "device") -> str:
    """``text`` if it names a device this library accepts (spelling only; torch not imported)."""
    value = str(text).strip().lower()
    if _DEVICE.match(value):
        return value
    if value == "meta":
        raise DeviceError(f"{where}: 'meta' holds no values, so nothing can be measured on it",
                          hint="use cpu, cuda, cuda:N, mps or auto")
    raise DeviceError(f"{where}: unknown device {text!r}"
                      + did_you_mean(value, ("cpu", "cuda", "mps", "auto")),
                      hint="use cpu, cuda, cuda:N (a GPU by number), mps or auto")


def check_dtype(text: str, where: str = "dtype") -> str:
    """``text`` if it names a dtype a model may run in."""
    value = str(text).strip().lower()
    if value in DTYPES:
        return value
    raise DeviceError(f"{where}: unknown dtype {text!r}" + did_you_mean(value, DTYPES),
                      hint="use float32, bfloat16 or float16")


def subject_device(spec: Mapping[str, Any], where: Location | None) -> tuple[str, str | None]:
    """A claim file's ``subject: device:`` (default cpu) and ``dtype:`` (default None: as the
    loader built the model), their spelling checked; availability is checked when the model
    loads, on the device the run resolves."""
    try:
        device = check_device(spec.get("device", "cpu"), "'subject: device'")
        dtype = spec.get("dtype")
        return device, check_dtype(dtype, "'subject: dtype'") if dtype is not None else None
    except DeviceError as exc:
        raise SpecError(exc.message, where, hint=exc.hint) from None


def chosen(*values: str | None) -> str | None:
    """The first value that is set (options, in order of precedence)."""
    return next((v for v in values if v), None)


def device_override(option: str | None = None, ini: str | None = None) -> str | None:
    """The device a run imposes on every subject: the option, the ini value, the environment
    variable, in that order (None: each subject's own ``device:``)."""
    value = chosen(option, ini, os.environ.get(DEVICE_ENV))
    return check_device(value, _source(value, option, ini, "--interp-device", DEVICE_ENV)
                        ) if value else None


def dtype_override(option: str | None = None, ini: str | None = None) -> str | None:
    """The dtype a run imposes on every subject (as :func:`device_override`)."""
    value = chosen(option, ini, os.environ.get(DTYPE_ENV))
    return check_dtype(value, _source(value, option, ini, "--interp-dtype", DTYPE_ENV)
                       ) if value else None


def targets_on_device(found: list[Target], device: str | None = None,
              dtype: str | None = None) -> list[Target]:
    """``found`` with each subject on the run's device and dtype (``device`` and ``dtype``
    from the driver's options; else the environment's, else each subject's own)."""
    device, dtype = device_override(device), dtype_override(dtype)
    if not (device or dtype):
        return found
    return [replace(t, spec=replace(t.spec, device=device or t.spec.device,
                                    dtype=dtype or t.spec.dtype))
            if t.spec is not None else t for t in found]


def check_run_device(device: str | None, dtype: str | None, device_ini: str | None = None,
                     dtype_ini: str | None = None) -> None:
    """Refuse a run's device (its option, ini value or environment variable) that is misspelt
    or that this machine lacks, and a misspelt dtype, before any work (DeviceError)."""
    dtype_override(dtype, dtype_ini)
    chosen_device = device_override(device, device_ini)
    if chosen_device not in (None, "cpu", "auto"):
        resolve_device(chosen_device)


def _source(value: str, option: str | None, ini: str | None, flag: str, env: str) -> str:
    return flag if value == option else ("the ini option" if value == ini else env)


def pinned(device: str, worker: int, gpus: int) -> str:
    """The device of xdist worker ``worker`` on a host with ``gpus`` CUDA GPUs: ``cuda`` and
    ``auto`` become ``cuda:(worker % gpus)``; an explicit ``cuda:N``, ``mps`` or ``cpu`` stays."""
    if device in ("cuda", "auto") and gpus > 0:
        return f"cuda:{worker % gpus}"
    return device


def resolve_device(device: str) -> str:
    """The torch device to run on: ``auto`` chosen, an xdist worker pinned to its GPU, and a
    device that this machine does not have refused with :class:`DeviceError`."""
    import torch

    device = check_device(device)
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if _worker is not None:
        device = pinned(device, _worker[0], gpus)
    if device == "auto":
        device = "cuda" if gpus else ("mps" if _mps_available() else "cpu")
    if device.startswith("cuda"):
        if not gpus:
            raise DeviceError(f"device '{device}': CUDA is not available on this machine "
                              "(torch.cuda.is_available() is False)",
                              hint="use --interp-device cpu (or auto), or install a CUDA "
                                   "build of torch on a machine with an NVIDIA GPU")
        index = int(device.partition(":")[2] or 0)
        if index >= gpus:
            raise DeviceError(f"device '{device}': this machine has {gpus} CUDA GPU"
                              f"{'s' * (gpus != 1)} (cuda:0..cuda:{gpus - 1})",
                              hint=f"use cuda:0..cuda:{gpus - 1}, or cuda / auto")
    if device == "mps" and not _mps_available():
        raise DeviceError("device 'mps': Apple's Metal (MPS) backend is not available here",
                          hint="use cpu, or auto to take what this machine has")
    return device


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def torch_dtype(name: str) -> Any:
    """The torch dtype named ``name`` (one of :data:`DTYPES`)."""
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16,
            "float16": torch.float16}[check_dtype(name)]


def place(model: Any, device: str, dtype: str | None) -> Any:
    """``model`` moved to ``device`` (resolved) and cast to ``dtype`` (floating parameters and
    buffers only); anything without ``.to`` is returned as it is."""
    apply_threads()
    if not hasattr(model, "to"):
        return model
    target = resolve_device(device)
    kwargs: dict[str, Any] = {}
    if target != "cpu" or _off_cpu(model):
        kwargs["device"] = target
    if dtype is not None:
        kwargs["dtype"] = torch_dtype(dtype)
    return model.to(**kwargs) if kwargs else model


def _off_cpu(model: Any) -> bool:
    """Whether a loader left some parameter off the CPU (so that ``cpu`` must move it)."""
    params = getattr(model, "parameters", None)
    if params is None:
        return False
    try:
        return any(p.device.type != "cpu" for p in params())
    except (TypeError, AttributeError):
        return False


# -- pytest-xdist workers ---------------------------------------------------------------------
def host_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def worker_threads(cores: int, workers: int) -> int:
    """Torch threads per xdist worker, so that workers x threads <= cores (at least one)."""
    return max(1, cores // max(workers, 1))


def set_worker(index: int, count: int) -> int:
    """Make this process xdist worker ``index`` of ``count``: its GPU is pinned by
    :func:`pinned`, and torch uses :func:`worker_threads` threads (applied now when torch is
    imported already, else when the first model loads). Returns the thread count."""
    global _worker, _threads
    _worker = (index, count)
    _threads = worker_threads(host_cores(), count)
    import sys

    if "torch" in sys.modules:
        apply_threads()
    return _threads


def apply_threads() -> None:
    """Apply the worker's thread count to torch (once)."""
    global _threads
    if _threads is None:
        return
    import torch

    torch.set_num_threads(_threads)
    _threads = None
