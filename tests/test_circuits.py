"""Circuit quantities and claims against independent numpy references on a random
TinyTransformer (TransformerLens state-dict layout).

References are computed here from the raw state dict with explicit loops: W_OV = W_V W_O per
head, composition ‖A B‖_F / (‖A‖_F ‖B‖_F) with full matrices, singular values, cosines.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import run_plotting_pass_fail

import interp_assert
from interp_assert import ClaimSyntaxError
from interp_assert.claims import parse_claim
from interp_assert.evaluate.evaluation import Evaluation
from interp_assert.judge.verdict import ClaimResult
from interp_assert.language import parse_expression
from interp_assert.loading.subject import get_subject
from interp_assert.run.runner import load_claim_file

ROOT = Path(__file__).parents[1]
LAYERS, HEADS, D_MODEL, D_HEAD, D_MLP, VOCAB = 3, 3, 16, 4, 24, 20


def _tiny() -> Any:
    saved = list(sys.path)
    sys.path.insert(0, str(ROOT))
    try:
        from examples import tiny_transformer
    finally:
        sys.path[:] = saved
    return tiny_transformer


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """Every test here runs torch on one thread."""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A random 3-layer model with MLPs, saved; its weights as float64 numpy arrays."""
    import torch

    tiny = _tiny()
    torch.manual_seed(3)
    model = tiny.TinyTransformer(tiny.TinyConfig(
        n_layers=LAYERS, d_model=D_MODEL, n_heads=HEADS, d_head=D_HEAD, d_mlp=D_MLP,
        d_vocab=VOCAB, n_ctx=12))
    folder = tmp_path_factory.mktemp("circuits")
    tiny.save_checkpoint(folder / "model.pt", model)
    sd = {k: v.double().numpy() for k, v in model.state_dict().items()}
    return {"folder": folder, "sd": sd, "model": model}


