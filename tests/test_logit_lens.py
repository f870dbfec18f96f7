"""The logit lens and direct logit attribution against independent references.

Lens: the residual stream captured with a plain forward hook on the torch model, the final
LayerNorm and the unembedding applied by hand from their parameters (float64), on the adder
(LayerNorm) and the induction model (no norm). Attribution: TransformerLens's own
``decompose_resid``, ``stack_head_results`` and ``stack_neuron_results`` (``apply_ln=True``) on
a ``TransformerBridge`` holding the adder's weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import import_examples, run_entries

from interp_assert.run.runner import load_claim_file

ROOT = Path(__file__).resolve().parents[1]
ADDER = ROOT / "examples" / "adder" / "checkpoints" / "adder.pt"
INDUCTION = ROOT / "examples" / "induction" / "checkpoints" / "induction.pt"
N = 200
A3 = 25  # the token index of A3 in the adder's 33 positions; predicted from index 24
POSITIONS = "X0..X9, +, Y0..Y9, =, A0..A10"
DATA_MODULE = '''\
from examples.adder.data import generate as sums


def generate(n, seed):
    """The adder's sums plus 'wrong': the digit after the answer at A3 (mod 10)."""
    data = sums(n=n, seed=seed)
    data["wrong"] = (data["tokens"][:, 25] + 1) % 10
    return data
