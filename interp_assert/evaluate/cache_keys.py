"""The keys of the result cache (:mod:`interp_assert.evaluate.result_cache`): what a cached
forward-pass result depends on, written as canonical JSON.

A key holds the subject (the checkpoint's sha256 over the file's or folder's bytes, the
loader's name and the sha256 of the loader's module file; without a checkpoint, the sha256 of
the loaded model's parameters and buffers), the dataset (every field of its definition, data
files by their sha256, and the sha256 of the samples it made), the interventions, the sink
(hook, options) and the versions of interp-assert, torch, numpy, transformers and
transformer-lens. Anything a key cannot state exactly raises :class:`Uncacheable`: that result
is then simply not cached.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from interp_assert.errors import InterpAssertError
from interp_assert.loading.data import Dataset, DatasetSpec, load_dataset
from interp_assert.loading.digests import RACY_SECONDS, file_digest  # noqa: F401
from interp_assert.loading.subject import LoadedSubject
from interp_assert.usercode import resolve_callable

#: bumped when the key or the entry format changes (old entries then simply miss)
FORMAT = 1
VERSIONED = ("interp-assert", "torch", "numpy", "transformers", "transformer-lens")


class Uncacheable(Exception):
    """A key or a value that the cache cannot state exactly (it is then not cached)."""


def digest(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


_VERSIONS: dict[str, str | None] = {}


def versions() -> dict[str, str | None]:
    """Installed versions of the libraries whose code computes cached values."""
    if not _VERSIONS:
        from importlib.metadata import PackageNotFoundError, version

        for name in VERSIONED:
            try:
                _VERSIONS[name] = version(name)
            except PackageNotFoundError:
                _VERSIONS[name] = None
        import interp_assert

        _VERSIONS["interp_assert"] = interp_assert.__version__
    return dict(_VERSIONS)


# -- file contents (each file hashed once per process: loading.digests) -------------------
def path_digest(path: Path) -> str:
    """sha256 of a file, or of a folder's files (relative names and contents, sorted)."""
    try:
        if path.is_file():
            return file_digest(path)
        if path.is_dir():
            parts = []
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    child = Path(root, name)
                    if child.is_file():
                        parts.append(f"{child.relative_to(path).as_posix()}\0"
                                     f"{file_digest(child)}")
            return digest("\n".join(parts))
    except OSError as exc:
        raise Uncacheable(f"cannot read {path}: {exc}") from None
    raise Uncacheable(f"{path} is neither a file nor a folder")


# -- canonical values ---------------------------------------------------------------------
def canonical(value: Any) -> Any:
    """A JSON-able, exact description of a key part; :class:`Uncacheable` otherwise."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return {"float": repr(value)} if not math.isfinite(value) else value
    if isinstance(value, tuple | list):
        return [canonical(v) for v in value]
    if isinstance(value, frozenset | set):
        return {"set": sorted(json.dumps(canonical(v), sort_keys=True) for v in value)}
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise Uncacheable("a mapping with keys that are not strings")
        return {"map": {k: canonical(v) for k, v in value.items()}}
    if isinstance(value, DatasetSpec):
        return {"dataset": dataset_key(value)}
    if isinstance(value, Path):
        return {"content": path_digest(value)}
    if isinstance(value, np.generic):
        return canonical(value.item())
    if isinstance(value, np.ndarray):
        return {"array": array_digest(value)}
    raise Uncacheable(f"a {type(value).__name__} in a key")


def array_digest(array: np.ndarray) -> str:
    if array.dtype.hasobject:
        return digest(json.dumps([canonical(v) for v in array.ravel().tolist()]
                                 + [list(array.shape)]))
    contiguous = np.ascontiguousarray(array)
    return digest(f"{array.dtype.str}{array.shape}".encode() + contiguous.tobytes())


def value_digest(value: Any) -> str:
    """sha256 of a dataset field: a tensor, an array or a list of plain values."""
    if hasattr(value, "detach") and hasattr(value, "dtype"):
        import torch

        tensor = value.detach().cpu().contiguous()
        raw = tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b""
        return digest(f"torch{tensor.dtype}{tuple(tensor.shape)}".encode() + raw)
    if isinstance(value, np.ndarray):
        return array_digest(value)
    if isinstance(value, list | tuple):
        return digest(json.dumps([canonical(v) if not isinstance(v, np.ndarray)
                                  else {"array": array_digest(v)} for v in value]))
    raise Uncacheable(f"a dataset field of type {type(value).__name__}")


# -- datasets -----------------------------------------------------------------------------
_DATASET_KEYS: dict[int, tuple[Dataset, Any]] = {}
_SKIPPED_FIELDS = frozenset({"search_path", "location"})


def dataset_key(spec: DatasetSpec) -> Any:
    """The dataset's definition (files by content) and the sha256 of the samples it made."""
    try:
        dataset = load_dataset(spec)
    except InterpAssertError as exc:  # the pass reports it
        raise Uncacheable(str(exc)) from None
    memo = _DATASET_KEYS.get(id(dataset))
    if memo is not None and memo[0] is dataset:
        return memo[1]
    definition = {f.name: canonical(getattr(spec, f.name)) for f in dataclasses.fields(spec)
                  if f.compare and f.name not in _SKIPPED_FIELDS}
    samples = {name: value_digest(value) for name, value in sorted(dataset.fields.items())}
    key = {"definition": definition, "samples": samples, "n": dataset.n}
    _DATASET_KEYS[id(dataset)] = (dataset, key)
    return key


