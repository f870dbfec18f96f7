"""Hugging Face transformers models as subjects (extra ``[hf]``).

Loaders (``subject: loader:``):

* ``interp_assert.adapters.huggingface:load`` with ``checkpoint:`` the model's weights file
  (``model.safetensors`` / ``pytorch_model.bin``): the model is read from that file's folder.
  Weight claims read the file's tensors by their Hugging Face names.
* :func:`load_model` (a folder or a model object) for loaders of your own.

Models are loaded locally (never downloaded) with eager attention (``sdpa`` returns no
patterns). :class:`HFModel` runs the model itself and provides TransformerLens-style hook
points that are not modules:

* ``blocks.{l}.attn.hook_pattern`` [batch, head, query, key], from ``output_attentions``;
* ``blocks.{l}.hook_resid_pre`` / ``blocks.{l}.hook_resid_post`` [batch, pos, d_model], from
  ``hidden_states`` (as Hugging Face returns them: for GPT-2-style models the last one is
  after the final norm);

and every module by its own dotted path (``encoder.layer.0.attention.output.dense``) through
ordinary forward hooks. The logits are the model's when it has a head, else its last hidden
state. Batches may carry ``attention_mask`` and ``token_type_ids`` (a sentence dataset makes
both); they are passed to the model.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from interp_assert.adapters.base import WrappedModel, require
from interp_assert.errors import QuantityError, did_you_mean

INSTALL = "pip install 'interp-assert[hf]'"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
INPUT_KEYS = ("input_ids", "tokens", "input")
_HOOK = re.compile(r"^blocks\.(\d+)\.(attn\.hook_pattern|hook_resid_pre|hook_resid_post)$")


def require_transformers() -> Any:
    """The ``transformers`` module, or an ImportError naming the extra to install."""
    return require("transformers", "Hugging Face", INSTALL)


def force_eager(model: Any) -> None:
    """Switch a loaded model to eager attention, the one that returns attention patterns."""
    config = getattr(model, "config", None)
    if getattr(config, "_attn_implementation", "eager") == "eager":
        return
    try:
        model.set_attn_implementation("eager")
    except (AttributeError, ValueError, TypeError):
        config._attn_implementation = "eager"


class HFModel(WrappedModel):
    """A Hugging Face model with interp-assert's adapter protocol (``interp_forward``).

    Module paths, parameters and buffers are the wrapped model's own (no prefix), so forward
    hooks and weight names work as on the model itself.
    """

    def __init__(self, model: nn.Module, tokenizer: Any = None,
                 input_key: str | None = None) -> None:
        super().__init__()
        force_eager(model)
        self.model = model
        self.tokenizer = tokenizer
        self.input_key = input_key

    # -- the wrapped model's names --------------------------------------------------------






    @property
    def n_layers(self) -> int:
        return int(getattr(self.model.config, "num_hidden_layers", 0))

    def hook_names(self) -> list[str]:
        """The virtual hook points this adapter provides."""
        return [f"blocks.{layer}.{suffix}" for layer in range(self.n_layers)
                for suffix in ("hook_resid_pre", "attn.hook_pattern", "hook_resid_post")]

    # -- running -----------------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs)

    def inputs(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """The model's keyword inputs from a batch: ids, attention mask, token types."""
        key = self.input_key or next((k for k in INPUT_KEYS if k in batch), None)
        if key is None or key not in batch:
            raise QuantityError("the batch has no token ids for the Hugging Face model",
                                hint="fields: " + ", ".join(k for k in batch
                                                            if not k.startswith("_")))
        device = next(self.model.parameters()).device
        inputs = {"input_ids": _tensor(batch[key], device)}
        for name in ("attention_mask", "token_type_ids"):
            if name in batch and _accepts(self.model.forward, name):
                inputs[name] = _tensor(batch[name], device)
        return inputs

    def interp_forward(self, batch: Mapping[str, Any], hooks: frozenset[str]
                       ) -> dict[str, Any]:
        """Run the model on a batch: logits plus the requested virtual hook points."""
        wanted = {}
        for hook in hooks:
            match = _HOOK.match(hook)
            if match is None or int(match.group(1)) >= self.n_layers:
                raise QuantityError(f"the Hugging Face model has no hook point or module "
                                    f"'{hook}'" + did_you_mean(hook, self.hook_names()),
                                    hint="hook points: blocks.{l}.attn.hook_pattern, "
                                         "blocks.{l}.hook_resid_pre, blocks.{l}.hook_resid_post "
                                         f"(l < {self.n_layers}), or any module path")
            wanted[hook] = (int(match.group(1)), match.group(2))
        kinds = {kind for _, kind in wanted.values()}
        output = self.model(**self.inputs(batch), return_dict=True,
                            output_attentions="attn.hook_pattern" in kinds,
                            output_hidden_states=bool(kinds - {"attn.hook_pattern"}))
        logits = getattr(output, "logits", None)
        out: dict[str, Any] = {"logits": logits if logits is not None
                               else output.last_hidden_state}
        for hook, (layer, kind) in wanted.items():
            out[hook] = self._value(output, layer, kind)
        return out

    def _value(self, output: Any, layer: int, kind: str) -> torch.Tensor:
        if kind == "attn.hook_pattern":
            attentions = getattr(output, "attentions", None)
            if not attentions or attentions[layer] is None:
                raise QuantityError("the model returned no attention patterns",
                                    hint="load it with attn_implementation='eager' "
                                         "(load_model does)")
            return attentions[layer]
        hidden = getattr(output, "hidden_states", None)
        if not hidden:
            raise QuantityError("the model returned no hidden states")
        return hidden[layer] if kind == "hook_resid_pre" else hidden[layer + 1]

    def weight_names(self) -> list[str]:
        return [name for name, _ in self.named_parameters()]


