"""Reductions that stream: attention claims read a pattern summary instead of the whole
pattern, and distribution claims that need no raw samples keep none.

Each number is checked three ways: against the same claim reading the whole pattern (``on:``
forces that path; the numbers must be identical, bit for bit), against an explicit numpy
reference from plain torch hooks, and the plan is checked to hold no whole pattern (or no raw
samples) when no claim needs it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from interp_assert.run.runner import Runner, RunOptions, load_claim_file

ROOT = Path(__file__).parents[1]
DATA = {"generate": "examples.adder.data:generate", "n": 48, "seed": 3, "batch_size": 20}
TARGETS = {"previous": "the previous token", "next": "the next token",
           "first": "the first token", "itself": "itself"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A random two-layer model, its reference patterns and MLP activations."""
    import torch

    sys.path.insert(0, str(ROOT))
    try:
        from examples import tiny_transformer as tiny
        from examples.adder import data as adder
    finally:
        sys.path.remove(str(ROOT))
    torch.manual_seed(1)
    config = tiny.TinyConfig(n_layers=2, d_model=32, n_heads=3, d_head=8, d_mlp=64,
                             d_vocab=64, n_ctx=48)
    model = tiny.TinyTransformer(config)
    folder = tmp_path_factory.mktemp("streaming")
    tiny.save_checkpoint(folder / "model.pt", model)
    model.eval()
    tokens = adder.generate(n=DATA["n"], seed=DATA["seed"])["tokens"]
    seen: dict[str, Any] = {}
    hooks = [model.blocks[1].attn.hook_pattern.register_forward_hook(
        lambda _m, _i, out: seen.__setitem__("pattern", out.double().numpy())),
        model.blocks[0].mlp.hook_post.register_forward_hook(
        lambda _m, _i, out: seen.__setitem__("post", out.double().numpy()))]
    with torch.no_grad():
        model(tokens)
    for hook in hooks:
        hook.remove()
    return {"folder": folder, **seen}


def write(world: dict[str, Any], name: str, claims: list[dict[str, Any]]) -> Path:
    text = yaml.safe_dump({
        "subject": {"checkpoint": "model.pt", "loader": "examples.tiny_transformer:load",
                    "python_path": str(ROOT)},
        "data": {"sums": DATA},
        "quantities": {"pattern": {"activation": "blocks.1.attn.hook_pattern"},
                       "post": {"distribution": "blocks.0.mlp.hook_post"}},
        "claims": claims}, sort_keys=False)
    path = world["folder"] / f"{name}.claims.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def run(path: Path) -> tuple[Runner, dict[str, Any]]:
    runner = Runner(RunOptions(plots="never", root=path.parent,
                               artifacts=path.parent / "artifacts"))
    results = list(runner.run(runner.checks(load_claim_file(path))))
    for result in results:
        assert result.error is None, (result.claim_id, str(result.error))
    return runner, {result.claim_id: result for result in results}


def planned(runner: Runner) -> dict[Any, Any]:
    """Every planned sink of the run, by key."""
    return {key: factory for sinks in runner.plan._passes.values()
            for key, factory in sinks.items()}


def reference(pattern: np.ndarray, relative: str) -> np.ndarray:
    """Per-head mean over (sample, query) pairs of the weight on the target key."""
    n, heads, length, _ = pattern.shape
    offset = {"previous": -1, "next": 1, "itself": 0}
    out = []
    for h in range(heads):
        values = [pattern[b, h, q, 0 if relative == "first" else q + offset[relative]]
                  for b in range(n) for q in range(length)
                  if relative == "first" or 0 <= q + offset[relative] < length]
        out.append(np.mean(values))
    return np.array(out)


def test_positional_claims_stream_with_identical_numbers(world: dict[str, Any]) -> None:
    claims = [{"id": f"{kind}-L1H{h}{suffix}", "claim": f"L1H{h} attends to {text} >= -1",
               **({"on": "pattern"} if suffix else {})}
              for kind, text in TARGETS.items() for h in range(3) for suffix in ("", "-whole")]
    runner, results = run(write(world, "mixed", claims))
    sinks = planned(runner)
    assert ("capture", "blocks.1.attn.hook_pattern", False) in sinks  # for the on: claims
    assert {key[2] for key in sinks if key[0] == "pattern-summary"} == set(TARGETS)
    for kind in TARGETS:
        expected = reference(world["pattern"], kind)
        for h in range(3):
            streamed = results[f"{kind}-L1H{h}"].outcome
            whole = results[f"{kind}-L1H{h}-whole"].outcome
            assert streamed.value == whole.value, (kind, h)  # bit for bit
            assert (results[f"{kind}-L1H{h}"].quantities
                    == results[f"{kind}-L1H{h}-whole"].quantities == ["pattern"])
            assert streamed.value == pytest.approx(expected[h], rel=1e-6, abs=1e-9)
            assert streamed.measured == whole.measured
            assert streamed.notes == whole.notes
            assert np.array_equal(streamed.plot_data["matrix"], whole.plot_data["matrix"],
                                  equal_nan=True)
            assert streamed.plot_data["cells"] == whole.plot_data["cells"]
            mean = world["pattern"][:, h].mean(axis=0)
            np.testing.assert_allclose(streamed.plot_data["matrix"], mean, rtol=1e-6,
                                       atol=1e-9)


