"""A result in a notebook: one-line repr, ``_repr_html_`` with verdict, evidence and plot, and
``check()``'s plots named after the claim."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import save_checkpoint, tiny_state_dict

import interp_assert as ia
from interp_assert.claims.outcome import fmt
from interp_assert.drivers import api


@pytest.fixture
def subject(tmp_path: Path) -> ia.Subject:
    save_checkpoint(tmp_path / "model.pt")
    return ia.subject(tmp_path / "model.pt", quantities={
        "neurons": {"weight": "blocks.0.mlp.W_out", "labels": "N0..N15"}})


def cosines() -> dict[tuple[str, str], float]:
    w = tiny_state_dict()["blocks.0.mlp.W_out"].double().numpy()
    unit = {f"N{i}": w[i] / np.linalg.norm(w[i]) for i in (0, 1, 4)}
    return {(a, b): float(unit[a] @ unit[b]) for a, b in (("N0", "N1"), ("N0", "N4"),
                                                          ("N1", "N4"))}


def test_failing_check_plots_to_a_temporary_file_named_after_the_claim(subject) -> None:
    with pytest.raises(ia.ClaimFailed) as info:
        ia.check("N0, N1, N4 cluster with cos > 0.9", subject, id="n4-joins", plots="failed")
    result = info.value.result
    assert result.plot == api._plot_folder() / "n4-joins.png"
    assert result.plot.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ia.ClaimFailed) as info:
        ia.check("N0, N1, N4 cluster with cos > 0.95", subject, plots="failed")
    assert info.value.result.plot.name == "n0-n1-n4-cluster-with-cos-0-95.png"
    assert ia.check("N0, N1 cluster with cos > 0.9", subject, plots="failed").plot is None
    with pytest.raises(ia.ClaimFailed) as info:  # outside notebooks, no plot unless asked
        ia.check("N0, N1, N4 cluster with cos > 0.95", subject)
    assert info.value.result.plot is None


def test_repr_is_one_line_and_html_shows_verdict_evidence_and_plot(subject, tmp_path) -> None:
    with pytest.raises(ia.ClaimFailed) as info:
        ia.check("N0, N1, N4 cluster with cos > 0.9", subject, id="n4-joins", plot_dir=tmp_path)
    result = info.value.result
    cos = cosines()
    low = min(cos.values())
    text = repr(result)
    assert "\n" not in text and len(text) < 300
    assert text.startswith("<ClaimResult 'n4-joins': does not hold: measured min pairwise cos "
                           f"{fmt(low)} (N1, N4)")
    page = result._repr_html_()
    assert "does not hold: measured min pairwise cos" in page
    assert "<code>N0, N1, N4 cluster with cos &gt; 0.9</code>" in page
    # the evidence table: one row per pair, failing rows first, the values of numpy
    cells = re.findall(r"<tr>(.*?)</tr>", page)
    rows = [re.findall(r"<td>(.*?)</td>", row) for row in cells[1:]]
    assert [(a, b, mark) for a, b, _, mark in rows] == [
        ("N0", "N4", "✗"), ("N1", "N4", "✗"), ("N0", "N1", "✓")]
    for a, b, value, _ in rows:
        assert float(value) == pytest.approx(cos[(a, b)], abs=5e-4)
    image = re.search(r'src="data:image/png;base64,([^"]+)"', page)
    assert image is not None
    assert base64.b64decode(image[1]) == result.plot.read_bytes()


def test_a_holding_result_in_a_notebook_has_its_plot(subject, monkeypatch) -> None:
    monkeypatch.setattr(api, "_in_notebook", lambda: True)  # as inside a Jupyter kernel
    result = ia.check("N0, N1 cluster with cos > 0.9", subject)
    assert result.plot is not None and "data:image/png;base64," in result._repr_html_()
    assert repr(result).startswith("<ClaimResult 'n0-n1-cluster-with-cos-0-9': holds: "
                                   "measured min pairwise cos")
