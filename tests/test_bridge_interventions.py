"""Ablation and patching on TransformerLens 4 ``TransformerBridge`` subjects, against
TransformerLens's own ``run_with_hooks`` on the same bridge.

The metric is the loss over every position (an all-true mask), which is what TransformerLens's
``return_type="loss"`` averages.

The subject is a random LN+MLP TinyTransformer checkpoint loaded with ``load_hooked`` (a
TL-native bridge on TransformerLens 4). Each claim's before/after losses must equal the mean
next-token loss that ``bridge.run_with_hooks(tokens, return_type="loss", fwd_hooks=...)`` gives
with a hand-written hook, within 1e-5.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import run_entries

pytest.importorskip("transformer_lens", reason="transformer-lens is not installed")
import torch

from examples.tiny_transformer import TinyConfig, TinyTransformer, save_checkpoint
from interp_assert.adapters import transformer_lens as tl
from interp_assert.loading.subject import get_subject
from interp_assert.run.runner import load_claim_file

N, CTX, VOCAB, HEAD, NEURON = 12, 10, 13, 1, 5
TOLERANCE = 1e-5
CONFIG = TinyConfig(n_layers=2, d_model=16, n_heads=2, d_head=8, d_mlp=32, d_vocab=VOCAB,
                    n_ctx=CTX)
GENERATOR = f'''\
import torch


def generate(n, seed):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, {VOCAB}, (n, {CTX}), generator=g)
    return {{"tokens": tokens, "all": torch.ones_like(tokens, dtype=torch.bool)}}
'''
DATA = {"clean": {"generate": "bridge_data.py:generate", "n": N, "seed": 1, "batch_size": 5},
        "corrupted": {"generate": "bridge_data.py:generate", "n": N, "seed": 2,
                      "batch_size": 5}}


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """Every test here runs torch on one thread."""


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random TinyTransformer (non-zero biases) saved in TransformerLens format."""
    torch.manual_seed(3)
    model = TinyTransformer(CONFIG).eval()
    with torch.no_grad():
        for param in model.parameters():
            if param.ndim == 1:
                param.add_(0.1 * torch.randn_like(param))
    path = tmp_path_factory.mktemp("bridge")
    save_checkpoint(path / "model.pt", model, step=0)
    (path / "bridge_data.py").write_text(GENERATOR, encoding="utf-8")
    return path


def tokens(seed: int) -> torch.Tensor:
    return torch.randint(0, VOCAB, (N, CTX), generator=torch.Generator().manual_seed(seed))


def run_claims(folder: Path, claims: list[dict[str, str]]) -> tuple[dict[str, Any], Any]:
    """The claims' results and the bridge the runner loaded (the same object they ran on)."""
    body = {"subject": {"checkpoint": "model.pt",
                        "loader": "interp_assert.adapters.transformer_lens:load_hooked"},
            "data": DATA, "quantities": {"loss": {"metric": "loss", "mask": "all"}},
            "claims": claims}
    path = folder / "bridge.claims.yaml"
    path.write_text(yaml.safe_dump(body, allow_unicode=True, sort_keys=False), encoding="utf-8")
    claim_file = load_claim_file(path)
    results = run_entries(claim_file)
    assert claim_file.subject is not None
    bridge = get_subject(claim_file.subject).model.model
    return results, bridge


def loss(bridge: Any, batch: torch.Tensor, hooks: list[tuple[str, Any]] | None = None) -> float:
    """TransformerLens's own mean next-token loss, with hooks run by ``run_with_hooks``."""
    with torch.no_grad():
        return float(bridge.run_with_hooks(batch, return_type="loss", fwd_hooks=hooks or []))


def z_of(bridge: Any, batch: torch.Tensor, hook: str) -> torch.Tensor:
    with torch.no_grad():
        _, cache = bridge.run_with_cache(batch, names_filter=[hook])
    return cache[hook]


def setter(index: tuple[Any, ...], value: Any) -> Any:
    """A ``run_with_hooks`` hook writing ``value`` into ``activation[index]``."""
    def hook(activation: torch.Tensor, hook: Any) -> torch.Tensor:
        activation = activation.clone()
        activation[index] = value
        return activation
    return hook


def check(results: dict[str, Any], name: str, before: float, after: float) -> float:
    outcome = results[name].outcome
    assert outcome is not None, (name, str(results[name].error))
    row = outcome.rows[0]
    gap = max(abs(row["before"] - before), abs(row["after"] - after))
    assert gap <= TOLERANCE, (name, row, before, after)
    assert abs(after - before) > 1e-4, f"{name}: the intervention changes nothing to compare"
    return gap


