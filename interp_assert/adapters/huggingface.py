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

Weights missing from the checkpoint are never read silently (transformers would initialise
them randomly and only print a load report). When the class ``config.json`` names has a head
(``BertForMaskedLM``) whose weights the checkpoint lacks, only its ``base_model`` (e.g. the
``BertModel`` inside, already loaded: the folder is read once) is kept: hidden states,
attentions and modules are read as usual, and anything that reads the logits (a metric, a
loss) is an error naming the missing head weights. A missing pooler is dropped (the adapter
never reads ``pooler_output``); any other missing weight is a load error naming it.
See docs/definitions.md (Model adapters and interventions).
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
                 input_key: str | None = None, missing_head: tuple[str, ...] = (),
                 head_class: str | None = None) -> None:
        super().__init__()
        force_eager(model)
        self.model = model
        self.tokenizer = tokenizer
        self.input_key = input_key
        #: weights of the config's head that the checkpoint lacks (the bare model was built)
        self.missing_head = tuple(missing_head)
        self.head_class = head_class

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
            found = virtual_hook(hook, self.n_layers)
            if found is None:
                raise QuantityError(f"the Hugging Face model has no hook point or module "
                                    f"'{hook}'" + did_you_mean(hook, self.hook_names()),
                                    hint="hook points: blocks.{l}.attn.hook_pattern, "
                                         "blocks.{l}.hook_resid_pre, blocks.{l}.hook_resid_post "
                                         f"(l < {self.n_layers}), or any module path")
            wanted[hook] = found
        kinds = {kind for _, kind in wanted.values()}
        output = self.model(**self.inputs(batch), return_dict=True,
                            output_attentions="attn.hook_pattern" in kinds,
                            output_hidden_states=bool(kinds - {"attn.hook_pattern"}))
        logits = getattr(output, "logits", None)
        if logits is None:
            logits = (MissingHead(self.head_class or "its head", self.missing_head)
                      if self.missing_head else output.last_hidden_state)
        out: dict[str, Any] = {"logits": logits}
        for hook, (layer, kind) in wanted.items():
            out[hook] = hook_value(output, layer, kind)
        return out

    def weight_names(self) -> list[str]:
        return [name for name, _ in self.named_parameters()]


def virtual_hook(hook: str, layers: int) -> tuple[int, str] | None:
    """(layer, kind) of a hook point read off the model's outputs (``blocks.{l}.attn.hook_pattern``,
    ``blocks.{l}.hook_resid_pre`` / ``_post`` with l < ``layers``), else None."""
    match = _HOOK.match(hook)
    if match is None or int(match.group(1)) >= layers:
        return None
    return int(match.group(1)), match.group(2)


def hook_value(output: Any, layer: int, kind: str) -> torch.Tensor:
    """A virtual hook point's value from a Hugging Face model output: ``attn.hook_pattern`` from
    ``attentions``, ``hook_resid_pre`` / ``hook_resid_post`` from ``hidden_states``."""
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


