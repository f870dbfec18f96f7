"""Failure plots say what they should: the drawn artists (red outlines at exactly the failing
elements, found independently with numpy; "NaN" shown for NaN values; legends) are inspected on
the Axes, as ``output/plotting.py`` draws them (Agg backend), never as pixels."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import claim_file_text, save_checkpoint, tiny_state_dict

import interp_assert as ia
from interp_assert.claims import parse_claim
from interp_assert.claims.plots import FAIL, legend_texts
from interp_assert.errors import ClaimFailed

pytestmark = pytest.mark.usefixtures("heavy_modules_loaded")

ROOT = Path(__file__).parents[1]
LABELS = ([f"X{i}" for i in range(10)] + ["+"] + [f"Y{i}" for i in range(10)] + ["="]
          + [f"A{i}" for i in range(11)])


def draw(claim: Any, outcome: Any) -> Any:
    """The claim's plot on a fresh Agg figure, as ``save_plot`` draws it; returns the Axes."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.5, 5.0), dpi=100, layout="constrained")
    ax = figure.add_subplot()
    getattr(claim, "claim", claim).plot(outcome, ax)  # a parsed claim, or the claim itself
    figure.canvas.draw()  # lays the figure out, as saving does: drawing must not fail
    return ax


def outlined(ax: Any, color: str) -> set[tuple[int, int]]:
    """(row, column) of every unfilled one-cell rectangle with edge colour ``color``."""
    from matplotlib.colors import to_rgba
    from matplotlib.patches import Rectangle

    cells = set()
    for patch in ax.patches:
        if isinstance(patch, Rectangle) and not patch.get_fill() and \
                patch.get_width() == 1 and patch.get_height() == 1 and \
                patch.get_edgecolor() == to_rgba(color):
            x, y = patch.get_xy()
            cells.add((round(y + 0.5), round(x + 0.5)))
    return cells


def failed(sentence: str, subject: Any) -> tuple[Any, Any]:
    """(claim, outcome) of a claim that must fail."""
    with pytest.raises(ClaimFailed) as info:
        ia.check(sentence, subject)
    parsed = parse_claim(sentence)
    return getattr(parsed, "claim", parsed), info.value.result.outcome


def labelled(values: np.ndarray, *axes: tuple[str, tuple[str, ...] | None]) -> Any:
    from interp_assert.labels import Axis, Labelled

    return Labelled(values, tuple(Axis(name, labels) for name, labels in axes))


def cos_matrix(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=1)
    return rows @ rows.T / np.outer(norms, norms)


# ---- cluster and orthogonal ------------------------------------------------------------------
def test_cluster_outlines_exactly_the_failing_pairs_in_red(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "model.pt")
    weights = tiny_state_dict()["blocks.0.mlp.W_out"].double().numpy()
    members = [0, 1, 3, 5, 7]
    cos = cos_matrix(weights[members])
    expected = {(i, j) for i in range(5) for j in range(5) if i != j and not cos[i, j] > 0.5}
    assert expected and len(expected) < 20  # some pairs hold, some fail
    path = tmp_path / "c.claims.yaml"
    path.write_text(claim_file_text("""
        - id: c
          claim: N0, N1, N3, N5, N7 cluster with cos > 0.5
          on: neurons
        """), encoding="utf-8")
    result = ia.load(path).run()[0]
    assert result.status == "fails"
    ax = draw(parse_claim(result.sentence), result.outcome)
    assert outlined(ax, FAIL) == expected
    assert not outlined(ax, "lime")  # green outlines read as "fine"
    texts = legend_texts(ax)
    assert "the 5 members" in texts
    assert "failing member pair (cos not > 0.5)" in texts


def test_cluster_with_a_zero_vector_shows_its_nan_cells(tmp_path: Path) -> None:
    vectors = np.array([[1.0, 0.0, 0.2], [0.9, 0.1, 0.0], [0.0, 0.0, 0.0]])
    subject = ia.subject(quantities={"v": labelled(vectors, ("item", ("a", "b", "z")),
                                                   ("d", None))})
    claim, outcome = failed("a, b, z of v cluster with cos > 0.5", subject)
    ax = draw(claim, outcome)
    nan_texts = [(round(t.get_position()[1]), round(t.get_position()[0])) for t in ax.texts
                 if t.get_text() == "NaN"]
    with np.errstate(invalid="ignore"):
        expected = {tuple(map(int, c)) for c in np.argwhere(np.isnan(cos_matrix(vectors)))}
    assert set(nan_texts) == expected == {(2, 0), (2, 1), (2, 2), (0, 2), (1, 2)}
    assert any(p.get_gid() == "nan" and p.get_hatch() for p in ax.patches)
    assert any("NaN cos" in text for text in legend_texts(ax))


