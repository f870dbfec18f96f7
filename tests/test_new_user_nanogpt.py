"""A new user's first hour: a nanoGPT-style model of their own (fused ``c_attn``, no hook
points; ``examples/nanogpt/model.py``), trained here for a few seconds to repeat 8 tokens, and a
claim file written in YAML only (README.md, "Fused attention": that very block) with
attention, ablation, cluster, distribution and weight claims, run by the real pytest plugin.
Every measured value is checked against plain torch/numpy on the same model and data."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.usefixtures("heavy_modules_loaded")

ROOT = Path(__file__).resolve().parents[1]
HALF, VOCAB, HEADS, WIDTH = 8, 16, 4, 32
D_HEAD = WIDTH // HEADS
X = list(range(HALF))  # positions X0..X7
Y = [HALF + i for i in range(HALF)]  # positions Y0..Y7 (Y_i repeats X_i)


def readme_block() -> str:
    """The claim file of README.md's "Fused attention" section."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Fused attention"):]
    return re.search(r"```yaml\n(.*?)```", section, re.DOTALL).group(1)  # type: ignore[union-attr]


def copies(n: int, generator: torch.Generator) -> torch.Tensor:
    first = torch.randint(0, VOCAB, (n, HALF), generator=generator)
    return torch.cat([first, first], dim=1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, one_torch_thread: None) -> dict[str, Any]:
    """The user's model, trained 60 AdamW steps on the copy task (a few seconds on one core),
    saved as nanogpt.pt beside its model.py, with 256 fresh sequences in copy.pt."""
    folder = tmp_path_factory.mktemp("new-user")
    shutil.copy(ROOT / "examples" / "nanogpt" / "model.py", folder / "model.py")
    spec = importlib.util.spec_from_file_location("new_user_nanogpt", folder / "model.py")
    assert spec is not None and spec.loader is not None
    gpt = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpt)
    started = time.perf_counter()
    torch.manual_seed(0)
    batches = torch.Generator().manual_seed(0)
    config = {"vocab_size": VOCAB, "block_size": 2 * HALF, "n_layer": 1, "n_head": HEADS,
              "n_embd": WIDTH}
    model = gpt.GPT(**config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    for _ in range(60):
        tokens = copies(64, batches)
        logits = model(tokens[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits[:, HALF - 1:].reshape(-1, VOCAB),
                                                 tokens[:, HALF:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    seconds = time.perf_counter() - started
    model.eval()
    torch.save({"config": config, "model": model.state_dict(), "step": 60},
               folder / "nanogpt.pt")
    tokens = copies(256, torch.Generator().manual_seed(1))
    torch.save({"tokens": tokens}, folder / "copy.pt")
    return {"folder": folder, "model": model, "tokens": tokens, "seconds": seconds}


def reference(trained: dict[str, Any]) -> dict[str, Any]:
    """Pattern, c_proj input and MLP activations of the trained model (plain torch hooks)."""
    model, tokens = trained["model"], trained["tokens"]
    seen: dict[str, torch.Tensor] = {}
    block = model.transformer.h[0]
    hooks = [block.attn.c_attn.register_forward_hook(lambda m, a, out: seen.update(qkv=out)),
             block.attn.c_proj.register_forward_pre_hook(lambda m, a: seen.update(z=a[0])),
             block.mlp.gelu.register_forward_hook(lambda m, a, out: seen.update(post=out))]
    with torch.no_grad():
        model(tokens)
    for hook in hooks:
        hook.remove()
    q, k, _ = (t.reshape(*t.shape[:2], HEADS, D_HEAD).transpose(1, 2).double()
               for t in seen["qkv"].split(WIDTH, dim=-1))
    scores = q @ k.transpose(-1, -2) / np.sqrt(D_HEAD)
    n = scores.shape[-1]
    scores = scores.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
    return {"pattern": torch.softmax(scores, -1).numpy(), "z": seen["z"],
            "post": seen["post"].double().numpy()}


def accuracy(trained: dict[str, Any], replace: Any = None) -> float:
    """Fraction of Y0..Y7 predicted right, c_proj's input changed by ``replace``."""
    model, tokens = trained["model"], trained["tokens"]
    hook = model.transformer.h[0].attn.c_proj.register_forward_pre_hook(
        lambda m, args: (replace(args[0].clone()),) if replace else None)
    try:
        with torch.no_grad():
            predicted = model(tokens).argmax(-1)
    finally:
        hook.remove()
    return float((predicted[:, HALF - 1:-1] == tokens[:, HALF:]).double().mean())


def test_a_nanogpt_claim_file_in_yaml_only(pytester: pytest.Pytester,
                                           trained: dict[str, Any]) -> None:
    assert trained["seconds"] < 60
    for name in ("model.py", "nanogpt.pt", "copy.pt"):
        shutil.copy(trained["folder"] / name, pytester.path / name)
    pytester.makefile(".claims.yaml", copy=readme_block())
    result = pytester.runpytest("-p", "no:randomly", "--interp-plots=never",
                                "--interp-json=results.json")
    result.assert_outcomes(passed=8)
    records = json.loads((pytester.path / "results.json").read_text(encoding="utf-8"))
    value = {r["id"]: r["value"] for r in records["results"]}
    ref = reference(trained)
    mean_pattern = ref["pattern"].mean(axis=0)  # [head, query, key]

    # attention: the best head's batch-mean weight from Y3 to X4; the template's share of
    # instances whose best head puts ≥ 0.5 on X{i+1}
    assert value["copy-Y3"] == pytest.approx(mean_pattern[:, Y[3], X[4]].max(), abs=1e-5)
    holding = [mean_pattern[:, Y[i], X[i + 1]].max() >= 0.5 for i in range(7)]
    assert value["copy"] == pytest.approx(np.mean(holding))

    # cluster: the smallest pairwise cos of the heads' rows from Y3
    rows = mean_pattern[:, Y[3], :]
    unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    cos = unit @ unit.T
    assert value["heads-agree"] == pytest.approx(cos[np.triu_indices(HEADS, 1)].min(), abs=1e-6)

    # ablations through c_proj's input: all heads mean-ablated, one head zeroed
    clean = accuracy(trained)
    mean_z = ref["z"].mean(dim=0)

    def mean_all(z: torch.Tensor) -> torch.Tensor:
        z[:] = mean_z
        return z

    def zero_l0h1(z: torch.Tensor) -> torch.Tensor:
        z[:, :, D_HEAD:2 * D_HEAD] = 0
        return z

    assert value["heads-needed"] == pytest.approx(clean - accuracy(trained, mean_all))
    assert value["heads-needed"] > 0.5  # the heads do the copying: the claim could fail
    assert value["heads-redundant"] == pytest.approx(clean - accuracy(trained, zero_l0h1))

    # distributions over the MLP's 128 GELU neurons (batch and positions pooled)
    post = ref["post"].reshape(-1, 4 * WIDTH)
    assert value["gelu-floor"] == pytest.approx(np.mean(post.min(axis=0) >= -0.2))
    assert value["neuron-mean"] == pytest.approx(post[:, 5].mean(), abs=1e-6)

    # weights: W_OV of head 0 from c_attn's v third and c_proj's columns of that head
    attn = trained["model"].transformer.h[0].attn
    w_v = attn.c_attn.weight.detach().double().numpy()[2 * WIDTH:][:D_HEAD].T  # [d_model, d_head]
    w_o = attn.c_proj.weight.detach().double().numpy()[:, :D_HEAD].T  # [d_head, d_model]
    energy = np.cumsum(np.linalg.svd(w_v @ w_o, compute_uv=False) ** 2)
    rank = int(np.searchsorted(energy / energy[-1], 0.9) + 1)
    assert value["ov-rank"] == rank
