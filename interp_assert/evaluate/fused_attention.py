"""Hook points and weights of a fused attention, as the claim file's ``layout: attention:``
rule describes it (:mod:`interp_assert.loading.layout_rules`).

From the output of the fused projection ``qkv`` ([batch, pos, 3·n_heads·d_head]):

* ``hook_q``, ``hook_k``, ``hook_v``: the three parts, split [batch, pos, head, d_head];
* ``hook_attn_scores``: ``scale · q·kᵀ`` [batch, head, query, key], −inf where the key comes
  after the query (causal);
* ``hook_pattern``: its softmax over keys, computed in float32 at least;

and from the input of the output projection ``out``: ``hook_z`` [batch, pos, head, d_head].
A forward hook on one of them sees that value; one returning a tensor (an ablation or a patch)
replaces it: ``hook_q/k/v`` are written back into the projection's output, ``hook_z`` into the
output projection's input. The scores and the pattern can be read, not replaced.

The weights: the fused projection's ``weight`` (an ``nn.Linear``'s ``[3·n_heads·d_head,
d_model]``) gives ``W_Q``, ``W_K``, ``W_V`` ``[head, d_model, d_head]``, the output
projection's ``[d_model, n_heads·d_head]`` gives ``W_O`` ``[head, d_head, d_model]``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from interp_assert.errors import InterpAssertError, QuantityError, did_you_mean
from interp_assert.loading.layout_rules import QKV_HOOKS, AttentionRule

PARTS = {"hook_q": 0, "hook_k": 1, "hook_v": 2, "W_Q": 0, "W_K": 1, "W_V": 2}


def _tensor(value: Any) -> Any:
    return value[0] if isinstance(value, tuple | list) else value


class Unreadable:
    """A hook point value that could not be computed: any use raises its error."""

    def __init__(self, error: InterpAssertError) -> None:
        self.error = error

    def __getattr__(self, name: str) -> Any:
        raise self.error.copy()


class FusedHook:
    """A hook point the model lacks, computed from a module's output (or input) by the rule.

    It offers what the forward pass uses of a module: ``register_forward_hook`` (the hook sees
    the derived value and may return a replacement) and ``register_forward_pre_hook``."""

    def __init__(self, name: str, module: Any, module_path: str, kind: str,
                 rule: AttentionRule) -> None:
        self.name, self.module, self.module_path = name, module, module_path
        self.kind, self.rule = kind, rule

    # -- values --------------------------------------------------------------------------------
    def split(self, value: Any) -> Any:
        """The [batch, pos, head, d_head] heads of ``value`` (a view of it)."""
        heads = self.rule.n_heads
        if self.kind == "hook_z":
            width = value.shape[-1]
            if width % heads:
                raise QuantityError(f"{self.name}: the input of '{self.module_path}' has width "
                                    f"{width}, which does not split into {heads} heads",
                                    hint="check 'n_heads' in 'layout: attention'")
            return value.unflatten(-1, (heads, width // heads))
        width = value.shape[-1]
        if width % (3 * heads):
            raise QuantityError(f"{self.name}: the output of '{self.module_path}' has width "
                                f"{width}, which does not split into q, k, v of {heads} heads",
                                hint="'qkv' must name the fused projection [q | k | v]; check "
                                     "'n_heads' in 'layout: attention'")
        d_head = width // (3 * heads)
        if self.rule.order == "qkv head d_head":
            return value.unflatten(-1, (3, heads, d_head))  # [..., part, head, d_head]
        return value.unflatten(-1, (heads, 3, d_head)).transpose(-3, -2)

    def derive(self, value: Any) -> Any:
        """The hook point's value from the module's output (input for ``hook_z``)."""
        import torch

        if self.kind == "hook_z":
            return self.split(value)
        parts = self.split(value)
        if self.kind in ("hook_q", "hook_k", "hook_v"):
            return parts[..., PARTS[self.kind], :, :]
        work = value.dtype if value.dtype in (torch.float32, torch.float64) else torch.float32
        q, k = parts[..., 0, :, :].to(work), parts[..., 1, :, :].to(work)
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k) * self.rule.head_scale(q.shape[-1])
        if self.rule.causal:
            n_q, n_k = scores.shape[-2:]
            later = torch.ones(n_q, n_k, dtype=torch.bool, device=scores.device).triu(
                n_k - n_q + 1)
            scores = scores.masked_fill(later, float("-inf"))
        return scores if self.kind == "hook_attn_scores" else torch.softmax(scores, dim=-1)

    def derive_or_error(self, value: Any) -> Any:
        """:meth:`derive`, or a stand-in raising its error when read: the sinks of this hook
        point get the error, and the rest of the pass goes on."""
        try:
            return self.derive(value)
        except InterpAssertError as exc:
            return Unreadable(exc)

    def write(self, value: Any, new: Any) -> Any:
        """``value`` (the module's output or input) with this hook point replaced by ``new``."""
        if self.kind == "hook_z":
            return new.reshape(value.shape).to(value.dtype)
        if self.kind not in PARTS:
            raise QuantityError(f"{self.name} is computed inside the model's forward from "
                                f"'{self.module_path}'; it can be read but not replaced",
                                hint="ablate or patch the head itself (its hook_z), or its "
                                     "hook_q / hook_k / hook_v")
        out = value.clone()
        self.split(out)[..., PARTS[self.kind], :, :] = new.to(out.dtype)
        return out

    # -- hooks ---------------------------------------------------------------------------------
    def register_forward_hook(self, hook: Any, *args: Any, **kwargs: Any) -> Any:
        if self.kind == "hook_z":
            def before(module: Any, inputs: tuple[Any, ...]) -> Any:
                derived = self.derive_or_error(inputs[0])
                result = hook(self, (derived,), derived)
                return None if result is None else (self.write(inputs[0], _tensor(result)),
                                                    *inputs[1:])

            return self.module.register_forward_pre_hook(before)

        def after(module: Any, inputs: tuple[Any, ...], output: Any) -> Any:
            value = _tensor(output)
            derived = self.derive_or_error(value)
            result = hook(self, (derived,), derived)
            if result is None:
                return None
            new = self.write(value, _tensor(result))
            return (new, *output[1:]) if isinstance(output, tuple) else new

        return self.module.register_forward_hook(after)

    def register_forward_pre_hook(self, hook: Any, *args: Any, **kwargs: Any) -> Any:
        """A hook point's input is its value (hook points are identities)."""
        return self.register_forward_hook(lambda module, inputs, value: hook(module, inputs))


def fused_hook(model: Any, path: str, rule: AttentionRule | None) -> FusedHook | None:
    """The hook point ``path`` as ``rule`` gives it on ``model``, or None when the rule gives
    no such point (an unknown module of the model raises AttributeError)."""
    if rule is None:
        return None
    resolved = rule.resolve(path)
    if resolved is None:
        return None
    module_path, kind = resolved
    return FusedHook(path, model.get_submodule(module_path), module_path, kind, rule)


def fused_weight(array: np.ndarray, rule: AttentionRule, name: str, where: str) -> np.ndarray:
    """``W_Q``/``W_K``/``W_V`` ``[head, d_model, d_head]`` from the fused projection's
    ``[3·n_heads·d_head, d_model]`` weight, or ``W_O`` ``[head, d_head, d_model]`` from the
    output projection's ``[d_model, n_heads·d_head]`` (``nn.Linear``'s [out, in])."""
    heads = rule.n_heads
    if array.ndim != 2:
        raise QuantityError(f"{where}: expected a 2-D nn.Linear weight, got shape {array.shape}")
    if name == "W_O":
        d_model, width = array.shape
        if width % heads:
            raise QuantityError(f"{where}: its {width} input columns do not split into "
                                f"{heads} heads", hint="check 'n_heads' in 'layout: attention'")
        return array.T.reshape(heads, width // heads, d_model)
    rows, d_model = array.shape
    if rows % (3 * heads):
        raise QuantityError(f"{where}: its {rows} output rows do not split into q, k, v of "
                            f"{heads} heads", hint="check 'n_heads' in 'layout: attention'")
    d_head = rows // (3 * heads)
    if rule.order == "qkv head d_head":
        part = array.reshape(3, heads, d_head, d_model)[PARTS[name]]
    else:
        part = array.reshape(heads, 3, d_head, d_model)[:, PARTS[name]]
    return np.transpose(part, (0, 2, 1))


#: the TransformerLens attention hook points a ``layout: attention:`` rule can give
ATTENTION_HOOKS = frozenset({*QKV_HOOKS, "hook_z"})


def no_module_error(model: Any, path: str, rule: AttentionRule | None) -> QuantityError:
    """The model has no module ``path``: its hook points (or modules), and for an attention
    hook point the ``layout: attention:`` rule that gives it."""
    names = [name for name, _ in model.named_modules() if name]
    hooks = [n for n in names if "hook" in n]
    shown = ", ".join(hooks or names)
    what = "hook points" if hooks else "the model has no hook points; its modules"
    hint = f"{what}: {shown[:300]}{' ...' if len(shown) > 300 else ''}"
    missing = rule.missing(path) if rule is not None else None
    if missing:
        hint = f"{missing}; {hint}"
    elif not hooks and path.rsplit(".", 1)[-1] in ATTENTION_HOOKS:
        hint = ("a model without hook points gets hook_pattern, hook_z, ... from a 'layout: "
                "attention:' rule naming its fused qkv projection and its output projection "
                f"(README, 'Fused attention'); {hint}")
    return QuantityError(f"the model has no module '{path}'" + did_you_mean(path, names),
                         hint=hint)
