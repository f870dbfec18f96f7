"""The subject of claims: a checkpoint and optional loader, loaded once per process."""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interp_assert.errors import (
    CheckpointError,
    InterpAssertError,
    Location,
    QuantityError,
    did_you_mean,
)
from interp_assert.loading.checkpoint import Checkpoint, folder_weights, load_checkpoint
from interp_assert.loading.devices import DeviceError, apply_threads, place
from interp_assert.loading.layout_rules import AttentionRule
from interp_assert.loading.model_source import (
    AUTO_LOADER,
    ModelSource,
    find_model_source,
    missing_model_error,
)
from interp_assert.loading.source_files import safe_resolve
from interp_assert.progress import phase
from interp_assert.resources import gc_paused
from interp_assert.usercode import accepts, call_user, resolve_callable


class SubjectScope:
    """Subjects private to one owner (a ``subject()`` holding Python-side values): specs in
    different scopes never share a :class:`LoadedSubject` (nor its cached values), and the
    scope's subjects go away with it. Checkpoint files are still loaded once per process."""

    def __init__(self) -> None:
        self.subjects: dict[SubjectSpec, LoadedSubject] = {}

    def __reduce__(self) -> tuple[type[SubjectScope], tuple[()]]:
        return SubjectScope, ()  # a copy elsewhere starts empty


@dataclass(frozen=True)
class SubjectSpec:
    """Where a subject comes from; equal specs share one loaded :class:`LoadedSubject`."""

    checkpoint: Path | None = None
    loader: str | None = None
    allow_pickle: bool = False
    search_path: tuple[Path, ...] = ()
    device: str = "cpu"
    #: the dtype the model runs in (float32, bfloat16, float16); None: as the loader built it
    dtype: str | None = None
    #: the claim file's ``layout: attention:`` rule (hook points of a fused attention)
    attention: AttentionRule | None = None
    location: Location | None = field(default=None, compare=False)
    #: set: the subject is private to this scope instead of the process-wide pool
    scope: SubjectScope | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        return self.checkpoint.name if self.checkpoint else (self.loader or "subject")


class LoadedSubject:
    """Lazily loaded checkpoint, model and cached quantities for one :class:`SubjectSpec`."""

    def __init__(self, spec: SubjectSpec) -> None:
        self.spec = spec
        self._checkpoint: Checkpoint | None = None
        self._model: Any = None
        self._model_loaded = False
        self._failure: InterpAssertError | None = None
        self._model_failure: InterpAssertError | None = None
        self.cache: dict[Any, Any] = {}
        self.lock = threading.RLock()

    # -- loading ---------------------------------------------------------------------------
    @property
    def checkpoint(self) -> Checkpoint | None:
        if self.spec.checkpoint is None:
            return None
        if self._failure is not None:
            raise self._failure
        if self._checkpoint is None:
            try:
                with phase("load", self.spec.label), gc_paused():
                    self._checkpoint = load_shared(self.spec.checkpoint, self.spec.allow_pickle)
            except InterpAssertError as exc:
                self._failure = exc.at(self.spec.location)
                raise
        return self._checkpoint

    @property
    def model(self) -> Any:
        """The model built by the loader (``loader:``, else the built-in loader when the
        checkpoint carries its config), or None. A load that failed raises its error again on
        every later access, whatever it raised (not None: the subject has a model to load)."""
        if self._model_failure is not None:
            raise self._model_failure.copy()
        if not self._model_loaded:
            try:
                with gc_paused():
                    self._model = self._load_model()
            except InterpAssertError as exc:
                self._model_failure = exc.copy()  # untouched by what claims add to exc
                raise
            except Exception as exc:  # e.g. moving the model to a device torch lacks
                self._model_failure = CheckpointError(
                    f"loading the model of {self.spec.label} failed: {type(exc).__name__}: "
                    f"{str(exc).strip()[:300]}", self.spec.location,
                    hint="check 'subject:' (its 'device:' and the checkpoint)")
                raise self._model_failure.copy() from None
            self._model_loaded = True
        return self._model

    def model_source(self) -> ModelSource | str | None:
        """What the built-in loader builds from the checkpoint when there is no ``loader:``
        (a :class:`ModelSource`), or why it builds nothing; None without a checkpoint."""
        if self.spec.checkpoint is None:
            return None
        return find_model_source(self.spec.checkpoint, self.checkpoint)

    def no_model_error(self) -> InterpAssertError:
        """Why there is no model to run (:attr:`model` is None): what is missing, the fix."""
        if self.spec.loader:
            return QuantityError(f"the subject's loader '{self.spec.loader}' returned None",
                                 hint="the loader must return the model it built")
        source = self.model_source()
        return missing_model_error(self.spec.checkpoint,
                                   source if isinstance(source, str) else None)

    def _load_model(self) -> Any:
        apply_threads()
        if self.spec.loader:
            return self._call_loader(self.spec.loader)
        source = self.model_source()
        if not isinstance(source, ModelSource):
            return None
        build = resolve_callable(AUTO_LOADER, (), "loader")
        with phase("load", self.spec.label):
            return self._place(build(self.checkpoint, source))

    def _call_loader(self, name: str) -> Any:
        loader = resolve_callable(name, self.spec.search_path, "loader")
        checkpoint = self.checkpoint
        args = [checkpoint.raw] if checkpoint is not None else []
        kwargs = {"path": self.spec.checkpoint} if accepts(loader, "path") else {}
        with phase("load", self.spec.label):
            return self._place(call_user(loader, f"loader '{name}'", *args, **kwargs))

    def _place(self, model: Any) -> Any:
        """The model in evaluation mode on the subject's device, in its dtype."""
        if hasattr(model, "eval"):
            model.eval()
        try:
            model = place(model, self.spec.device, self.spec.dtype)
        except DeviceError as exc:
            raise exc.at(self.spec.location) from None
        if self._checkpoint is not None:  # the weights are held once, by the model
            self._checkpoint.share_with(model)  # (only tensors on the same device and dtype)
        return model

    @property
    def sha256(self) -> str | None:
        checkpoint = self.checkpoint
        return checkpoint.sha256 if checkpoint is not None else None

    # -- weights ---------------------------------------------------------------------------
    def loader_model(self) -> Any:
        """The model of ``loader:`` (None without one): what weight names may also name and
        what a ``call:`` quantity receives by default. A model the built-in loader builds is
        not consulted: its weights are the checkpoint's own, read by the names it stores."""
        return self.model if self.spec.loader or self.spec.checkpoint is None else None

    def weight_names(self) -> list[str]:
        names: list[str] = []
        checkpoint = self.checkpoint
        if checkpoint is not None:
            names.extend(checkpoint.state_dict)
        model = self.loader_model()
        if model is not None and hasattr(model, "named_parameters"):
            names.extend(n for n, _ in model.named_parameters() if n not in names)
            names.extend(n for n, _ in model.named_buffers() if n not in names)
        return names

    def has_weight(self, name: str, model: bool = True) -> bool:
        """Whether ``name`` is a weight; a checkpoint that cannot be loaded raises (that is the
        problem to report, not an unknown name; a failing loader raises from weight()). With
        ``model=False`` only the checkpoint's state dict is asked (the model is not loaded)."""
        checkpoint = self.checkpoint
        if not model:
            return checkpoint is not None and name in checkpoint.state_dict
        try:
            self.weight(name)
        except CheckpointError:
            return False
        return True

    def weight(self, name: str) -> Any:
        """A parameter or buffer by dotted name, from the state dict or the loaded model."""
        checkpoint = self.checkpoint
        if checkpoint is not None and name in checkpoint.state_dict:
            return checkpoint.state_dict[name]
        model = self.loader_model()
        if model is not None and hasattr(model, "get_parameter"):
            for getter in (model.get_parameter, model.get_buffer):
                try:
                    return getter(name)
                except (AttributeError, TypeError):
                    continue
        where = self.spec.label
        raise CheckpointError(f"{where} has no weight '{name}'"
                              + did_you_mean(name, self.weight_names()))


