"""Attention claims (``attends to``, ``top-k sources``) against an independent numpy reference.

A random two-layer TinyTransformer is saved in a temporary folder; the reference patterns come
from plain torch forward hooks on ``blocks.{l}.attn.hook_pattern`` and every score is recomputed
here with explicit loops.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

import interp_assert
from interp_assert import Axis, ClaimFailed, ClaimSyntaxError, Labelled, UnknownNameError
from interp_assert.claims import parse_claim
from interp_assert.claims.attention import AttendsTo, TopSources
from interp_assert.judge.verdict import ClaimResult

ROOT = Path(__file__).parents[1]
POSITIONS = "X0..X9, +, Y0..Y9, =, A0..A10"
LABELS = ([f"X{i}" for i in range(10)] + ["+"] + [f"Y{i}" for i in range(10)] + ["="]
          + [f"A{i}" for i in range(11)])
N_HEADS = 3
SUMS = {"generate": "examples.adder.data:generate", "n": 48, "seed": 3, "batch_size": 20,
        "positions": POSITIONS}
REPEATS = {"generate": "examples.induction.data:generate", "n": 24, "seed": 5,
           "batch_size": 10}


# ---- the model and the reference ------------------------------------------------------------
def _import_examples() -> tuple[Any, Any, Any]:
    saved = list(sys.path)
    sys.path.insert(0, str(ROOT))
    try:
        from examples import tiny_transformer
        from examples.adder import data as adder
        from examples.induction import data as induction
    finally:
        sys.path[:] = saved
    return tiny_transformer, adder, induction


def _capture(model: Any, tokens: Any, layer: int) -> np.ndarray:
    import torch

    seen: list[np.ndarray] = []
    hook = model.blocks[layer].attn.hook_pattern.register_forward_hook(
        lambda _module, _inputs, output: seen.append(output.detach().double().numpy()))
    with torch.no_grad():
        model(tokens)
    hook.remove()
    return seen[0]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The checkpoint plus reference patterns (batch, head, query, key) and tokens."""
    import torch

    tiny, adder, induction = _import_examples()
    torch.manual_seed(0)
    config = tiny.TinyConfig(n_layers=2, d_model=32, n_heads=N_HEADS, d_head=8, d_mlp=None,
                             d_vocab=64, n_ctx=48)
    model = tiny.TinyTransformer(config)
    with torch.no_grad():  # sharper, less uniform patterns than the default init
        for block in model.blocks:
            block.attn.W_Q.mul_(4.0)
            block.attn.W_K.mul_(4.0)
    folder = tmp_path_factory.mktemp("attention")
    tiny.save_checkpoint(folder / "model.pt", model)
    model.eval()
    sums = adder.generate(n=SUMS["n"], seed=SUMS["seed"])["tokens"]
    repeats = induction.generate(n=REPEATS["n"], seed=REPEATS["seed"])["tokens"]
    return {"folder": folder, "sums": [_capture(model, sums, layer) for layer in (0, 1)],
            "repeats": _capture(model, repeats, 1), "repeat_tokens": repeats.numpy()}


def write_file(world: dict[str, Any], name: str, claims: list[dict[str, Any]],
               quantities: dict[str, Any] | None = None, data: dict[str, Any] | None = None
               ) -> Path:
    quantities = quantities if quantities is not None else {
        "pattern0": {"activation": "blocks.0.attn.hook_pattern"},
        "pattern1": {"activation": "blocks.1.attn.hook_pattern"}}
    text = yaml.safe_dump({
        "subject": {"checkpoint": "model.pt", "loader": "examples.tiny_transformer:load",
                    "python_path": str(ROOT)},
        "data": data if data is not None else {"sums": SUMS},
        "quantities": quantities, "claims": claims}, allow_unicode=True, sort_keys=False)
    path = world["folder"] / f"{name}.claims.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def run(path: Path, plot_dir: Path | None = None) -> dict[str, ClaimResult]:
    results = interp_assert.load(path).run(plot_dir=plot_dir)
    return {result.claim_id: result for result in results}


def passes_and_fails(prefix: str, sentence: str, value: float) -> list[dict[str, Any]]:
    """Two claims: '{sentence} >= value - 1e-4' (holds) and '>= value + 1e-4' (fails)."""
    return [{"id": f"{prefix}-pass", "claim": f"{sentence} >= {value - 1e-4:.6f}"},
            {"id": f"{prefix}-fail", "claim": f"{sentence} >= {value + 1e-4:.6f}"}]


def check_pair(results: dict[str, ClaimResult], prefix: str, value: float) -> None:
    for suffix, status in (("pass", "holds"), ("fail", "fails")):
        result = results[f"{prefix}-{suffix}"]
        assert result.error is None, str(result.error)
        assert result.status == status, (prefix, result.outcome)
        assert result.outcome is not None
        assert result.outcome.value == pytest.approx(value, rel=1e-6, abs=1e-9), prefix


