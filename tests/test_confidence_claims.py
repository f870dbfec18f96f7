"""``with C% confidence`` on attention, distribution, causal and metric claims, on the bundled
induction model and adder, each interval recomputed here by hand: patterns, activations and
per-sample metrics captured with plain torch hooks, resampled with numpy (the documented
generator and quantiles), and checked against scipy's bootstrap."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from scipy import stats as scipy_stats

import interp_assert
from interp_assert.judge.verdict import ClaimResult

ROOT = Path(__file__).parents[1]
INDUCTION = ROOT / "examples/induction/checkpoints/induction.pt"
ADDER = ROOT / "examples/adder/checkpoints/adder.pt"
N, SEED = 40, 7
ADDER_POSITIONS = "X0..X9, +, Y0..Y9, =, A0..A10"


def by_hand(data: list[np.ndarray], statistic: Any, level: float = 0.95) -> tuple[float, float]:
    """The documented bootstrap, written out: default_rng(0), integers(0, n, (250, n)) per
    block, 2000 resamples, linear quantiles."""
    rng = np.random.default_rng(0)
    n = data[0].shape[0]
    thetas = []
    for _ in range(8):
        idx = rng.integers(0, n, size=(250, n))
        thetas.extend(statistic(*(d[row] for d in data)) for row in idx)
    alpha = (1 - level) / 2
    return float(np.quantile(thetas, alpha)), float(np.quantile(thetas, 1 - alpha))


def scipy_paired(data: tuple[np.ndarray, ...], statistic: Any, level: float = 0.95
                 ) -> tuple[float, float]:
    result = scipy_stats.bootstrap(data, statistic, n_resamples=2000, batch=250, paired=True,
                                   vectorized=True, method="percentile", confidence_level=level,
                                   rng=np.random.default_rng(0))
    return result.confidence_interval.low, result.confidence_interval.high


def _examples() -> tuple[Any, Any, Any]:
    saved = list(sys.path)
    sys.path.insert(0, str(ROOT))
    try:
        from examples import tiny_transformer
        from examples.adder import data as adder
        from examples.induction import data as induction
    finally:
        sys.path[:] = saved
    return tiny_transformer, induction, adder


@pytest.fixture(scope="module")
def induction(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The bundled induction model on 40 fresh sequences: the claim file and, captured with
    torch hooks, its patterns, resid activations, tokens and per-sequence losses."""
    import torch

    tiny, data, _ = _examples()
    model = tiny.load(str(INDUCTION)).eval()
    batch = data.generate(n=N, seed=SEED)
    seen: dict[str, np.ndarray] = {}
    hooks = [model.blocks[layer].attn.hook_pattern.register_forward_hook(
        lambda _m, _i, out, layer=layer: seen.__setitem__(f"p{layer}", out.double().numpy()))
        for layer in (0, 1)]
    hooks.append(model.blocks[0].hook_resid_post.register_forward_hook(
        lambda _m, _i, out: seen.__setitem__("resid", out.double().numpy())))
    with torch.no_grad():
        logits = model(batch["tokens"]).double()
    for hook in hooks:
        hook.remove()
    folder = tmp_path_factory.mktemp("confidence")
    spec = {
        "subject": {"checkpoint": str(INDUCTION), "loader": "examples.tiny_transformer:load",
                    "python_path": str(ROOT)},
        "data": {"repeats": {"generate": "examples.induction.data:generate", "n": N,
                             "seed": SEED, "batch_size": 20}},
        "quantities": {
            "pattern0": {"activation": "blocks.0.attn.hook_pattern"},
            "pattern1": {"activation": "blocks.1.attn.hook_pattern"},
            "resid": {"distribution": "blocks.0.hook_resid_post"},
            "loss-repeated": {"metric": "loss", "mask": "repeated"}},
        "claims": []}
    path = folder / "ind.claims.yaml"
    path.write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    log_probs = torch.log_softmax(logits, -1).numpy()
    tokens, repeated = batch["tokens"].numpy(), batch["repeated"].numpy()
    nll = -np.take_along_axis(log_probs[:, :-1], tokens[:, 1:, None], -1)[..., 0]
    mask = repeated[:, 1:]
    per_seq = (nll * mask).sum(1) / mask.sum(1)
    return {"path": path, "tokens": tokens, "loss": per_seq, **seen}


def check(path: Path, sentence: str, plot_dir: Path | None = None) -> ClaimResult:
    subject = interp_assert.load(path)
    try:
        return interp_assert.check(sentence, subject, plot_dir=plot_dir)
    except interp_assert.ClaimFailed as failed:
        return failed.result