def test_streamed_claims_keep_no_pattern(world: dict[str, Any]) -> None:
    claims = [{"id": f"prev-L1H{h}", "claim": f"L1H{h} attends to the previous token >= 0"}
              for h in range(3)]
    claims.append({"id": "causal-note", "claim": "L1H0 attends to the next token <= 1"})
    runner, results = run(write(world, "streamed", claims))
    sinks = planned(runner)
    assert not any(key[0] == "capture" for key in sinks), sinks
    assert results["causal-note"].outcome.value == 0.0
    assert any("is causal" in note for note in results["causal-note"].outcome.notes)
    unknown = [{"id": "bad", "claim": "L1H7 attends to the previous token >= 0"}]
    _, results = run_allowing_errors(write(world, "unknown-head", unknown))
    assert "unknown head 'L1H7'" in str(results["bad"].error)


def run_allowing_errors(path: Path) -> tuple[Runner, dict[str, Any]]:
    runner = Runner(RunOptions(plots="never", root=path.parent,
                               artifacts=path.parent / "artifacts"))
    results = list(runner.run(runner.checks(load_claim_file(path))))
    return runner, {result.claim_id: result for result in results}


def test_moment_claims_keep_no_samples(world: dict[str, Any]) -> None:
    from scipy import stats

    post = world["post"].reshape(-1, world["post"].shape[-1])
    lean = [{"id": "kurtosis", "claim": "every neuron of post has kurtosis in [-1e9, 1e9]"}]
    runner, results = run(write(world, "lean", lean))
    key = next(k for k in planned(runner) if k[0] == "distribution")
    assert planned(runner)[key].keeps_samples is False
    rows = {row["neuron"]: row["value"] for row in results["kurtosis"].outcome.rows}
    firing = [i for i in range(post.shape[1]) if post[:, i].std() > 0]
    for i in firing[:8]:
        assert rows[f"L0N{i}"] == pytest.approx(stats.kurtosis(post[:, i]), rel=1e-6)
    both = [*lean, {"id": "median", "claim": "every neuron of post has median >= -1e9"}]
    runner, results = run(write(world, "both", both))
    assert planned(runner)[key].keeps_samples is True  # one claim needing them is enough
    again = {row["neuron"]: row["value"] for row in results["kurtosis"].outcome.rows}
    assert np.array_equal([again[k] for k in rows], list(rows.values()), equal_nan=True)
    medians = {row["neuron"]: row["value"] for row in results["median"].outcome.rows}
    for i in firing[:8]:
        assert medians[f"L0N{i}"] == pytest.approx(
            float(np.median(post[:, i])), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize(("claim", "lean", "expected"), [
    ("all of L0N0, L0N3 of post >= -1e9", True, lambda m: min(m[0], m[3])),
    ("post[L0N3] - post[L0N0] > -1e9", True, lambda m: m[3] - m[0]),
    ("mean of L0N0..L0N7 of post mode > -1e9", False, None),  # mode() reads the samples
    ("mode(post)[L0N0] > -1e9", False, None),
    ("post[L0N0] > -1e9 with 95% confidence", False, lambda m: m[0]),
])
def test_comparisons_of_a_distribution_s_values_keep_no_samples(
        world: dict[str, Any], claim: str, lean: bool, expected: Any) -> None:
    """A comparison reading a distribution quantity only as its per-channel means (no
    function, no interval) plans its sink without raw samples; the means are the data's."""
    post = world["post"].reshape(-1, world["post"].shape[-1])
    runner, results = run(write(world, "values", [{"id": "c", "claim": claim}]))
    key = next(k for k in planned(runner) if k[0] == "distribution")
    assert planned(runner)[key].keeps_samples is not lean
    result = results["c"]
    assert result.error is None and result.status == "holds", result.error
    if expected is not None:
        means = post.mean(axis=0)
        assert result.outcome.value == pytest.approx(expected(means), rel=1e-6, abs=1e-9)


def test_lean_statistics_and_summaries_are_cached_but_not_served_where_samples_are_needed(
        tmp_path: Path) -> None:
    import torch

    from interp_assert.evaluate import result_cache
    from interp_assert.evaluate.attention_stream import PatternSummarySink
    from interp_assert.evaluate.distribution_sink import DistributionFactory
    from interp_assert.evaluate.forward import _serves

    rng = np.random.default_rng(0)
    keeping = DistributionFactory("h")
    lean_sink = keeping.without_samples()()
    lean_sink.update(torch.tensor(rng.normal(size=(4, 5, 3)).astype(np.float32)), {})
    lean = lean_sink.result()
    assert not lean.exact
    cache = result_cache.ResultCache(tmp_path)
    assert cache.put("lean", lean)
    found = cache.get("lean")
    assert np.array_equal(found.power_sums, lean.power_sums) and not found.exact
    assert _serves(found, keeping.without_samples()) and not _serves(found, keeping)
    sink = PatternSummarySink("p", "previous")
    pattern = rng.random((6, 2, 4, 4)).astype(np.float32)
    sink.update(torch.tensor(pattern[:4]), {})
    sink.update(torch.tensor(pattern[4:]), {})
    summary = sink.result()
    assert cache.put("summary", summary)
    again = cache.get("summary")
    for name, value in summary.state().items():
        other = getattr(again, name)
        assert (np.array_equal(value, other) if isinstance(value, np.ndarray)
                else all(np.array_equal(a, b) for a, b in zip(value, other))
                if isinstance(value, tuple) else value == other), name
    assert np.array_equal(again.values(1)[:, 0, [1, 2, 3], [0, 1, 2]],
                          pattern[:, 1, [1, 2, 3], [0, 1, 2]])
    assert np.array_equal(again.mean(1)[0], pattern[:, 1].mean(axis=0, dtype=np.float64))
