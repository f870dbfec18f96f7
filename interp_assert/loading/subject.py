"""The subject of claims: a checkpoint and optional loader, loaded once per process."""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interp_assert.errors import CheckpointError, InterpAssertError, Location, did_you_mean
from interp_assert.loading.checkpoint import Checkpoint, load_checkpoint
from interp_assert.loading.source_files import safe_resolve
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
                self._checkpoint = load_shared(self.spec.checkpoint, self.spec.allow_pickle)
            except InterpAssertError as exc:
                self._failure = exc.at(self.spec.location)
                raise
        return self._checkpoint

    @property
    def model(self) -> Any:
        """The model built by the loader, or None without a loader. A loader that failed
        raises its error again on every later access (not None: the subject has a loader)."""
        if self._model_failure is not None:
            raise self._model_failure.copy()
        if not self._model_loaded:
            self._model_loaded = True
            if self.spec.loader:
                try:
                    self._model = self._load_model(self.spec.loader)
                except InterpAssertError as exc:
                    self._model_failure = exc.copy()  # untouched by what claims add to exc
                    raise
        return self._model

    def _load_model(self, name: str) -> Any:
        loader = resolve_callable(name, self.spec.search_path, "loader")
        checkpoint = self.checkpoint
        args = [checkpoint.raw] if checkpoint is not None else []
        kwargs = {"path": self.spec.checkpoint} if accepts(loader, "path") else {}
        model = call_user(loader, f"loader '{name}'", *args, **kwargs)
        if hasattr(model, "eval"):
            model.eval()
        if hasattr(model, "to") and self.spec.device != "cpu":
            model = model.to(self.spec.device)
        if checkpoint is not None:
            checkpoint.share_with(model)  # the weights are held once, by the model
        return model

    @property
    def sha256(self) -> str | None:
        checkpoint = self.checkpoint
        return checkpoint.sha256 if checkpoint is not None else None

    # -- weights ---------------------------------------------------------------------------
    def weight_names(self) -> list[str]:
        names: list[str] = []
        checkpoint = self.checkpoint
        if checkpoint is not None:
            names.extend(checkpoint.state_dict)
        model = self.model
        if model is not None and hasattr(model, "named_parameters"):
            names.extend(n for n, _ in model.named_parameters() if n not in names)
            names.extend(n for n, _ in model.named_buffers() if n not in names)
        return names

    def has_weight(self, name: str) -> bool:
        """Whether ``name`` is a weight; a checkpoint that cannot be loaded raises (that is the
        problem to report, not an unknown name; a failing loader raises from weight())."""
        _ = self.checkpoint
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
        model = self.model
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