def ref_previous(pattern: np.ndarray) -> float:
    values = [pattern[b, q, q - 1] for b in range(pattern.shape[0])
              for q in range(1, pattern.shape[1])]
    return float(np.mean(values))


def ref_first(pattern: np.ndarray) -> float:
    """Every query, query 0 included (a causal query 0 puts all its weight on key 0)."""
    return float(np.mean([pattern[b, q, 0] for b in range(pattern.shape[0])
                          for q in range(pattern.shape[1])]))


def ref_itself(pattern: np.ndarray) -> float:
    """Every query, query 0 included."""
    return float(np.mean([pattern[b, q, q] for b in range(pattern.shape[0])
                          for q in range(pattern.shape[1])]))


def induction_key_list(tokens: np.ndarray, b: int, q: int, latest: bool = False) -> list[int]:
    """The induction keys of (b, q): j+1 for every earlier occurrence j of the query's token
    with j+1 != q; with ``latest`` only the latest occurrence, and none if its j+1 is q."""
    earlier = [j for j in range(q) if tokens[b, j] == tokens[b, q]]
    if latest:
        return [earlier[-1] + 1] if earlier and earlier[-1] + 1 != q else []
    return [j + 1 for j in earlier if j + 1 != q]


def ref_induction(pattern: np.ndarray, tokens: np.ndarray, only: int | None = None,
                  latest: bool = False) -> float:
    """Mean over the queries with induction keys of the summed weight on them."""
    values = []
    for b in range(tokens.shape[0]):
        for q in range(tokens.shape[1]):
            if only is not None and q != only:
                continue
            keys = induction_key_list(tokens, b, q, latest)
            if keys:
                values.append(sum(pattern[b, q, k] for k in keys))
    return float(np.mean(values)) if values else float("nan")


def top_keys(row: np.ndarray) -> list[str]:
    return [LABELS[k] for k in sorted(range(len(row)), key=lambda k: -row[k])]


# ---- scores against the reference -----------------------------------------------------------
def test_label_and_multi_key_targets(world: dict[str, Any]) -> None:
    p1 = world["sums"][1]
    a, x, y = LABELS.index("A4"), LABELS.index("X4"), LABELS.index("Y4")
    claims = []
    expected = {}
    for h in range(N_HEADS):
        value = float(p1[:, h, a, x].mean())
        expected[f"h{h}"] = value
        claims += passes_and_fails(f"h{h}", f"L1H{h}: A4 attends to X4", value)
    both = p1[:, :, a, x].mean(0) + p1[:, :, a, y].mean(0)
    claims += passes_and_fails("both", "A4 attends to X4, Y4", float(both.max()))
    claims.append({"id": "verbatim", "claim": "A4 attends to X4, Y4 ≥ 0.6", "on": "pattern1"})
    block = [LABELS.index(k) for k in ("X0", "X1", "X2", "X3", "+")]
    eq = LABELS.index("=")
    ranged = p1[:, 2][:, eq, block].sum(-1).mean()
    claims += passes_and_fails("range", 'L1H2: "=" attends to X0..X3, "+"', float(ranged))
    for claim in claims:
        if claim["id"].startswith("both"):
            claim["on"] = "pattern1"
    results = run(write_file(world, "labels", claims))
    for h in range(N_HEADS):
        check_pair(results, f"h{h}", expected[f"h{h}"])
    check_pair(results, "both", float(both.max()))
    check_pair(results, "range", float(ranged))
    best = f"L1H{int(np.argmax(both))}"
    outcome = results["both-pass"].outcome
    assert outcome is not None and outcome.context["head"] == best
    assert f"best head {best}" in outcome.measured and "48 samples of sums" in outcome.measured
    assert [row["head"] for row in outcome.rows] == [f"L1H{h}" for h in range(N_HEADS)]
    verbatim = results["verbatim"]
    assert verbatim.passed == bool(both.max() >= 0.6)
    assert verbatim.outcome is not None
    assert verbatim.outcome.value == pytest.approx(float(both.max()), rel=1e-6)


def test_for_each_instances(world: dict[str, Any]) -> None:
    p0 = world["sums"][0]
    scores = [p0[:, :, LABELS.index(f"A{i}"), LABELS.index(f"X{i}")].mean(0).max()
              for i in range(10)]
    floor = float(min(scores))
    claims = [{"id": "verbatim", "claim": "A{i} attends to X{i} ≥ 0.3 for i in 0..9",
               "on": "pattern0"},
              {"id": "low", "claim": f"A{{i}} attends to X{{i}} >= {floor - 1e-4:.6f} "
                                     "for i in 0..9", "on": "pattern0"},
              {"id": "high", "claim": f"A{{i}} attends to X{{i}} >= {floor + 1e-4:.6f} "
                                      "for i in 0..9", "on": "pattern0"}]
    results = run(write_file(world, "foreach", claims))
    assert results["verbatim"].passed == all(s >= 0.3 for s in scores)
    assert results["low"].passed
    high = results["high"]
    assert high.status == "fails" and high.outcome is not None
    assert high.outcome.measured.startswith("9/10 instances hold")


