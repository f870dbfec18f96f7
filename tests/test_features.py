"""Sparse-dictionary features (``sae:`` quantities and the ``feature ...`` claims) on the adder,
checked against numpy re-encodings from the safetensors file, scipy's Wilson interval and a
hand-written hooked forward pass."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import interp_assert as ia
from interp_assert.claims import parse_claim

pytestmark = pytest.mark.usefixtures("heavy_modules_loaded", "one_torch_thread")

ROOT = Path(__file__).resolve().parents[1]
ADDER = ROOT / "examples" / "adder" / "checkpoints" / "adder.pt"
HOOK = "blocks.0.hook_resid_post"
N = 120
LABELS = ([f"X{i}" for i in range(10)] + ["+"] + [f"Y{i}" for i in range(10)] + ["="]
          + [f"A{i}" for i in range(11)])


def write_sae(folder: Path, d_sae: int = 48, seed: int = 0, architecture: str = "standard",
              **config: object) -> dict[str, np.ndarray]:
    """A random dictionary on the adder's layer-0 residual stream (decoder rows unit norm)."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    w_dec = rng.normal(size=(d_sae, 128)).astype(np.float32)
    w_dec /= np.linalg.norm(w_dec, axis=1, keepdims=True)
    weights = {"W_enc": np.ascontiguousarray(w_dec.T * 1.5, dtype=np.float32),
               "b_enc": rng.uniform(-3, -1, size=d_sae).astype(np.float32),
               "W_dec": w_dec, "b_dec": (rng.normal(size=128) * 0.1).astype(np.float32)}
    if architecture == "jumprelu":
        weights["threshold"] = rng.uniform(0.5, 1.5, size=d_sae).astype(np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(folder / "sae_weights.safetensors"))
    cfg = {"d_in": 128, "d_sae": d_sae, "hook_name": HOOK, "architecture": architecture,
           "apply_b_dec_to_input": True, "normalize_activations": "none", **config}
    (folder / "cfg.json").write_text(json.dumps(cfg))
    return weights


def claim_file(folder: Path, claims: str, sae: str = "sae", extra: str = "") -> Path:
    path = folder / "f.claims.yaml"
    path.write_text(f"""subject:
  checkpoint: {ADDER}
  loader: examples.tiny_transformer:load
  python_path: [{ROOT}]
data:
  sums:
    generate: examples.adder.data:generate
    n: {N}
    seed: 7
    positions: X0..X9, +, Y0..Y9, =, A0..A10
quantities:
  F:
    sae: {sae}
{extra}  resid:
    activation: {HOOK}
  exact-match:
    metric: exact_match
    answer: A0..A10
  answer-loss:
    metric: loss
    answer: A0..A10
claims:
{claims}""", encoding="utf-8")
    return path


def numpy_encode(x: np.ndarray, w: dict[str, np.ndarray], threshold: bool = False) -> np.ndarray:
    pre = (x.astype(np.float64) - w["b_dec"]) @ w["W_enc"].astype(np.float64) + w["b_enc"]
    if threshold:
        return np.where(pre > w["threshold"], pre, 0.0)
    return np.maximum(pre, 0.0)


def run(path: Path, plots: Path | None = None) -> dict[str, object]:
    return {r.claim_id: r for r in ia.load(path).run(plot_dir=plots)}


class Quantities:
    """Quantities of a claim file, evaluated as its claims see them."""

    def __init__(self, path: Path) -> None:
        from interp_assert.evaluate.evaluation import Evaluation
        from interp_assert.loading.subject import get_subject
        from interp_assert.run.runner import load_claim_file

        claim_file = load_claim_file(path)
        self.evaluation = Evaluation(claim_file, get_subject(claim_file.subject))

    def quantity(self, name: str):
        return self.evaluation.quantity(name)


def test_round_trips() -> None:
    for text in ("feature F3 of F: frequency >= 0.05",
                 "feature F3 of F at A1..A4: frequency over samples >= 0.2 with 0.95 confidence",
                 "feature F3 of F: top 5 tokens all have carry",
                 "feature F3 of F: top 5 tokens all have not carry",
                 "feature F3 of F: top 5 tokens all at A0..A10",
                 "feature F3 of F writes 7 in top 3",
                 "ablate feature F3, F4 of F at A4: exact-match drops by >= 0.1",
                 "steer feature F3 of F by -4 at A4: exact-match drops by >= 0.1 while 3 random "
                 "sets of the same size drop by <= 0.05"):
        parsed = parse_claim(text)
        assert str(parse_claim(str(parsed))) == str(parsed)