# -- subjects -----------------------------------------------------------------------------
_SUBJECT_MEMO = ("result-cache", "subject")
_SUBJECT_SKIPPED = frozenset({"checkpoint", "loader", "search_path", "location", "scope"})


def subject_key(subject: LoadedSubject) -> Any:
    """The subject's identity (remembered on the loaded subject)."""
    memo = subject.cache.get(_SUBJECT_MEMO)
    if memo is None:
        try:
            memo = ("ok", _subject_key(subject))
        except Uncacheable as exc:
            memo = ("no", str(exc))
        subject.cache[_SUBJECT_MEMO] = memo
    if memo[0] != "ok":
        raise Uncacheable(memo[1])
    return memo[1]


def _subject_key(subject: LoadedSubject) -> Any:
    spec = subject.spec
    key: dict[str, Any] = {f.name: canonical(getattr(spec, f.name))
                           for f in dataclasses.fields(spec)
                           if f.compare and f.name not in _SUBJECT_SKIPPED}
    key["loader"] = spec.loader
    if spec.loader:
        key["loader module"] = _code_digest(spec.loader, spec.search_path)
    if spec.checkpoint is not None:
        key["checkpoint"] = path_digest(Path(spec.checkpoint))
    elif spec.loader:
        try:
            model = subject.model
        except InterpAssertError as exc:  # the pass reports it
            raise Uncacheable(str(exc)) from None
        key["parameters"] = _model_digest(model)
    else:
        raise Uncacheable("a subject without checkpoint or loader")
    return key


def _code_digest(reference: str, search_path: tuple[Path, ...]) -> str:
    """sha256 of the file of the module that defines a user callable."""
    import inspect
    import sys

    try:
        function = resolve_callable(reference, search_path, "loader")
    except InterpAssertError as exc:
        raise Uncacheable(str(exc)) from None
    module = sys.modules.get(getattr(function, "__module__", "") or "")
    source = getattr(module, "__file__", None)
    if source is None:
        try:
            source = inspect.getsourcefile(function)
        except TypeError:
            source = None
    if source is None:
        raise Uncacheable(f"the module of '{reference}' has no file")
    return path_digest(Path(source))


def _model_digest(model: Any) -> str:
    """sha256 of a model's parameters and buffers (names, dtypes, shapes and bytes)."""
    if model is None or not hasattr(model, "state_dict"):
        raise Uncacheable("a model without a state dict")
    sha = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        sha.update(f"{name}\0{value_digest(tensor)}\n".encode())
    return sha.hexdigest()


def intervention_key(interventions: tuple[Any, ...]) -> Any:
    return [[intervention.hook, canonical(intervention.key)] for intervention in interventions]


def pass_key(subject: LoadedSubject, dataset: DatasetSpec, interventions: tuple[Any, ...]
             ) -> dict[str, Any]:
    """Everything a pass's results depend on except the sink (:class:`Uncacheable` if a part
    cannot be stated exactly)."""
    return {"format": FORMAT, "versions": versions(), "subject": subject_key(subject),
            "dataset": dataset_key(dataset), "interventions": intervention_key(interventions)}


def entry_key(base: dict[str, Any], sink: Any) -> str:
    """The canonical JSON of one sink's key on a pass. A custom metric (``module:function``)
    is not cached: its code is not part of the key."""
    if isinstance(sink, tuple) and sink[:1] == ("metric",) and ":" in str(sink[1:2]):
        raise Uncacheable("a custom metric")
    return json.dumps({**base, "sink": canonical(sink)}, sort_keys=True, ensure_ascii=True)