def write(world: dict[str, Any], name: str, claims: list[dict[str, Any]],
          extra: dict[str, Any] | None = None, checkpoint: str = "model.pt") -> Path:
    body: dict[str, Any] = {"subject": {"checkpoint": checkpoint}, **(extra or {}),
                            "claims": claims}
    path = world["folder"] / f"{name}.claims.yaml"
    path.write_text(yaml.safe_dump(body, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def run(path: Path, plots: Path | None = None) -> dict[str, ClaimResult]:
    """Evaluate every claim; only ``*-pass`` / ``*-fail`` claims draw their plot."""
    claim_file = load_claim_file(path)
    return run_plotting_pass_fail(claim_file, plots)


def value(path: Path, text: str) -> np.ndarray:
    claim_file = load_claim_file(path)
    assert claim_file.subject is not None
    ev = Evaluation(claim_file, get_subject(claim_file.subject))
    return ev.value(parse_expression(text)).values


def ref_ov(sd: dict[str, np.ndarray], layer: int, head: int) -> np.ndarray:
    return sd[f"blocks.{layer}.attn.W_V"][head] @ sd[f"blocks.{layer}.attn.W_O"][head]


def ref_qk(sd: dict[str, np.ndarray], layer: int, head: int) -> np.ndarray:
    return sd[f"blocks.{layer}.attn.W_Q"][head] @ sd[f"blocks.{layer}.attn.W_K"][head].T


def ref_composition(sd: dict[str, np.ndarray], mode: str) -> np.ndarray:
    heads = [(layer, h) for layer in range(LAYERS) for h in range(HEADS)]
    out = np.zeros((len(heads), len(heads)))
    for i, (l1, h1) in enumerate(heads):
        for j, (l2, h2) in enumerate(heads):
            if l1 >= l2:
                continue
            a = ref_ov(sd, l1, h1)
            b = {"Q": ref_qk(sd, l2, h2), "K": ref_qk(sd, l2, h2).T,
                 "V": ref_ov(sd, l2, h2)}[mode]
            out[i, j] = np.linalg.norm(a @ b) / (np.linalg.norm(a) * np.linalg.norm(b))
    return out


def check_pair(results: dict[str, ClaimResult], prefix: str) -> None:
    """``{prefix}-pass`` holds, ``{prefix}-fail`` fails, both with a plot PNG."""
    for suffix, status in (("pass", "holds"), ("fail", "fails")):
        result = results[f"{prefix}-{suffix}"]
        assert result.error is None, str(result.error)
        assert result.status == status, (prefix, suffix, result.outcome)
        assert result.plot is not None and result.plot.exists(), (prefix, suffix)


# ---- syntax -------------------------------------------------------------------------------------
@pytest.mark.parametrize("sentence", [
    "K-composition of L0H1 into L1H2 ≥ 0.2",
    "Q-composition of L0H1 into L2H0 in [0.1, 0.9]",
    "L0H1 → L1H2 ranks first in K-composition",
    "L0H1 -> L1H2 ranks first among all pairs in V-composition",
    "L0H1 → L1H2 ranks in top 3 in K-composition",
    "effective rank of W_OV[L0H0] at 90% energy ≤ 4",
    "effective rank of W_QK[L1H2] at 0.5 energy == 1",
    "score(L1H0 → L2N10) above the 99.9th percentile of all head→neuron scores",
    "score(L1H0 -> L2N10) above the 90th percentile of all head-neuron scores using top 2 "
    "directions",
    "congruence of L0N1, L2N3 with 7 ≥ 0.3",
    "input congruence of L0N1 with W_E[7] through layer norm > 0.1",
    "L0N1 in top 10 of congruence(right) - congruence(left)",
])
def test_sentences_round_trip(sentence: str) -> None:
    claim = parse_claim(sentence).claim
    assert parse_claim(str(claim)).claim == claim


@pytest.mark.parametrize("sentence", [
    "K-composition of L0H1 L1H2 ≥ 0.2",
    "L0H1 → L1H2 ranks first",
    "effective rank of W_OV[L0H0] ≤ 4",
    "score(L1H0 → L2N10) above the 99.9th percentile",
])
def test_bad_sentences(sentence: str) -> None:
    with pytest.raises(ClaimSyntaxError):
        parse_claim(sentence)


# ---- weights, composition, spectra --------------------------------------------------------------
def test_circuit_names_match_reference(world: dict[str, Any]) -> None:
    sd = world["sd"]
    path = write(world, "names", [{"id": "x", "claim": "1 > 0"}])
    assert np.allclose(value(path, "W_OV[L1H2]"), ref_ov(sd, 1, 2))
    assert np.allclose(value(path, "W_QK[L2H0]"), ref_qk(sd, 2, 0))
    assert value(path, "W_Q").shape == (LAYERS * HEADS, D_MODEL, D_HEAD)
    assert np.allclose(value(path, "W_O[L0H1]"), sd["blocks.0.attn.W_O"][1])
    assert np.allclose(value(path, "W_in[L2N5]"), sd["blocks.2.mlp.W_in"][:, 5])
    assert np.allclose(value(path, "W_out[L1N7]"), sd["blocks.1.mlp.W_out"][7])
    assert np.allclose(value(path, "W_U"), sd["unembed.W_U"])
    assert np.allclose(value(path, "W_E"), sd["embed.W_E"])
    assert np.allclose(value(path, "W_pos"), sd["pos_embed.W_pos"])
    assert np.allclose(value(path, "svd_s(W_OV[L0H0])")[:D_HEAD],
                       np.linalg.svd(ref_ov(sd, 0, 0), compute_uv=False)[:D_HEAD])
    for mode in "QKV":
        table = value(path, f"{mode}-composition")
        assert np.allclose(table, ref_composition(sd, mode), atol=1e-10), mode
    assert value(path, "K-composition[L0H1, L2H2]") == pytest.approx(
        ref_composition(sd, "K")[1, 8])
    assert value(path, "K-composition[L1H1, L0H2]") == 0.0  # a head in a later layer


def test_composition_claims(world: dict[str, Any], tmp_path: Path) -> None:
    table = ref_composition(world["sd"], "K")
    score = table[1, 5]  # L0H1 -> L1H2
    best = np.unravel_index(np.argmax(table), table.shape)
    labels = [f"L{layer}H{h}" for layer in range(LAYERS) for h in range(HEADS)]
    top, top_reader = labels[best[0]], labels[best[1]]
    valid = sorted((table[i, j] for i in range(9) for j in range(9) if i // 3 < j // 3),
                   reverse=True)
    rank = 1 + sum(v > score for v in valid)
    other = next(p for p in [("L0H0", "L1H0"), ("L0H2", "L1H1")]
                 if (p[0], p[1]) != (top, top_reader))
    claims = [
        {"id": "comp-pass", "claim": f"K-composition of L0H1 into L1H2 ≥ {score - 1e-6:.8f}"},
        {"id": "comp-fail", "claim": f"K-composition of L0H1 into L1H2 ≥ {score + 1e-6:.8f}"},
        {"id": "rank-pass", "claim": f"{top} → {top_reader} ranks first in K-composition"},
        {"id": "rank-fail", "claim": f"{other[0]} -> {other[1]} ranks first among all pairs "
                                     "in K-composition"},
        {"id": "top", "claim": f"L0H1 → L1H2 ranks in top {rank} in K-composition"},
        {"id": "late", "claim": "K-composition of L1H1 into L0H2 ≤ 0"},
        {"id": "late-rank", "claim": "L1H1 → L0H2 ranks first in K-composition"},
    ]
    results = run(write(world, "comp", claims), tmp_path)
    check_pair(results, "comp")
    check_pair(results, "rank")
    outcome = results["comp-pass"].outcome
    assert outcome is not None and outcome.value == pytest.approx(score)
    assert outcome.rows[0]["score"] == pytest.approx(valid[0])
    assert results["top"].passed and results["top"].outcome.value == rank  # type: ignore[union-attr]
    assert results["late"].passed
    assert "earlier layer" in " ".join(results["late"].outcome.notes)  # type: ignore[union-attr]
    assert results["late-rank"].error is not None


def test_effective_rank(world: dict[str, Any], tmp_path: Path) -> None:
    s = np.linalg.svd(ref_ov(world["sd"], 1, 0), compute_uv=False)
    energy = np.cumsum(s**2) / np.sum(s**2)
    k = int(np.argmax(energy >= 0.9) + 1)
    claims = [{"id": "er-pass", "claim": f"effective rank of W_OV[L1H0] at 90% energy ≤ {k}"},
              {"id": "er-fail", "claim": f"effective rank of W_OV[L1H0] at 90% energy ≤ {k - 1}"},
              {"id": "er-full", "claim": "effective rank of W_QK[L0H0] at 100% energy == 4"},
              {"id": "er-3d", "claim": "effective rank of W_OV at 90% energy ≤ 4"}]
    results = run(write(world, "rank", claims), tmp_path)
    check_pair(results, "er")
    assert results["er-pass"].outcome.value == k  # type: ignore[union-attr]
    assert results["er-full"].passed  # W_QK has rank d_head
    assert "index one head" in str(results["er-3d"].error)


def test_head_neuron_scores(world: dict[str, Any], tmp_path: Path) -> None:
    sd = world["sd"]
    scores = {}
    for layer in range(LAYERS):
        for h in range(HEADS):
            direction = np.linalg.svd(ref_ov(sd, layer, h))[2][0]
            for nl in range(layer, LAYERS):
                w_in = sd[f"blocks.{nl}.mlp.W_in"]
                for n in range(D_MLP):
                    cos = direction @ w_in[:, n] / np.linalg.norm(w_in[:, n])
                    scores[(f"L{layer}H{h}", f"L{nl}N{n}")] = abs(cos)
    best = max(scores, key=scores.get)  # type: ignore[arg-type]
    worst = min(scores, key=scores.get)  # type: ignore[arg-type]
    path = write(world, "hn", [
        {"id": "hn-pass", "claim": f"score({best[0]} → {best[1]}) above the 99th percentile "
                                   "of all head→neuron scores"},
        {"id": "hn-fail", "claim": f"score({worst[0]} -> {worst[1]}) above the 50th percentile "
                                   "of all head-neuron scores"},
        {"id": "hn-early", "claim": "score(L2H0 → L0N1) above the 50th percentile of all "
                                    "head→neuron scores"},
        {"id": "hn-k", "claim": f"score({best[0]} → {best[1]}) above the 50th percentile of "
                                "all head→neuron scores using top 2 directions"}])
    results = run(path, tmp_path)
    check_pair(results, "hn")
    assert results["hn-pass"].outcome.value == pytest.approx(scores[best])  # type: ignore[union-attr]
    assert results["hn-fail"].outcome.value == pytest.approx(scores[worst])  # type: ignore[union-attr]
    assert "earlier layer" in str(results["hn-early"].error)
    assert results["hn-k"].passed
    table = value(path, "head-neuron")
    assert table.shape == (LAYERS * HEADS, LAYERS * D_MLP)
    assert np.isnan(table[8, 0]) and table[0, 0] == pytest.approx(scores[("L0H0", "L0N0")])
    finite = np.array(list(scores.values()))
    context = results["hn-pass"].outcome.context  # type: ignore[union-attr]
    assert f"{np.quantile(finite, 0.5):.4g}" in context["quantiles"]


def test_congruence(world: dict[str, Any], tmp_path: Path) -> None:
    sd = world["sd"]
    w_out = np.concatenate([sd[f"blocks.{layer}.mlp.W_out"] for layer in range(LAYERS)])
    w_u = sd["unembed.W_U"]

    def cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a @ b / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b))

    right, left = cos(w_out, w_u[:, 5]), cos(w_out, w_u[:, 6])
    diff = right - left
    order = np.argsort(-diff)
    first, last = f"L{order[0] // D_MLP}N{order[0] % D_MLP}", \
        f"L{order[-1] // D_MLP}N{order[-1] % D_MLP}"
    n = int(order[0])
    centred = w_out[n] - w_out[n].mean()
    ln_ref = cos(centred, w_u[:, 5])
    w_e = sd["embed.W_E"][3]
    w_in = sd["blocks.0.mlp.W_in"][:, 2]
    input_ref = float(cos(w_in, w_e - w_e.mean()))
    quantities = {"right": {"expr": "W_U[:, 5]"}, "left": {"expr": "W_U[:, 6]"},
                  "cong": {"expr": "congruence(right)"}}
    claims = [
        {"id": "top-pass", "claim": f"{first} in top 1 of congruence(right) - congruence(left)"},
        {"id": "top-fail", "claim": f"{last} in top 10 of congruence(right) - congruence(left)"},
        {"id": "cong-pass", "claim": f"congruence of {first} with 5 ≥ {right[n] - 1e-6:.8f}"},
        {"id": "cong-fail", "claim": f"congruence of {first}, {last} with right "
                                     f"≥ {right[n] - 1e-6:.8f}"},
        {"id": "ln", "claim": f"congruence of {first} with 5 through layer norm "
                              f"≈ {ln_ref:.8f} ± 1e-6"},
        {"id": "input", "claim": f"input congruence of L0N2 with 3 through layer norm "
                                 f"≈ {input_ref:.8f} ± 1e-6"},
    ]
    path = write(world, "cong", claims, {"quantities": quantities})
    results = run(path, tmp_path)
    check_pair(results, "top")
    check_pair(results, "cong")
    assert results["ln"].passed, results["ln"].outcome
    assert results["input"].passed, results["input"].outcome
    assert np.allclose(value(path, "cong"), right)
    assert np.allclose(value(path, "congruence(W_out, 5)"), right)
    assert np.allclose(value(path, "projection(W_out, right)"),
                       w_out @ w_u[:, 5] / np.linalg.norm(w_u[:, 5]))
    table = value(path, "congruence(W_out, W_U)")
    assert table.shape == (LAYERS * D_MLP, VOCAB) and np.allclose(table[:, 5], right)


# ---- layouts ------------------------------------------------------------------------------------
def _custom_state(sd: dict[str, np.ndarray]) -> dict[str, Any]:
    """The weights under nn.Linear-style names: fused heads, [out, in] matrices."""
    import torch

    out: dict[str, Any] = {"emb.weight": torch.tensor(sd["embed.W_E"]),
                           "pos.weight": torch.tensor(sd["pos_embed.W_pos"]),
                           "head.weight": torch.tensor(sd["unembed.W_U"].T.copy())}
    for layer in range(LAYERS):
        for name in "QKV":
            w = sd[f"blocks.{layer}.attn.W_{name}"]  # [h, m, d] -> [(h d), m]
            out[f"layers.{layer}.{name.lower()}.weight"] = torch.tensor(
                np.transpose(w, (0, 2, 1)).reshape(HEADS * D_HEAD, D_MODEL).copy())
        w_o = sd[f"blocks.{layer}.attn.W_O"]  # [h, d, m] -> [m, (h d)]
        out[f"layers.{layer}.o.weight"] = torch.tensor(w_o.reshape(-1, D_MODEL).T.copy())
        out[f"layers.{layer}.fc_in.weight"] = torch.tensor(sd[f"blocks.{layer}.mlp.W_in"].T.copy())
        out[f"layers.{layer}.fc_out.weight"] = torch.tensor(
            sd[f"blocks.{layer}.mlp.W_out"].T.copy())
    return out


def test_layout_maps_custom_names(world: dict[str, Any], isolated_imports: None) -> None:
    import torch

    sd = world["sd"]
    torch.save(_custom_state(sd), world["folder"] / "custom.pt")
    qkv = {"axes": "(head d_head) d_model"}
    layout = {"n_heads": HEADS,
              "W_Q": {"weight": "layers.{l}.q.weight", **qkv},
              "W_K": {"weight": "layers.{l}.k.weight", **qkv},
              "W_V": {"weight": "layers.{l}.v.weight", **qkv},
              "W_O": {"weight": "layers.{l}.o.weight", "axes": "d_model (head d_head)"},
              "W_in": {"weight": "layers.{l}.fc_in.weight", "transpose": True},
              "W_out": {"weight": "layers.{l}.fc_out.weight", "axes": "d_model d_mlp"},
              "W_E": "emb.weight", "W_pos": "pos.weight",
              "W_U": {"weight": "head.weight", "axes": "d_vocab d_model"}}
    path = write(world, "layout", [{"id": "k", "claim": "K-composition of L0H1 into L1H2 > 0"}],
                 {"layout": layout}, checkpoint="custom.pt")
    assert np.allclose(value(path, "W_OV[L2H1]"), ref_ov(sd, 2, 1))
    assert np.allclose(value(path, "K-composition"), ref_composition(sd, "K"), atol=1e-10)
    assert np.allclose(value(path, "W_in[L1N3]"), sd["blocks.1.mlp.W_in"][:, 3])
    assert np.allclose(value(path, "W_out[L1N3]"), sd["blocks.1.mlp.W_out"][3])
    assert np.allclose(value(path, "W_U"), sd["unembed.W_U"])
    # the same through a conversion function
    (world["folder"] / "convert_mod.py").write_text(
        "def to_tl(state_dict):\n"
        "    return {'blocks.0.attn.' + k.split('.')[-1]: v for k, v in state_dict.items()"
        " if k.startswith('blocks.0.attn.W_')}\n", encoding="utf-8")
    path = write(world, "convert", [{"id": "x", "claim": "1 > 0"}],
                 {"layout": {"convert": "convert_mod:to_tl"}})
    assert np.allclose(value(path, "W_OV[L0H2]"), ref_ov(sd, 0, 2))
    assert value(path, "W_OV").shape[0] == HEADS  # only layer 0 was converted


def test_layout_errors(world: dict[str, Any]) -> None:
    from interp_assert.errors import InterpAssertError

    bad = write(world, "bad", [{"id": "x", "claim": "1 > 0"}],
                {"layout": {"W_Q": {"weight": "layers.{l}.q.weight", "axes": "(head x) d_model"}}})
    with pytest.raises(InterpAssertError, match="unknown axis 'x'"):
        value(bad, "W_Q")
    unknown = write(world, "unknown", [{"id": "x", "claim": "1 > 0"}], {"layout": {"W_QQ": "a"}})
    with pytest.raises(InterpAssertError, match="did you mean 'W_Q'"):
        value(unknown, "W_Q")
    missing = write(world, "missing", [{"id": "x", "claim": "1 > 0"}],
                    {"layout": {"W_Q": "nowhere.{l}.q"}})
    with pytest.raises(InterpAssertError, match=r"nowhere\.0\.q"):
        value(missing, "W_OV")


def test_circuit_quantity_kind(world: dict[str, Any]) -> None:
    quantities = {"kc": {"circuit": "K-composition"},
                  "hn3": {"circuit": "head-neuron", "directions": 3}}
    path = write(world, "kind", [{"id": "x", "claim": "kc[L0H1, L1H2] > 0"}],
                 {"quantities": quantities})
    assert np.allclose(value(path, "kc"), ref_composition(world["sd"], "K"), atol=1e-10)
    hn1, hn3 = value(path, "head-neuron"), value(path, "hn3")
    assert np.all(hn3[np.isfinite(hn1)] >= hn1[np.isfinite(hn1)] - 1e-12)
    assert run(path)["x"].passed
    broken = write(world, "broken", [{"id": "x", "claim": "1 > 0"}],
                   {"quantities": {"q": {"circuit": "K-compositon"}}})
    errors = interp_assert.validate(broken)
    assert any("did you mean 'K-composition'" in e for e in errors)


def test_a_zero_head_has_no_composition_rank_and_no_effective_rank(
        world: dict[str, Any], tmp_path: Path) -> None:
    """A head whose W_V is zero: its composition scores are 0/0 (NaN in numpy too) and its
    W_OV has no energy, so neither 'ranks first' nor an effective rank may pass."""
    tiny = _tiny()
    model = world["model"]
    zeroed = {k: v.clone() for k, v in model.state_dict().items()}
    zeroed["blocks.0.attn.W_V"][0] = 0.0
    copy = tiny.TinyTransformer(model.cfg)
    copy.load_state_dict(zeroed)
    tiny.save_checkpoint(world["folder"] / "zeroed.pt", copy)
    sd = {k: v.double().numpy() for k, v in zeroed.items()}
    with np.errstate(invalid="ignore", divide="ignore"):
        assert np.isnan(ref_composition(sd, "K")[0, 3:]).all()  # the reference agrees: NaN
    claims = [{"id": "rank", "claim": "L0H0 → L1H0 ranks first in K-composition"},
              {"id": "score", "claim": "K-composition of L0H0 into L1H0 ≤ 1"},
              {"id": "er", "claim": "effective rank of W_OV[L0H0] at 90% energy ≤ 4"}]
    results = run(write(world, "zeroed", claims, checkpoint="zeroed.pt"), tmp_path)
    assert not results["rank"].passed and not results["score"].passed
    assert "all zeros" in str(results["er"].error)