'''


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """Every test here runs torch on one thread."""


def write(folder: Path, name: str, checkpoint: Path, data: dict[str, Any],
          claims: list[dict[str, Any]], quantities: dict[str, Any] | None = None) -> Path:
    body = {"subject": {"checkpoint": str(checkpoint), "loader": "examples.tiny_transformer:load",
                        "python_path": [str(ROOT), "."]},
            "data": data, "quantities": quantities or {}, "claims": claims}
    path = folder / f"{name}.claims.yaml"
    path.write_text(yaml.safe_dump(body, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def adder_data(folder: Path) -> dict[str, Any]:
    (folder / "lens_data.py").write_text(DATA_MODULE, encoding="utf-8")
    return {"sums": {"generate": "lens_data:generate", "n": N, "seed": 7, "positions": POSITIONS}}


def tokens_and_wrong() -> tuple[Any, Any]:
    import sys

    sys.path.insert(0, str(ROOT))
    try:
        from examples.adder.data import generate
    finally:
        sys.path.remove(str(ROOT))
    data = generate(n=N, seed=7)
    return data["tokens"], (data["tokens"][:, A3] + 1) % 10


def captured(model: Any, tokens: Any, module: str) -> Any:
    """The output of ``module`` on ``tokens`` (a plain torch forward hook), float64."""
    import torch

    seen: list[Any] = []
    handle = model.get_submodule(module).register_forward_hook(
        lambda _m, _a, out: seen.append(out.detach().double()))
    with torch.no_grad():
        model(tokens)
    handle.remove()
    return seen[0]


def by_hand(model: Any, resid: Any) -> np.ndarray:
    """LayerNorm (if any) and unembedding from the parameters: float64 logits."""
    x = resid.double()
    if model.cfg.normalization == "LN":
        x = x - x.mean(-1, keepdim=True)
        x = x / (x.pow(2).mean(-1, keepdim=True) + model.cfg.eps).sqrt()
        x = x * model.ln_final.w.double() + model.ln_final.b.double()
    return (x @ model.unembed.W_U.double() + model.unembed.b_U.double()).detach().numpy()


def values(path: Path, plots: Path | None = None) -> dict[str, Any]:
    return run_entries(load_claim_file(path), plot_dir=plots)


def test_lens_equals_a_direct_computation_on_the_adder(tmp_path: Path) -> None:
    tiny, _ = import_examples()
    claims = [
        {"id": "prob", "claim": "logit lens at blocks.0: mean probability of the answer at A3 "
                                "≥ 0"},
        {"id": "rank", "claim": "logit lens at blocks.0: rank of the answer at A3 ≤ 1 on 1% "
                                "of samples with 90% confidence"},
        {"id": "logit", "claim": "logit lens at blocks.1: mean logit of the answer ≥ -100"},
        {"id": "diff", "claim": "logit lens at blocks.0.hook_resid_mid: mean logit-diff of the "
                                "answer vs wrong at A3 ≥ -100"},
        {"id": "centred", "claim": "logit lens at blocks.1: mean logit-diff of the answer at A3 "
                                   "≥ -100"},
        {"id": "embed", "claim": "logit lens at blocks.0.hook_resid_pre: rank of the answer at "
                                 "A3 < 4 on 1% of samples"},
    ]
    path = write(tmp_path, "lens", ADDER, adder_data(tmp_path), claims)
    results = values(path)
    model = tiny.load(ADDER)
    tokens, wrong = tokens_and_wrong()
    answers = tokens[:, A3].numpy()
    rows = np.arange(N)

    def lens(module: str, position: int = 24) -> np.ndarray:
        return by_hand(model, captured(model, tokens, module)[:, position])

    logits0 = lens("blocks.0.hook_resid_post")
    top = logits0.max(1, keepdims=True)
    probability = np.exp(logits0 - top)[rows, answers] / np.exp(logits0 - top).sum(1)
    rank0 = 1 + (logits0 > logits0[rows, answers][:, None]).sum(1)
    last = lens("blocks.1.hook_resid_post", 31)[rows, tokens[:, 32].numpy()]
    mid = lens("blocks.0.hook_resid_mid")
    logits1 = lens("blocks.1.hook_resid_post")
    embed = lens("blocks.0.hook_resid_pre")
    rank_embed = 1 + (embed > embed[rows, answers][:, None]).sum(1)
    expected = {"prob": probability.mean(), "rank": np.mean(rank0 <= 1),
                "logit": last.mean(), "diff": np.mean(mid[rows, answers] - mid[rows, wrong]),
                "centred": np.mean(logits1[rows, answers] - logits1.mean(1)),
                "embed": np.mean(rank_embed < 4)}
    for name, reference in expected.items():
        result = results[name]
        assert result.error is None, result.error
        assert abs(result.outcome.value - reference) <= 1e-6, (name, result.outcome.value,
                                                               reference)
    # the lens after the last block is the model's own output
    with __import__("torch").no_grad():
        own = model(tokens)[:, 24].double().numpy()
    assert np.abs(logits1 - own).max() < 1e-4
    # the share's interval is Wilson's at the written level
    from scipy.stats import norm

    k, z = int(np.sum(rank0 <= 1)), norm.ppf(0.95)
    p = k / N
    centre = (p + z**2 / (2 * N)) / (1 + z**2 / N)
    half = z * np.sqrt(p * (1 - p) / N + z**2 / (4 * N**2)) / (1 + z**2 / N)
    assert np.allclose(results["rank"].outcome.interval, (centre - half, centre + half),
                       atol=1e-12)


def test_lens_on_the_induction_model_without_a_norm(tmp_path: Path) -> None:
    tiny, data = import_examples()
    claims = [{"id": f"l{layer}", "claim": f"logit lens at blocks.{layer}: mean probability "
                                           "of the answer ≥ 0"} for layer in (0, 1)]
    spec = {"repeats": {"generate": "examples.induction.data:generate", "n": 100, "seed": 3}}
    results = values(write(tmp_path, "induction", INDUCTION, spec, claims))
    model = tiny.load(INDUCTION)
    assert model.cfg.normalization is None
    tokens = data.generate(n=100, seed=3)["tokens"]
    answers = tokens[:, -1].numpy()
    for layer in (0, 1):
        logits = by_hand(model, captured(model, tokens, f"blocks.{layer}.hook_resid_post")[:, -2])
        exp = np.exp(logits - logits.max(1, keepdims=True))
        reference = np.mean(exp[np.arange(100), answers] / exp.sum(1))
        assert abs(results[f"l{layer}"].outcome.value - reference) <= 1e-6


NANO_DATA = '''\
import torch