def test_attention_interval_is_a_bootstrap_over_sequences(induction: dict[str, Any]) -> None:
    pattern = induction["p0"][:, 1]  # L0H1, (batch, query, key)
    n, length, _ = pattern.shape
    sums = np.array([sum(pattern[b, q, q - 1] for q in range(1, length)) for b in range(n)])
    counts = np.full(n, length - 1.0)
    score = sums.sum() / counts.sum()
    ratio = lambda s, c: s.sum() / c.sum()  # noqa: E731
    low, high = by_hand([sums, counts], ratio)
    assert (low, high) == pytest.approx(
        scipy_paired((sums, counts), lambda s, c, axis=-1: s.sum(axis) / c.sum(axis)),
        abs=1e-12)

    holds = check(induction["path"], "L0H1 attends to the previous token ≥ 0.4 with 95% "
                                      "confidence")
    assert holds.status == "holds", holds.outcome
    assert holds.outcome.value == pytest.approx(score, abs=1e-6)
    assert holds.outcome.interval == pytest.approx((low, high), abs=1e-6)
    assert "bootstrap over 40 samples" in holds.outcome.measured
    sums_meta, counts_meta = holds.outcome.meta["clusters"]
    assert counts_meta == pytest.approx(counts)
    assert sums_meta == pytest.approx(sums, abs=1e-5)
    assert holds.outcome.meta["samples"].mean() == pytest.approx(score, abs=1e-6)

    # a bound inside the interval: the point estimate clears it, the interval does not
    middle = (score + low) / 2
    assert low < middle < score
    point = check(induction["path"], f"L0H1 attends to the previous token ≥ {middle:.6f}")
    assert point.status == "holds"
    sure = check(induction["path"], f"L0H1 attends to the previous token ≥ {middle:.6f} with "
                                    "95% confidence")
    assert sure.status == "fails"
    assert any("straddles the bound" in note for note in sure.outcome.notes)


def test_induction_target_interval_recomputed(induction: dict[str, Any]) -> None:
    pattern, tokens = induction["p1"][:, 0], induction["tokens"]  # L1H0
    sums, counts = [], []
    for b in range(tokens.shape[0]):
        total, pairs = 0.0, 0
        for q in range(tokens.shape[1]):
            keys = [j + 1 for j in range(q - 1) if tokens[b, j] == tokens[b, q]]
            if keys:
                total += pattern[b, q, keys].sum()
                pairs += 1
        if pairs:
            sums.append(total)
            counts.append(pairs)
    sums_a, counts_a = np.array(sums), np.array(counts, dtype=float)
    low, high = by_hand([sums_a, counts_a], lambda s, c: s.sum() / c.sum(), 0.9)
    result = check(induction["path"], "L1H0 attends to the token after the previous occurrence "
                                      "≥ 0.5 with 90% confidence")
    assert result.status == "holds", result.outcome
    assert result.outcome.interval == pytest.approx((low, high), abs=1e-6)


def test_ablation_effect_is_paired_over_the_same_sequences(induction: dict[str, Any]) -> None:
    result = check(induction["path"], "ablate L1H0, L1H1, L1H2, L1H3 (mean): loss-repeated "
                                      "rises by ≥ 1 nat with 95% confidence")
    assert result.status == "holds", result.outcome
    before, after = result.outcome.meta["paired"]
    assert before == pytest.approx(induction["loss"], abs=1e-4)  # hand-computed clean losses
    assert result.outcome.value == pytest.approx(after.mean() - before.mean(), abs=1e-9)
    expected = scipy_paired((before, after), lambda b, a, axis=-1: a.mean(axis) - b.mean(axis))
    assert result.outcome.interval == pytest.approx(expected, abs=1e-12)
    assert "paired on 40 samples" in " ".join(result.outcome.notes)


def test_distribution_statistic_resamples_whole_sequences(induction: dict[str, Any]) -> None:
    resid = induction["resid"][:, :, 3]  # (sequence, position) of channel 3
    point = float(np.std(resid))
    low, high = by_hand([resid], lambda x: np.std(x.reshape(-1)))
    label = "resid[3]"  # d_model channel 3
    result = check(induction["path"], f"{label} has std < {point * 3:.4f} with 95% confidence")
    assert result.status == "holds", result.outcome
    assert result.outcome.interval == pytest.approx((low, high), rel=1e-5)
    assert result.outcome.meta["unit_rows"] == resid.shape[1]
    assert "over 40 samples" in " ".join(result.outcome.notes)
    tight = check(induction["path"], f"{label} has std < {(point + high) / 2:.6f} with 95% "
                                     "confidence")
    assert tight.status == "fails"


def test_failing_confidence_claim_draws_its_plot(induction: dict[str, Any],
                                                 tmp_path: Path) -> None:
    result = check(induction["path"], "L0H1 attends to the previous token ≥ 0.99 with 95% "
                                      "confidence", plot_dir=tmp_path)
    assert result.status == "fails"
    assert result.plot is not None and Path(result.plot).stat().st_size > 1000


def test_failing_paired_effect_draws_its_interval(induction: dict[str, Any],
                                                  tmp_path: Path) -> None:
    result = check(induction["path"], "ablate L1H0 (mean): loss-repeated rises by ≥ 5 nats with "
                                      "95% confidence while 2 random sets of the same size "
                                      "rise by ≤ 5 nats", plot_dir=tmp_path)
    assert result.status == "fails"
    low, high = result.outcome.interval
    assert low < result.outcome.value < high < 5 and result.outcome.rows[0]["holds"] is False
    assert len(result.outcome.rows) == 3  # the claimed heads and two random sets
    assert result.plot is not None and Path(result.plot).stat().st_size > 1000


