"""The loss metric's mask convention: a mask marks the scored tokens (the token at t, predicted
by the logits at t - 1), checked against examples/induction/train.py's own loss code and a
numpy reference on a random TinyTransformer; bad masks are clear errors."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

import interp_assert
from interp_assert.judge.verdict import ClaimResult

ROOT = Path(__file__).parents[1]
N = 20

DATA_MODULE = '''\
import torch
from examples.induction.data import generate as repeats


def generate(n, seed):
    data = repeats(n=n, seed=seed)
    rep = data["repeated"]
    data["at_zero"] = torch.zeros_like(rep)
    data["at_zero"][:, 0] = True
    data["short"] = rep[:, :-1]
    data["counts"] = rep.long() * 2
    data["empty"] = torch.zeros_like(rep)
    data["some"] = rep.clone()
    data["some"][::2] = False  # even samples have no scored token
    return data
'''


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    import torch

    saved = list(sys.path)
    sys.path.insert(0, str(ROOT))
    try:
        from examples import tiny_transformer
        from examples.induction import train
        from examples.induction.data import generate
    finally:
        sys.path[:] = saved

    torch.manual_seed(0)
    model = tiny_transformer.TinyTransformer(tiny_transformer.TinyConfig(
        n_layers=1, d_model=16, n_heads=2, d_head=8, d_mlp=None, d_vocab=64, n_ctx=48))
    with torch.no_grad():  # a less uniform output than the default init
        model.unembed.W_U.mul_(8.0)
    folder = tmp_path_factory.mktemp("loss_mask")
    tiny_transformer.save_checkpoint(folder / "model.pt", model)
    (folder / "loss_data.py").write_text(DATA_MODULE, encoding="utf-8")
    model.eval()
    data = generate(N, 7)
    with torch.no_grad():
        logits = model(data["tokens"]).double().numpy()
    return {"folder": folder, "model": model, "data": data, "train": train, "logits": logits}


def run(world: dict[str, Any], quantities: dict[str, Any], name: str = "loss"
        ) -> dict[str, ClaimResult]:
    claims = [{"id": q, "claim": f"{q} >= 0"} for q in quantities]
    text = yaml.safe_dump({
        "subject": {"checkpoint": "model.pt", "loader": "examples.tiny_transformer:load",
                    "python_path": [str(ROOT), str(world["folder"])]},
        "data": {"rep": {"generate": "loss_data:generate", "n": N, "seed": 7, "batch_size": 8}},
        "quantities": quantities, "claims": claims}, sort_keys=False)
    path = world["folder"] / f"{name}.claims.yaml"
    path.write_text(text, encoding="utf-8")
    return {r.claim_id: r for r in interp_assert.load(path).run()}


def value(result: ClaimResult) -> float:
    assert result.outcome is not None, result.error
    return float(result.outcome.value)


def log_probs(logits: np.ndarray) -> np.ndarray:
    top = logits.max(-1, keepdims=True)
    return logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))


def test_mask_scores_the_marked_tokens_as_the_training_script_does(world: dict[str, Any]
                                                                   ) -> None:
    import torch

    train, model, data = world["train"], world["model"], world["data"]
    results = run(world, {
        "rep-tokens": {"metric": "loss", "mask": "repeated", "average": "tokens"},
        "first-tokens": {"metric": "loss", "mask": "not repeated", "average": "tokens"},
        "rep-samples": {"metric": "loss", "mask": "repeated"},
        "some-samples": {"metric": "loss", "mask": "some"},
        "some-tokens": {"metric": "loss", "mask": "some", "average": "tokens"}})
    reference = train.evaluate(model, data)
    assert value(results["rep-tokens"]) == pytest.approx(reference["loss_repeated"], rel=1e-5)
    assert value(results["first-tokens"]) == pytest.approx(reference["loss_first"], rel=1e-5)
    with torch.no_grad():
        losses = train.token_losses(model, data["tokens"]).double().numpy()
    scored = train.repeated_targets(data).numpy()
    per_sample = [losses[b][scored[b]].mean() for b in range(N)]
    assert value(results["rep-samples"]) == pytest.approx(np.mean(per_sample), rel=1e-5)
    # the two averages differ here (the periods, so the token counts, vary)
    assert abs(np.mean(per_sample) - reference["loss_repeated"]) > 1e-4
    some = scored & (np.arange(N) % 2 == 1)[:, None]
    assert value(results["some-samples"]) == pytest.approx(
        np.mean([losses[b][some[b]].mean() for b in range(1, N, 2)]), rel=1e-5)
    assert value(results["some-tokens"]) == pytest.approx(losses[some].mean(), rel=1e-5)


def test_predict_same_scores_the_logits_at_the_marked_position(world: dict[str, Any]) -> None:
    results = run(world, {"same": {"metric": "loss", "mask": "at_zero", "predict": "same"},
                          "answers": {"metric": "loss", "answer": "5, 9"}}, "same")
    tokens = world["data"]["tokens"].numpy()
    lp = log_probs(world["logits"])
    assert value(results["same"]) == pytest.approx(
        -np.mean(lp[np.arange(N), 0, tokens[:, 0]]), rel=1e-5)
    answers = -(lp[np.arange(N), 4, tokens[:, 5]] + lp[np.arange(N), 8, tokens[:, 9]]) / 2
    assert value(results["answers"]) == pytest.approx(answers.mean(), rel=1e-5)


def test_bad_masks_are_clear_errors(world: dict[str, Any]) -> None:
    results = run(world, {
        "at-zero": {"metric": "loss", "mask": "at_zero"},
        "missing": {"metric": "loss", "mask": "repeatd"},
        "short": {"metric": "loss", "mask": "short"},
        "counts": {"metric": "loss", "mask": "counts"},
        "empty": {"metric": "loss", "mask": "empty"},
        "average": {"metric": "loss", "mask": "repeated", "average": "median"}}, "bad")
    errors = {key: str(result.error) for key, result in results.items()}
    assert all(result.error is not None for result in results.values()), errors
    # only the first token marked: nothing predicts it, and the error says how masks read
    assert "selects no scored token" in errors["at-zero"]
    assert "predicted by the logits at t - 1" in results["at-zero"].error.hint
    assert "did you mean 'repeated'" in errors["missing"]
    assert "shape" in errors["short"]
    assert "0/1" in errors["counts"]
    assert "selects no scored token" in errors["empty"]
    assert "average: median" in errors["average"]


def test_logsumexp_in_row_chunks_equals_scipy_and_the_unchunked_rows() -> None:
    """The loss metric's log Σ exp works in chunks of rows so that a batch of logits gets no
    same-sized temporary: any chunk size gives the unchunked float32 rows bit for bit, and
    scipy's logsumexp to float32 precision."""
    import numpy as np
    from scipy.special import logsumexp

    from interp_assert.evaluate.metrics import _logsumexp

    rng = np.random.default_rng(3)
    logits = (rng.standard_normal((3, 5, 997)) * 6).astype(np.float32)
    top = logits.max(axis=-1, keepdims=True)
    whole = top + np.log(np.sum(np.exp(logits - top), axis=-1, keepdims=True))
    for chunk_bytes in (1, 997 * 4, 3 * 997 * 4 + 5, 1 << 25):
        chunked = _logsumexp(logits, chunk_bytes)
        assert chunked.dtype == np.float32 and chunked.shape == (3, 5, 1)
        assert np.array_equal(chunked, whole)
    np.testing.assert_allclose(_logsumexp(logits)[..., 0],
                               logsumexp(logits.astype(np.float64), axis=-1), rtol=1e-6)
