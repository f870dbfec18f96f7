"""TransformerLens models as subjects (extra ``[tl]``), for TransformerLens 4's
``TransformerBridge`` and 3.x's ``HookedTransformer`` / ``HookedEncoder``.

Loaders (``subject: loader:``):

* ``interp_assert.adapters.transformer_lens:load_hooked``: a checkpoint holding a config
  (``config`` or ``cfg``: HookedTransformerConfig fields; ``normalization`` is read as
  ``normalization_type`` and ``d_mlp: null`` as ``attn_only``) and a TransformerLens-format
  state dict (``blocks.0.attn.W_Q`` ...). With 3.x it builds a ``HookedTransformer`` (or a
  ``HookedEncoder`` for ``attention_dir: bidirectional``); with 4.x, where those classes are
  gone, a TL-native ``TransformerBridge`` (``boot_native``) with the same computation.
* ``interp_assert.adapters.transformer_lens:load_bridge`` (4.x): ``checkpoint:`` a Hugging Face
  weights file; the model in its folder is booted with ``TransformerBridge.boot_transformers``.
* :func:`wrap` for loaders of your own (any of the three model classes).

Hook names are activation quantities (``activation: blocks.0.attn.hook_pattern``). Hook points
are submodules, so ordinary forward hooks read them (the bridge's aliases resolve to the same
HookPoint modules). A bridge hook point that reshapes what its hooks see (``hook_q``,
``hook_k``, ``hook_v``, ``hook_z``: flat in the module, [batch, pos, head, d_head] for hooks)
is offered as a :class:`ConvertedHook`, whose hooks are added with TransformerLens's own
``HookPoint.add_hook``: reads and interventions (ablation, patching) see and return
TransformerLens's shape, exactly as ``run_with_hooks`` hooks do. A ``tl_parameters()``
checkpoint of a bridge loads with ``load_hooked`` (its all-zero placeholders for weights the
model lacks are dropped). Weights ``W_Q W_K W_V W_O W_in W_out W_E W_U`` (and the biases) are
weight quantities by their TransformerLens names (``blocks.0.attn.W_Q``). See
docs/definitions.md (Model adapters and interventions).
"""

from __future__ import annotations

import dataclasses
import inspect
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from interp_assert.adapters.base import WrappedModel, require
from interp_assert.errors import QuantityError, did_you_mean
from interp_assert.loading.checkpoint import split_state_dict

INSTALL = "pip install 'interp-assert[tl]'"
INPUT_KEYS = ("tokens", "input_ids", "input")
CONFIG_KEYS = ("config", "cfg")
#: buffers HookedTransformer keeps in its state dict that a checkpoint may lack
_DERIVED_BUFFERS = ("IGNORE", "mask")


def require_transformer_lens() -> Any:
    """The ``transformer_lens`` module, or an ImportError naming the extra to install."""
    return require("transformer_lens", "TransformerLens", INSTALL)


def legacy_classes() -> tuple[Any, Any, Any] | None:
    """(HookedTransformer, HookedEncoder, HookedTransformerConfig) on TransformerLens < 4."""
    require_transformer_lens()
    try:
        from transformer_lens import (  # type: ignore[attr-defined]
            HookedEncoder,
            HookedTransformer,
            HookedTransformerConfig,
        )
    except ImportError:
        return None
    return HookedTransformer, HookedEncoder, HookedTransformerConfig


def bridge_class() -> Any:
    """``TransformerBridge``, or an ImportError when this TransformerLens has none."""
    require_transformer_lens()
    try:
        from transformer_lens.model_bridge import TransformerBridge
    except ImportError as exc:
        raise ImportError(f"this TransformerLens has no TransformerBridge ({exc}); "
                          "TransformerLens 4 has it") from None
    return TransformerBridge


class _LensRemover:
    """Removes a hook added with ``HookPoint.add_hook``: its torch handle and its entry."""

    def __init__(self, point: Any, handle: Any) -> None:
        self.point, self.handle = point, handle

    def remove(self) -> None:
        self.handle.hook.remove()
        if self.handle in self.point.fwd_hooks:
            self.point.fwd_hooks.remove(self.handle)


class ConvertedHook(nn.Module):
    """A bridge HookPoint with a ``hook_conversion``, as a module whose forward (pre-)hooks go
    through TransformerLens's ``HookPoint.add_hook``: a hook ``f(module, args, output)`` sees
    the converted value (what ``run_with_hooks`` hooks see), and a value it returns is
    converted back, as for ``run_with_hooks``. A pre-hook sees the value before the point's
    other hooks (the input of the identity HookPoint)."""

    def __init__(self, point: Any) -> None:
        super().__init__()
        object.__setattr__(self, "point", point)  # not a child module: names stay the model's

    def register_forward_hook(self, hook: Any, *args: Any, **kwargs: Any) -> _LensRemover:
        def lens_hook(value: Any, hook: Any = None) -> Any:
            return module_hook(self, (value,), value)

        module_hook = hook
        return _LensRemover(self.point, self.point.add_hook(lens_hook))

    def register_forward_pre_hook(self, hook: Any, *args: Any, **kwargs: Any) -> _LensRemover:
        def lens_hook(value: Any, hook: Any = None) -> None:
            module_hook(self, (value,))

        module_hook = hook
        return _LensRemover(self.point, self.point.add_hook(lens_hook, prepend=True))


