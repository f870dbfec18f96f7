"""A claim file whose loader returns an ``nnsight.LanguageModel`` (a tiny GPT-2 with random
weights and a local word-level tokenizer, built offline) measures the numbers the Hugging Face
model itself gives: attention patterns, a module's output and a residual stream."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

pytest.importorskip("nnsight")
torch = pytest.importorskip("torch")

ROOT = Path(__file__).parents[1]
LOADER = '''
from pathlib import Path

from interp_assert.adapters.nnsight import wrap


def load(checkpoint, path):
    """``checkpoint``: the folder's weights as read; ``path``: the folder itself."""
    from nnsight import LanguageModel
    from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast

    folder = Path(path)
    model = GPT2LMHeadModel.from_pretrained(folder, local_files_only=True).eval()
    tokenizer = PreTrainedTokenizerFast.from_pretrained(folder, local_files_only=True)
    return wrap(LanguageModel(model, tokenizer=tokenizer))
'''


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """Every test here runs torch on one thread."""


def tiny_gpt2(folder: Path) -> Any:
    """A random two-layer GPT-2 with its head, and a word-level tokenizer, saved in ``folder``."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    torch.manual_seed(11)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_embd=32, n_layer=2, n_head=4,
                                       n_positions=32, bos_token_id=0, eos_token_id=0)).eval()
    model.save_pretrained(folder)
    words = Tokenizer(models.WordLevel({f"w{i}": i for i in range(50)}, unk_token="w0"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=words, unk_token="w0", pad_token="w0",
                            eos_token="w0", bos_token="w0").save_pretrained(folder)
    return model


def test_language_model_claims_match_the_hf_model(tmp_path: Path) -> None:
    from transformers import GPT2LMHeadModel

    import interp_assert as api

    folder = tmp_path / "gpt2"
    tiny_gpt2(folder)
    tokens = np.random.default_rng(5).integers(0, 50, size=(6, 9))
    np.savez(tmp_path / "tokens.npz", tokens=tokens)
    (tmp_path / "lm_loader.py").write_text(LOADER, encoding="utf-8")
    direct = GPT2LMHeadModel.from_pretrained(folder, attn_implementation="eager").eval()
    mlp: dict[str, Any] = {}
    handle = direct.transformer.h[0].mlp.register_forward_hook(
        lambda _m, _i, out: mlp.setdefault("out", out.detach().clone()))
    with torch.inference_mode():
        out = direct(input_ids=torch.as_tensor(tokens), output_attentions=True,
                     output_hidden_states=True)
    handle.remove()
    previous = torch.diagonal(out.attentions[1][:, 2].double(), offset=-1, dim1=1, dim2=2)
    expected = {"pattern": float(previous.mean()),  # every (sample, query ≥ 1) pair pooled
                "pattern-mean": float(out.attentions[0].double().mean()),
                "mlp": float(mlp["out"].double().mean()),
                "resid": float(out.hidden_states[1].double().norm(dim=-1).max())}
    raw = {"subject": {"checkpoint": str(folder), "loader": "lm_loader:load",
                       "python_path": [str(ROOT), str(tmp_path)]},
           "data": {"toks": {"file": "tokens.npz", "batch_size": 4}},
           "quantities": {"attn1": {"activation": "blocks.1.attn.hook_pattern"},
                          "attn0": {"activation": "blocks.0.attn.hook_pattern"},
                          "mlp0": {"activation": "transformer.h.0.mlp"},
                          "resid": {"activation": "blocks.0.hook_resid_post"}},
           "claims": [
               {"id": "pattern", "claim": "L1H2 attends to the previous token ≥ "
                                          f"{expected['pattern'] - 1e-5}"},
               {"id": "pattern-mean", "claim": "mean(attn0) ≥ 0"},
               {"id": "mlp", "claim": "mean(mlp0) ≥ -100"},
               {"id": "resid", "claim": "max(norm(resid)) ≥ 0"},
               {"id": "too-high",
                "claim": f"L1H2 attends to the previous token ≥ {expected['pattern'] + 1e-4}"}]}
    path = tmp_path / "lm.claims.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    results = {r.claim_id: r for r in api.load(path).run()}
    gaps: dict[str, float] = {}
    for key, value in expected.items():
        result = results[key]
        assert result.error is None, (key, result.error)
        assert result.status == "holds", key
        gaps[key] = abs(result.outcome.value - value)
    print("max abs differences from the HF model:", gaps)
    assert max(gaps.values()) <= 1e-6, gaps
    assert results["too-high"].status == "fails"