def _accepts(function: Any, name: str) -> bool:
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return True
    return name in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


def _tensor(value: Any, device: torch.device) -> torch.Tensor:
    tensor = value if isinstance(value, torch.Tensor) else torch.as_tensor(value)
    return tensor.to(device=device, dtype=torch.long)


def load_model(source: Any, *, tokenizer: Any = None, model_class: Any = None,
               input_key: str | None = None) -> HFModel:
    """An :class:`HFModel` from a local model folder or a model object.

    A folder is loaded with the class its ``config.json`` names (``architectures``; else
    ``AutoModel``), or ``model_class``; its tokenizer is loaded too when present.
    """
    if isinstance(source, HFModel):
        return source
    if isinstance(source, str | Path):
        transformers = require_transformers()
        folder = Path(source)
        if not folder.is_dir():
            raise FileNotFoundError(f"no model folder at {folder}")
        if model_class is None:
            config = transformers.AutoConfig.from_pretrained(folder, local_files_only=True)
            names = getattr(config, "architectures", None) or []
            model_class = getattr(transformers, names[0], None) if names else None
            model_class = model_class or transformers.AutoModel
        model = model_class.from_pretrained(folder, attn_implementation="eager",
                                            local_files_only=True)
        if tokenizer is None and any(folder.glob("tokenizer*")):
            tokenizer = transformers.AutoTokenizer.from_pretrained(folder,
                                                                   local_files_only=True)
        return HFModel(model.eval(), tokenizer, input_key)
    if isinstance(source, nn.Module) and hasattr(source, "config"):
        return HFModel(source, tokenizer, input_key)
    raise TypeError(f"load_model needs a model folder or a transformers model, not "
                    f"{type(source).__name__}")


def load(checkpoint: Any = None, path: Path | None = None) -> HFModel:
    """Subject loader: the model in the folder of ``subject: checkpoint:`` (its weights file)."""
    require_transformers()
    if path is None:
        raise ValueError("name the model's weights file as 'checkpoint:' (e.g. "
                         "my-model/model.safetensors); the model is read from its folder. "
                         "For other layouts write a loader calling "
                         "interp_assert.adapters.huggingface.load_model(folder)")
    return load_model(Path(path).parent)