def test_orthogonal_outlines_the_overlapping_pairs(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "model.pt")
    weights = tiny_state_dict()["blocks.0.mlp.W_out"].double().numpy()
    members = [0, 2, 4, 6]
    overlap = np.abs(cos_matrix(weights[members]))
    expected = {(i, j) for i in range(4) for j in range(4) if i != j and overlap[i, j] > 0.3}
    assert expected
    path = tmp_path / "o.claims.yaml"
    path.write_text(claim_file_text("""
        - id: o
          claim: N0, N2, N4, N6 orthogonal within 0.3
          on: neurons
        """), encoding="utf-8")
    result = ia.load(path).run()[0]
    ax = draw(parse_claim(result.sentence), result.outcome)
    assert outlined(ax, FAIL) == expected
    assert not [t for t in ax.texts if t.get_text() == "NaN"]  # the blank diagonal is no NaN
    assert legend_texts(ax) == ["failing pair: |cos| over 0.3"]


# ---- NaN values ------------------------------------------------------------------------------
def test_a_nan_value_says_so_on_the_plot() -> None:
    subject = ia.subject(quantities={"x": np.array(np.nan), "v": np.array([0.5, np.nan, 2.0])})
    claim, outcome = failed("x >= 0", subject)
    ax = draw(claim, outcome)
    assert any("NaN" in t.get_text() and "never passes" in t.get_text() for t in ax.texts)
    assert "NaN (never passes)" in legend_texts(ax)
    claim, outcome = failed("all of v > 1", subject)
    ax = draw(claim, outcome)
    nan_rows = [round(t.get_position()[1]) for t in ax.texts if t.get_text() == "NaN"]
    assert nan_rows == [1]  # only the NaN element, drawn where its bar would be
    colors = [tuple(bar.get_facecolor()) for bar in ax.containers[0]]
    from matplotlib.colors import to_rgba

    assert colors[0] == to_rgba(FAIL) and colors[2] != to_rgba(FAIL)  # 0.5 fails, 2.0 holds
    assert {"measured: holds", "measured: fails", "bound 1"} <= set(legend_texts(ax))


# ---- rankings and the spectrum ---------------------------------------------------------------
def test_top_k_colours_each_claimed_label_by_its_own_verdict() -> None:
    values = np.array([0.1, 0.9, 0.5, 0.7, 0.3])
    subject = ia.subject(quantities={"q": labelled(values, ("unit", tuple("abcde")))})
    claim, outcome = failed("b, e in top 2 of q", subject)
    ax = draw(claim, outcome)
    from matplotlib.colors import to_rgba

    order = np.argsort(-values)
    colors = {"abcde"[i]: tuple(bar.get_facecolor()) for i, bar in zip(order, ax.patches)}
    assert colors["e"] == to_rgba(FAIL)  # ranks 4th
    assert colors["b"] != to_rgba(FAIL) and colors["d"] != to_rgba(FAIL)
    assert {"claimed: holds", "claimed: fails", "top 2 cut-off"} <= set(legend_texts(ax))


def test_effective_rank_counts_the_nonzero_singular_values() -> None:
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(64, 16)) @ rng.normal(size=(16, 64))
    singular = np.linalg.svd(matrix, compute_uv=False)
    energy = np.cumsum(singular**2) / np.sum(singular**2)
    k = int(np.searchsorted(energy, 0.9) + 1)
    assert np.linalg.matrix_rank(matrix) == 16
    subject = ia.subject(quantities={"W": labelled(matrix, ("a", None), ("b", None))})
    claim, outcome = failed(f"effective rank of W at 90% energy <= {k - 1}", subject)
    assert outcome.value == k
    assert f"{k} of 64 singular values (16 nonzero) hold 0.9 of the energy" in outcome.measured
    ax = draw(claim, outcome)
    from matplotlib.colors import to_rgba

    colors = [tuple(bar.get_facecolor()) for bar in ax.containers[0]]
    assert colors[:k] == [to_rgba(FAIL)] * k and to_rgba(FAIL) not in colors[k:]
    assert colors[16:] == [to_rgba("lightgrey")] * 48
    texts = legend_texts(ax.figure.axes[-1])  # the energy axis holds the legend
    assert f"top {k}: the effective rank (fails)" in texts
    assert "zero singular values (48; the matrix has rank 16)" in texts
    assert f"claimed: effective rank <= {k - 1}" in texts


