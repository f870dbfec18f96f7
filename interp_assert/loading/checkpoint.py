"""Loading checkpoints safely: ``torch.load(weights_only=True)`` unless the claim file opts in."""

from __future__ import annotations

import pickle
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interp_assert.errors import CheckpointError, did_you_mean
from interp_assert.loading.digests import file_digest
from interp_assert.loading.source_files import check_regular, not_a_file

STATE_DICT_KEYS = ("model_state_dict", "state_dict", "model")
SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors")
#: the weights file of a Hugging Face model folder, in the order they are looked for
FOLDER_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


@dataclass
class Checkpoint:
    """A loaded checkpoint: the raw object, its state dict, metadata and identity."""

    path: Path
    raw: Any
    state_dict: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    _sha256: str | None = None

    @property
    def sha256(self) -> str:
        """SHA-256 of the file, computed once."""
        if self._sha256 is None:
            self._sha256 = file_sha256(self.path)
        return self._sha256

    def tensor(self, name: str) -> Any:
        """The tensor called ``name``; a missing name is reported with its near matches."""
        if name in self.state_dict:
            return self.state_dict[name]
        raise CheckpointError(
            f"checkpoint {self.path.name} has no tensor '{name}'"
            + did_you_mean(name, self.state_dict),
            hint=f"it holds {len(self.state_dict)} tensors, e.g. "
                 + ", ".join(list(self.state_dict)[:4]))


    def share_with(self, model: Any) -> int:
        """Hold the loaded model's own tensor in place of each state-dict tensor that the model
        keeps unchanged (same name, shape, dtype, device and values), in the state dict and the
        raw checkpoint alike, so the weights are not held twice. Returns the bytes no longer
        held twice."""
        import torch

        if not hasattr(model, "named_parameters") or not hasattr(model, "named_buffers"):
            return 0
        own = dict(model.named_parameters())
        own.update(model.named_buffers())
        holders = [self.state_dict, *_raw_mappings(self.raw)]
        shared = 0
        for name, old in list(self.state_dict.items()):
            new = own.get(name)
            if not (isinstance(old, torch.Tensor) and isinstance(new, torch.Tensor)) or \
                    old is new or old.shape != new.shape or old.dtype != new.dtype or \
                    old.device != new.device or not torch.equal(old, new.detach()):
                continue
            kept = new.detach()
            for holder in holders:
                if holder.get(name) is old:
                    holder[name] = kept
            shared += old.numel() * old.element_size()
        return shared


def _raw_mappings(raw: Any) -> list[dict[str, Any]]:
    """The mutable mappings of a raw checkpoint that may hold its tensors."""
    found = [raw] if isinstance(raw, dict) else []
    if isinstance(raw, Mapping):
        found += [raw[key] for key in STATE_DICT_KEYS if isinstance(raw.get(key), dict)]
    return found


def file_sha256(path: Path) -> str:
    """sha256 of the file (hashed once per process: :func:`digests.file_digest`)."""
    return file_digest(path)


def load_checkpoint(path: Path, allow_pickle: bool = False) -> Checkpoint:
    """Load ``path`` (.pt/.pth/.bin/.ckpt via torch, .safetensors via safetensors; a Hugging
    Face model folder: its weights file).

    Without ``allow_pickle`` only tensors and plain containers are unpickled
    (``weights_only=True``); a checkpoint that needs more is refused with the way to opt in.
    """
    if not path.exists() and not_a_file(path) == "does not exist":
        raise CheckpointError(f"checkpoint not found: {path}",
                              hint="check 'subject: checkpoint:' (paths are relative to the "
                                   "claim file)")
    if path.is_dir():
        path = folder_weights(path)
    check_regular(path, "checkpoint", CheckpointError,
                  hint="name a checkpoint file in 'subject: checkpoint:'")
    header: dict[str, str] = {}
    if path.suffix == ".safetensors":
        raw, header = _load_safetensors(path)
    else:
        raw = _load_torch(path, allow_pickle)
    state_dict, metadata = split_state_dict(raw, path)
    return Checkpoint(path, raw, state_dict, {**header, **metadata})


