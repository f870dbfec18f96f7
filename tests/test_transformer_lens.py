"""Cross-checks against TransformerLens 4.x (its ``TransformerBridge`` around a TL-native model).

A random TinyTransformer's state dict is loaded into ``TransformerBridge.boot_native`` through
TransformerLens's own ``convert_tl_checkpoint`` (the path its legacy loader uses), and W_OV, W_QK,
composition scores and ablation effects are compared with TransformerLens's numbers. On the
trained induction model (``examples/induction/checkpoints/induction.pt``, or the file named by
``INTERP_ASSERT_INDUCTION_CHECKPOINT``; skipped when absent) the previous-token head →
induction head pair tops K-composition and mean-ablating the induction head removes most of the
repeated-token advantage.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import import_examples, run_entries

from interp_assert.evaluate.evaluation import Evaluation
from interp_assert.judge.verdict import ClaimResult
from interp_assert.language import parse_expression
from interp_assert.loading.subject import get_subject
from interp_assert.run.runner import load_claim_file

pytest.importorskip("transformer_lens", reason="transformer-lens is not installed")

ROOT = Path(__file__).parents[1]
LAYERS, HEADS, D_MODEL, D_HEAD, D_MLP, VOCAB, CTX = 2, 4, 32, 8, 48, 64, 48
INDUCTION = Path(os.environ.get("INTERP_ASSERT_INDUCTION_CHECKPOINT")
                 or ROOT / "examples" / "induction" / "checkpoints" / "induction.pt")
DATA_MODULE = '''\
import torch
from examples.induction.data import generate as repeats


def generate(n, seed):
    """Repeated-segment sequences plus an all-true mask (the loss over every position)."""
    data = repeats(n=n, seed=seed)
    data["all"] = torch.ones_like(data["repeated"])
    return data
'''



def bridge_for(model: Any) -> Any:
    """A TransformerLens bridge holding exactly ``model``'s weights."""
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge
    from transformer_lens.model_bridge.sources.native import boot
    from transformer_lens.utilities.tl_checkpoint_conversion import convert_tl_checkpoint

    cfg = model.cfg
    config = TransformerBridgeConfig(
        n_layers=cfg.n_layers, d_model=cfg.d_model, n_heads=cfg.n_heads, d_head=cfg.d_head,
        d_mlp=cfg.d_mlp, d_vocab=cfg.d_vocab, n_ctx=cfg.n_ctx, act_fn="relu", eps=cfg.eps,
        normalization_type=cfg.normalization, attn_only=cfg.d_mlp is None,
        positional_embedding_type="standard")
    bridge = boot(config)
    assert isinstance(bridge, TransformerBridge)
    result = bridge.load_state_dict(convert_tl_checkpoint(model.state_dict(), config),
                                    strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    return bridge.eval()


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """Every test here runs torch on one thread."""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A random LN+MLP TinyTransformer with non-zero biases, saved, and its TL bridge."""
    import torch

    tiny, data = import_examples()
    torch.manual_seed(7)
    model = tiny.TinyTransformer(tiny.TinyConfig(
        n_layers=LAYERS, d_model=D_MODEL, n_heads=HEADS, d_head=D_HEAD, d_mlp=D_MLP,
        d_vocab=VOCAB, n_ctx=CTX))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.ndim == 1:
                param.add_(0.1 * torch.randn_like(param))
            if name.endswith(("W_Q", "W_K")):
                param.mul_(2.0)
    model.eval()
    folder = tmp_path_factory.mktemp("tl")
    tiny.save_checkpoint(folder / "model.pt", model)
    (folder / "tl_data.py").write_text(DATA_MODULE, encoding="utf-8")
    bridge = bridge_for(model)
    tokens = data.generate(n=16, seed=5)["tokens"]
    with torch.no_grad():
        assert torch.allclose(bridge(tokens), model(tokens), atol=1e-5)
    return {"folder": folder, "model": model, "bridge": bridge, "tokens": tokens}


def write(folder: Path, name: str, claims: list[dict[str, Any]], extra: dict[str, Any]
          ) -> Path:
    body = {"subject": {"checkpoint": "model.pt", "loader": "examples.tiny_transformer:load",
                        "python_path": [str(ROOT), "."]}, **extra, "claims": claims}
    path = folder / f"{name}.claims.yaml"
    path.write_text(yaml.safe_dump(body, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def value(path: Path, text: str) -> np.ndarray:
    claim_file = load_claim_file(path)
    assert claim_file.subject is not None
    return Evaluation(claim_file, get_subject(claim_file.subject)).value(
        parse_expression(text)).values


def run(path: Path, plots: Path | None = None) -> dict[str, ClaimResult]:
    claim_file = load_claim_file(path)
    return run_entries(claim_file, plot_dir=plots)


def _numpy(tensor: Any) -> np.ndarray:
    return tensor.detach().double().numpy()


# ---- weights and composition ----------------------------------------------------------------
def test_circuits_equal_transformer_lens(world: dict[str, Any]) -> None:
    bridge = world["bridge"]
    path = write(world["folder"], "weights", [{"id": "x", "claim": "1 > 0"}], {})
    ov = _numpy(bridge.OV.AB).reshape(LAYERS * HEADS, D_MODEL, D_MODEL)
    qk = _numpy(bridge.QK.AB).reshape(LAYERS * HEADS, D_MODEL, D_MODEL)
    assert np.allclose(value(path, "W_OV"), ov, atol=1e-5)
    assert np.allclose(value(path, "W_QK"), qk, atol=1e-5)
    assert np.allclose(value(path, "W_in"), _numpy(bridge.W_in).transpose(1, 0, 2).reshape(
        D_MODEL, -1), atol=1e-6)
    assert np.allclose(value(path, "W_U"), _numpy(bridge.W_U), atol=1e-6)
    for mode in "QKV":
        scores = bridge.all_composition_scores(mode).scores
        theirs = _numpy(scores).reshape(LAYERS * HEADS, LAYERS * HEADS)
        ours = value(path, f"{mode}-composition")
        assert np.allclose(ours, theirs, atol=1e-5), mode
        assert np.all(ours[HEADS:, :] == 0) and np.all(ours[:, :HEADS] == 0)


def test_layout_reads_the_bridge_state_dict(world: dict[str, Any]) -> None:
    """The bridge's own nn.Linear-style state dict, described by a ``layout:`` section."""
    import torch

    bridge = world["bridge"]
    torch.save({k: v.detach().clone() for k, v in bridge.state_dict().items()},
               world["folder"] / "bridge.pt")
    qkv = {"axes": "(head d_head) d_model"}
    layout = {"n_heads": HEADS,
              "W_Q": {"weight": "blocks.{l}.attn.q.weight", **qkv},
              "W_K": {"weight": "blocks.{l}.attn.k.weight", **qkv},
              "W_V": {"weight": "blocks.{l}.attn.v.weight", **qkv},
              "W_O": {"weight": "blocks.{l}.attn.o.weight", "axes": "d_model (head d_head)"},
              "W_in": {"weight": "blocks.{l}.mlp.in.weight", "transpose": True},
              "W_out": {"weight": "blocks.{l}.mlp.out.weight", "transpose": True},
              "W_E": "embed.weight", "W_pos": "pos_embed.weight",
              "W_U": {"weight": "unembed.weight", "transpose": True}}
    path = world["folder"] / "layout.claims.yaml"
    path.write_text(yaml.safe_dump({"subject": {"checkpoint": "bridge.pt"}, "layout": layout,
                                    "claims": [{"id": "x", "claim": "1 > 0"}]}),
                    encoding="utf-8")
    ov = _numpy(bridge.OV.AB).reshape(LAYERS * HEADS, D_MODEL, D_MODEL)
    assert np.allclose(value(path, "W_OV"), ov, atol=1e-5)
    theirs = _numpy(bridge.all_composition_scores("K").scores).reshape(8, 8)
    assert np.allclose(value(path, "K-composition"), theirs, atol=1e-5)
    assert np.allclose(value(path, "W_out"), _numpy(bridge.W_out).reshape(-1, D_MODEL),
                       atol=1e-6)
    assert np.allclose(value(path, "W_E"), _numpy(bridge.W_E), atol=1e-6)


# ---- ablation ----------------------------------------------------------------------------------
def test_ablation_equals_transformer_lens(world: dict[str, Any]) -> None:
    """Zero- and mean-ablating a head's hook_z in TransformerLens and with a claim give the
    same losses (TL's loss is the mean next-token cross-entropy over every position)."""
    import torch

    bridge, tokens = world["bridge"], world["tokens"]
    with torch.no_grad():
        clean = float(bridge(tokens, return_type="loss"))
        _, cache = bridge.run_with_cache(tokens)
    mean_z = cache["blocks.1.attn.hook_z"][:, :, 2].mean(0)

    def ablate(how: str) -> float:
        def hook(z: Any, hook: Any) -> Any:
            z = z.clone()
            z[:, :, 2] = 0.0 if how == "zero" else mean_z
            return z

        with torch.no_grad():
            return float(bridge.run_with_hooks(tokens, return_type="loss",
                                               fwd_hooks=[("blocks.1.attn.hook_z", hook)]))

    zero, mean = ablate("zero"), ablate("mean")
    data = {"seqs": {"generate": "tl_data:generate", "n": 16, "seed": 5, "batch_size": 6}}
    quantities = {"loss": {"metric": "loss", "mask": "all"}}
    claims = [{"id": "zero", "claim": "ablate L1H2 (zero): loss changes by ≥ 0"},
              {"id": "mean", "claim": "ablate L1H2 (mean): loss changes by ≥ 0"}]
    results = run(write(world["folder"], "ablate", claims,
                        {"data": data, "quantities": quantities}))
    for name, after in (("zero", zero), ("mean", mean)):
        outcome = results[name].outcome
        assert outcome is not None, results[name].error
        assert outcome.rows[0]["before"] == pytest.approx(clean, abs=1e-5)
        assert outcome.rows[0]["after"] == pytest.approx(after, abs=1e-5)
        assert outcome.value == pytest.approx(abs(after - clean), abs=1e-5)


# ---- the trained induction model -----------------------------------------------------------
def test_induction_circuit(tmp_path: Path) -> None:
    """Previous-token heads (layer 0, attention to t-1 ≥ 0.25) and induction heads (layer 1,
    attention to the token after the earlier occurrence ≥ 0.3): the top K-composition pair
    joins the two, K- beats Q-composition, and mean-ablating the induction heads removes most
    of the repeated-token advantage, equal to the same ablation done in TransformerLens."""
    if not INDUCTION.exists():
        pytest.skip(f"the induction checkpoint {INDUCTION} has not been trained yet "
                    "(python -m examples.induction.train)")
    import shutil

    import torch

    tiny, data = import_examples()
    saved = list(sys.path)
    sys.path.insert(0, str(ROOT))
    try:
        from examples.induction import analysis
    finally:
        sys.path[:] = saved
    model = tiny.load(INDUCTION)
    batch = data.generate(n=300, seed=11)
    prev = {h for h, s in enumerate(analysis.prev_token_scores(model, batch)[0]) if s >= 0.25}
    heads = [h for h, s in enumerate(analysis.induction_scores(model, batch)[1]) if s >= 0.3]
    assert prev and heads
    bridge = bridge_for(model)
    k_comp = _numpy(bridge.all_composition_scores("K").scores).reshape(8, 8)
    q_comp = _numpy(bridge.all_composition_scores("Q").scores).reshape(8, 8)
    writer, reader = np.unravel_index(np.argmax(k_comp), k_comp.shape)
    assert writer in prev and reader - HEADS in heads
    assert np.all(k_comp[:HEADS, HEADS:] > q_comp[:HEADS, HEADS:])
    shutil.copy(INDUCTION, tmp_path / "model.pt")
    data_spec = {"repeats": {"generate": "examples.induction.data:generate", "n": 300,
                             "seed": 11, "batch_size": 150}}
    quantities = {"loss-repeated": {"metric": "loss", "mask": "repeated"},
                  "loss-first": {"metric": "loss", "mask": "not repeated"},
                  "advantage": {"expr": "loss-first - loss-repeated"}}
    induction = ", ".join(f"L1H{h}" for h in heads)
    claims = [
        {"id": "top-pair", "claim": f"L0H{writer} → L1H{reader - HEADS} ranks first in "
                                    "K-composition"},
        {"id": "k-over-q", "claim": "min(K-composition[L0H0:L0H3, L1H0:L1H3] - "
                                    "Q-composition[L0H0:L0H3, L1H0:L1H3]) > 0"},
        {"id": "ablate", "claim": f"ablate {induction} (mean): advantage drops by ≥ 0"},
    ]
    path = write(tmp_path, "induction", claims, {"data": data_spec, "quantities": quantities})
    results = run(path, tmp_path / "plots")
    assert results["top-pair"].passed, results["top-pair"].outcome
    assert results["k-over-q"].passed, results["k-over-q"].outcome or results["k-over-q"].error
    outcome = results["ablate"].outcome
    assert outcome is not None, results["ablate"].error
    before, after = outcome.rows[0]["before"], outcome.rows[0]["after"]
    assert before > 1.0, "the trained model predicts repeated tokens much better"
    assert (before - after) / before > 0.8, "mean-ablating the induction heads removes most of it"
    with torch.no_grad():  # the same ablation in TransformerLens
        _, cache = bridge.run_with_cache(batch["tokens"])
        mean_z = cache["blocks.1.attn.hook_z"][:, :, heads].mean(0)

        def hook(z: Any, hook: Any) -> Any:
            z = z.clone()
            z[:, :, heads] = mean_z
            return z

        logits = bridge.run_with_hooks(batch["tokens"],
                                       fwd_hooks=[("blocks.1.attn.hook_z", hook)])
    log_probs = torch.log_softmax(logits[:, :-1].double(), -1)
    nll = -log_probs.gather(-1, batch["tokens"][:, 1:, None])[..., 0]
    repeated = batch["repeated"][:, 1:]
    per_rep = (nll * repeated).sum(1) / repeated.sum(1)
    per_first = (nll * ~repeated).sum(1) / (~repeated).sum(1)
    assert float(per_first.mean() - per_rep.mean()) == pytest.approx(after, abs=1e-4)