def test_metric_expression_without_samples_is_a_clear_error(induction: dict[str, Any]) -> None:
    spec = yaml.safe_load(induction["path"].read_text(encoding="utf-8"))
    spec["quantities"]["ratio"] = {"expr": "loss-repeated / loss-repeated"}
    spec["claims"] = [{"id": "sure", "claim": "ablate L1H0 (mean): ratio rises by ≥ 0 with "
                                              "95% confidence"}]
    path = induction["path"].with_name("expr.claims.yaml")
    path.write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    (result,) = interp_assert.load(path).run()
    assert result.status == "error"
    assert "records no per-sample values" in str(result.error)
    assert "expr.claims.yaml" in str(result.error) and "sure" in str(result.error)


# ---- the adder: token accuracy clustered by sequence, and baselines --------------------------
@pytest.fixture(scope="module")
def adder(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    import torch

    tiny, _, data = _examples()
    model = tiny.load(str(ADDER)).eval()
    batch = data.generate(n=64, seed=11)
    tokens = batch["tokens"]
    with torch.no_grad():
        logits = model(tokens).numpy()
    answer = np.arange(22, 33)  # A0..A10
    right = logits[:, answer - 1].argmax(-1) == tokens.numpy()[:, answer]
    folder = tmp_path_factory.mktemp("adder-confidence")
    spec = {
        "subject": {"checkpoint": str(ADDER), "loader": "examples.tiny_transformer:load",
                    "python_path": str(ROOT)},
        "data": {"sums": {"generate": "examples.adder.data:generate", "n": 64, "seed": 11,
                          "positions": ADDER_POSITIONS}},
        "quantities": {"token-accuracy": {"metric": "token_accuracy", "answer": "A0..A10"},
                       "exact-match": {"metric": "exact_match", "answer": "A0..A10"}},
        "claims": [{"id": "tok", "claim": "token-accuracy >= baseline - 1 points with 95% "
                                          "confidence"},
                   {"id": "em", "claim": "exact-match >= baseline - 2 points with 95% "
                                         "confidence"}]}
    path = folder / "a.claims.yaml"
    path.write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    return {"path": path, "right": right}


def test_token_accuracy_interval_clusters_tokens_by_sequence(adder: dict[str, Any]) -> None:
    right = adder["right"]
    correct, width = right.sum(1).astype(float), np.full(right.shape[0], 11.0)
    low, high = by_hand([correct, width], lambda c, w: c.sum() / w.sum())
    result = check(adder["path"], "token-accuracy >= 0.5 with 95% confidence")
    assert result.outcome.value == pytest.approx(right.mean())
    assert result.outcome.interval == pytest.approx((low, high), abs=1e-12)
    assert "ratio of sums" in " ".join(result.outcome.notes)


def test_baseline_comparison_is_paired_when_the_baseline_recorded_samples(
        adder: dict[str, Any], tmp_path: Path) -> None:
    from interp_assert.output.unit_samples import decode_samples

    baseline = tmp_path / "baseline.json"
    from interp_assert.run.runner import Runner, RunOptions

    runner = Runner(RunOptions(root=tmp_path, plots="never", baseline=baseline,
                               baseline_shown=str(baseline), baseline_update=True))
    records = [runner.record(r) for r in runner.run(runner.checks(
        interp_assert.load(adder["path"]).claim_file))]
    runner.finish(records)
    data = json.loads(baseline.read_text(encoding="utf-8"))
    entries = next(iter(data["files"].values()))
    recorded = decode_samples(entries["em"]["samples"])
    right = adder["right"]
    assert recorded == pytest.approx(right.all(1).astype(float))
    # the baseline run did worse on a few sums: a paired interval of the difference
    worse = recorded.copy()
    worse[:6] = 0.0
    from interp_assert.output.unit_samples import encode_samples

    entries["em"]["samples"] = encode_samples(worse)
    entries["em"]["value"] = float(worse.mean())
    baseline.write_text(json.dumps(data), encoding="utf-8")
    results = {r.claim_id: r for r in interp_assert.load(adder["path"]).run(
        baseline=str(baseline))}
    em = results["em"]
    diff = scipy_paired((worse, recorded), lambda b, a, axis=-1: a.mean(axis) - b.mean(axis))
    assert em.outcome.interval == pytest.approx((worse.mean() + diff[0],
                                                 worse.mean() + diff[1]), abs=1e-12)
    assert "paired on 64 samples with the baseline run" in em.outcome.notes
    # an older baseline file without samples: unpaired, and the notes say so
    del entries["em"]["samples"], entries["em"]["dataset"]
    baseline.write_text(json.dumps(data), encoding="utf-8")
    results = {r.claim_id: r for r in interp_assert.load(adder["path"]).run(
        baseline=str(baseline))}
    assert any(note.startswith("unpaired") for note in results["em"].outcome.notes)
    assert results["em"].status == "holds"
