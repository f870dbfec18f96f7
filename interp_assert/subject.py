"""The subject of claims: a checkpoint and optional loader, loaded once per process."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .checkpoint import Checkpoint, load_checkpoint
from .errors import CheckpointError, InterpAssertError, Location, did_you_mean
from .usercode import accepts, call_user, resolve_callable


@dataclass(frozen=True)
class SubjectSpec:
    """Where a subject comes from; equal specs share one loaded :class:`Subject`."""

    checkpoint: Path | None = None
    loader: str | None = None
    allow_pickle: bool = False
    search_path: tuple[Path, ...] = ()
    device: str = "cpu"
    location: Location | None = field(default=None, compare=False)

    @property
    def label(self) -> str:
        return self.checkpoint.name if self.checkpoint else (self.loader or "subject")


class Subject:
    """Lazily loaded checkpoint, model and cached quantities for one :class:`SubjectSpec`."""

    def __init__(self, spec: SubjectSpec) -> None:
        self.spec = spec
        self._checkpoint: Checkpoint | None = None
        self._model: Any = None
        self._model_loaded = False
        self._failure: InterpAssertError | None = None
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
                self._checkpoint = load_checkpoint(self.spec.checkpoint, self.spec.allow_pickle)
            except InterpAssertError as exc:
                self._failure = exc.at(self.spec.location)
                raise
        return self._checkpoint

    @property
    def model(self) -> Any:
        """The model built by the loader, or None without a loader."""
        if not self._model_loaded:
            self._model_loaded = True
            if self.spec.loader:
                loader = resolve_callable(self.spec.loader, self.spec.search_path, "loader")
                checkpoint = self.checkpoint
                args = [checkpoint.raw] if checkpoint is not None else []
                kwargs = {"path": self.spec.checkpoint} if accepts(loader, "path") else {}
                model = call_user(loader, f"loader '{self.spec.loader}'", *args, **kwargs)
                if hasattr(model, "eval"):
                    model.eval()
                if hasattr(model, "to") and self.spec.device != "cpu":
                    model = model.to(self.spec.device)
                self._model = model
        return self._model

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


_POOL: dict[SubjectSpec, Subject] = {}
_POOL_LOCK = threading.Lock()


def get_subject(spec: SubjectSpec) -> Subject:
    """The process-wide :class:`Subject` for ``spec`` (loaded at most once)."""
    with _POOL_LOCK:
        subject = _POOL.get(spec)
        if subject is None:
            subject = _POOL[spec] = Subject(spec)
        return subject


def clear_subjects() -> None:
    """Forget every loaded subject (tests use this)."""
    with _POOL_LOCK:
        _POOL.clear()