def test_the_subject_is_a_bridge(folder: Path) -> None:
    from transformer_lens.model_bridge import TransformerBridge

    model = tl.load_hooked(torch.load(folder / "model.pt"))
    assert isinstance(model.model, TransformerBridge)


def test_ablation_equals_run_with_hooks(folder: Path) -> None:
    z, post = "blocks.1.attn.hook_z", "blocks.0.mlp.hook_post"
    claims = [{"id": "head-zero", "claim": f"ablate L1H{HEAD} (zero): loss changes by ≥ 0"},
              {"id": "head-mean", "claim": f"ablate L1H{HEAD} (mean): loss changes by ≥ 0"},
              {"id": "head-at", "claim": f"ablate L1H{HEAD} at 3..6 (zero): loss changes by ≥ 0"},
              {"id": "neuron-zero", "claim": f"ablate L0N{NEURON} (zero): loss changes by ≥ 0"},
              {"id": "neuron-mean", "claim": f"ablate L0N{NEURON} (mean): loss changes by ≥ 0"}]
    results, bridge = run_claims(folder, claims)
    clean = tokens(1)
    before = loss(bridge, clean)
    mean_z = z_of(bridge, clean, z)[:, :, HEAD].mean(0)
    mean_post = z_of(bridge, clean, post)[..., NEURON].mean(0)
    expected = {
        "head-zero": loss(bridge, clean, [(z, setter((slice(None), slice(None), HEAD), 0.0))]),
        "head-mean": loss(bridge, clean, [(z, setter((slice(None), slice(None), HEAD),
                                                     mean_z))]),
        "head-at": loss(bridge, clean, [(z, setter((slice(None), slice(3, 7), HEAD), 0.0))]),
        "neuron-zero": loss(bridge, clean, [(post, setter((..., NEURON), 0.0))]),
        "neuron-mean": loss(bridge, clean, [(post, setter((..., NEURON), mean_post))]),
    }
    gaps = {name: check(results, name, before, after) for name, after in expected.items()}
    print(f"max |claim - run_with_hooks| = {max(gaps.values()):.2e}")
    assert max(gaps.values()) <= TOLERANCE, gaps


def test_patching_equals_run_with_hooks(folder: Path) -> None:
    z = "blocks.1.attn.hook_z"
    claims = [{"id": "patch", "claim": f"patch L1H{HEAD} from clean into corrupted: "
                                       "loss changes by ≥ 0"},
              {"id": "patch-at", "claim": f"patch L1H{HEAD} at 2..5 from clean into corrupted: "
                                          "loss changes by ≥ 0"},
              {"id": "patch-neuron", "claim": f"patch L1N{NEURON} from clean into corrupted: "
                                              "loss changes by ≥ 0"}]
    results, bridge = run_claims(folder, claims)
    clean, corrupted = tokens(1), tokens(2)
    before = loss(bridge, corrupted)
    clean_z = z_of(bridge, clean, z)[:, :, HEAD]
    clean_post = z_of(bridge, clean, "blocks.1.mlp.hook_post")[..., NEURON]
    expected = {
        "patch": loss(bridge, corrupted, [(z, setter((slice(None), slice(None), HEAD),
                                                     clean_z))]),
        "patch-at": loss(bridge, corrupted, [(z, setter((slice(None), slice(2, 6), HEAD),
                                                        clean_z[:, 2:6]))]),
        "patch-neuron": loss(bridge, corrupted, [("blocks.1.mlp.hook_post",
                                                  setter((..., NEURON), clean_post))]),
    }
    gaps = {name: check(results, name, before, after) for name, after in expected.items()}
    print(f"max |claim - run_with_hooks| = {max(gaps.values()):.2e}")
    assert max(gaps.values()) <= TOLERANCE, gaps


def test_hooks_leave_the_bridge_clean(folder: Path) -> None:
    """After an intervened pass no hook stays on the bridge's hook points."""
    results, bridge = run_claims(folder, [{"id": "zero", "claim": "ablate L1H0 (zero): loss "
                                                                  "changes by ≥ 0"}])
    assert results["zero"].outcome is not None, str(results["zero"].error)
    assert not any(point.has_hooks() for point in bridge.hook_dict.values())
    assert not any(module._forward_hooks for module in bridge.modules())
    with torch.no_grad():
        again = bridge(tokens(1), return_type="loss")
    assert abs(float(again) - results["zero"].outcome.rows[0]["before"]) <= TOLERANCE
    assert np.isfinite(float(again))
