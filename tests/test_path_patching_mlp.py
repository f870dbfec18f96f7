"""Path patching with MLP senders (``MLP0``) and MLP-input (``MLP1.in``) and final-residual
(``resid_final``) receivers, against hand-written passes with plain forward hooks on the
bundled adder (2 layers, 4 heads and a ReLU MLP per layer, LayerNorm). The metric is the
cross-entropy of the 11 answer digits, computed here in float64; ``resid_final`` is checked
against its definition: the corrupted final residual plus the senders' clean-minus-corrupted
outputs, read through the model's own final LayerNorm and unembedding."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import run_plotting_pass_fail
from test_path_patching import capture, forward  # the same hand-written hooked passes

from interp_assert.claims import parse_claim
from interp_assert.run.runner import load_claim_file

ROOT = Path(__file__).parents[1]
CHECKPOINT = ROOT / "examples" / "adder" / "checkpoints" / "adder.pt"
N = 40
GEN = "examples.adder.data:generate"
POSITIONS = "X0..X9, +, Y0..Y9, =, A0..A10"
DATA = {"clean": {"generate": GEN, "n": N, "seed": 11, "positions": POSITIONS},
        "corrupted": {"generate": GEN, "n": N, "seed": 12, "positions": POSITIONS}}
Hook = Callable[[Any], Any]


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """Every test here runs torch on one thread."""


@pytest.fixture(scope="module")
def world() -> dict[str, Any]:
    import sys

    sys.path.insert(0, str(ROOT))
    try:
        from examples import tiny_transformer
        from examples.adder import data
    finally:
        sys.path.remove(str(ROOT))
    model = tiny_transformer.load(CHECKPOINT)
    return {"model": model, "data": {name: data.generate(n=N, seed=spec["seed"])
                                     for name, spec in DATA.items()}}


def answer_loss(world: dict[str, Any], dataset: str, logits: Any) -> float:
    """Mean over samples of the mean cross-entropy of answer digits 22..32 (from p − 1)."""
    tokens = world["data"][dataset]["tokens"]
    log_probs = logits.double().log_softmax(-1)[:, 21:32]
    picked = log_probs.gather(-1, tokens[:, 22:33, None])[..., 0]
    return float(-picked.mean(1).mean().detach())


def loss(world: dict[str, Any], dataset: str, hooks: dict[str, Hook] | None = None) -> float:
    return answer_loss(world, dataset, forward(world, dataset, hooks))


def put(value: Any, head: int | None = None) -> Hook:
    """A hook writing ``value`` into the output (head ``head``'s slice of it)."""

    def hook(out: Any) -> Any:
        new = out.clone()
        if head is None:
            new[...] = value
        else:
            new[:, :, head] = value
        return new

    return hook


def recovery(world: dict[str, Any], patched: float) -> tuple[float, float]:
    """(the patched loss, its recovery (patched − corrupted) / (clean − corrupted))."""
    clean, corrupted = loss(world, "clean"), loss(world, "corrupted")
    return patched, (patched - corrupted) / (clean - corrupted)


def write(folder: Path, claims: list[dict[str, Any]]) -> Path:
    text = yaml.safe_dump({
        "subject": {"checkpoint": str(CHECKPOINT), "loader": "examples.tiny_transformer:load",
                    "python_path": str(ROOT)},
        "data": DATA, "quantities": {"loss": {"metric": "loss", "answer": "A0..A10"}},
        "claims": claims}, allow_unicode=True, sort_keys=False)
    path = folder / "mlp_paths.claims.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_mlp_senders_and_receivers_match_hand_written_passes(world: dict[str, Any],
                                                             tmp_path: Path) -> None:
    z0, z1 = "blocks.0.attn.hook_z", "blocks.1.attn.hook_z"
    mlp0, mlp1 = "blocks.0.hook_mlp_out", "blocks.1.hook_mlp_out"
    clean_mlp0 = capture(world, "clean", mlp0)
    clean_z0 = capture(world, "clean", z0)
    corrupted_z1 = capture(world, "corrupted", z1)
    # MLP0 -> L1H2 keys: nothing to freeze between layer 0's MLP and layer 1's heads
    keys = capture(world, "corrupted", "blocks.1.attn.hook_k", {mlp0: put(clean_mlp0)})[:, :, 2]
    mlp_keys = recovery(world, loss(world, "corrupted", {"blocks.1.attn.hook_k": put(keys, 2)}))
    # L0H1, MLP0 -> MLP1.in: layer 1's heads frozen, MLP1's pre-activation read and patched
    send = {z0: put(clean_z0[:, :, 1], 1), mlp0: put(clean_mlp0), z1: put(corrupted_z1)}
    pre = capture(world, "corrupted", "blocks.1.mlp.hook_pre", send)
    mlp_in = recovery(world, loss(world, "corrupted", {"blocks.1.mlp.hook_pre": put(pre)}))
    # MLP0 -> resid_final: the direct path only, by its definition
    model = world["model"]
    resid = capture(world, "corrupted", "blocks.1.hook_resid_post")
    direct = resid + clean_mlp0 - capture(world, "corrupted", mlp0)
    final = recovery(world, answer_loss(world, "corrupted",
                                        model.unembed(model.ln_final(direct))))
    # and the same through hooks: layer 1 frozen whole
    hooked = recovery(world, loss(world, "corrupted", {
        mlp0: put(clean_mlp0), z1: put(corrupted_z1),
        mlp1: put(capture(world, "corrupted", mlp1))}))
    assert abs(final[0] - hooked[0]) <= 1e-7
    corrupted = loss(world, "corrupted")
    for after, _ in (mlp_keys, mlp_in, final):  # each path carries something
        assert abs(after - corrupted) > 1e-2 * corrupted
    claims = [
        {"id": "keys", "claim": "patch path MLP0 → L1H2 keys from clean into corrupted: "
                                "loss recovers ≥ -1000%"},
        {"id": "mlp-in", "claim": "patch path L0H1, MLP0 → MLP1.in from clean into corrupted: "
                                  "loss recovers ≥ -1000%"},
        {"id": "final-fail", "claim": "patch path MLP0 → resid_final from clean into "
                                      f"corrupted: loss recovers ≥ {final[1] + 100:.6f}"},
        {"id": "late", "claim": "patch path MLP1 → MLP1.in from clean into corrupted: loss "
                                "recovers ≥ 0"},
        {"id": "words", "claim": "patch path MLP0 → MLP1.in keys from clean into corrupted: "
                                 "loss recovers ≥ 0"},
    ]
    results = run_plotting_pass_fail(load_claim_file(write(tmp_path, claims)), tmp_path)
    for name, (after, value) in (("keys", mlp_keys), ("mlp-in", mlp_in), ("final-fail", final)):
        outcome = results[name].outcome
        assert outcome is not None, str(results[name].error)
        print(f"{name}: after {outcome.rows[0]['after']:.6g} vs {after:.6g} (|diff| "
              f"{abs(outcome.rows[0]['after'] - after):.3g}); recovery {outcome.value:.6g} vs "
              f"{value:.6g}")
        assert abs(outcome.rows[0]["after"] - after) <= 1e-7, (name, outcome.rows[0], after)
        assert abs(outcome.rows[0]["before"] - corrupted) <= 1e-7
        # the losses are ~0.003 nats: the recovery divides float32 noise by a small gap
        assert outcome.value == pytest.approx(value, rel=1e-3), name
    assert results["final-fail"].status == "fails"
    assert results["final-fail"].plot is not None and results["final-fail"].plot.exists()
    assert results["keys"].outcome.plot_data["source"] == pytest.approx(
        loss(world, "clean"), abs=1e-6)
    assert "a sender must sit in an earlier layer" in str(results["late"].error)
    assert "takes no 'queries' / 'keys' / 'values'" in str(results["words"].error)


@pytest.mark.parametrize("sentence", [
    "patch path MLP0 → MLP1.in from clean into corrupted: loss recovers >= 50%",
    "patch path L0H1, MLP0 → resid_final from clean into corrupted: loss recovers >= 50%",
    "patch path MLP0 → L1H2 keys, MLP1.in from clean into corrupted: loss recovers >= 50%",
])
def test_mlp_sentences_print_back(sentence: str) -> None:
    assert str(parse_claim(sentence).claim) == sentence
