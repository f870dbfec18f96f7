"""Which model a checkpoint builds by itself, with no ``loader:`` (YAML-only subjects).

* a **Hugging Face model folder** (``config.json`` plus ``model.safetensors`` or
  ``pytorch_model.bin``): the model class ``config.json`` names (else the bare model class)
  with eager attention;
* a **checkpoint carrying its config**: a torch file whose dict holds ``config`` (or ``cfg``)
  beside the state dict, or a ``.safetensors`` file whose header metadata holds ``config``
  (JSON); HookedTransformerConfig fields build a TransformerLens model;
* a **checkpoint file with ``config.json`` beside it**: a Hugging Face config (it has
  ``model_type``) builds that Hugging Face model with the file's weights; TransformerLens
  fields (``n_layers``, ``d_model`` ...) build a TransformerLens model.

A config is Hugging Face's when it has ``model_type``, TransformerLens's when it has
``n_layers`` and ``d_model``. Anything else gives weights only; :func:`missing_model_error`
says what is missing and the two ways to fix it. Nothing heavy is imported here: the model
is built by ``interp_assert.adapters.auto:load``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interp_assert.errors import CheckpointError, QuantityError
from interp_assert.loading.checkpoint import Checkpoint

#: the built-in loader of subjects with no ``loader:`` whose checkpoint carries a config
AUTO_LOADER = "interp_assert.adapters.auto:load"
HUGGING_FACE, TRANSFORMER_LENS = "huggingface", "transformer_lens"
CONFIG_KEYS = ("config", "cfg")
TL_FIELDS = ("n_layers", "d_model")


@dataclass(frozen=True)
class ModelSource:
    """How the built-in loader builds a subject's model."""

    kind: str  # HUGGING_FACE or TRANSFORMER_LENS
    #: the config's fields (a TransformerLens config; None: read from ``folder``)
    config: Mapping[str, Any] | None
    #: the folder whose config.json is read (Hugging Face), or None
    folder: Path | None
    #: whether ``folder`` is a whole model folder (its own weights file is the checkpoint)
    whole_folder: bool = False
    where: str = ""

    def describe(self) -> str:
        """``Hugging Face model folder X`` / ``TransformerLens config in X`` (for messages)."""
        name = "Hugging Face" if self.kind == HUGGING_FACE else "TransformerLens"
        return f"{name} {'model folder' if self.whole_folder else 'config'} {self.where}"


def config_kind(config: Any) -> str | None:
    """Whose config ``config`` is: Hugging Face's, TransformerLens's, or None."""
    if not isinstance(config, Mapping):
        return None
    if "model_type" in config:
        return HUGGING_FACE
    if all(key in config for key in TL_FIELDS):
        return TRANSFORMER_LENS
    return None


def find_model_source(path: Path, checkpoint: Checkpoint) -> ModelSource | str:
    """The model ``path`` (``subject: checkpoint:``, loaded as ``checkpoint``) builds, or a
    sentence saying why it builds none (what is missing)."""
    if path.is_dir():
        config = _read_json(path / "config.json")
        kind = config_kind(config)
        if kind == HUGGING_FACE:
            return ModelSource(kind, None, path, True, f"{path}")
        if kind == TRANSFORMER_LENS:
            return ModelSource(kind, config, None, False, f"{path / 'config.json'}")
        return (f"{path / 'config.json'} is neither a Hugging Face config (no 'model_type') "
                "nor TransformerLens config fields (no 'n_layers' and 'd_model')")
    inside = _config_inside(checkpoint)
    unusable = ""
    if inside is not None:
        key, config = inside
        kind = config_kind(config)
        if kind == TRANSFORMER_LENS:
            return ModelSource(kind, config, None, False, f"'{key}' of {path.name}")
        unusable = (f"; its '{key}' entry is "
                    + ("a Hugging Face config (save it as config.json beside the file)"
                       if kind == HUGGING_FACE else
                       "not TransformerLens config fields (no 'n_layers' and 'd_model')"))
    beside = path.parent / "config.json"
    if beside.is_file():
        config = _read_json(beside)
        kind = config_kind(config)
        if kind == HUGGING_FACE:
            return ModelSource(kind, None, path.parent, False, f"{beside}")
        if kind == TRANSFORMER_LENS:
            return ModelSource(kind, config, None, False, f"{beside}")
        return (f"{beside} beside it is neither a Hugging Face config (no 'model_type') nor "
                f"TransformerLens config fields (no 'n_layers' and 'd_model'){unusable}")
    if unusable:
        return f"{path.name} carries no usable config{unusable}"
    metadata = " (nor in its header metadata)" if path.suffix == ".safetensors" else ""
    return (f"{path.name} is a plain state dict: it carries no config{metadata} and there is "
            f"no config.json beside it in {path.parent}")


def _config_inside(checkpoint: Checkpoint) -> tuple[str, Any] | None:
    """The config a checkpoint carries: a ``config``/``cfg`` entry of its dict, or of its
    safetensors header (JSON text)."""
    for key in CONFIG_KEYS:
        value = checkpoint.metadata.get(key)
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise CheckpointError(f"the '{key}' metadata of {checkpoint.path.name} is not "
                                      "JSON", hint="store the config as json.dumps(config)"
                                      ) from None
        if value is not None:
            return key, value
    return None


def _read_json(path: Path) -> Any:
    """A config.json, or a CheckpointError naming it."""
    from interp_assert.loading.source_files import read_text

    try:
        return json.loads(read_text(path, "model config"))
    except ValueError as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from None
    except Exception as exc:  # SpecError from read_text: not a regular UTF-8 file
        raise CheckpointError(str(getattr(exc, "message", exc))) from None


def missing_model_error(path: Path | None, reason: str | None) -> QuantityError:
    """Why activations and metrics have no model: the subject has no loader and its
    checkpoint builds none (``reason``), with the two ways to fix it."""
    if path is None:
        return QuantityError(
            "activations and metrics need a model, but the subject has neither a checkpoint "
            "nor a loader",
            hint="name a Hugging Face model folder or a checkpoint carrying its config in "
                 "'subject: checkpoint:', or add 'loader: package.module:function' to the "
                 "subject")
    return QuantityError(
        f"activations and metrics need a model, but the subject has no 'loader:' and {reason}",
        hint="either put the model's config.json beside the checkpoint (a Hugging Face config, "
             "or TransformerLens HookedTransformerConfig fields such as n_layers, d_model, "
             "n_heads, d_head, d_mlp, d_vocab, n_ctx), or add 'loader: package.module:function' "
             "to the subject (a function returning the model built from the checkpoint)")
