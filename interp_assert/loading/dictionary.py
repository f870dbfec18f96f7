"""Sparse dictionaries (sparse autoencoders and transcoders) read from a local folder in the
layout sae-lens writes: ``cfg.json`` and ``sae_weights.safetensors``.

The weights are read with ``safetensors`` directly (no pickle, no sae-lens: sae-lens cannot be
installed beside TransformerLens 4.3). ``W_enc [d_in, d_sae]``, ``b_enc [d_sae]``,
``W_dec [d_sae, d_in]``, ``b_dec [d_in]`` and, for JumpReLU, ``threshold [d_sae]``. The config
gives ``d_in``, ``d_sae``, ``hook_name``, ``architecture`` (``standard``, ``jumprelu`` or
``topk`` with ``k``), ``apply_b_dec_to_input`` and ``normalize_activations`` (only ``none``
is supported: a dictionary trained on rescaled activations would need the scale).
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from interp_assert.errors import CheckpointError, Location

WEIGHTS_FILE = "sae_weights.safetensors"
CONFIG_FILE = "cfg.json"
ARCHITECTURES = ("standard", "jumprelu", "topk")
_REQUIRED = ("W_enc", "b_enc", "W_dec", "b_dec")


@dataclass(frozen=True, eq=False)
class SparseDictionary:
    """An encoder and decoder: ``f = act((x - b_dec·[apply_b_dec_to_input]) @ W_enc + b_enc)``,
    ``x̂ = f @ W_dec + b_dec``. Arrays are float32 numpy arrays."""

    path: Path
    hook: str
    architecture: str
    W_enc: np.ndarray
    b_enc: np.ndarray
    W_dec: np.ndarray
    b_dec: np.ndarray
    threshold: np.ndarray | None = None
    k: int | None = None
    apply_b_dec_to_input: bool = True
    config: dict[str, Any] = field(default_factory=dict)
    #: a digest of the weights and config files: part of every cache key that depends on them
    digest: str = ""

    @property
    def d_in(self) -> int:
        return int(self.W_enc.shape[0])

    @property
    def d_sae(self) -> int:
        return int(self.W_enc.shape[1])

    def labels(self) -> tuple[str, ...]:
        """``F0 .. F{d_sae-1}``."""
        return tuple(f"F{i}" for i in range(self.d_sae))

    def describe(self) -> str:
        extra = f", k={self.k}" if self.architecture == "topk" else ""
        return (f"{self.architecture} dictionary {self.path.name} ({self.d_in} → {self.d_sae}"
                f"{extra}) on {self.hook}")

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Feature activations of ``x [..., d_in]`` (numpy, float64 arithmetic)."""
        x = np.asarray(x, dtype=np.float64)
        if self.apply_b_dec_to_input:
            x = x - self.b_dec
        pre = x @ self.W_enc.astype(np.float64) + self.b_enc
        return activate(pre, self.architecture, self.threshold, self.k)

    def tensors(self, device: Any, dtype: Any) -> dict[str, Any]:
        """The weights as torch tensors on ``device`` (cached per device and dtype)."""
        import torch

        key = (str(device), str(dtype))
        with _LOCK:
            cache = _TENSORS.setdefault(id(self), {})
            if key not in cache:
                arrays = {"W_enc": self.W_enc, "b_enc": self.b_enc, "W_dec": self.W_dec,
                          "b_dec": self.b_dec}
                if self.threshold is not None:
                    arrays["threshold"] = self.threshold
                cache[key] = {name: torch.as_tensor(array, dtype=dtype, device=device)
                              for name, array in arrays.items()}
            return cache[key]


_TENSORS: dict[int, dict[tuple[str, str], dict[str, Any]]] = {}
_LOCK = threading.Lock()
_LOADED: dict[tuple[str, int, int], SparseDictionary] = {}


def activate(pre: Any, architecture: str, threshold: Any, k: int | None) -> Any:
    """The activation function on pre-activations (numpy arrays or torch tensors): ReLU;
    JumpReLU (``pre`` where ``pre > threshold``, else 0); TopK (ReLU of the ``k`` largest
    pre-activations of each row, 0 elsewhere)."""
    is_numpy = isinstance(pre, np.ndarray)
    if architecture == "standard":
        return np.maximum(pre, 0) if is_numpy else pre.clamp(min=0)
    if architecture == "jumprelu":
        return np.where(pre > threshold, pre, 0) if is_numpy else pre * (pre > threshold)
    assert k is not None
    if is_numpy:
        keep = np.argpartition(-pre, k - 1, axis=-1)[..., :k]
        out = np.zeros_like(pre)
        np.put_along_axis(out, keep, np.maximum(np.take_along_axis(pre, keep, -1), 0), -1)
        return out
    import torch

    values, index = pre.topk(k, dim=-1)
    return torch.zeros_like(pre).scatter(-1, index, values.clamp(min=0))


