"""Weight claims read the checkpoint without building the loader's model, hold one float64
copy of the weights they stack, and give the numbers numpy gives.

References: numpy on the saved state dict (``np.linalg.norm`` per row, the stacked W_out).
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from interp_assert.claims.compare import element_values
from interp_assert.evaluate.quantities import functions
from interp_assert.labels import Axis, Labelled
from interp_assert.loading.subject import SubjectSpec, get_subject
from interp_assert.run.runner import Runner, RunOptions, load_claim_file

ROOT = Path(__file__).parents[1]
LAYERS, D_MLP, D_MODEL = 3, 24, 16

LOADER = '''
from pathlib import Path

MARK = Path(__file__).with_name("loader-called")


def load(checkpoint):
    MARK.write_text("built")  # the test reads whether the model was built
    import sys
    sys.path.insert(0, {root!r})
    from examples.tiny_transformer import load as build
    return build(checkpoint)
'''


@pytest.fixture
def project(tmp_path: Path, isolated_imports: None) -> dict[str, Any]:
    """A random 3-layer TinyTransformer checkpoint, a loader that marks when it runs, and
    the state dict as float64 numpy arrays."""
    import torch

    sys.path.insert(0, str(ROOT))
    from examples.tiny_transformer import TinyConfig, TinyTransformer, save_checkpoint

    torch.manual_seed(5)
    model = TinyTransformer(TinyConfig(n_layers=LAYERS, d_model=D_MODEL, n_heads=2, d_head=4,
                                       d_mlp=D_MLP, d_vocab=20, n_ctx=12))
    save_checkpoint(tmp_path / "model.pt", model)
    (tmp_path / "usermod_weight_loader.py").write_text(LOADER.format(root=str(ROOT)))
    sd = {k: v.double().numpy() for k, v in model.state_dict().items()}
    return {"folder": tmp_path, "sd": sd}


def _run(folder: Path, claims: str, quantities: str = "") -> list[Any]:
    text = ("subject:\n  checkpoint: model.pt\n  loader: usermod_weight_loader:load\n"
            f"  python_path: [.]\n{quantities}claims:\n"
            + textwrap.indent(textwrap.dedent(claims).strip("\n"), "  ") + "\n")
    (folder / "w.claims.yaml").write_text(text)
    runner = Runner(RunOptions(plots="never", root=folder, artifacts=folder / "artifacts"))
    return list(runner.run(runner.checks(load_claim_file(folder / "w.claims.yaml"))))


def test_weight_claim_over_every_neuron_reads_the_checkpoint_alone(
        project: dict[str, Any]) -> None:
    """``all of norms >= 0`` with ``norms: norm(W_out)``: one row per neuron L{l}N{i}, each the
    row norm numpy gives on the stacked state dict; the loader never runs."""
    folder, sd = project["folder"], project["sd"]
    results = _run(folder, "- {id: norms, claim: all of norms >= 0}",
                   "quantities:\n  norms: norm(W_out)\n")
    assert [r.status for r in results] == ["holds"]
    assert not (folder / "loader-called").exists()
    w_out = np.concatenate([sd[f"blocks.{layer}.mlp.W_out"] for layer in range(LAYERS)])
    want = {f"L{layer}N{i}": float(np.linalg.norm(sd[f"blocks.{layer}.mlp.W_out"][i]))
            for layer in range(LAYERS) for i in range(D_MLP)}
    got = {row["element"]: row["value"] for row in results[0].outcome.rows}
    assert list(got) == list(want)
    assert max(abs(got[k] - want[k]) for k in want) < 1e-12
    assert len(got) == w_out.shape[0] == LAYERS * D_MLP


def test_composition_reads_the_checkpoint_alone(project: dict[str, Any]) -> None:
    """A circuit claim (K-composition) reads its weights from the state dict; the layer probe
    past the last layer does not build the loader's model."""
    folder = project["folder"]
    results = _run(folder, "- {id: k, claim: \"L0H0 → L2H0 ranks in top 100 in "
                           "K-composition\"}")
    assert [r.status for r in results] == ["holds"]
    assert not (folder / "loader-called").exists()


def test_a_forward_pass_still_builds_the_model(project: dict[str, Any]) -> None:
    """The loader runs when the model is needed (weights by a name the checkpoint lacks)."""
    folder = project["folder"]
    subject = get_subject(SubjectSpec(folder / "model.pt", "usermod_weight_loader:load",
                                      search_path=(folder,)))
    assert not subject.has_weight("no_such_weight")
    assert (folder / "loader-called").exists()
    assert subject.has_weight("blocks.0.mlp.W_out", model=False)
    assert not subject.has_weight("W_out", model=False)


def test_blocked_norm_is_numpy_norm_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    """norm() of rows taken in blocks equals np.linalg.norm of the whole array bit for bit
    (each row summed the same way), for 2-D and 3-D values, with a block of a few rows."""
    gen = np.random.default_rng(0)
    monkeypatch.setattr(functions, "_NORM_BLOCK", 3 * 40 * 8)  # 3 rows of 40 float64
    for shape in ((11, 40), (2, 7, 40)):
        values = gen.standard_normal(shape)
        axes = tuple(Axis(f"a{i}") for i in range(len(shape)))
        got = functions.norm(Labelled(values, axes, "x"))
        assert got.shape == shape[:-1]
        assert np.array_equal(got.values, np.linalg.norm(values, axis=-1))


def test_element_values_name_rows_and_their_elements() -> None:
    """One value per row by its label; longer rows as label[j]; as floats."""
    assert element_values(["a", "b"], np.array([[1], [2]], dtype=np.int64)) == [
        ("a", 1.0), ("b", 2.0)]
    pairs = element_values(["a", "b"], np.arange(4, dtype=np.float32).reshape(2, 2))
    assert pairs == [("a[0]", 0.0), ("a[1]", 1.0), ("b[0]", 2.0), ("b[1]", 3.0)]
    assert all(type(v) is float for _, v in pairs)
    assert element_values([], np.zeros((0, 3))) == []