def folder_weights(folder: Path) -> Path:
    """The weights file of a Hugging Face model folder (``config.json`` plus
    ``model.safetensors`` or ``pytorch_model.bin``); anything else is an error saying what the
    folder lacks."""
    has_config = (folder / "config.json").is_file()
    found = [folder / name for name in FOLDER_WEIGHTS if (folder / name).is_file()]
    if has_config and found:
        return found[0]
    listing = sorted(p.name for p in folder.iterdir())[:8] if folder.is_dir() else []
    held = f" (it holds {', '.join(listing)})" if listing else " (it is empty)"
    sharded = any(name.endswith(".index.json") for name in listing)
    if not has_config:
        missing = "config.json" + ("" if found else " and model.safetensors or pytorch_model.bin")
        raise CheckpointError(
            f"checkpoint folder {folder} is not a Hugging Face model folder: it has no "
            f"{missing}{held}",
            hint="name a checkpoint file in 'subject: checkpoint:', or a folder holding "
                 "config.json and model.safetensors (or pytorch_model.bin)")
    raise CheckpointError(
        f"checkpoint folder {folder} has config.json but no model.safetensors or "
        f"pytorch_model.bin{held}",
        hint=("sharded weights (*.index.json) are not read without a loader: add 'loader:' "
              "calling interp_assert.adapters.huggingface.load_model(folder)" if sharded
              else "save the model there with model.save_pretrained(folder), or name its "
                   "weights file in 'subject: checkpoint:'"))


def _load_safetensors(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """The tensors of a safetensors file and the text metadata of its header."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
        return load_file(str(path)), metadata
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path.name} is not a readable safetensors file: {exc}") from None


def _load_torch(path: Path, allow_pickle: bool) -> Any:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=not allow_pickle)
    except pickle.UnpicklingError as exc:
        if not _looks_serialized(path):  # garbage, not a pickle that needs trusting
            raise CheckpointError(f"{path.name} is not a readable checkpoint (truncated or "
                                  "corrupt?): neither a zip archive nor a pickle") from None
        if allow_pickle:
            raise CheckpointError(f"{path.name} could not be unpickled: "
                                  f"{_plain(str(exc))[:300]}") from None
        raise CheckpointError(
            f"{path.name} needs full unpickling, which can run arbitrary code; refused "
            f"({_refusal_reason(str(exc))})",
            hint="if you trust this file, set 'allow_pickle: true' under 'subject:' in the "
                 "claim file") from None
    except Exception as exc:  # truncated, corrupt, or garbage read as a pickle
        detail = f"{type(exc).__name__}: {_first_sentence(exc)}"
        damaged = isinstance(exc, RuntimeError | EOFError | zipfile.BadZipFile | OSError
                              | ValueError)
        if not damaged and not _looks_serialized(path):  # KeyError, struct.error ...
            detail = "neither a zip archive nor a pickle"
        elif not damaged and allow_pickle:  # e.g. a pickled class that no longer imports
            raise CheckpointError(f"{path.name} could not be unpickled: {detail}") from None
        raise CheckpointError(f"{path.name} is not a readable checkpoint (truncated or "
                              f"corrupt?): {detail}") from None


def _first_sentence(exc: BaseException) -> str:
    """The first sentence of an exception's first line (torch appends long advice)."""
    line = _plain(str(exc)).strip().split("\n")[0]
    return re.split(r"(?<=[^.])\. (?=[A-Z])", line, maxsplit=1)[0][:300]


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _plain(text: str) -> str:
    """``text`` without terminal escape codes (torch bolds parts of its messages)."""
    return _ANSI.sub("", text)


def _refusal_reason(message: str) -> str:
    """The useful line of torch's weights-only refusal (which global was not allowed)."""
    text = _plain(message)
    match = re.search(r"WeightsUnpickler error: ([^\n]*?)(?:\. |\n|$)", text)
    return (match.group(1) if match else text.split("\n")[0])[:300]


def _looks_serialized(path: Path) -> bool:
    """Whether the file starts like something torch.load reads: a zip archive or a pickle
    (protocol 2+ starts with 0x80, as does torch's legacy format)."""
    try:
        with open(path, "rb") as handle:
            header = handle.read(4)
    except OSError:
        return False
    return header.startswith(b"PK") or header[:1] == b"\x80"


def _is_tensor_mapping(value: Any) -> bool:
    import torch

    return (isinstance(value, Mapping) and len(value) > 0
            and all(isinstance(v, torch.Tensor) for v in value.values()))


def split_state_dict(raw: Any, path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Find the state dict inside a checkpoint object; the rest is metadata."""
    import torch

    if isinstance(raw, torch.nn.Module):
        return dict(raw.state_dict()), {}
    if _is_tensor_mapping(raw):
        return dict(raw), {}
    if isinstance(raw, Mapping):
        for key in STATE_DICT_KEYS:
            value = raw.get(key)
            if isinstance(value, torch.nn.Module):
                value = value.state_dict()
            if _is_tensor_mapping(value):
                return dict(value), {k: v for k, v in raw.items() if k != key}
        tensors = {k: v for k, v in raw.items() if isinstance(v, torch.Tensor)}
        if tensors:
            return tensors, {k: v for k, v in raw.items() if k not in tensors}
    raise CheckpointError(
        f"{path.name} holds no state dict (a {type(raw).__name__}"
        + (f" with keys {list(raw)[:6]}" if isinstance(raw, Mapping) else "") + ")",
        hint="save a dict of tensors, or a dict with 'model_state_dict' / 'state_dict' / "
             "'model'")