# ---- the adapter ----------------------------------------------------------------------------
class TLModel(WrappedModel):
    """A TransformerLens model with interp-assert's adapter protocol (``interp_forward``).

    Module paths, parameters and hook names are the wrapped model's own (no prefix).
    """

    def __init__(self, model: nn.Module, input_key: str | None = None) -> None:
        super().__init__()
        if not hasattr(model, "hook_dict") or not hasattr(model, "run_with_cache"):
            raise TypeError(f"{type(model).__name__} is not a TransformerLens model (no "
                            "hook_dict / run_with_cache)")
        self.model = model
        self.input_key = input_key

    @property
    def cfg(self) -> Any:
        return self.model.cfg

    # -- names ---------------------------------------------------------------------------------
    def get_submodule(self, target: str) -> nn.Module:
        """The module at ``target``. A bridge hook point whose hooks see a reshaped value
        (``hook_z``: flat in the module, [batch, pos, head, d_head] for hooks) is offered as a
        :class:`ConvertedHook`, whose forward hooks go through TransformerLens's own
        ``add_hook``: they see, and may return, the value in TransformerLens's shape."""
        module = self.model.get_submodule(target)
        if getattr(module, "hook_conversion", None) is not None:
            return ConvertedHook(module)
        return module

    def get_parameter(self, target: str) -> torch.Tensor:
        """A parameter by path, else a TransformerLens weight property (``blocks.0.attn.W_Q``
        on a bridge, where the weights are computed from the wrapped model's)."""
        try:
            return self.model.get_parameter(target)
        except AttributeError:
            pass
        owner, _, leaf = target.rpartition(".")
        module = self.model.get_submodule(owner) if owner else self.model
        value = getattr(module, leaf, None)
        if not isinstance(value, torch.Tensor):
            raise AttributeError(f"the model has no weight '{target}'")
        return value.detach()





    def hook_names(self) -> list[str]:
        return sorted(self.model.hook_dict)

    def weight_names(self) -> list[str]:
        """TransformerLens weight names (a bridge's ``tl_parameters``) and parameter paths."""
        names = list(self.model.tl_parameters()) if hasattr(self.model, "tl_parameters") else []
        return names + [n for n, _ in self.model.named_parameters() if n not in names]

    # -- running -------------------------------------------------------------------------------
    def forward(self, tokens: Any, **kwargs: Any) -> Any:
        return self.model(tokens, **kwargs)

    def inputs(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Tokens and keyword inputs (a padding mask, token types) from a batch."""
        key = self.input_key or next((k for k in INPUT_KEYS if k in batch), None)
        if key is None or key not in batch:
            raise QuantityError("the batch has no tokens for the TransformerLens model",
                                hint="fields: " + ", ".join(k for k in batch
                                                            if not k.startswith("_")))
        device = next(iter(self.model.parameters())).device
        tokens = _tensor(batch[key], device)
        kwargs: dict[str, torch.Tensor] = {}
        mask = batch.get("attention_mask")
        if mask is not None and not bool((_tensor(mask, device) != 0).all()):
            name = next((n for n in ("attention_mask", "one_zero_attention_mask")
                         if _accepts(self.model.forward, n)), None)
            if name is None:
                raise QuantityError("the batch is padded but the model takes no attention "
                                    "mask")
            kwargs[name] = _tensor(mask, device)
        if "token_type_ids" in batch and _accepts(self.model.forward, "token_type_ids"):
            kwargs["token_type_ids"] = _tensor(batch["token_type_ids"], device)
        return tokens, kwargs

    def interp_forward(self, batch: Mapping[str, Any], hooks: frozenset[str]
                       ) -> dict[str, Any]:
        """Logits, plus the requested hook points that are not read as modules."""
        tokens, kwargs = self.inputs(batch)
        if not hooks:
            return {"logits": self.model(tokens, **kwargs)}
        known = self.model.hook_dict
        for hook in hooks:
            if hook not in known:
                raise QuantityError(f"the model has no hook point or module '{hook}'"
                                    + did_you_mean(hook, known),
                                    hint="hook points: " + ", ".join(sorted(known)[:12]))
        logits, cache = self.model.run_with_cache(tokens, names_filter=sorted(hooks), **kwargs)
        return {"logits": logits, **{hook: cache[hook] for hook in hooks}}


def _accepts(function: Any, name: str) -> bool:
    try:
        return name in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


def _tensor(value: Any, device: torch.device) -> torch.Tensor:
    tensor = value if isinstance(value, torch.Tensor) else torch.as_tensor(value)
    return tensor.to(device)


# ---- loaders --------------------------------------------------------------------------------
def wrap(model: Any, input_key: str | None = None) -> TLModel:
    """A :class:`TLModel` around a HookedTransformer, HookedEncoder or TransformerBridge."""
    require_transformer_lens()
    if isinstance(model, TLModel):
        return model
    return TLModel(model, input_key)


def tl_config(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A config dict with HookedTransformerConfig names (``normalization`` ->
    ``normalization_type``; ``d_mlp: None`` -> ``attn_only``)."""
    config = dict(raw)
    if "normalization" in config:
        config.setdefault("normalization_type", config.pop("normalization"))
    if config.get("d_mlp", 0) is None:
        config.setdefault("attn_only", True)
    return config


def split_checkpoint(checkpoint: Any) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(config, TransformerLens-format state dict) of a checkpoint object."""
    if not isinstance(checkpoint, Mapping):
        raise TypeError("load_hooked needs a checkpoint dict with a config and a state dict")
    config = next((checkpoint[k] for k in CONFIG_KEYS if k in checkpoint), None)
    if not isinstance(config, Mapping):
        raise KeyError("the checkpoint has no 'config' (or 'cfg') mapping of "
                       "HookedTransformerConfig fields")
    state, _metadata = split_state_dict(checkpoint, Path("checkpoint"))
    return tl_config(config), state


def build_hooked(config: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor] | None = None,
                 ) -> nn.Module:
    """A HookedTransformer / HookedEncoder (3.x) or TL-native TransformerBridge (4.x) from a
    config, with ``state_dict`` (TransformerLens format) loaded when given."""
    legacy = legacy_classes()
    if legacy is not None:
        hooked, encoder, config_class = legacy
        fields = {f.name for f in dataclasses.fields(config_class)}
        cfg = config_class(**{k: v for k, v in config.items() if k in fields})
        model_class = encoder if config.get("attention_dir") == "bidirectional" else hooked
        with warnings.catch_warnings():  # 3.x deprecates the class that 3.x loaders build
            warnings.filterwarnings("ignore", r"Hooked\w* is deprecated", DeprecationWarning)
            model = model_class(cfg)
        if state_dict is not None:
            _load_legacy(model, state_dict)
        return model
    bridge = bridge_class()
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.utilities.tl_checkpoint_conversion import convert_tl_checkpoint

    cfg = TransformerBridgeConfig.from_dict(dict(config))
    model = bridge.boot_native(cfg)
    if state_dict is not None:
        _load_checked(model, convert_tl_checkpoint(dict(state_dict), cfg))
    return model


def _load_legacy(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> None:
    _load_checked(model, dict(state_dict))


def _load_checked(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    """Load ``state_dict`` into ``model``, refusing missing weights and unexpected ones.

    A weight the model does not have whose tensor is all zeros is a placeholder, and is
    dropped: ``TransformerBridge.tl_parameters()`` exports zeros for every weight a model
    lacks (the MLP of an attention-only model, absent biases), and a zero MLP or bias computes
    what its absence computes. A non-zero weight the model does not have is an error."""
    own = set(model.state_dict())
    placeholders = [k for k, v in state_dict.items()
                    if k not in own and isinstance(v, torch.Tensor) and not bool(v.any())]
    result = model.load_state_dict({k: v for k, v in state_dict.items()
                                    if k not in placeholders}, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith(_DERIVED_BUFFERS)]
    problems = [f"missing {missing[:6]}"] if missing else []
    if result.unexpected_keys:
        problems.append(f"unexpected {list(result.unexpected_keys)[:6]} (non-zero weights "
                        "that the config's model does not have)")
    if problems:
        raise KeyError("the state dict does not fit the config: " + "; ".join(problems))


def load_hooked(checkpoint: Any) -> TLModel:
    """Subject loader: a model built from the checkpoint's config and TransformerLens-format
    state dict (no download)."""
    require_transformer_lens()
    config, state = split_checkpoint(checkpoint)
    return TLModel(build_hooked(config, state).eval())


def load_bridge(checkpoint: Any = None, path: Path | None = None) -> TLModel:
    """Subject loader (TransformerLens 4): the Hugging Face model in the folder of
    ``subject: checkpoint:`` booted as a TransformerBridge (local files only)."""
    bridge = bridge_class()
    if path is None:
        raise ValueError("name the model's weights file as 'checkpoint:'; the model is read "
                         "from its folder")
    return TLModel(bridge.boot_transformers(str(Path(path).parent), device="cpu").eval())
