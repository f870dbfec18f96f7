"""A minimal decoder-only transformer with TransformerLens's parameter and hook layout.

``TinyTransformer`` reproduces the computation of TransformerLens's classic
``HookedTransformer`` for a small subset of its configuration space (standard
learned positional embeddings, causal attention with ``1/sqrt(d_head)``
scaling, optional pre-LayerNorm, ReLU MLP or attention-only blocks). Its
``state_dict`` keys and tensor shapes are exactly TransformerLens's
(``embed.W_E``, ``blocks.0.attn.W_Q`` ``[n_heads, d_model, d_head]``, ...), and
every activation passes through an identity :class:`HookPoint` submodule at the
TransformerLens hook name (``blocks.0.attn.hook_pattern``, ...). Plain PyTorch
forward hooks registered on those submodules therefore capture activations, and a
hook that returns a tensor replaces the activation for the rest of the forward
pass.

Checkpoints are plain dictionaries readable with ``torch.load(path,
weights_only=True)``::

    {"model_state_dict": {...}, "config": {...}, "step": int, ...metadata}
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "MLP",
    "Attention",
    "HookPoint",
    "LayerNorm",
    "TinyConfig",
    "TinyTransformer",
    "TransformerBlock",
    "load",
    "save_checkpoint",
]


@dataclass
class TinyConfig:
    """Architecture hyper-parameters, named as in TransformerLens's config.

    Attributes:
        n_layers: Number of transformer blocks.
        d_model: Residual stream width.
        n_heads: Attention heads per block.
        d_head: Width of each head's query/key/value vectors.
        d_mlp: MLP hidden width, or ``None`` for an attention-only model.
        d_vocab: Vocabulary size (input and output).
        n_ctx: Maximum sequence length (rows of ``pos_embed.W_pos``).
        normalization: ``"LN"`` for pre-LayerNorm blocks plus a final LayerNorm,
            or ``None`` for no normalisation at all.
        act_fn: MLP activation; only ``"relu"`` is supported.
        eps: LayerNorm epsilon (TransformerLens's default, ``1e-5``).
    """

    n_layers: int
    d_model: int
    n_heads: int
    d_head: int
    d_mlp: int | None
    d_vocab: int
    n_ctx: int
    normalization: str | None = "LN"
    act_fn: str = "relu"
    eps: float = 1e-5

    def __post_init__(self) -> None:
        """Validate the configuration."""
        if self.normalization not in ("LN", None):
            raise ValueError(f"normalization must be 'LN' or None, got {self.normalization!r}")
        if self.act_fn != "relu":
            raise ValueError(f"only act_fn='relu' is supported, got {self.act_fn!r}")
        for name in ("n_layers", "d_model", "n_heads", "d_head", "d_vocab", "n_ctx"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.d_mlp is not None and self.d_mlp <= 0:
            raise ValueError("d_mlp must be positive or None")

    @property
    def attn_only(self) -> bool:
        """Whether the blocks have no MLP sublayer."""
        return self.d_mlp is None

    def to_dict(self) -> dict[str, Any]:
        """Return the config as a plain dict (safe for ``weights_only`` loading)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TinyConfig:
        """Build a config from :meth:`to_dict` output, ignoring unknown keys."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class HookPoint(nn.Identity):
    """Identity module marking a TransformerLens hook point.

    Register ``torch`` forward hooks on it to read an activation; a forward hook
    that returns a tensor replaces the activation downstream.
    """


class LayerNorm(nn.Module):
    """TransformerLens-style LayerNorm with parameters ``w`` and ``b``."""

    def __init__(self, d_model: int, eps: float) -> None:
        """Create a LayerNorm over the last dimension of width ``d_model``."""
        super().__init__()
        self.eps = eps
        self.w = nn.Parameter(torch.ones(d_model))
        self.b = nn.Parameter(torch.zeros(d_model))
        self.hook_scale = HookPoint()
        self.hook_normalized = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Centre, divide by ``sqrt(mean(x^2) + eps)``, then scale and shift."""
        x = x - x.mean(-1, keepdim=True)
        scale = self.hook_scale((x.pow(2).mean(-1, keepdim=True) + self.eps).sqrt())
        x = x / scale
        return self.hook_normalized(x * self.w + self.b)


class Embed(nn.Module):
    """Token embedding ``W_E [d_vocab, d_model]``."""

    def __init__(self, cfg: TinyConfig) -> None:
        """Allocate the embedding matrix."""
        super().__init__()
        self.W_E = nn.Parameter(torch.empty(cfg.d_vocab, cfg.d_model))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Look up ``tokens [batch, pos]`` -> ``[batch, pos, d_model]``."""
        return self.W_E[tokens]


class PosEmbed(nn.Module):
    """Learned absolute positional embedding ``W_pos [n_ctx, d_model]``."""

    def __init__(self, cfg: TinyConfig) -> None:
        """Allocate the positional embedding matrix."""
        super().__init__()
        self.W_pos = nn.Parameter(torch.empty(cfg.n_ctx, cfg.d_model))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Return ``[batch, pos, d_model]`` position embeddings for ``tokens``."""
        batch, pos = tokens.shape
        return self.W_pos[:pos].unsqueeze(0).expand(batch, pos, -1)


class Unembed(nn.Module):
    """Unembedding ``W_U [d_model, d_vocab]`` plus bias ``b_U``."""

    def __init__(self, cfg: TinyConfig) -> None:
        """Allocate the unembedding weights."""
        super().__init__()
        self.W_U = nn.Parameter(torch.empty(cfg.d_model, cfg.d_vocab))
        self.b_U = nn.Parameter(torch.zeros(cfg.d_vocab))

    def forward(self, resid: torch.Tensor) -> torch.Tensor:
        """Map ``[batch, pos, d_model]`` to logits ``[batch, pos, d_vocab]``."""
        return resid @ self.W_U + self.b_U


class Attention(nn.Module):
    """Causal multi-head self-attention with per-head weight tensors."""

    mask: torch.Tensor

    def __init__(self, cfg: TinyConfig) -> None:
        """Allocate Q/K/V/O weights and biases and the causal mask buffer."""
        super().__init__()
        h, m, d = cfg.n_heads, cfg.d_model, cfg.d_head
        self.W_Q = nn.Parameter(torch.empty(h, m, d))
        self.W_K = nn.Parameter(torch.empty(h, m, d))
        self.W_V = nn.Parameter(torch.empty(h, m, d))
        self.W_O = nn.Parameter(torch.empty(h, d, m))
        self.b_Q = nn.Parameter(torch.zeros(h, d))
        self.b_K = nn.Parameter(torch.zeros(h, d))
        self.b_V = nn.Parameter(torch.zeros(h, d))
        self.b_O = nn.Parameter(torch.zeros(m))
        self.register_buffer(
            "mask", torch.tril(torch.ones(cfg.n_ctx, cfg.n_ctx, dtype=torch.bool)), persistent=False
        )
        self.attn_scale = math.sqrt(d)
        self.hook_q = HookPoint()
        self.hook_k = HookPoint()
        self.hook_v = HookPoint()
        self.hook_attn_scores = HookPoint()
        self.hook_pattern = HookPoint()
        self.hook_z = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attend over ``x [batch, pos, d_model]``; return ``[batch, pos, d_model]``.

        ``hook_attn_scores`` sees the scaled scores after causal masking (masked
        entries are ``-inf``), as in TransformerLens.
        """
        q = self.hook_q(torch.einsum("bpm,hmd->bphd", x, self.W_Q) + self.b_Q)
        k = self.hook_k(torch.einsum("bpm,hmd->bphd", x, self.W_K) + self.b_K)
        v = self.hook_v(torch.einsum("bpm,hmd->bphd", x, self.W_V) + self.b_V)
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / self.attn_scale
        n = scores.shape[-1]
        scores = scores.masked_fill(~self.mask[:n, :n], float("-inf"))
        scores = self.hook_attn_scores(scores)
        pattern = self.hook_pattern(F.softmax(scores, dim=-1))
        z = self.hook_z(torch.einsum("bhqk,bkhd->bqhd", pattern, v))
        return torch.einsum("bqhd,hdm->bqm", z, self.W_O) + self.b_O


class MLP(nn.Module):
    """Two-layer ReLU MLP with ``W_in [d_model, d_mlp]`` and ``W_out [d_mlp, d_model]``."""

    def __init__(self, cfg: TinyConfig) -> None:
        """Allocate the MLP weights."""
        super().__init__()
        assert cfg.d_mlp is not None
        self.W_in = nn.Parameter(torch.empty(cfg.d_model, cfg.d_mlp))
        self.b_in = nn.Parameter(torch.zeros(cfg.d_mlp))
        self.W_out = nn.Parameter(torch.empty(cfg.d_mlp, cfg.d_model))
        self.b_out = nn.Parameter(torch.zeros(cfg.d_model))
        self.hook_pre = HookPoint()
        self.hook_post = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the MLP to ``[batch, pos, d_model]``."""
        pre = self.hook_pre(x @ self.W_in + self.b_in)
        post = self.hook_post(F.relu(pre))
        return post @ self.W_out + self.b_out


class TransformerBlock(nn.Module):
    """Pre-norm residual block: attention then (optionally) MLP."""

    def __init__(self, cfg: TinyConfig) -> None:
        """Build the sublayers and hook points for one block."""
        super().__init__()
        self.ln1: nn.Module = (
            LayerNorm(cfg.d_model, cfg.eps) if cfg.normalization else nn.Identity()
        )
        self.attn = Attention(cfg)
        self.mlp: MLP | None = None
        if not cfg.attn_only:
            self.ln2: nn.Module = (
                LayerNorm(cfg.d_model, cfg.eps) if cfg.normalization else nn.Identity()
            )
            self.mlp = MLP(cfg)
            self.hook_resid_mid = HookPoint()
            self.hook_mlp_out = HookPoint()
        self.hook_resid_pre = HookPoint()
        self.hook_attn_out = HookPoint()
        self.hook_resid_post = HookPoint()

    def forward(self, resid_pre: torch.Tensor) -> torch.Tensor:
        """Apply the block to the residual stream ``[batch, pos, d_model]``."""
        resid_pre = self.hook_resid_pre(resid_pre)
        attn_out = self.hook_attn_out(self.attn(self.ln1(resid_pre)))
        if self.mlp is None:
            return self.hook_resid_post(resid_pre + attn_out)
        resid_mid = self.hook_resid_mid(resid_pre + attn_out)
        mlp_out = self.hook_mlp_out(self.mlp(self.ln2(resid_mid)))
        return self.hook_resid_post(resid_mid + mlp_out)


class TinyTransformer(nn.Module):
    """Decoder-only transformer equal in layout and computation to a small HookedTransformer."""

    def __init__(self, cfg: TinyConfig) -> None:
        """Build the model; parameters get a deterministic-under-seed random init."""
        super().__init__()
        self.cfg = cfg
        self.embed = Embed(cfg)
        self.hook_embed = HookPoint()
        self.pos_embed = PosEmbed(cfg)
        self.hook_pos_embed = HookPoint()
        self.blocks = nn.ModuleList([TransformerBlock(cfg) for _ in range(cfg.n_layers)])
        self.ln_final: nn.Module = (
            LayerNorm(cfg.d_model, cfg.eps) if cfg.normalization else nn.Identity()
        )
        self.unembed = Unembed(cfg)
        self.init_weights()

    def init_weights(self) -> None:
        """Initialise weights: N(0, 1/fan_in) matrices, zero biases, unit LN gains.

        Uses the global torch RNG, so call ``torch.manual_seed`` first for
        reproducibility.
        """
        cfg = self.cfg
        for name, param in self.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf in ("W_E", "W_pos", "W_Q", "W_K", "W_V", "W_in", "W_U"):
                nn.init.normal_(param, std=1.0 / math.sqrt(cfg.d_model))
            elif leaf == "W_O":
                nn.init.normal_(param, std=1.0 / math.sqrt(cfg.n_heads * cfg.d_head))
            elif leaf == "W_out":
                assert cfg.d_mlp is not None
                nn.init.normal_(param, std=1.0 / math.sqrt(cfg.d_mlp))
            elif leaf == "w":
                nn.init.ones_(param)
            else:
                nn.init.zeros_(param)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Map ``tokens [batch, pos]`` (int64) to logits ``[batch, pos, d_vocab]``."""
        if tokens.ndim != 2:
            raise ValueError(f"tokens must be [batch, pos], got shape {tuple(tokens.shape)}")
        if tokens.shape[1] > self.cfg.n_ctx:
            raise ValueError(f"sequence length {tokens.shape[1]} exceeds n_ctx={self.cfg.n_ctx}")
        resid = self.hook_embed(self.embed(tokens)) + self.hook_pos_embed(self.pos_embed(tokens))
        for block in self.blocks:
            resid = block(resid)
        return self.unembed(self.ln_final(resid))


def load(checkpoint: Mapping[str, Any] | str | os.PathLike[str]) -> TinyTransformer:
    """Rebuild a :class:`TinyTransformer` from a checkpoint, in eval mode.

    Args:
        checkpoint: The object returned by ``torch.load(path, weights_only=True)``
            for a file written by :func:`save_checkpoint` (a dict with
            ``"model_state_dict"`` and ``"config"``), or a path to such a file.

    Returns:
        The model with the checkpoint's weights loaded strictly, in eval mode.
    """
    if isinstance(checkpoint, (str, os.PathLike)):
        checkpoint = torch.load(Path(checkpoint), map_location="cpu", weights_only=True)
    if "model_state_dict" not in checkpoint or "config" not in checkpoint:
        raise KeyError("checkpoint must contain 'model_state_dict' and 'config'")
    model = TinyTransformer(TinyConfig.from_dict(checkpoint["config"]))
    model.load_state_dict(checkpoint["model_state_dict"], strict=True)
    return model.eval()


_ALLOWED_LEAVES = (torch.Tensor, str, int, float, bool, type(None))


def _check_serialisable(value: Any, where: str) -> None:
    """Raise ``TypeError`` unless ``value`` is made of weights-only-safe types."""
    if isinstance(value, _ALLOWED_LEAVES):
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise TypeError(f"{where}: dict key {key!r} must be str or int")
            _check_serialisable(item, f"{where}.{key}")
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_serialisable(item, f"{where}[{i}]")
        return
    raise TypeError(f"{where}: {type(value).__name__} is not weights_only-serialisable")


def save_checkpoint(path: str | os.PathLike[str], model: TinyTransformer, **metadata: Any) -> None:
    """Save ``model`` as a ``weights_only``-loadable checkpoint.

    The file holds ``{"model_state_dict", "config", **metadata}``. Metadata values
    must be tensors, dicts, lists/tuples, ints, floats, bools, strings or None;
    a ``step`` entry defaults to 0.

    Args:
        path: Destination file; parent directories are created.
        model: The model to save (its state dict is copied to contiguous CPU tensors).
        **metadata: Extra entries such as ``step``, ``seed`` or ``positions``.
    """
    for reserved in ("model_state_dict", "config"):
        if reserved in metadata:
            raise ValueError(f"metadata may not override {reserved!r}")
    _check_serialisable(metadata, "metadata")
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    payload: dict[str, Any] = {
        "model_state_dict": state,
        "config": model.cfg.to_dict(),
        "step": int(metadata.pop("step", 0)),
        **metadata,
    }
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, out)


@torch.no_grad()
def attention_patterns(model: TinyTransformer, tokens: torch.Tensor) -> list[torch.Tensor]:
    """Return ``[batch, head, query, key]`` attention patterns of every layer.

    Captured with forward hooks on ``blocks.{l}.attn.hook_pattern``.
    """
    patterns: list[torch.Tensor] = []
    handles = [
        block.attn.hook_pattern.register_forward_hook(
            lambda _m, _i, out: patterns.append(out.detach())
        )
        for block in model.blocks
    ]
    try:
        model(tokens)
    finally:
        for handle in handles:
            handle.remove()
    return patterns