def load_dictionary(folder: Path, location: Location | None = None) -> SparseDictionary:
    """The dictionary in ``folder`` (cached while its files are unchanged). Every problem is a
    :class:`CheckpointError` naming the file and the fix."""
    weights, config_path = folder / WEIGHTS_FILE, folder / CONFIG_FILE
    for path in (folder, config_path, weights):
        if not path.exists():
            raise CheckpointError(f"sparse dictionary: '{path}' does not exist", location,
                                  hint=f"a dictionary is a folder with {CONFIG_FILE} and "
                                       f"{WEIGHTS_FILE}, as sae-lens saves it")
    stat = weights.stat()
    key = (str(folder.resolve()), stat.st_mtime_ns, config_path.stat().st_mtime_ns)
    if key not in _LOADED:
        _LOADED[key] = _read(folder, config_path, weights, location)
    return _LOADED[key]


def _read(folder: Path, config_path: Path, weights: Path,
          location: Location | None) -> SparseDictionary:
    def fail(message: str, hint: str) -> CheckpointError:
        return CheckpointError(f"sparse dictionary {folder}: {message}", location, hint=hint)

    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise fail(f"{CONFIG_FILE} is not readable JSON ({exc})",
                   "write the config as sae-lens does (d_in, d_sae, hook_name, architecture)"
                   ) from None
    if not isinstance(config, dict):
        raise fail(f"{CONFIG_FILE} must hold a JSON object", "see sae-lens's cfg.json")
    try:
        from safetensors.numpy import load_file

        arrays = load_file(str(weights))
    except Exception as exc:  # a truncated or foreign file
        raise fail(f"{WEIGHTS_FILE} cannot be read as safetensors ({type(exc).__name__}: "
                   f"{exc})", "save the weights with safetensors.torch.save_file") from None
    missing = [name for name in _REQUIRED if name not in arrays]
    if missing:
        raise fail(f"{WEIGHTS_FILE} lacks {', '.join(missing)} (it has "
                   f"{', '.join(sorted(arrays)) or 'nothing'})",
                   "save W_enc [d_in, d_sae], b_enc, W_dec [d_sae, d_in] and b_dec")
    w_enc, b_enc, w_dec, b_dec = (np.ascontiguousarray(arrays[n], dtype=np.float32)
                                  for n in _REQUIRED)
    if w_enc.ndim != 2:
        raise fail(f"W_enc has shape {w_enc.shape}; it must be [d_in, d_sae]", "")
    d_in, d_sae = w_enc.shape
    expected = {"b_enc": (d_sae,), "W_dec": (d_sae, d_in), "b_dec": (d_in,)}
    for name, array in (("b_enc", b_enc), ("W_dec", w_dec), ("b_dec", b_dec)):
        if array.shape != expected[name]:
            raise fail(f"{name} has shape {array.shape}, but W_enc {w_enc.shape} needs "
                       f"{expected[name]}", "W_enc is [d_in, d_sae] and W_dec [d_sae, d_in]")
    for name, size in (("d_in", d_in), ("d_sae", d_sae)):
        if name in config and config[name] != size:
            raise fail(f"{CONFIG_FILE} says {name} = {config[name]}, the weights {size}",
                       "the config and the weights must come from the same dictionary")
    architecture = str(config.get("architecture", "standard")).lower()
    if architecture not in ARCHITECTURES:
        raise fail(f"architecture '{architecture}' is not supported",
                   "supported: " + ", ".join(ARCHITECTURES))
    threshold = k = None
    if architecture == "jumprelu":
        if "threshold" not in arrays or arrays["threshold"].shape != (d_sae,):
            raise fail("a jumprelu dictionary needs 'threshold' [d_sae] in its weights",
                       "save the per-feature thresholds as 'threshold'")
        threshold = np.asarray(arrays["threshold"], dtype=np.float32)
    if architecture == "topk":
        k = config.get("k", config.get("activation_fn_kwargs", {}).get("k")
                       if isinstance(config.get("activation_fn_kwargs"), dict) else None)
        if not isinstance(k, int) or not 1 <= k <= d_sae:
            raise fail(f"a topk dictionary needs an integer 'k' in 1..{d_sae} (has {k!r})",
                       "add \"k\": N to cfg.json")
    normalize = config.get("normalize_activations", "none")
    if normalize not in (None, "none"):
        raise fail(f"normalize_activations '{normalize}' is not supported",
                   "use a dictionary trained on raw activations (normalize_activations: none)")
    hook = config.get("hook_name")
    if not isinstance(hook, str) or not hook:
        raise fail(f"{CONFIG_FILE} has no 'hook_name'",
                   "add the hook point it reads, e.g. \"hook_name\": "
                   "\"blocks.0.hook_resid_post\" (or give 'hook:' in the quantity)")
    values = [w_enc, b_enc, w_dec, b_dec] + ([threshold] if threshold is not None else [])
    if not all(np.all(np.isfinite(v)) for v in values):
        raise fail("its weights hold NaN or inf", "retrain or re-save the dictionary")
    digest = hashlib.blake2b(weights.read_bytes() + config_path.read_bytes(),
                             digest_size=16).hexdigest()
    return SparseDictionary(folder, hook, architecture, w_enc, b_enc, w_dec, b_dec,
                            threshold, k, bool(config.get("apply_b_dec_to_input", True)), config,
                            digest)