def test_top_k_sources(world: dict[str, Any]) -> None:
    p1 = world["sums"][1]
    a = LABELS.index("A4")
    rows = p1[:, :, a, :].mean(0)
    order = top_keys(rows[1])
    verbatim_holds = any({"X4", "Y4"} <= set(top_keys(rows[h])[:3]) for h in range(N_HEADS))
    claims = [
        {"id": "top2", "claim": f"L1H1: top-2 sources of A4 include {order[0]}, {order[1]}"},
        {"id": "third", "claim": f"L1H1: top-2 sources of A4 include {order[0]}, {order[2]}"},
        {"id": "third3", "claim": f"L1H1: top-3 sources of A4 include {order[2]}"},
        {"id": "best", "claim": f"top-1 sources of A4 include {top_keys(rows[2])[0]}",
         "on": "pattern1"},
        {"id": "masked", "claim": "L1H0: top-30 sources of A4 include A5"},
        {"id": "verbatim", "claim": "top-3 sources of A4 include X4, Y4", "on": "pattern1"}]
    results = run(write_file(world, "topk", claims))
    assert results["top2"].passed
    third = results["third"]
    assert third.status == "fails" and third.outcome is not None
    assert third.outcome.value == 3.0
    assert [(r["key"], r["rank"], r["holds"]) for r in third.outcome.rows] == [
        (order[0], 1, True), (order[2], 3, False)]
    assert third.outcome.rows[1]["weight"] == pytest.approx(
        float(rows[1][LABELS.index(order[2])]), rel=1e-6)
    assert results["third3"].passed
    assert results["best"].passed
    assert results["masked"].status == "fails"  # a key after the query has weight 0
    assert results["verbatim"].passed == verbatim_holds


def test_relative_targets(world: dict[str, Any]) -> None:
    p0, p1 = world["sums"]
    claims = []
    expected = {}
    for name, ref in (("previous", ref_previous), ("first", ref_first), ("itself", ref_itself)):
        target = {"previous": "the previous token", "first": "the first token",
                  "itself": "itself"}[name]
        for h in range(N_HEADS):
            expected[f"{name}{h}"] = ref(p1[:, h])
            claims += passes_and_fails(f"{name}{h}", f"L1H{h} attends to {target}",
                                       expected[f"{name}{h}"])
    a7, a6 = LABELS.index("A7"), LABELS.index("A6")
    expected["query"] = float(p1[:, :, a7, a6].mean(0).max())
    claims += passes_and_fails("query", "A7 attends to the previous token", expected["query"])
    for claim in claims[-2:]:
        claim["on"] = "pattern1"
    expected["headed"] = float(p0[:, 2, a7, a7].mean())
    claims += passes_and_fails("headed", "L0H2: A7 attends to itself", expected["headed"])
    claims.append({"id": "verbatim", "claim": "L0H2 attends to the previous token ≥ 0.9"})
    # a causal model never attends to the next token: the score is 0, and a note says why
    claims.append({"id": "next", "claim": "L1H0 attends to the next token <= 0"})
    # a lone head with explicit keys: summed weight on them, over every (sample, query) pair
    a4, x4 = LABELS.index("A4"), LABELS.index("X4")
    expected["lone"] = float((p1[:, 1, :, a4] + p1[:, 1, :, x4]).mean())
    claims += passes_and_fails("lone", "L1H1 attends to A4, X4", expected["lone"])
    results = run(write_file(world, "relative", claims))
    for prefix, value in expected.items():
        check_pair(results, prefix, value)
    # query 0 counts for itself and the first token (48 x 33 pairs), not for the previous token
    assert "(1584 sample-query pairs)" in results["itself0-pass"].outcome.measured
    assert "(1584 sample-query pairs)" in results["first0-pass"].outcome.measured
    assert "(1536 sample-query pairs)" in results["previous0-pass"].outcome.measured
    assert any("query 0 counts (48 of 1584" in note for note in
               results["itself0-pass"].outcome.notes)
    # the old definition (queries >= 1) gives another number: the claims above tell them apart
    for h in range(N_HEADS):
        old = float(p1[:, h, 1:, 0].mean())
        assert abs(old - expected[f"first{h}"]) > 1e-3
    following = results["next"]
    assert following.passed and following.outcome is not None
    assert following.outcome.value == 0.0
    assert any("causal" in note for note in following.outcome.notes)
    assert "(1584 sample-query pairs)" in results["lone-pass"].outcome.measured  # 48 x 33
    verbatim = results["verbatim"]
    assert verbatim.outcome is not None
    assert verbatim.outcome.value == pytest.approx(ref_previous(p0[:, 2]), rel=1e-6)
    assert verbatim.passed == (ref_previous(p0[:, 2]) >= 0.9)
    assert verbatim.outcome.context["pattern"] == "pattern0"


