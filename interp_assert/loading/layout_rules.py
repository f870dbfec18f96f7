"""The ``attention:`` rule of a claim file's ``layout:`` section: how a model without hook
points of its own (nanoGPT and its kind) computes attention, so that TransformerLens's hook
points and weights exist for it without Python.

.. code-block:: yaml

    layout:
      attention:
        qkv: transformer.h.{l}.attn.c_attn   # a Linear whose output is [q | k | v]
        out: transformer.h.{l}.attn.c_proj   # the output projection; its input is z
        n_heads: 4

``qkv`` gives the hook points ``hook_q``, ``hook_k``, ``hook_v`` ([batch, pos, head, d_head]),
``hook_attn_scores`` and ``hook_pattern`` ([batch, head, query, key]); ``out`` gives
``hook_z`` (its input split [batch, pos, head, d_head]), which head ablations replace. They are
named beside the module (``transformer.h.1.attn.hook_pattern``) and by TransformerLens's names
(``blocks.1.attn.hook_pattern``). Only string work happens here; the tensors are computed in
:mod:`interp_assert.evaluate.fused_attention`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from interp_assert.errors import Location, SpecError, did_you_mean

RULE_KEYS = frozenset({"qkv", "out", "n_heads", "order", "causal", "scale"})
#: hook points read from the ``qkv`` module's output, and the one read from ``out``'s input
QKV_HOOKS = ("hook_q", "hook_k", "hook_v", "hook_attn_scores", "hook_pattern")
OUT_HOOKS = ("hook_z",)
#: the fused orders of the qkv output's last axis that the rule accepts
ORDERS = ("qkv head d_head", "head qkv d_head")


class AttentionRule(NamedTuple):
    """A parsed ``layout: attention:`` rule (a tuple, so that it is part of cache keys)."""

    qkv: str | None
    out: str | None
    n_heads: int
    #: how the last axis of the qkv output is fused, outermost first
    order: str = "qkv head d_head"
    causal: bool = True
    #: the factor on q·k (None: 1/sqrt(d_head))
    scale: float | None = None

    def resolve(self, path: str) -> tuple[str, str] | None:
        """(module path, hook kind) of a hook point the rule gives (``hook_pattern`` ...), or
        None when ``path`` is not one of them."""
        for template, hooks in ((self.qkv, QKV_HOOKS), (self.out, OUT_HOOKS)):
            if not template:
                continue
            for parent in {_parent(template), "blocks.{l}.attn"}:
                match = re.fullmatch(_pattern(parent) + r"\.(hook_\w+)", path)
                if match and match[2] in hooks:
                    return template.replace("{l}", match[1]), match[2]
        return None

    def missing(self, path: str) -> str | None:
        """Why ``path`` (a TransformerLens attention hook name) is not given: the key to add."""
        hook = path.rsplit(".", 1)[-1]
        if hook in QKV_HOOKS and not self.qkv:
            return f"{hook} is computed from the fused projection: add 'qkv:' to the rule"
        if hook in OUT_HOOKS and not self.out:
            return f"{hook} is the input of the output projection: add 'out:' to the rule"
        return None

    def head_scale(self, d_head: int) -> float:
        """The factor on q·k: ``scale`` or 1/sqrt(d_head)."""
        return self.scale if self.scale is not None else 1.0 / math.sqrt(d_head)


def _parent(template: str) -> str:
    return template.rsplit(".", 1)[0] if "." in template else ""


def _pattern(template: str) -> str:
    """A regex of a module template, ``{l}`` capturing the layer."""
    return re.escape(template).replace(r"\{l\}", r"(\d+)")


def parse_attention(raw: Any, n_heads: Any = None, where: Location | None = None
                    ) -> AttentionRule | None:
    """The rule of ``layout: attention:`` (None when absent); ``n_heads`` is the layout's own
    ``n_heads``, used when the rule has none."""
    if raw is None:
        return None
    fix = "e.g. {qkv: blocks.{l}.attn.c_attn, out: blocks.{l}.attn.c_proj, n_heads: 4}"
    if not isinstance(raw, Mapping):
        raise SpecError("'layout: attention' must be a mapping", where, hint=fix)
    for key in raw:
        if key not in RULE_KEYS:
            raise SpecError(f"unknown key '{key}' in 'layout: attention'"
                            + did_you_mean(str(key), RULE_KEYS), where,
                            hint="allowed keys: " + ", ".join(sorted(RULE_KEYS)))
    modules = {}
    for key in ("qkv", "out"):
        value = raw.get(key)
        if value is not None and (not isinstance(value, str)
                                  or "{l}" not in _parent(value).split(".")):
            raise SpecError(f"'layout: attention: {key}' must be a module path with '{{l}}' "
                            f"for the layer, not {value!r}", where, hint=fix)
        modules[key] = value
    if not modules["qkv"] and not modules["out"]:
        raise SpecError("'layout: attention' names no module", where, hint=fix)
    heads = raw.get("n_heads", n_heads)
    if isinstance(heads, bool) or not isinstance(heads, int) or heads < 1:
        raise SpecError("'layout: attention' needs 'n_heads' (a whole number ≥ 1) to split "
                        "the heads", where, hint=fix)
    order = " ".join(str(raw.get("order", ORDERS[0])).replace("(", " ").replace(")", " ")
                     .split())
    if order not in ORDERS:
        raise SpecError(f"'layout: attention: order' {raw.get('order')!r} is not a known fused "
                        "order", where, hint="one of: " + "; ".join(ORDERS)
                        + " (nanoGPT and GPT-2: qkv head d_head; GPT-NeoX: head qkv d_head)")
    causal = raw.get("causal", True)
    if not isinstance(causal, bool):
        raise SpecError("'layout: attention: causal' must be true or false", where)
    scale = raw.get("scale")
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, int | float)
                              or not math.isfinite(scale) or scale <= 0):
        raise SpecError("'layout: attention: scale' must be a positive number (default "
                        "1/sqrt(d_head))", where)
    return AttentionRule(modules["qkv"], modules["out"], heads, order, causal,
                         float(scale) if scale is not None else None)
