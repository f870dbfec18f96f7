"""The TransformerLens adapter, on a small model built from a config (nothing downloaded).

With TransformerLens 4 the model is a TL-native ``TransformerBridge``; with 3.x a
``HookedTransformer``. Its weights come from an ``examples/tiny_transformer.py`` checkpoint,
whose layout is TransformerLens's, so the same logits are a check of the conversion.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("transformer_lens", reason="the TransformerLens adapter needs "
                                               "transformer_lens: pip install 'interp-assert[tl]'")
import torch
from conftest import write_claims

from examples.tiny_transformer import TinyConfig, TinyTransformer, save_checkpoint
from interp_assert.adapters import transformer_lens as tl
from interp_assert.drivers import api
from interp_assert.errors import QuantityError
from interp_assert.evaluate.forward import CaptureSink, Sink, run_forward
from interp_assert.loading.data import Dataset, DatasetSpec
from interp_assert.loading.subject import LoadedSubject, SubjectSpec

TOLERANCE = 1e-5
CONFIG = TinyConfig(n_layers=2, d_model=16, n_heads=2, d_head=8, d_mlp=32, d_vocab=11, n_ctx=12)
HOOKS = ["blocks.0.attn.hook_pattern", "blocks.1.attn.hook_pattern", "blocks.1.attn.hook_z",
         "blocks.0.attn.hook_q", "blocks.0.hook_resid_post", "blocks.1.mlp.hook_post",
         "blocks.0.attn.hook_attn_scores"]


class LogitSink(CaptureSink):
    """Captures the model output (the logits)."""

    def __init__(self) -> None:
        super().__init__("logits")
        self.hook = None


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[TinyTransformer, Path]:
    """A random TinyTransformer and its checkpoint file."""
    torch.manual_seed(0)
    model = TinyTransformer(CONFIG).eval()
    path = tmp_path_factory.mktemp("tl") / "tiny.pt"
    save_checkpoint(path, model, step=0)
    return model, path


def subject_of(path: Path) -> LoadedSubject:
    return LoadedSubject(SubjectSpec(checkpoint=path, loader=f"{tl.__name__}:load_hooked"))


def tokens_dataset(n: int = 7, batch_size: int = 3) -> Dataset:
    tokens = torch.randint(0, CONFIG.d_vocab, (n, CONFIG.n_ctx),
                           generator=torch.Generator().manual_seed(1))
    return Dataset(DatasetSpec("tokens", generate="test", batch_size=batch_size),
                   {"tokens": tokens}, n)


def capture(subject: LoadedSubject, dataset: Dataset, hooks: list[str]) -> dict[str | None, Any]:
    sinks: list[Sink] = [CaptureSink(hook) for hook in hooks]
    sinks.append(LogitSink())
    run_forward(subject, dataset, sinks)
    return {sink.hook: sink.result() for sink in sinks}


def test_captured_hooks_equal_run_with_cache(tiny: tuple[TinyTransformer, Path]) -> None:
    original, path = tiny
    subject = subject_of(path)
    dataset = tokens_dataset()
    got = capture(subject, dataset, HOOKS)
    tokens = dataset.fields["tokens"]
    with torch.inference_mode():
        logits, cache = subject.model.model.run_with_cache(tokens)
        expected_logits = original(tokens)
    for hook in HOOKS:
        expected = cache[hook].float().numpy()
        assert got[hook].shape == expected.shape, hook  # TransformerLens's shapes
        if hook.endswith("hook_attn_scores"):  # -inf above the diagonal in both
            assert np.array_equal(np.isinf(got[hook]), np.isinf(expected))
            got[hook], expected = np.nan_to_num(got[hook]), np.nan_to_num(expected)
        assert np.abs(got[hook] - expected).max() <= TOLERANCE, hook
    assert got["blocks.1.attn.hook_z"].shape == (7, CONFIG.n_ctx, CONFIG.n_heads, CONFIG.d_head)
    pattern = got["blocks.0.attn.hook_pattern"]
    for head in range(CONFIG.n_heads):
        assert np.abs(pattern[:, head] - cache["blocks.0.attn.hook_pattern"][:, head].numpy()
                      ).max() <= TOLERANCE
    assert np.abs(got[None] - logits.numpy()).max() <= TOLERANCE
    assert np.abs(got[None] - expected_logits.numpy()).max() <= TOLERANCE  # same computation


def test_weights_by_transformer_lens_names(tiny: tuple[TinyTransformer, Path]) -> None:
    original, path = tiny
    # from the checkpoint's state dict, and from the model when there is no checkpoint
    from_file = subject_of(path)
    wrapped = LoadedSubject(SubjectSpec())
    wrapped._model, wrapped._model_loaded = tl.wrap(from_file.model.model), True
    reference = original.state_dict()
    for name in ("blocks.0.attn.W_Q", "blocks.1.attn.W_K", "blocks.0.attn.W_V",
                 "blocks.1.attn.W_O", "blocks.0.mlp.W_in", "blocks.1.mlp.W_out", "embed.W_E",
                 "unembed.W_U", "blocks.0.attn.b_Q"):
        for subject in (from_file, wrapped):
            value = subject.weight(name)
            assert tuple(value.shape) == tuple(reference[name].shape), name
            assert torch.allclose(value, reference[name], atol=TOLERANCE), name
    assert "blocks.0.attn.W_Q" in wrapped.model.weight_names()
    assert not wrapped.has_weight("blocks.0.attn.W_QQ")


def test_padded_batches_pass_the_attention_mask(tiny: tuple[TinyTransformer, Path]) -> None:
    _original, path = tiny
    model = subject_of(path).model
    tokens = torch.randint(0, CONFIG.d_vocab, (2, 6), generator=torch.Generator().manual_seed(2))
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1] * 6])
    out = model.interp_forward({"tokens": tokens, "attention_mask": mask},
                               frozenset({"blocks.0.attn.hook_pattern"}))
    pattern = out["blocks.0.attn.hook_pattern"]
    assert float(pattern[0, :, :, 4:].abs().max()) == 0.0  # padded keys get no weight
    assert torch.allclose(pattern.sum(-1), torch.ones(2, CONFIG.n_heads, 6), atol=TOLERANCE)


def test_unknown_hook_points_are_named_with_near_matches(
        tiny: tuple[TinyTransformer, Path]) -> None:
    _original, path = tiny
    with pytest.raises(QuantityError, match=r"did you mean 'blocks\.0\.attn\.hook_pattern'"):
        capture(subject_of(path), tokens_dataset(2), ["blocks.0.attn.hook_patern"])


def test_claim_file_with_a_transformer_lens_subject(tmp_path: Path,
                                                    tiny: tuple[TinyTransformer, Path]) -> None:
    _original, path = tiny
    (tmp_path / "tokens_gen.py").write_text(
        "import torch\n\n\n"
        "def generate(n, seed):\n"
        "    g = torch.Generator().manual_seed(seed)\n"
        "    return {'tokens': torch.randint(0, 11, (n, 12), generator=g)}\n", encoding="utf-8")
    claims = write_claims(tmp_path / "tl.claims.yaml", f"""
        subject:
          checkpoint: {path}
          loader: interp_assert.adapters.transformer_lens:load_hooked
        data:
          seqs: {{generate: "tokens_gen.py:generate", n: 16, seed: 3, positions: "P0..P11"}}
        quantities:
          attn0: {{activation: blocks.0.attn.hook_pattern}}
          wq: {{weight: blocks.0.attn.W_Q}}
        claims:
          - id: causal-rows
            claim: "L0H1: P3 attends to P0..P3 ≥ 0.9999"
          - id: nothing-ahead
            claim: "L0H0: P3 attends to P4..P11 ≤ 0.0001"
          - id: query-weights
            claim: norm(wq[0, 0]) > 0
        """)
    results = {r.claim_id: r for r in api.load(claims).run()}
    assert {k: r.status for k, r in results.items()} == {
        "causal-rows": "holds", "nothing-ahead": "holds", "query-weights": "holds"}, [
        str(r.error) for r in results.values() if r.error]


def test_wrap_refuses_other_models() -> None:
    with pytest.raises(TypeError, match="not a TransformerLens model"):
        tl.wrap(torch.nn.Linear(2, 2))


def test_missing_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "transformer_lens", None)
    for call in (tl.require_transformer_lens, lambda: tl.load_hooked({}),
                 lambda: tl.wrap(torch.nn.Linear(2, 2)), tl.bridge_class):
        with pytest.raises(ImportError, match=r"pip install 'interp-assert\[tl\]'"):
            call()


def test_bridge_of_a_hugging_face_folder_matches_its_attentions(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers", reason="needs the extra [hf]")
    try:
        tl.bridge_class()
    except ImportError as exc:
        pytest.skip(f"TransformerLens without TransformerBridge: {exc}")
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=2, n_head=2, n_embd=16, vocab_size=50,
                                     n_positions=16, bos_token_id=0, eos_token_id=0)
    transformers.GPT2LMHeadModel(config).save_pretrained(tmp_path)
    reference = transformers.GPT2LMHeadModel.from_pretrained(
        tmp_path, attn_implementation="eager").eval()
    subject = LoadedSubject(SubjectSpec(checkpoint=tmp_path / "model.safetensors",
                                  loader=f"{tl.__name__}:load_bridge"))
    dataset = Dataset(DatasetSpec("gpt", generate="test", batch_size=2),
                      {"tokens": torch.randint(0, 50, (3, 10))}, 3)
    got = capture(subject, dataset, ["blocks.0.attn.hook_pattern", "blocks.1.attn.hook_pattern",
                                      "blocks.1.attn.hook_z"])
    with torch.inference_mode():
        out = reference(dataset.fields["tokens"], output_attentions=True)
    for layer in range(2):
        assert np.abs(got[f"blocks.{layer}.attn.hook_pattern"] - out.attentions[layer].numpy()
                      ).max() <= TOLERANCE
    assert got["blocks.1.attn.hook_z"].shape == (3, 10, 2, 8)
    assert np.abs(got[None] - out.logits.numpy()).max() <= TOLERANCE
    assert tuple(subject.weight("blocks.1.attn.W_O").shape) == (2, 8, 16)


# ---- a bridge's own parameters --------------------------------------------------------------
ATTN_ONLY = {"n_layers": 2, "d_model": 16, "n_heads": 2, "d_head": 8, "d_mlp": None,
             "d_vocab": 11, "n_ctx": 12, "act_fn": "relu", "normalization_type": "LN",
             "positional_embedding_type": "standard"}


def bridge_checkpoint(config: dict[str, Any], seed: int) -> tuple[Any, dict[str, Any]]:
    """A bridge built from ``config`` with random weights, and the checkpoint its own
    ``tl_parameters()`` make (config + TransformerLens-format state dict)."""
    try:
        tl.bridge_class()
    except ImportError as exc:
        pytest.skip(f"TransformerLens without TransformerBridge: {exc}")
    torch.manual_seed(seed)
    bridge = tl.build_hooked(tl.tl_config(config)).eval()
    with torch.no_grad():  # non-trivial biases and norms, so that every weight matters
        for param in bridge.parameters():
            param.add_(0.1 * torch.randn_like(param))
    state = {k: v.detach().clone() for k, v in bridge.tl_parameters().items()}
    return bridge, {"config": dict(config), "state_dict": state}


@pytest.mark.parametrize("d_mlp", [None, 32], ids=["attn-only", "mlp"])
def test_tl_parameters_round_trip_through_load_hooked(tmp_path: Path, d_mlp: int | None
                                                      ) -> None:
    bridge, checkpoint = bridge_checkpoint({**ATTN_ONLY, "d_mlp": d_mlp}, seed=4)
    if d_mlp is None:  # what made load_hooked refuse it: zero placeholders for the MLP
        zeros = [k for k in checkpoint["state_dict"] if ".mlp." in k]
        assert zeros and all(not checkpoint["state_dict"][k].any() for k in zeros)
    path = tmp_path / "bridge.pt"
    torch.save(checkpoint, path)
    subject = subject_of(path)
    dataset = tokens_dataset()
    got = capture(subject, dataset, ["blocks.1.attn.hook_z", "blocks.0.attn.hook_pattern"])
    tokens = dataset.fields["tokens"]
    with torch.inference_mode():
        logits, cache = bridge.run_with_cache(tokens)
    assert np.abs(got[None] - logits.numpy()).max() <= TOLERANCE
    for hook in ("blocks.1.attn.hook_z", "blocks.0.attn.hook_pattern"):
        assert np.abs(got[hook] - cache[hook].numpy()).max() <= TOLERANCE, hook
    loaded = subject.model.model.tl_parameters()
    for name, value in checkpoint["state_dict"].items():
        assert torch.equal(loaded[name].detach(), value), name


def test_non_zero_weights_the_config_lacks_are_refused() -> None:
    _bridge, checkpoint = bridge_checkpoint(ATTN_ONLY, seed=5)
    checkpoint["state_dict"]["blocks.0.mlp.W_in"] = torch.ones(16, 64)
    with pytest.raises(KeyError, match=r"unexpected \['blocks\.0\.mlp\.in\.weight'\].*non-zero"):
        tl.load_hooked(checkpoint)


def test_a_failed_load_is_what_every_claim_reports(tmp_path: Path) -> None:
    """Each claim that needs the model reports the loader's error, not "add 'loader:'"."""
    _bridge, checkpoint = bridge_checkpoint(ATTN_ONLY, seed=6)
    checkpoint["state_dict"]["blocks.1.mlp.W_out"] = torch.ones(64, 16)
    torch.save(checkpoint, tmp_path / "broken.pt")
    (tmp_path / "tokens_gen.py").write_text(
        "import torch\n\n\n"
        "def generate(n, seed):\n"
        "    g = torch.Generator().manual_seed(seed)\n"
        "    return {'tokens': torch.randint(0, 11, (n, 12), generator=g)}\n", encoding="utf-8")
    claims = write_claims(tmp_path / "broken.claims.yaml", """
        subject:
          checkpoint: broken.pt
          loader: interp_assert.adapters.transformer_lens:load_hooked
        data:
          seqs: {generate: "tokens_gen.py:generate", n: 4, seed: 3}
        quantities:
          attn0: {activation: blocks.0.attn.hook_pattern}
          attn1: {activation: blocks.1.attn.hook_pattern}
        claims:
          - id: first
            claim: "L0H1: 3 attends to 0..3 ≥ 0.9999"
          - id: second
            claim: "L1H0: 3 attends to 0..3 ≥ 0.9999"
          - id: third
            claim: "max(attn1) ≤ 1"
        """)
    results = {r.claim_id: r for r in api.load(claims).run()}
    assert {r.status for r in results.values()} == {"error"}
    for name, result in results.items():
        message = str(result.error)
        assert "add 'loader:'" not in message, name
        assert "blocks.1.mlp.out.weight" in message and "load_hooked" in message, (name,
                                                                                   message)
        others = {"first", "second", "third"} - {name}
        assert not any(f"claim '{other}'" in message for other in others), message