# ---- attention templates ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def adder_pattern(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A small random transformer, and its layer-0 pattern on 40 sums (numpy hooks)."""
    import torch

    sys.path.insert(0, str(ROOT))
    from examples import tiny_transformer as tiny
    from examples.adder import data as adder

    torch.manual_seed(1)
    config = tiny.TinyConfig(n_layers=1, d_model=32, n_heads=2, d_head=8, d_mlp=None,
                             d_vocab=64, n_ctx=48)
    model = tiny.TinyTransformer(config)
    with torch.no_grad():
        model.blocks[0].attn.W_Q.mul_(4.0)
        model.blocks[0].attn.W_K.mul_(4.0)
    folder = tmp_path_factory.mktemp("plots")
    tiny.save_checkpoint(folder / "model.pt", model)
    model.eval()
    tokens = adder.generate(n=40, seed=2)["tokens"]
    seen: list[np.ndarray] = []
    hook = model.blocks[0].attn.hook_pattern.register_forward_hook(
        lambda _m, _i, output: seen.append(output.detach().double().numpy()))
    with torch.no_grad():
        model(tokens)
    hook.remove()
    return {"folder": folder, "pattern": seen[0]}


def test_an_attention_template_outlines_every_failing_instance(
        adder_pattern: dict[str, Any]) -> None:
    mean = adder_pattern["pattern"][:, 1].mean(0)  # head L0H1, batch mean
    scores = [mean[LABELS.index(f"A{i}"), LABELS.index(f"X{i}")] for i in range(10)]
    threshold = float(np.median(scores))
    sentence = f"L0H1: A{{i}} attends to X{{i}} >= {threshold:.9f} for i in 0..9"
    folder = adder_pattern["folder"]
    path = folder / "t.claims.yaml"
    path.write_text(yaml.safe_dump({
        "subject": {"checkpoint": "model.pt", "loader": "examples.tiny_transformer:load",
                    "python_path": str(ROOT)},
        "data": {"sums": {"generate": "examples.adder.data:generate", "n": 40, "seed": 2,
                          "batch_size": 40, "positions": "X0..X9, +, Y0..Y9, =, A0..A10"}},
        "quantities": {"pattern0": {"activation": "blocks.0.attn.hook_pattern"}},
        "claims": [{"id": "t", "claim": sentence}]}, allow_unicode=True), encoding="utf-8")
    result = ia.load(path).run()[0]
    assert result.status == "fails"
    cells = {i: (LABELS.index(f"A{i}"), LABELS.index(f"X{i}")) for i in range(10)}
    failing = {cells[i] for i in range(10) if not scores[i] >= threshold}
    assert 2 <= len(failing) <= 8
    ax = draw(parse_claim(result.sentence).claim, result.outcome)
    assert outlined(ax, FAIL) == failing
    assert outlined(ax, "black") == set(cells.values()) - failing
    texts = legend_texts(ax)
    tags = [f"i={i}" for i in range(10) if not scores[i] >= threshold]
    assert f"the target cells: fails ({', '.join(tags)})" in texts
    assert any(text.startswith("the target cells: holds (") for text in texts)


def test_a_comparison_template_draws_one_bar_per_instance() -> None:
    values = np.array([0.5, 2.0, np.nan, 3.0])
    subject = ia.subject(quantities={"v": labelled(values, ("unit", ("u0", "u1", "u2", "u3")))})
    claim, outcome = failed("all of u{i} of v > 1 for i in 0..3", subject)
    assert outcome.measured.startswith("2/4 instances hold")
    ax = draw(claim, outcome)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["i=0", "i=1", "i=2", "i=3"]
    from matplotlib.colors import to_rgba

    colors = [tuple(bar.get_facecolor()) for bar in ax.containers[0]]
    fails = [c == to_rgba(FAIL) for c in colors]
    assert fails == [not v > 1 for v in values]  # NaN fails, and is labelled NaN
    assert [round(t.get_position()[1]) for t in ax.texts if t.get_text() == "NaN"] == [2]


def test_stays_marks_every_failing_step_and_the_nan_steps() -> None:
    steps = np.arange(0, 1000, 100)
    values = np.array([0.2, 0.5, 0.95, np.nan, 0.97, 0.85, 0.99, 0.99, 0.7, 0.99])
    subject = ia.subject(quantities={"acc": labelled(values, ("step", tuple(map(str, steps))))})
    claim, outcome = failed("acc stays ≥ 0.9 from step 200", subject)
    ax = draw(claim, outcome)
    failing = [line for line in ax.lines if line.get_marker() == "x"]
    assert len(failing) == 1
    window = steps >= 200
    with np.errstate(invalid="ignore"):
        expected = steps[window & ~(values >= 0.9)]  # NaN fails
    assert list(failing[0].get_xdata()) == list(expected) == [300, 500, 800]
    assert failing[0].get_color() == FAIL
    texts = legend_texts(ax)
    assert "failing steps (3)" in texts
    assert "NaN/inf value (1 steps; never passes)" in texts
