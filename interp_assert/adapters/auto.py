"""The built-in loader of subjects with no ``loader:`` (YAML-only subjects).

``subject: checkpoint:`` names a Hugging Face model folder, a checkpoint carrying a
TransformerLens config, or a checkpoint file with ``config.json`` beside it
(:mod:`interp_assert.loading.model_source` decides which); this builds the model:

* Hugging Face: :func:`interp_assert.adapters.huggingface.load_model` (the class config.json
  names, else the bare model class; eager attention; local files only), from the folder's own
  weights file or from the checkpoint's tensors;
* TransformerLens: :func:`interp_assert.adapters.transformer_lens.build_hooked` from the
  config and the checkpoint's TransformerLens-format state dict.

Every failure is a :class:`CheckpointError` naming what was tried and what went wrong.
"""

from __future__ import annotations

from typing import Any

from interp_assert.errors import CheckpointError
from interp_assert.loading.checkpoint import Checkpoint
from interp_assert.loading.model_source import HUGGING_FACE, ModelSource


def load(checkpoint: Checkpoint, source: ModelSource) -> Any:
    """The model ``source`` describes, with ``checkpoint``'s weights, in evaluation mode."""
    extra = "hf" if source.kind == HUGGING_FACE else "tl"
    try:
        model = _load_hf(checkpoint, source) if source.kind == HUGGING_FACE else _load_tl(
            checkpoint, source)
    except ImportError as exc:
        raise CheckpointError(
            f"building the model from the {source.describe()} needs a library that is not "
            f"installed ({exc})",
            hint=f"pip install 'interp-assert[{extra}]', or add 'loader:' to the subject"
        ) from None
    except CheckpointError:
        raise
    except Exception as exc:
        detail = str(exc).strip().replace("\n", " ")[:400]
        raise CheckpointError(
            f"building the model from the {source.describe()} with the weights of "
            f"{checkpoint.path.name} failed: {type(exc).__name__}: {detail}",
            hint="check that the config and the weights belong together, or add 'loader:' "
                 "to the subject") from None
    return model.eval()


def _load_hf(checkpoint: Checkpoint, source: ModelSource) -> Any:
    from interp_assert.adapters.huggingface import load_model

    assert source.folder is not None
    # the weights come from the checkpoint already read (a folder's own weights file too), so
    # the file is not read a second time
    return load_model(source.folder, state_dict=checkpoint.state_dict)


def _load_tl(checkpoint: Checkpoint, source: ModelSource) -> Any:
    from interp_assert.adapters.transformer_lens import (
        TLModel,
        build_hooked,
        require_transformer_lens,
        tl_config,
    )

    require_transformer_lens()
    assert source.config is not None
    return TLModel(build_hooked(tl_config(source.config), checkpoint.state_dict))