def generate(n, seed):
    return {"tokens": torch.randint(0, 16, (n, 12), generator=torch.Generator().manual_seed(seed))}
'''


def test_lens_on_a_nanogpt_model(tmp_path: Path) -> None:
    """nn.LayerNorm as ``transformer.ln_f`` and a bias-free ``lm_head``, blocks returning plain
    tensors at ``transformer.h.{l}``; the failure plot's curve reads every block."""
    import sys

    import torch

    sys.path.insert(0, str(ROOT))
    try:
        from examples.nanogpt.model import GPT
    finally:
        sys.path.remove(str(ROOT))
    torch.manual_seed(0)
    config = {"vocab_size": 16, "block_size": 12, "n_layer": 2, "n_head": 2, "n_embd": 16}
    model = GPT(**config).eval()
    with torch.no_grad():
        model.transformer.ln_f.weight.add_(0.3 * torch.randn(16))
        model.transformer.ln_f.bias.add_(0.3 * torch.randn(16))
    torch.save({"config": config, "model": model.state_dict()}, tmp_path / "nano.pt")
    (tmp_path / "nano_data.py").write_text(NANO_DATA, encoding="utf-8")
    body = {"subject": {"checkpoint": "nano.pt", "loader": "examples.nanogpt.model:load",
                        "python_path": [str(ROOT), "."]},
            "data": {"random": {"generate": "nano_data:generate", "n": 64, "seed": 1}},
            "claims": [{"id": "nano", "claim": "logit lens at transformer.h.0: mean probability "
                                               "of the answer ≥ 0.9"}]}
    path = tmp_path / "nano.claims.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False), encoding="utf-8")
    result = values(path, tmp_path / "plots")["nano"]
    assert result.error is None, result.error
    tokens = torch.randint(0, 16, (64, 12), generator=torch.Generator().manual_seed(1))
    resid = captured(model, tokens, "transformer.h.0")[:, -2]
    ln = model.transformer.ln_f
    x = resid - resid.mean(-1, keepdim=True)
    x = x / (x.pow(2).mean(-1, keepdim=True) + ln.eps).sqrt() * ln.weight.double() + \
        ln.bias.double()
    logits = (x @ model.lm_head.weight.double().T).detach().numpy()
    exp = np.exp(logits - logits.max(1, keepdims=True))
    reference = np.mean(exp[np.arange(64), tokens[:, -1].numpy()] / exp.sum(1))
    assert abs(result.outcome.value - reference) <= 1e-6
    assert not result.outcome.passed and result.plot is not None and result.plot.exists()
    curve = result.outcome.plot_data["curve"]
    assert [label for label, _, _ in curve] == ["transformer.h.0", "transformer.h.1"]
    assert curve[0][1] == result.outcome.value


def bridge_for(model: Any) -> Any:
    """A TransformerLens bridge holding exactly ``model``'s weights."""
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge.sources.native import boot
    from transformer_lens.utilities.tl_checkpoint_conversion import convert_tl_checkpoint

    cfg = model.cfg
    config = TransformerBridgeConfig(
        n_layers=cfg.n_layers, d_model=cfg.d_model, n_heads=cfg.n_heads, d_head=cfg.d_head,
        d_mlp=cfg.d_mlp, d_vocab=cfg.d_vocab, n_ctx=cfg.n_ctx, act_fn="relu", eps=cfg.eps,
        normalization_type=cfg.normalization, attn_only=cfg.d_mlp is None,
        positional_embedding_type="standard")
    bridge = boot(config)
    bridge.load_state_dict(convert_tl_checkpoint(model.state_dict(), config), strict=True)
    return bridge.eval()


@pytest.mark.parametrize("contrast", [None, "wrong"])
def test_attribution_equals_transformer_lens(tmp_path: Path, contrast: str | None) -> None:
    pytest.importorskip("transformer_lens", reason="transformer-lens is not installed")
    import torch

    tiny, _ = import_examples()
    vs = f" vs {contrast}" if contrast else ""
    claims = [{"id": "all", "claim": f"L1N44 in top 14 contributors to logit-diff{vs} at A3"},
              {"id": "share", "claim": f"MLP1 contributes ≥ -100% of logit-diff{vs} at A3"},
              {"id": "head", "claim": f"L1H2 contributes ≥ -100 to logit-diff{vs} at A3"}]
    results = values(write(tmp_path, "dla", ADDER, adder_data(tmp_path), claims))
    assert results["all"].error is None, results["all"].error
    data = results["all"].outcome.plot_data  # every component's mean, in logits
    ours = dict(zip(data["labels"], data["values"]))

    model = tiny.load(ADDER)
    bridge = bridge_for(model)
    tokens, wrong = tokens_and_wrong()
    with torch.no_grad():
        logits, cache = bridge.run_with_cache(tokens)
        parts, labels = cache.decompose_resid(layer=-1, pos_slice=24, apply_ln=True,
                                              return_labels=True)
        heads, head_labels = cache.stack_head_results(layer=-1, pos_slice=24, apply_ln=True,
                                                      return_labels=True)
        neurons = cache.stack_neuron_results(layer=-1, pos_slice=24, apply_ln=True)
    w_u = model.unembed.W_U.detach().double()
    answers = tokens[:, A3]
    direction = w_u[:, answers].T - (w_u[:, wrong].T if contrast else w_u.mean(1))
    read = direction * model.ln_final.w.detach().double()  # [n, d_model]

    def dla(stack: Any) -> np.ndarray:  # [components, n, d_model] -> mean per component
        return torch.einsum("cnd,nd->cn", stack.double(), read).mean(1).numpy()

    reference = dict(zip(labels, dla(parts)))
    reference |= dict(zip(head_labels, dla(heads)))
    neuron_44 = dla(neurons[model.cfg.d_mlp + 44: model.cfg.d_mlp + 45])[0]
    checks = {"embed": "embed", "pos_embed": "pos_embed", "MLP0": "0_mlp_out",
              "MLP1": "1_mlp_out", **{label: label for label in head_labels}}
    for mine, theirs in checks.items():
        assert abs(ours[mine] - reference[theirs]) <= 1e-5, (mine, ours[mine], reference[theirs])
    assert abs(ours["L1N44"] - neuron_44) <= 1e-5
    # the heads' b_O: TransformerLens's attention output minus its heads
    layer_heads = {layer: sum(reference[f"L{layer}H{h}"] for h in range(4)) for layer in (0, 1)}
    b_o = sum(reference[f"{layer}_attn_out"] - layer_heads[layer] for layer in (0, 1))
    b_u = model.unembed.b_U.detach().double()
    constant = (direction @ model.ln_final.b.detach().double()).mean().item() + (
        (b_u[answers] - (b_u[wrong] if contrast else b_u.mean())).mean().item())
    assert abs(ours["bias"] - (b_o + constant)) <= 1e-5
    # every component but neurons sums to the model's own logit difference
    final = logits[:, 24].double()
    rows = torch.arange(N)
    diff = final[rows, answers] - (final[rows, wrong] if contrast else final.mean(1))
    total = sum(value for label, value in ours.items() if label != "L1N44")
    assert abs(total - diff.mean().item()) <= 1e-4
    share = results["share"].outcome.value
    assert abs(share - ours["MLP1"] / diff.mean().item()) <= 1e-5
    assert abs(results["head"].outcome.value - reference["L1H2"]) <= 1e-5


def test_attribution_without_a_norm_equals_transformer_lens(tmp_path: Path) -> None:
    """The attention-only induction model has no LayerNorm and no MLPs: the scale is 1 and the
    components are the embeddings, the heads and the biases; the answer is the last token."""
    pytest.importorskip("transformer_lens", reason="transformer-lens is not installed")
    import torch

    tiny, data = import_examples()
    spec = {"repeats": {"generate": "examples.induction.data:generate", "n": 100, "seed": 3}}
    claims = [{"id": "all", "claim": "L1H0 in top 3 contributors to logit-diff"}]
    result = values(write(tmp_path, "induction-dla", INDUCTION, spec, claims))["all"]
    assert result.error is None, result.error
    ours = dict(zip(result.outcome.plot_data["labels"], result.outcome.plot_data["values"]))
    assert not any(label.startswith("MLP") for label in ours)
    model = tiny.load(INDUCTION)
    tokens = data.generate(n=100, seed=3)["tokens"]
    with torch.no_grad():
        logits, cache = bridge_for(model).run_with_cache(tokens)
        parts, labels = cache.decompose_resid(layer=-1, pos_slice=-2, apply_ln=False,
                                              return_labels=True)
        heads, head_labels = cache.stack_head_results(layer=-1, pos_slice=-2, apply_ln=False,
                                                      return_labels=True)
    w_u = model.unembed.W_U.detach().double()
    direction = w_u[:, tokens[:, -1]].T - w_u.mean(1)
    reference = dict(zip([*labels, *head_labels], torch.einsum(
        "cnd,nd->cn", torch.cat([parts, heads]).double(), direction).mean(1).tolist()))
    for label in ("embed", "pos_embed", *head_labels):
        assert abs(ours[label] - reference[label]) <= 1e-5, (label, ours[label], reference[label])
    final = logits[:, -2].double()
    diff = final[torch.arange(100), tokens[:, -1]] - final.mean(1)
    assert abs(sum(ours.values()) - diff.mean().item()) <= 1e-4


def test_attribution_shared_by_claims_is_computed_once_per_position(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Claims reading the same answer position share the frozen norm and each component's
    column (one computation per pass result); another position gets its own, and every
    number equals the one each claim computes alone."""
    from interp_assert.evaluate import logit_attribution

    claims = [{"id": "share", "claim": "MLP1 contributes ≥ -100% of logit-diff at A3"},
              {"id": "head", "claim": "L1H2 contributes ≥ -100 to logit-diff at A3"},
              {"id": "rank", "claim": "MLP1, MLP0 in top 13 contributors to logit-diff at A3"},
              {"id": "other", "claim": "MLP1 contributes ≥ -100% of logit-diff at A4"}]
    data = adder_data(tmp_path)
    calls: list[int] = []
    frozen = logit_attribution._frozen_norm
    monkeypatch.setattr(logit_attribution, "_frozen_norm",
                        lambda *a: calls.append(1) or frozen(*a))
    together = values(write(tmp_path, "together", ADDER, data, claims))
    assert len(calls) == 2  # A3 once for three claims, A4 once
    monkeypatch.setattr(logit_attribution, "_frozen_norm", frozen)
    alone = {}
    for claim in claims:  # each in a run of its own (a fresh subject: nothing shared)
        (tmp_path / claim["id"]).mkdir()
        path = write(tmp_path / claim["id"], "alone", ADDER, adder_data(tmp_path / claim["id"]),
                     [claim])
        alone[claim["id"]] = values(path)[claim["id"]]
    for claim in claims:
        assert together[claim["id"]].error is None and alone[claim["id"]].error is None
        mine, theirs = together[claim["id"]].outcome, alone[claim["id"]].outcome
        assert mine.value == pytest.approx(theirs.value, abs=1e-12)
        assert mine.plot_data["values"] == pytest.approx(theirs.plot_data["values"], abs=1e-12)