def test_induction_target(world: dict[str, Any]) -> None:
    pattern, tokens = world["repeats"], world["repeat_tokens"]
    claims = []
    expected = {f"ind{h}": ref_induction(pattern[:, h], tokens) for h in range(N_HEADS)}
    for h in range(N_HEADS):
        claims += passes_and_fails(f"ind{h}", f"L1H{h} attends to the induction target",
                                   expected[f"ind{h}"])
    expected["query"] = max(ref_induction(pattern[:, h], tokens, only=30) for h in range(3))
    claims += passes_and_fails("query", "30 attends to the token after the previous occurrence",
                               expected["query"])
    for h in range(N_HEADS):
        expected[f"latest{h}"] = ref_induction(pattern[:, h], tokens, latest=True)
        claims += passes_and_fails(f"latest{h}", f"L1H{h} attends to the token after the latest "
                                   "previous occurrence", expected[f"latest{h}"])
    claims += [{"id": "verbatim",
                "claim": "L1H1 attends to the token after the previous occurrence ≥ 0.5"},
               {"id": "none", "claim": "0 attends to the induction target >= 0"}]
    data = {"repeats": REPEATS}
    quantities = {"pattern": {"activation": "blocks.1.attn.hook_pattern"}}
    results = run(write_file(world, "induction", claims, quantities, data))
    for prefix, value in expected.items():
        check_pair(results, prefix, value)
    verbatim = results["verbatim"]
    assert verbatim.passed == (expected["ind1"] >= 0.5)
    none = results["none"]  # query 0 has no earlier token: NaN, which never passes
    assert none.status == "fails" and none.outcome is not None
    assert any("no (sample, query) pair" in note for note in none.outcome.notes)
    # the data has queries with several earlier occurrences: summed and latest differ
    several = sum(len(induction_key_list(tokens, b, q)) > 1 for b in range(tokens.shape[0])
                  for q in range(tokens.shape[1]))
    assert several > 50
    assert all(abs(expected[f"ind{h}"] - expected[f"latest{h}"]) > 1e-3 for h in range(N_HEADS))


def test_induction_keys_with_padding() -> None:
    """The key sets against the loop reference, on random tokens with a small vocabulary
    (many repeats) and random right padding whose pad id repeats."""
    from interp_assert.evaluate.attention_scores import (
        induction_keys,
        mask_keys,
        relative_keys,
        set_scores,
    )

    rng = np.random.default_rng(0)
    n, length = 6, 12
    tokens = rng.integers(0, 4, size=(n, length))
    lengths = rng.integers(3, length + 1, size=n)
    mask = np.arange(length)[None, :] < lengths[:, None]
    tokens[~mask] = 0  # padding repeats, and equals a real token
    pattern = rng.random((n, 2, length, length))
    for latest in (False, True):
        keys = induction_keys(tokens, mask, latest=latest)
        for b in range(n):
            for q in range(length):
                real = tokens[b, :lengths[b]]
                want = (induction_key_list(real[None], 0, q, latest) if q < lengths[b] else [])
                assert sorted(np.flatnonzero(keys[b, q])) == sorted(want), (latest, b, q)
        scores, count = set_scores(pattern, mask_keys(keys, mask))
        values = [[sum(pattern[b, h, q, k] for k in np.flatnonzero(keys[b, q]))
                   for b in range(n) for q in range(length) if keys[b, q].any()]
                  for h in range(2)]
        assert count == len(values[0]) > 0
        assert scores == pytest.approx([np.mean(v) for v in values])
    itself = mask_keys(relative_keys("itself", length, length), mask)
    assert set_scores(pattern, itself)[1] == int(mask.sum())  # every real query, 0 included


def test_failing_claims_write_plots(world: dict[str, Any], tmp_path: Path) -> None:
    quantities = {"pattern1": {"activation": "blocks.1.attn.hook_pattern"},
                  "repeated": {"activation": "blocks.1.attn.hook_pattern", "data": "repeats"}}
    claims = [{"id": "top", "claim": "L1H0: top-1 sources of A4 include A5", "on": "pattern1"},
              {"id": "induction", "claim": "L1H1 attends to the induction target > 1",
               "on": "repeated"},
              {"id": "holds", "claim": "L1H0: A4 attends to X4 >= 0", "on": "pattern1"}]
    data = {"sums": SUMS, "repeats": REPEATS}
    results = run(write_file(world, "plots", claims, quantities, data), plot_dir=tmp_path)
    for name in ("top", "induction"):
        result = results[name]
        assert result.status == "fails", result.error
        assert result.plot is not None and result.plot.read_bytes()[:4] == b"\x89PNG"
        assert result.outcome is not None and not result.outcome.notes, result.outcome.notes
    assert results["holds"].passed and results["holds"].plot is None
    assert results["induction"].outcome.context["dataset"].startswith("repeats")