class MissingHead:
    """Stands in for the logits of a model built without its head (the checkpoint lacks the
    head's weights): any use of it raises a QuantityError naming the missing weights, so only
    the claims that read logits (metrics, losses) fail, each with that error."""

    def __init__(self, head_class: str, missing: tuple[str, ...]) -> None:
        object.__setattr__(self, "_error", (head_class, missing))

    def _fail(self, *_args: Any, **_kwargs: Any) -> Any:
        head_class, missing = object.__getattribute__(self, "_error")
        shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more"
                                          if len(missing) > 8 else "")
        raise QuantityError(
            f"the logits need the head of {head_class}, but the checkpoint has no weights "
            f"for it ({shown}); transformers would have initialised them randomly",
            hint="read hidden states or attentions (the bare model was built for those), or "
                 "use a checkpoint that holds the head's weights")

    def __getattr__(self, name: str) -> Any:
        return self._fail()

    __getitem__ = __array__ = __len__ = __iter__ = __float__ = __bool__ = _fail

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None
                           ) -> Any:
        head = next(a for a in (*args, *(kwargs or {}).values()) if isinstance(a, cls))
        return head._fail()


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
               input_key: str | None = None,
               state_dict: Mapping[str, torch.Tensor] | None = None) -> HFModel:
    """An :class:`HFModel` from a local model folder or a model object.

    A folder is loaded with the class its ``config.json`` names (``architectures``; else
    ``AutoModel``), or ``model_class``; its tokenizer is loaded too when present. With
    ``state_dict`` the weights are those tensors (a weights file beside ``config.json``), not
    the folder's weights file.
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
        model, missing = _from_folder(model_class, folder, state_dict)
        named, missing_head = type(model).__name__, head_weights(model, missing)
        if missing_head:  # keep the bare base model; what reads logits is an error (MissingHead)
            prefix = f"{model.base_model_prefix}."
            missing = [k.removeprefix(prefix) for k in missing if k.startswith(prefix)]
            model = model.base_model  # already loaded: the folder is read once
        refuse_missing(model, missing, folder)
        if tokenizer is None and any(folder.glob("tokenizer*")):
            from interp_assert.loading.text_data import tokenizer_from_folder

            tokenizer = tokenizer_from_folder(folder)  # the one a dataset of it reads too
        return HFModel(model.eval(), tokenizer, input_key, missing_head,
                       named if missing_head else None)
    if isinstance(source, nn.Module) and hasattr(source, "config"):
        return HFModel(source, tokenizer, input_key)
    raise TypeError(f"load_model needs a model folder or a transformers model, not "
                    f"{type(source).__name__}")


def _from_folder(model_class: Any, folder: Path,
                 state_dict: Mapping[str, torch.Tensor] | None = None
                 ) -> tuple[nn.Module, list[str]]:
    """``model_class`` loaded from ``folder`` (eager attention, local files only), or from its
    config.json and ``state_dict``, and the names of the weights the checkpoint lacks
    (transformers initialised them randomly)."""
    if state_dict is not None:
        transformers = require_transformers()
        config = transformers.AutoConfig.from_pretrained(folder, local_files_only=True)
        if model_class is transformers.AutoModel:  # an Auto class needs a folder: the bare one
            model_class = transformers.MODEL_MAPPING[type(config)]
        model, info = model_class.from_pretrained(None, config=config,
                                                  state_dict=dict(state_dict),
                                                  attn_implementation="eager",
                                                  output_loading_info=True)
    else:
        model, info = model_class.from_pretrained(folder, attn_implementation="eager",
                                                  local_files_only=True,
                                                  output_loading_info=True)
    return model, sorted(info.get("missing_keys", ()))


def head_weights(model: nn.Module, missing: list[str]) -> tuple[str, ...]:
    """The missing weights outside the model's base model (``base_model_prefix``): its head's.
    Empty for a bare model (its own base model)."""
    if getattr(model, "base_model", model) is model:
        return ()
    prefix = f"{model.base_model_prefix}."
    return tuple(k for k in missing if not k.startswith(prefix))


def refuse_missing(model: nn.Module, missing: list[str], folder: Path) -> None:
    """Drop a pooler whose weights are missing (its output is never read; it would be
    random); any other missing weight is an error naming it."""
    if missing and all(k.startswith("pooler.") for k in missing) and hasattr(model, "pooler"):
        model.pooler = None
        return
    if missing:
        raise ValueError(f"the checkpoint in {folder} lacks weights of {type(model).__name__} "
                         f"({', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}); "
                         "transformers would initialise them randomly. Use the model class "
                         "the checkpoint was saved from (load_model(folder, model_class=...))")


def load(checkpoint: Any = None, path: Path | None = None) -> HFModel:
    """Subject loader: the model in the folder of ``subject: checkpoint:`` (its weights file)."""
    require_transformers()
    if path is None:
        raise ValueError("name the model's weights file as 'checkpoint:' (e.g. "
                         "my-model/model.safetensors); the model is read from its folder. "
                         "For other layouts write a loader calling "
                         "interp_assert.adapters.huggingface.load_model(folder)")
    return load_model(Path(path).parent)
