"""Fault isolation inside a shared forward pass: a hook that never fires, a sink that raises,
an unused broken quantity and a deselected broken claim each leave every other claim's value
intact (checked against a direct torch computation), and the broken one is named."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("heavy_modules_loaded")

USER_CODE = '''
import torch
from torch import nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10, 8)
        self.block = nn.Linear(8, 8)
        self.unused = nn.Linear(8, 8)  # a module the forward pass never calls
        self.head = nn.Linear(8, 10)

    def forward(self, tokens):
        return self.head(torch.relu(self.block(self.embed(tokens))))


def load(state):
    model = Model()
    model.load_state_dict(state)
    return model


def generate(n, seed):
    generator = torch.Generator().manual_seed(seed)
    return {"tokens": torch.randint(0, 10, (n, 6), generator=generator)}


def broken(logits, batch):
    raise RuntimeError("this metric is broken")


def mean_logit(logits, batch):
    return logits.mean(dim=(1, 2))
'''

HEADER = """
subject:
  checkpoint: model.pt
  loader: users.py:load
data:
  toks: {generate: "users.py:generate", n: 32, seed: 0}
"""

MAIN = HEADER + """
quantities:
  emb: {activation: embed}
  hidden: {activation: block}
  ghost: {activation: unused}
  raising: {metric: "users.py:broken"}
  logit: {metric: "users.py:mean_logit"}
  misspelt: {activation: blocks.9.nothing}
claims:
  - id: embedding
    claim: mean(emb) > -100
  - id: hidden
    claim: mean(hidden) > -100
  - id: never-fires
    claim: mean(ghost) > -100
  - id: sink-raises
    claim: raising > -100
  - id: logit
    claim: logit > -100
  - id: deselected
    claim: mean(misspelt) > -100
"""

OTHER = HEADER + """
quantities:
  emb: {activation: embed}
claims:
  - id: same-pass
    claim: mean(emb) > -100
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    import importlib.util
    import sys

    import torch

    (tmp_path / "users.py").write_text(USER_CODE, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("fault_users", tmp_path / "users.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["fault_users"] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    torch.manual_seed(0)
    torch.save(module.Model().state_dict(), tmp_path / "model.pt")
    (tmp_path / "main.claims.yaml").write_text(textwrap.dedent(MAIN), encoding="utf-8")
    (tmp_path / "other.claims.yaml").write_text(textwrap.dedent(OTHER), encoding="utf-8")
    return tmp_path


def reference(project: Path) -> dict[str, float]:
    """The values computed directly with torch, outside interp-assert."""
    import sys

    import torch

    users = sys.modules["fault_users"]
    model = users.load(torch.load(project / "model.pt", weights_only=True)).eval()
    tokens = users.generate(32, 0)["tokens"]
    with torch.no_grad():
        embedded = model.embed(tokens)
        hidden = model.block(embedded)
        logits = model(tokens)
    return {"embedding": float(embedded.double().mean()), "hidden": float(hidden.double().mean()),
            "logit": float(logits.double().mean(dim=(1, 2)).mean())}


def test_one_broken_sink_fails_only_its_claims(project: Path) -> None:
    from interp_assert.evaluate import forward
    from interp_assert.run.runner import Runner, RunOptions

    runner = Runner(RunOptions(root=project))
    checks = [c for name in ("main", "other")
              for c in runner.checks(runner.load(project / f"{name}.claims.yaml"))
              if c.entry.id != "deselected"]
    forward.FORWARD_PASSES.clear()
    results = {r.claim_id: r for r in runner.run(checks)}
    # one pass served both files; the deselected claim's broken hook was never planned
    assert len(forward.FORWARD_PASSES) == 1
    expected = reference(project)
    for claim_id in ("embedding", "hidden", "logit"):
        result = results[claim_id]
        assert result.status == "holds", result.error
        assert result.outcome.value == pytest.approx(expected[claim_id], abs=1e-6)
    assert results["same-pass"].outcome.value == pytest.approx(expected["embedding"], abs=1e-6)
    ghost = results["never-fires"]
    assert ghost.status == "error"
    assert "hook 'unused' never fired during the forward pass" in str(ghost.error)
    raising = results["sink-raises"]
    assert raising.status == "error" and "this metric is broken" in str(raising.error)
    assert "may be a bug" not in str(ghost.error) + str(raising.error)


def test_a_deselected_broken_claim_and_an_unused_quantity_change_nothing(
        project: Path, pytester: pytest.Pytester) -> None:
    for name in ("main", "other", "users"):
        suffix = ".py" if name == "users" else ".claims.yaml"
        (pytester.path / f"{name}{suffix}").write_bytes((project / f"{name}{suffix}").read_bytes())
    (pytester.path / "model.pt").write_bytes((project / "model.pt").read_bytes())
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-k",
                                           "not deselected and not never and not raises")
    result.assert_outcomes(passed=4)
    everything = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rE")
    everything.assert_outcomes(passed=4, errors=3)
    everything.stdout.fnmatch_lines(["*the model has no module 'blocks.9.nothing'*"])


def test_a_never_firing_transformer_lens_hook_names_its_flag(tmp_path: Path) -> None:
    """TransformerLens computes hook_result only with use_attn_result: the claim that reads it
    says so, and the pattern read in the same pass equals TransformerLens's own."""
    pytest.importorskip("transformer_lens")
    import torch
    from conftest import import_examples

    from interp_assert.evaluate.forward import CaptureSink, _finish, _Refused, run_forward
    from interp_assert.loading.data import Dataset, DatasetSpec
    from interp_assert.loading.subject import LoadedSubject, SubjectSpec

    tiny, _ = import_examples()
    torch.manual_seed(0)
    config = tiny.TinyConfig(n_layers=1, d_model=16, n_heads=2, d_head=8, d_mlp=32,
                             d_vocab=11, n_ctx=12)
    tiny.save_checkpoint(tmp_path / "tiny.pt", tiny.TinyTransformer(config).eval(), step=0)
    subject = LoadedSubject(SubjectSpec(checkpoint=tmp_path / "tiny.pt", loader=(
        "interp_assert.adapters.transformer_lens:load_hooked")))
    tokens = torch.randint(0, 11, (5, 12), generator=torch.Generator().manual_seed(1))
    dataset = Dataset(DatasetSpec("tokens", generate="test", batch_size=2), {"tokens": tokens}, 5)
    sinks = [CaptureSink("blocks.0.attn.hook_result"), CaptureSink("blocks.0.attn.hook_pattern")]
    run_forward(subject, dataset, sinks)
    ghost, pattern = (_finish(sink) for sink in sinks)
    assert isinstance(ghost, _Refused)
    assert "hook 'blocks.0.attn.hook_result' never fired" in str(ghost.error)
    assert "use_attn_result" in ghost.error.hint
    with torch.inference_mode():
        _, cache = subject.model.model.run_with_cache(tokens)
    expected = cache["blocks.0.attn.hook_pattern"].numpy()
    assert abs(pattern - expected).max() < 1e-6


def test_a_model_without_hook_points_lists_its_modules():
    """A module path that does not exist names the modules there are, not an empty list."""
    torch = pytest.importorskip("torch")
    from interp_assert.errors import QuantityError
    from interp_assert.evaluate.forward import find_module

    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU())
    with pytest.raises(QuantityError) as info:
        find_module(model, "blocks.0.attn.hook_z")
    assert info.value.hint.endswith("the model has no hook points; its modules: 0, 1")
    assert "'layout: attention:' rule" in info.value.hint  # how such a model gets hook_z