def test_pattern_quantity_without_head_axis(world: dict[str, Any]) -> None:
    p1 = world["sums"][1]
    quantities = {"pattern1": {"activation": "blocks.1.attn.hook_pattern"},
                  "l1h2": {"expr": "pattern1[L1H2]"}, "avg": {"expr": "mean(pattern1, batch)"}}
    a, x = LABELS.index("A4"), LABELS.index("X4")
    claims = passes_and_fails("expr", "L1H2 attends to the previous token", ref_previous(p1[:, 2]))
    claims += passes_and_fails("avg", "L1H0: A4 attends to X4", float(p1[:, 0, a, x].mean()))
    for claim in claims:
        claim["on"] = "l1h2" if claim["id"].startswith("expr") else "avg"
    quantities["nan"] = {"expr": "(pattern1 - pattern1) / (pattern1 - pattern1)"}
    claims += [{"id": "nan-best", "claim": "A4 attends to X4 >= 0", "on": "nan"},
               {"id": "nan-below", "claim": "A4 attends to X4 <= 1", "on": "nan"},
               {"id": "nan-top", "claim": "top-3 sources of A4 include X4", "on": "nan"}]
    results = run(write_file(world, "nohead", claims, quantities))
    check_pair(results, "expr", ref_previous(p1[:, 2]))
    check_pair(results, "avg", float(p1[:, 0, a, x].mean()))
    for name in ("nan-best", "nan-below", "nan-top"):  # NaN never passes
        assert results[name].status == "fails", results[name].error


# ---- selection and errors -------------------------------------------------------------------
def _error(result: ClaimResult) -> str:
    assert result.error is not None, result.outcome
    return str(result.error)


def test_unknown_names_and_missing_patterns(world: dict[str, Any]) -> None:
    claims = [{"id": "key", "claim": "L1H0: A4 attends to X44 >= 0.1"},
              {"id": "query", "claim": "L1H0: top-3 sources of A44 include X4"},
              {"id": "head", "claim": "L1H7: A4 attends to X4 >= 0.1"},
              {"id": "layer", "claim": "L5H0 attends to itself >= 0.1"},
              {"id": "head-on", "claim": "L1H7 attends to itself >= 0.1", "on": "pattern1"},
              {"id": "as-query", "claim": "A4 attends to X4 >= 0.1", "on": "pattern1"},
              {"id": "head-query", "claim": "L1H0 attends to X4 >= 0", "on": "pattern1"},
              {"id": "relative-0", "claim": "L1H0: X0 attends to the previous token >= 0"},
              {"id": "relative-last", "claim": "L1H0: A10 attends to the next token >= 0"},
              {"id": "itself-0", "claim": "L1H0: X0 attends to itself >= 0"},
              {"id": "several", "claim": "A4 attends to X4 >= 0.1"}]
    results = run(write_file(world, "errors", claims))
    assert isinstance(results["key"].error, UnknownNameError)
    assert "unknown key position 'X44'" in _error(results["key"])
    assert "did you mean 'X4'" in _error(results["key"])
    assert "did you mean 'A4'" in _error(results["query"])
    assert isinstance(results["head"].error, UnknownNameError)
    assert "unknown head 'L1H7'" in _error(results["head"])
    assert "did you mean" in _error(results["head"]) and "L1H" in _error(results["head"])
    assert "unknown head 'L5H0'" in _error(results["layer"])
    assert "unknown head 'L1H7'" in _error(results["head-on"])
    assert results["as-query"].error is None
    # a lone head with explicit keys: the head's mean weight on X4 over every query
    head_query = results["head-query"]
    assert head_query.passed and head_query.outcome is not None
    assert head_query.outcome.value == pytest.approx(
        float(world["sums"][1][:, 0, :, LABELS.index("X4")].mean()), rel=1e-6)
    assert "first position" in _error(results["relative-0"])
    assert "last position" in _error(results["relative-last"])
    # query 0 has itself and the first token as targets
    assert results["itself-0"].passed and results["itself-0"].outcome is not None
    assert results["itself-0"].outcome.value == pytest.approx(
        float(world["sums"][1][:, 0, 0, 0].mean()), rel=1e-6)
    assert "several attention patterns" in _error(results["several"])
    assert "on:" in _error(results["several"])
    none = run(write_file(world, "nopattern", [{"id": "x", "claim": "A4 attends to X4 >= 0.1"}],
                          {"em": {"metric": "exact_match", "answer": "A0..A10"}}))
    assert "hook_pattern" in _error(none["x"])