_POOL: dict[SubjectSpec, LoadedSubject] = {}
_POOL_LOCK = threading.Lock()
#: (resolved path, allow_pickle) -> ((mtime_ns, size), the loaded checkpoint or its error)
_CHECKPOINTS: dict[tuple[Path, bool], tuple[tuple[int, int], Checkpoint | CheckpointError]] = {}
_CHECKPOINTS_LOCK = threading.Lock()


def get_subject(spec: SubjectSpec) -> LoadedSubject:
    """The process-wide :class:`LoadedSubject` for ``spec`` (loaded at most once), or its
    scope's."""
    pool = spec.scope.subjects if spec.scope is not None else _POOL
    with _POOL_LOCK:
        subject = pool.get(spec)
        if subject is None:
            subject = pool[spec] = LoadedSubject(spec)
        return subject


def load_shared(path: Path, allow_pickle: bool = False) -> Checkpoint:
    """``path`` loaded once per process, whichever specs name it (claim files in different
    folders, the Python API), until the file changes; a failure is remembered too."""
    resolved = safe_resolve(path)
    if resolved.is_dir():  # a Hugging Face model folder: its weights file
        path = resolved = folder_weights(resolved)
    try:
        stat = resolved.stat()
    except (OSError, RuntimeError):
        return load_checkpoint(path, allow_pickle)  # reports the missing file
    version = (stat.st_mtime_ns, stat.st_size)
    key = (resolved, allow_pickle)
    with _CHECKPOINTS_LOCK:
        cached = _CHECKPOINTS.get(key)
        if cached is None or cached[0] != version:
            loaded: Checkpoint | CheckpointError
            try:
                loaded = load_checkpoint(path, allow_pickle)
            except CheckpointError as exc:
                loaded = exc
            cached = _CHECKPOINTS[key] = (version, loaded)
    if isinstance(cached[1], CheckpointError):
        raise copy.copy(cached[1])  # each subject attaches its own location
    return cached[1]


def clear_subjects() -> None:
    """Forget every loaded subject and checkpoint (tests use this)."""
    with _POOL_LOCK:
        _POOL.clear()
    with _CHECKPOINTS_LOCK:
        _CHECKPOINTS.clear()


def subject_summary(spec: SubjectSpec) -> dict[str, str]:
    """What a document shows of a subject: checkpoint, loader, sha256, size and step."""
    out = {"checkpoint": str(spec.checkpoint or "—")}
    if spec.loader:
        out["loader"] = spec.loader
    try:
        checkpoint = get_subject(spec).checkpoint
        if checkpoint is not None:
            out["sha256"] = checkpoint.sha256
            tensors = checkpoint.state_dict
            params = sum(int(t.numel()) for t in tensors.values() if hasattr(t, "numel"))
            out["model"] = f"{len(tensors)} tensors, {params:,} parameters"
            step = checkpoint.metadata.get("step")
            if step is not None:
                out["training step"] = str(step)
    except InterpAssertError as exc:  # a broken checkpoint still gets its document
        out["model"] = f"could not be loaded: {exc}"
    return out
