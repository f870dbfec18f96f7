"""nnsight models as subjects (``pip install -e '.[nnsight]'``).

A user loader wraps its model::

    from interp_assert.adapters.nnsight import wrap

    def load(path):
        return wrap(build_my_model(path))   # a torch module, or an nnsight.NNsight around one

Every hook point is then read by module path through nnsight's tracing
(``model.blocks[0].attn.hook_z.output.save()``), and ablations and patching set the module's
``.output`` inside the same trace, instead of PyTorch hooks. Weights are still named as in the
wrapped module (``blocks.0.attn.W_Q``). Module inputs (``read: input``) are not provided.

A Hugging Face model (an ``nnsight.LanguageModel`` too) also gets the Hugging Face adapter's
hook points that are not modules, read from the same trace's output (the model is switched to
eager attention and asked for ``output_attentions`` / ``output_hidden_states``):
``blocks.{l}.attn.hook_pattern``, ``blocks.{l}.hook_resid_pre`` and ``blocks.{l}.hook_resid_post``.

nnsight (≥ 0.5) runs a trace's body against the model as it executes, so modules must be read in
the order they run: the adapter learns that order once, from one plain forward pass on the
first batch with a hook on every module, and reads and writes them in it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from interp_assert.adapters.base import require
from interp_assert.errors import QuantityError, did_you_mean

INSTALL = "pip install 'interp-assert[nnsight]' (or pip install nnsight)"


def require_nnsight() -> Any:
    """The nnsight module, or an ImportError naming the extra to install."""
    return require("nnsight", "nnsight", INSTALL)


class NNsightModel(nn.Module):
    """A subject model whose hook points and interventions go through an nnsight trace."""

    #: run_forward hands interventions to :meth:`interp_forward` instead of hooking modules
    interp_intervenes = True

    def __init__(self, traced: Any, input_key: str | None = None) -> None:
        super().__init__()
        self.model = traced._module  # the torch module (parameters, devices, weights)
        self.traced = traced
        self.input_key = input_key
        self._order: dict[str, int] | None = None

    # -- names: weights pass through; modules are not hooked directly -------------------------
    def get_submodule(self, target: str) -> nn.Module:
        raise AttributeError(f"'{target}' is read through nnsight")  # every hook is virtual

    def get_parameter(self, target: str) -> nn.Parameter:
        return self.model.get_parameter(target)

    def get_buffer(self, target: str) -> torch.Tensor:
        return self.model.get_buffer(target)

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[tuple[str, nn.Parameter]]:
        return self.model.named_parameters(prefix, recurse, remove_duplicate)

    def module_names(self) -> list[str]:
        """Every module path of the wrapped model."""
        return [name for name, _ in self.model.named_modules() if name]

    @property
    def cfg(self) -> Any:
        return getattr(self.model, "cfg", None)

    # -- running ------------------------------------------------------------------------------
    def _inputs(self, batch: Mapping[str, Any], input_key: str | None) -> Any:
        key = self.input_key or input_key or "tokens"
        if key not in batch:
            raise QuantityError(f"the batch has no field '{key}' for the nnsight model",
                                hint="fields: " + ", ".join(k for k in batch
                                                            if not k.startswith("_")))
        value = batch[key]
        device = next(self.model.parameters()).device
        return torch.as_tensor(value).to(device) if not isinstance(value, torch.Tensor) \
            else value.to(device)

    def _execution_order(self, inputs: Any) -> dict[str, int]:
        """Module path -> rank of its (first) completion in one plain forward pass."""
        if self._order is None:
            order: dict[str, int] = {}

            def seen(name: str) -> None:  # returns None: the output stays as it is
                order.setdefault(name, len(order))

            handles = [module.register_forward_hook(lambda _m, _i, _o, name=name: seen(name))
                       for name, module in self.model.named_modules() if name]
            try:
                with torch.inference_mode():
                    self.model(inputs)
            finally:
                for handle in handles:
                    handle.remove()
            self._order = order
        return self._order

    def interp_forward(self, batch: Mapping[str, Any], hooks: frozenset[str],
                       interventions: Sequence[Any] = (), input_key: str | None = None
                       ) -> dict[str, Any]:
        """Logits and the requested hook points (module outputs), with ``interventions``
        (each ``apply(output, batch)`` -> new output) setting module outputs, in one trace."""
        inputs = self._inputs(batch, input_key)
        order = self._execution_order(inputs)
        names = set(self.module_names())
        for intervention in interventions:
            if intervention.hook not in names:
                raise QuantityError(f"the nnsight model has no module '{intervention.hook}'"
                                    + did_you_mean(intervention.hook, names),
                                    hint="name modules by their path in the wrapped model")
        writes: dict[str, list[Any]] = {}
        for intervention in interventions:
            writes.setdefault(intervention.hook, []).append(intervention)
        reads = {hook for hook in hooks if hook in names}  # others: reported as not provided
        virtual = hf_virtual_hooks(self.model, hooks - reads)
        paths = sorted(reads | set(writes), key=lambda p: order.get(p, len(order)))
        return run_trace(self.traced, inputs, paths, reads, writes, dict(batch), virtual)


def hf_virtual_hooks(model: nn.Module, hooks: set[str] | frozenset[str]
                     ) -> dict[str, tuple[int, str]]:
    """The Hugging Face adapter's virtual hook points among ``hooks`` (hook -> (layer,
    kind)), for a Hugging Face model; nothing for any other module."""
    config = getattr(model, "config", None)
    layers = getattr(config, "num_hidden_layers", None)
    if not isinstance(layers, int) or not hasattr(model, "set_attn_implementation"):
        return {}
    from interp_assert.adapters.huggingface import virtual_hook

    return {hook: found for hook in hooks if (found := virtual_hook(hook, layers)) is not None}


def _envoy(root: Any, path: str) -> Any:
    """The nnsight envoy of a module path (``blocks.0.attn.hook_z``)."""
    envoy = root
    for part in path.split("."):
        envoy = envoy[int(part)] if part.isdigit() else getattr(envoy, part)
    return envoy


def _logits(output: Any) -> Any:
    if hasattr(output, "logits"):
        return output.logits
    if isinstance(output, tuple | list):
        return output[0]
    return output


def run_trace(traced: Any, inputs: Any, paths: list[str], reads: set[str],
              writes: dict[str, list[Any]], batch: dict[str, Any],
              virtual: dict[str, tuple[int, str]] | None = None) -> dict[str, Any]:
    """One nnsight trace: for each path in execution order, apply its writes (set
    ``.output``), then save its output if it is read; and save the model's output (with
    ``virtual`` Hugging Face hook points read from it)."""
    saved: dict[str, Any] = {}
    virtual = virtual or {}
    kinds = {kind for _, kind in virtual.values()}
    extra = {"output_attentions": True} if "attn.hook_pattern" in kinds else {}
    if kinds - {"attn.hook_pattern"}:
        extra["output_hidden_states"] = True
    with traced.trace(inputs, **extra):
        for path in paths:
            envoy = _envoy(traced, path)
            if path in writes:
                value = envoy.output
                for intervention in writes[path]:
                    value = intervention.apply(value, batch)
                envoy.output = value
            if path in reads:
                saved[path] = envoy.output.save()
        output = traced.output.save()
    values = {path: _value(saved[path]) for path in saved}
    output = _value(output)
    if virtual:
        from interp_assert.adapters.huggingface import hook_value

        for hook, (layer, kind) in virtual.items():
            values[hook] = hook_value(output, layer, kind)
    values["logits"] = _logits(output)
    return values


def _value(saved: Any) -> Any:
    """A saved value (nnsight 0.4 wraps it in a proxy with ``.value``; later ones do not)."""
    return getattr(saved, "value", saved) if not isinstance(saved, torch.Tensor) else saved


def wrap(model: Any, input_key: str | None = None) -> NNsightModel:
    """An :class:`NNsightModel` around a torch module or an ``nnsight.NNsight`` (a
    ``LanguageModel`` too); ``input_key``: the dataset field fed to it (default: the
    dataset's ``input``, ``tokens``)."""
    nnsight = require_nnsight()
    if isinstance(model, NNsightModel):
        return model
    traced = model if hasattr(model, "trace") and hasattr(model, "_module") \
        else nnsight.NNsight(model)
    if hf_virtual_hooks(traced._module, {"blocks.0.attn.hook_pattern"}):
        from interp_assert.adapters.huggingface import force_eager

        force_eager(traced._module)  # eager attention is the one that returns patterns
    return NNsightModel(traced, input_key)