def _synthetic(values: np.ndarray) -> interp_assert.Subject:
    """A subject whose only quantity is a given (batch, head, query, key) pattern."""
    pattern = Labelled(values, (Axis("batch"), Axis("head", ("L0H0", "L0H1")),
                                Axis("query", ("P0", "P1", "P2")),
                                Axis("key", ("P0", "P1", "P2"))))
    return interp_assert.subject(quantities={"pat": pattern})


def test_synthetic_pattern_and_nan_never_passes() -> None:
    causal = np.tril(np.ones((3, 3)))
    values = np.broadcast_to(causal / causal.sum(-1, keepdims=True), (2, 2, 3, 3)).copy()
    values[1, 0, 2] = [0.0, 1.0, 0.0]  # sample 1, head L0H0: P2 attends only to P1
    subject = _synthetic(values)
    result = subject.check("L0H0: P2 attends to P1 >= 0.6666")
    assert result.outcome is not None
    assert result.outcome.value == pytest.approx((1 / 3 + 1) / 2)
    assert subject.check("L0H0 attends to the previous token >= 0.58").outcome.value == (
        pytest.approx((0.5 + 1 / 3 + 0.5 + 1) / 4))
    with pytest.raises(ClaimFailed):
        subject.check("L0H0: top-1 sources of P2 include P0")
    values[:, 1, 2, 1] = np.nan
    subject = _synthetic(values)
    for sentence in ("L0H1: P2 attends to P1 >= 0", "L0H1: P2 attends to P1 <= 1",
                     "L0H1 attends to the previous token >= 0",
                     "L0H1: top-3 sources of P2 include P1"):
        with pytest.raises(ClaimFailed):
            subject.check(sentence)


# ---- padded sentence datasets (a tiny random BERT) ------------------------------------------
BERT_WORDS = ["the", "cat", "sat", "on", "mat", ".", "a", "big", "dog", "ran", "she", "saw",
              "small", "red", ",", "and", "he", "slept", "under", "table", "today", "it", "was",
              "blue", "my", "old", "friend", "smiled"]
# lengths 8, 7, 17, 6, 9 with [CLS] and [SEP]: only position 0 is aligned, so every other
# position is labelled by its number, and [SEP] moves from sentence to sentence
BERT_SENTENCES = ["the cat sat on the mat .", "a big dog ran .",
                  "she saw the small red cat , and he slept under the table today .",
                  "it was blue .", "my old friend smiled and sat down ."]