def test_activations_match_numpy_from_the_safetensors_file(tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    write_sae(tmp_path / "sae")
    path = claim_file(tmp_path, "  - feature F0 of F: frequency >= 0\n")
    subject = Quantities(path)
    features = subject.quantity("F")
    acts = features.meta["features"]
    x = subject.quantity("resid").values  # [n, pos, 128] float32, the same pass
    reference = numpy_encode(x, load_file(str(tmp_path / "sae" / "sae_weights.safetensors")))
    dense = acts.all_dense()
    assert dense.shape == reference.shape == (N, 33, 48)
    assert np.max(np.abs(dense - reference)) <= 1e-6
    assert np.array_equal(dense > 0, reference > 0)
    expected = (reference > 0).reshape(-1, 48).mean(axis=0)
    assert np.max(np.abs(features.values - expected)) <= 1e-12
    assert features.labels_of(0)[:3] == ["F0", "F1", "F2"]


def test_jumprelu_and_topk_encode_like_numpy(tmp_path: Path) -> None:
    import torch
    from safetensors.numpy import load_file

    from interp_assert.evaluate.feature_sink import encode_torch
    from interp_assert.loading.dictionary import load_dictionary

    rng = np.random.default_rng(3)
    x = rng.normal(size=(50, 128)).astype(np.float32) * 3
    write_sae(tmp_path / "j", architecture="jumprelu")
    jump = load_dictionary(tmp_path / "j")
    reference = numpy_encode(x, load_file(str(tmp_path / "j" / "sae_weights.safetensors")),
                             threshold=True)
    assert np.max(np.abs(encode_torch(jump, torch.as_tensor(x)).numpy() - reference)) <= 1e-9
    write_sae(tmp_path / "k", architecture="topk", k=4)
    topk = load_dictionary(tmp_path / "k")
    weights = load_file(str(tmp_path / "k" / "sae_weights.safetensors"))
    pre = (x.astype(np.float64) - weights["b_dec"]) @ weights["W_enc"] + weights["b_enc"]
    manual = np.zeros_like(pre)
    for row in range(len(pre)):
        best = np.argsort(-pre[row])[:4]
        manual[row, best] = np.maximum(pre[row, best], 0)
    assert np.max(np.abs(encode_torch(topk, torch.as_tensor(x)).numpy() - manual)) <= 1e-9
    assert np.max(np.abs(topk.encode(x) - manual)) <= 1e-9


def test_frequency_top_and_writes_against_references(tmp_path: Path) -> None:
    import torch
    from scipy.stats import binomtest

    weights = write_sae(tmp_path / "sae")
    subject = Quantities(claim_file(tmp_path, "  - feature F0 of F: frequency >= 0\n"))
    x = subject.quantity("resid").values
    f = numpy_encode(x, weights)
    feature = int(np.argmax((f > 0).sum(axis=(0, 1)) * ((f > 0).sum(axis=(0, 1)) < f[..., 0].size)))
    a_pos = list(range(23, 27))  # A1..A4
    fired_tokens = int((f[:, :, feature] > 0).sum())
    fired_samples = int((f[:, a_pos, feature] > 0).any(axis=1).sum())
    token_ci = binomtest(fired_tokens, N * 33).proportion_ci(0.95, method="wilson")
    sample_ci = binomtest(fired_samples, N).proportion_ci(0.9, method="wilson")
    order = sorted((-f[s, p, feature], s, p) for s in range(N) for p in range(33)
                    if f[s, p, feature] > 0)[:6]
    top_positions = sorted({p for _, _, p in order})
    w_u = torch.load(ADDER, weights_only=True)["model_state_dict"]["unembed.W_U"].double().numpy()
    logits = weights["W_dec"][feature].astype(np.float64) @ w_u
    best = int(np.argmax(logits))
    where = ", ".join(LABELS[p] for p in top_positions)
    claims = f"""  - id: tokens
    claim: "feature F{feature} of F: frequency >= {token_ci.low - 1e-9} with 95% confidence"
  - id: tokens-tight
    claim: "feature F{feature} of F: frequency >= {token_ci.low + 1e-6} with 95% confidence"
  - id: samples
    claim: "feature F{feature} of F at A1..A4: frequency over samples >= 0 with 90% confidence"
  - id: top
    claim: "feature F{feature} of F: top 6 tokens all at {where}"
  - id: writes
    claim: feature F{feature} of F writes {best} in top 1
  - id: writes-worst
    claim: feature F{feature} of F writes {int(np.argmin(logits))} in top 11
"""
    results = run(claim_file(tmp_path, claims), tmp_path / "plots")
    tokens = results["tokens"]
    assert tokens.status == "holds"
    assert tokens.outcome.value == pytest.approx(fired_tokens / (N * 33), abs=1e-15)
    assert tokens.outcome.interval == pytest.approx((token_ci.low, token_ci.high), abs=1e-12)
    assert results["tokens-tight"].status == "fails"
    assert results["tokens-tight"].plot is not None and results["tokens-tight"].plot.exists()
    samples = results["samples"]
    assert samples.outcome.value == pytest.approx(fired_samples / N, abs=1e-15)
    assert samples.outcome.interval == pytest.approx((sample_ci.low, sample_ci.high), abs=1e-12)
    top = results["top"]
    assert top.status == "holds"
    assert [(r["sample"], r["activation"]) for r in top.outcome.rows] == [
        (s, pytest.approx(-v, abs=1e-6)) for v, s, _ in order]
    assert results["writes"].status == "holds" and results["writes"].outcome.value == 1
    worst = results["writes-worst"]
    assert worst.status == "fails" and worst.outcome.value == 12
    assert worst.plot is not None and worst.plot.exists()


def test_top_tokens_with_a_dataset_field_fail_with_a_plot(tmp_path: Path) -> None:
    write_sae(tmp_path / "sae")
    claims = """  - id: carry
    claim: "feature F1 of F: top 8 tokens all have carry_in"
  - id: few
    claim: "feature F1 of F at X0: top 500 tokens all at X0"
"""
    path = claim_file(tmp_path, claims).read_text().replace(
        "examples.adder.data:generate", "examples.adder.sae_data:generate")
    (tmp_path / "f.claims.yaml").write_text(path)
    results = run(tmp_path / "f.claims.yaml", tmp_path / "plots")
    from examples.adder.sae_data import generate

    data = generate(N, 7)["carry_in"].numpy()
    carry = results["carry"]
    expected = [bool(data[r["sample"], LABELS.index(r["position"])])
                for r in carry.outcome.rows]
    assert [r["holds"] for r in carry.outcome.rows] == expected
    assert (carry.status == "holds") == all(expected)
    few = results["few"]
    assert few.status == "fails" and "nonzero on only" in few.outcome.measured
    assert few.plot is not None and few.plot.exists()


def loss_with_hook(edit) -> float:
    """Mean over samples of the mean cross-entropy on A0..A10, with ``edit(x)`` at the hook."""
    import torch

    from examples.adder.data import generate
    from examples.tiny_transformer import load

    model = load(ADDER)
    tokens = generate(N, 7)["tokens"]
    handle = None
    if edit is not None:
        handle = model.get_submodule(HOOK).register_forward_hook(
            lambda _m, _i, out: torch.as_tensor(edit(out.double().numpy()), dtype=out.dtype))
    with torch.inference_mode():
        logits = model(tokens)
    if handle is not None:
        handle.remove()
    logp = torch.log_softmax(logits[:, 21:32].double(), dim=-1)
    picked = logp.gather(-1, tokens[:, 22:33, None]).squeeze(-1)
    return float((-picked).mean(dim=1).mean())


def test_ablating_and_steering_match_a_hooked_forward_pass(tmp_path: Path) -> None:
    weights = write_sae(tmp_path / "sae")
    w_dec = weights["W_dec"].astype(np.float64)
    chosen = [2, 5]

    def ablate(x: np.ndarray) -> np.ndarray:
        f = numpy_encode(x, weights)
        return x - f[..., chosen] @ w_dec[chosen]

    def steer(x: np.ndarray) -> np.ndarray:
        x = x.copy()
        x[:, 25] += -6.0 * w_dec[7]  # A3
        return x

    base, ablated, steered = (loss_with_hook(edit) for edit in (None, ablate, steer))
    assert ablated > base + 1e-4 and steered > base + 1e-4  # both interventions do something
    claims = f"""  - id: ablate
    claim: "ablate feature F2, F5 of F: answer-loss rises by >= {ablated - base - 1e-4}"
  - id: steer
    claim: "steer feature F7 of F by -6 at A3: answer-loss rises by >= {steered - base - 1e-4}"
  - id: steer-fails
    claim: "steer feature F7 of F by -6 at A3: answer-loss rises by >= {steered - base + 1e-4}"
"""
    results = run(claim_file(tmp_path, claims), tmp_path / "plots")
    row = results["ablate"].outcome.rows[0]
    assert row["before"] == pytest.approx(base, abs=1e-7)
    assert row["after"] == pytest.approx(ablated, abs=1e-7)
    assert results["ablate"].status == "holds"
    assert results["steer"].outcome.rows[0]["after"] == pytest.approx(steered, abs=1e-7)
    assert results["steer"].status == "holds"
    failing = results["steer-fails"]
    assert failing.status == "fails" and failing.plot is not None and failing.plot.exists()


def test_committed_dictionary_matches_the_training_scripts_encoder() -> None:
    import torch
    from safetensors.torch import load_file

    from examples.adder.train_sae import encode
    from interp_assert.loading.dictionary import load_dictionary

    folder = ROOT / "examples" / "adder" / "sae"
    dictionary = load_dictionary(folder)
    assert (dictionary.d_in, dictionary.d_sae, dictionary.hook) == (128, 256, HOOK)
    x = torch.randn(64, 128, generator=torch.Generator().manual_seed(0)) * 4
    ours = dictionary.encode(x.numpy())
    theirs = encode(x.double(), {k: v.double() for k, v in load_file(
        str(folder / "sae_weights.safetensors")).items()}).numpy()
    assert np.max(np.abs(ours - theirs)) <= 1e-9
    assert sum(p.stat().st_size for p in folder.iterdir()) < 2_000_000


def test_committed_dictionary_activations_match_numpy(tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    folder = ROOT / "examples" / "adder" / "sae"
    quantities = Quantities(claim_file(tmp_path, "  - feature F0 of F: frequency >= 0\n",
                                       sae=str(folder)))
    dense = quantities.quantity("F").meta["features"].all_dense()
    x = quantities.quantity("resid").values
    reference = numpy_encode(x, load_file(str(folder / "sae_weights.safetensors")))
    assert dense.shape == (N, 33, 256)
    assert np.max(np.abs(dense - reference)) <= 1e-6


def test_bad_dictionaries_are_clear_errors(tmp_path: Path) -> None:
    write_sae(tmp_path / "sae")
    write_sae(tmp_path / "jump", architecture="jumprelu")
    (tmp_path / "jump" / "cfg.json").write_text(json.dumps(
        {"d_in": 128, "d_sae": 48, "hook_name": HOOK, "architecture": "jumprelu"}))
    from safetensors.numpy import load_file, save_file

    weights = load_file(str(tmp_path / "jump" / "sae_weights.safetensors"))
    del weights["threshold"]
    save_file(weights, str(tmp_path / "jump" / "sae_weights.safetensors"))
    extra = """  mlp:
    sae: sae
    hook: blocks.0.mlp.hook_post
  missing:
    sae: nowhere
  jump:
    sae: jump
"""
    claims = """  - id: width
    claim: "feature F0 of mlp: frequency >= 0"
  - id: missing
    claim: "feature F0 of missing: frequency >= 0"
  - id: jump
    claim: "feature F0 of jump: frequency >= 0"
  - id: label
    claim: "feature F48 of F: frequency >= 0"
  - id: not-a-dictionary
    claim: "feature F1 of exact-match: frequency >= 0"
"""
    results = run(claim_file(tmp_path, claims, extra=extra))
    messages = {key: str(r.error) for key, r in results.items()}
    assert all(r.status == "error" for r in results.values())
    assert "hook 'blocks.0.mlp.hook_post' gives activations of shape" in messages["width"]
    assert "reads vectors of 128" in messages["width"]
    assert "nowhere' does not exist" in messages["missing"]
    assert "needs 'threshold' [d_sae]" in messages["jump"]
    assert "has 48 features (F0..F47)" in messages["label"]
    assert "'exact-match' is not a sparse dictionary" in messages["not-a-dictionary"]
