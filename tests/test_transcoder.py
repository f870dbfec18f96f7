"""Ablating a transcoder's features on the adder, against a hand-written forward pass that
reads the MLP input and edits the MLP output with two hooks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_features import ADDER, N, claim_file, run

pytestmark = pytest.mark.usefixtures("heavy_modules_loaded", "one_torch_thread")

HOOK_IN = "blocks.0.ln2.hook_normalized"
HOOK_OUT = "blocks.0.hook_mlp_out"


def write_transcoder(folder: Path, d_sae: int = 32, seed: int = 3,
                     hooks: tuple[str, str] = (HOOK_IN, HOOK_OUT)) -> dict[str, np.ndarray]:
    """A transcoder with fixed random weights, saved as sae-lens saves one."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    w_enc = rng.normal(size=(128, d_sae)) / np.sqrt(128)
    w_dec = rng.normal(size=(d_sae, 128))
    w_dec /= np.linalg.norm(w_dec, axis=1, keepdims=True)
    weights = {"W_enc": w_enc.astype(np.float32),
               "b_enc": rng.uniform(-0.5, 0.5, size=d_sae).astype(np.float32),
               "W_dec": (3 * w_dec).astype(np.float32),
               "b_dec": (rng.normal(size=128) * 0.1).astype(np.float32)}
    folder.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(folder / "sae_weights.safetensors"))
    cfg = {"d_in": 128, "d_sae": d_sae, "d_out": 128, "hook_name": hooks[0],
           "hook_name_out": hooks[1], "architecture": "standard",
           "apply_b_dec_to_input": False, "normalize_activations": "none"}
    (folder / "cfg.json").write_text(json.dumps(cfg))
    return weights


def loss_with_ablation(weights: dict[str, np.ndarray] | None, chosen: list[int],
                       positions: list[int] | None = None) -> float:
    """Mean cross-entropy on A0..A10; with ``weights``, the MLP output loses
    ``relu(x_in @ W_enc + b_enc)[chosen] @ W_dec[chosen]`` (x_in: the MLP input)."""
    import torch

    from examples.adder.data import generate
    from examples.tiny_transformer import load

    model = load(ADDER)
    tokens = generate(N, 7)["tokens"]
    seen: dict[str, np.ndarray] = {}
    handles = []
    if weights is not None:
        w = {k: v.astype(np.float64) for k, v in weights.items()}

        def read(_m, _i, out):
            seen["x"] = out.double().numpy()

        def edit(_m, _i, out):
            f = np.maximum(seen.pop("x") @ w["W_enc"] + w["b_enc"], 0.0)[..., chosen]
            change = f @ w["W_dec"][chosen]
            y = out.double().numpy().copy()
            where = slice(None) if positions is None else positions
            y[:, where] -= change[:, where]
            return torch.as_tensor(y, dtype=out.dtype)

        handles = [model.get_submodule(HOOK_IN).register_forward_hook(read),
                   model.get_submodule(HOOK_OUT).register_forward_hook(edit)]
    with torch.inference_mode():
        logits = model(tokens)
    for handle in handles:
        handle.remove()
    logp = torch.log_softmax(logits[:, 21:32].double(), dim=-1)
    picked = logp.gather(-1, tokens[:, 22:33, None]).squeeze(-1)
    return float((-picked).mean(dim=1).mean())


def test_transcoder_ablation_matches_a_two_hook_forward_pass(tmp_path: Path) -> None:
    weights = write_transcoder(tmp_path / "tc")
    base = loss_with_ablation(None, [])
    whole = loss_with_ablation(weights, [1, 4, 9])
    late = loss_with_ablation(weights, [1, 4, 9], [24, 25, 26])  # A2..A4
    assert whole > base + 1e-3 and late > base + 1e-4  # the ablations do something
    assert abs(whole - late) > 1e-4  # and the positions matter
    claims = f"""  - id: whole
    claim: "ablate feature F1, F4, F9 of F: answer-loss rises by >= {whole - base - 1e-4}"
  - id: late
    claim: "ablate feature F1, F4, F9 of F at A2..A4: answer-loss rises by >= {late - base - 1e-5}"
  - id: fails
    claim: "ablate feature F1, F4, F9 of F: answer-loss rises by >= {whole - base + 1e-4}"
"""
    results = run(claim_file(tmp_path, claims, sae="tc"), tmp_path / "plots")
    for name, expected in (("whole", whole), ("late", late)):
        row = results[name].outcome.rows[0]
        assert row["before"] == pytest.approx(base, abs=1e-7)
        assert row["after"] == pytest.approx(expected, abs=1e-7)
        assert results[name].status == "holds"
    failing = results["fails"]
    assert failing.status == "fails" and failing.plot is not None and failing.plot.exists()


def test_transcoder_with_its_hooks_swapped_is_a_clear_error(tmp_path: Path) -> None:
    write_transcoder(tmp_path / "tc", hooks=(HOOK_OUT, HOOK_IN))
    claims = """  - id: swapped
    claim: "ablate feature F1 of F: answer-loss rises by >= 0.01"
"""
    result = run(claim_file(tmp_path, claims, sae="tc"))["swapped"]
    assert result.status == "error", result
    assert "ran before the input hook" in str(result.error)