@pytest.fixture(scope="module")
def bert(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A 2-layer, 4-head random BERT saved as a model folder, and the reference: its own
    ``output_attentions`` on the sentences, padded by its own tokenizer."""
    pytest.importorskip("transformers", reason="the Hugging Face adapter needs transformers: "
                                               "pip install 'interp-assert[hf]'")
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = tmp_path_factory.mktemp("bert")
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *BERT_WORDS])
                     + "\n", encoding="utf-8")
    torch.manual_seed(1)
    config = BertConfig(vocab_size=5 + len(BERT_WORDS), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=64,
                        max_position_embeddings=32, initializer_range=0.3)
    BertModel(config).save_pretrained(folder)
    BertTokenizer(str(vocab)).save_pretrained(folder)
    model = BertModel.from_pretrained(folder, attn_implementation="eager").eval()
    tokenizer = BertTokenizer.from_pretrained(folder)
    encoded = tokenizer(BERT_SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**encoded, output_attentions=True)
    tokens = [tokenizer.convert_ids_to_tokens(row) for row in encoded["input_ids"].tolist()]
    return {"folder": folder, "patterns": [a.double().numpy() for a in out.attentions],
            "mask": encoded["attention_mask"].numpy().astype(bool),
            "tokens": encoded["input_ids"].numpy(),
            "sep": np.array([row.index("[SEP]") for row in tokens])}


def write_bert_file(bert: dict[str, Any], name: str, claims: list[dict[str, Any]]) -> Path:
    text = yaml.safe_dump({
        "subject": {"checkpoint": str(bert["folder"] / "model.safetensors"),
                    "loader": "interp_assert.adapters.huggingface:load"},
        "data": {"sentences": {"sentences": BERT_SENTENCES, "tokenizer": str(bert["folder"]),
                               "batch_size": 2}},
        "quantities": {"attn0": {"activation": "blocks.0.attn.hook_pattern"},
                       "attn1": {"activation": "blocks.1.attn.hook_pattern"}},
        "claims": claims}, allow_unicode=True, sort_keys=False)
    path = bert["folder"] / f"{name}.claims.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def ref_real(pattern: np.ndarray, mask: np.ndarray, keys: Any,
             queries: Any = None) -> float:
    """Mean over real (sample, query) pairs of the summed weight on the pair's real keys
    (``keys(b, q)``: a list of key indices); pairs without a real key, or whose query is not
    ``queries(b)`` when given, are left out."""
    n, width = mask.shape
    values = []
    for b in range(n):
        for q in range(width):
            if not mask[b, q] or (queries is not None and q != queries(b)):
                continue
            real = [k for k in set(keys(b, q)) if 0 <= k < width and mask[b, k]]
            if real:
                values.append(sum(pattern[b, q, k] for k in real))
    return float(np.mean(values))


def check_close(results: dict[str, ClaimResult], prefix: str, value: float) -> None:
    """Like check_pair, to float32 precision (batches of 2 against one batch of 5)."""
    for suffix, status in (("pass", "holds"), ("fail", "fails")):
        result = results[f"{prefix}-{suffix}"]
        assert result.error is None, str(result.error)
        assert result.outcome is not None
        assert result.outcome.value == pytest.approx(value, abs=2e-6), prefix
        assert result.status == status, (prefix, result.outcome)


def test_padding_per_sample_keys_and_the_next_token(bert: dict[str, Any], tmp_path: Path
                                                    ) -> None:
    p0, p1 = bert["patterns"]
    mask, sep, tokens = bert["mask"], bert["sep"], bert["tokens"]
    assert (~mask).any() and len(set(sep)) > 1  # padding, and [SEP] moves
    previous = {h: ref_real(p1[:, h], mask, lambda b, q: [q - 1] if q >= 1 else [])
                for h in range(4)}
    at_3 = {h: ref_real(p0[:, h], mask, lambda b, q: [q + 1], lambda b: 3) for h in range(4)}
    expected = {
        "previous": previous[1],
        "next": ref_real(p0[:, 2], mask, lambda b, q: [q + 1]),
        "itself": ref_real(p0[:, 3], mask, lambda b, q: [q]),
        "first": ref_real(p1[:, 0], mask, lambda b, q: [0]),
        "induction": ref_real(p1[:, 1], mask, lambda b, q: induction_key_list(
            np.where(mask, tokens, -1), b, q) if mask[b, q] else []),
        # a lone head on explicit keys: every real query; [SEP] is each sentence's own
        "sep": ref_real(p1[:, 2], mask, lambda b, q: [sep[b]]),
        "cls": ref_real(p0[:, 1], mask, lambda b, q: [0]),
        "both": ref_real(p0[:, 3], mask, lambda b, q: [0, sep[b]]),
        # a padded key (position 7 is padding in the 7- and 6-token sentences)
        "padded-key": ref_real(p1[:, 0], mask, lambda b, q: [7]),
        # a fixed query on a per-sample key, and a per-sample query on a fixed key
        "cls-sep": ref_real(p1[:, 3], mask, lambda b, q: [sep[b]], lambda b: 0),
        "sep-cls": ref_real(p1[:, 1], mask, lambda b, q: [0], lambda b: sep[b]),
        "query-next": at_3[0],
        "best-next": max(at_3.values()),  # no head named: the best head of attn0
    }
    sentences = {
        "previous": "L1H1 attends to the previous token",
        "next": "L0H2 attends to the next token",
        "itself": "L0H3 attends to itself",
        "first": "L1H0 attends to the first token",
        "induction": "L1H1 attends to the token after the previous occurrence",
        "sep": 'L1H2 attends to "[SEP]"',
        "cls": 'L0H1 attends to "[CLS]"',
        "both": 'L0H3 attends to "[CLS]", "[SEP]"',
        "padded-key": 'L1H0 attends to 7',
        "cls-sep": 'L1H3: "[CLS]" attends to "[SEP]"',
        "sep-cls": 'L1H1: "[SEP]" attends to "[CLS]"',
        "query-next": "L0H0: 3 attends to the next token",
        "best-next": "3 attends to the next token",
    }
    claims = []
    for prefix, value in expected.items():
        claims += passes_and_fails(prefix, sentences[prefix], value)
    for claim in claims[-2:]:
        claim["on"] = "attn0"
    # top sources: the row of a query averaged over the samples where query and key are real
    row = np.array([np.mean([p1[b, 2, 4, k] for b in range(len(sep)) if mask[b, k]])
                    for k in range(mask.shape[1])])
    order = [('"[CLS]"' if k == 0 else str(k)) for k in np.argsort(-row, kind="stable")]
    claims += [{"id": "top", "claim": f"L1H2: top-2 sources of 4 include {order[0]}, "
                                      f"{order[1]}"},
               {"id": "not-top", "claim": f"L1H2: top-2 sources of 4 include {order[2]}"}]
    results = run(write_bert_file(bert, "padded", claims))
    assert results["top"].passed and results["not-top"].status == "fails"
    weights = [r["weight"] for r in results["top"].outcome.rows]
    assert weights == pytest.approx(sorted(row)[::-1][:2], abs=2e-6)
    for prefix, value in expected.items():
        check_close(results, prefix, value)
    best = max(at_3, key=lambda h: at_3[h])
    assert results["best-next-pass"].outcome.context["head"] == f"L0H{best}"
    measured = results["sep-pass"].outcome.measured
    pairs = int(mask.sum())
    assert f"({pairs} sample-query pairs; padding left out)" in measured
    # a bidirectional model: itself counts every real query, [CLS] included
    assert (f"({pairs} sample-query pairs; padding left out)"
            in results["itself-pass"].outcome.measured)
    assert any("position:[SEP]" in note for note in results["sep-pass"].outcome.notes)
    assert f"({pairs - len(sep)} sample-query pairs" in results["next-pass"].outcome.measured
    # padding matters: averaging over every position, padding included, gives another number
    unmasked = float(np.mean([p1[b, 1, q, q - 1] for b in range(len(sep))
                              for q in range(1, mask.shape[1])]))
    assert abs(unmasked - expected["previous"]) > 1e-3
    # failing claims plot the masked batch mean (NaN-free: the longest sentence is all real)
    plotted = run(write_bert_file(bert, "plots", [
        {"id": "sep", "claim": 'L1H2 attends to "[SEP]" >= 2'},
        {"id": "next", "claim": "L0H1 attends to the next token >= 2"}]), plot_dir=tmp_path)
    for result in plotted.values():
        assert result.status == "fails" and result.plot is not None
        assert result.plot.read_bytes()[:4] == b"\x89PNG"
        assert np.isfinite(result.outcome.plot_data["matrix"]).all()


# ---- the language ---------------------------------------------------------------------------
SENTENCES = [
    "A{i} attends to X{i} ≥ 0.3 for i in 0..9",
    "A4 attends to X4, Y4 ≥ 0.6",
    "top-3 sources of A4 include X4, Y4",
    "L1H0: top-1 sources of A{i} include X{i}, Y{i} for i in 0..9",
    "L0H2 attends to the previous token ≥ 0.9",
    "L1H8 attends to the next token ≥ 0.5",
    'L3H5 attends to "[SEP]" ≥ 0.5',
    'L1H0: "[CLS]" attends to "[SEP]", "[CLS]" ≤ 0.2',
    '"[SEP]" attends to the next token < 0.1',
    "L0H0 attends to the first token in [0.1, 0.5]",
    "A4 attends to itself < 0.2",
    "L1H1 attends to the token after the previous occurrence ≥ 0.5",
    "L1H1 attends to the induction target >= 50%",
    "L1H1 attends to the token after the latest previous occurrence ≥ 0.5",
    "L1H0: A4 attends to X4 ≥ 0.3",
    'L1H0: "=" attends to X0..X3, "+" ≈ 0.5 ± 0.1',
]


@pytest.mark.parametrize("sentence", SENTENCES)
def test_round_trip(sentence: str) -> None:
    first = parse_claim(sentence)
    assert isinstance(first.claim, AttendsTo | TopSources)
    printed = str(first)
    second = parse_claim(printed)
    assert second.claim == first.claim and second.for_each == first.for_each
    assert str(second) == printed


def test_parsed_fields() -> None:
    claim = parse_claim("L1H0: A4 attends to X4, Y0..Y2 ≥ 0.3").claim
    assert claim == AttendsTo("L1H0", "A4", ("X4", "Y0..Y2"), None, claim.comparison)
    alias = parse_claim("L1H1 attends to the induction target ≥ 0.5").claim
    assert alias == parse_claim("L1H1 attends to the token after the previous occurrence ≥ 0.5"
                                ).claim
    assert isinstance(alias, AttendsTo) and alias.relative == "induction"
    latest = parse_claim("L1H1 attends to the token after the latest previous occurrence ≥ 0.5")
    assert isinstance(latest.claim, AttendsTo) and latest.claim.relative == "induction_latest"
    top = parse_claim("top-3 sources of A4 include X4, Y4").claim
    assert top == TopSources(None, 3, "A4", ("X4", "Y4"))
    following = parse_claim("L1H8 attends to the next token ≥ 0.5").claim
    assert isinstance(following, AttendsTo) and following.relative == "next"
    assert (following.subject, following.head, following.keys) == ("L1H8", None, ())
    lone = parse_claim('L3H5 attends to "[SEP]" ≥ 0.5').claim
    assert lone == AttendsTo(None, "L3H5", ("[SEP]",), None, lone.comparison)
    with pytest.raises(ClaimSyntaxError):
        parse_claim("top-0 sources of A4 include X4")
    with pytest.raises(ClaimSyntaxError):
        parse_claim("A4 attends to the previous ≥ 0.5")
