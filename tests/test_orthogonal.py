"""The worked-example claim kind: ``N0, N2 orthogonal within 0.1`` against numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import claim_file_text, save_checkpoint, tiny_state_dict

import interp_assert as ia
from interp_assert.claims import parse_claim

pytestmark = pytest.mark.usefixtures("heavy_modules_loaded")


def abs_cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(abs(a @ b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_round_trip() -> None:
    parsed = parse_claim("N0, N2, N5 orthogonal within 0.25")
    assert str(parsed) == "N0, N2, N5 orthogonal within 0.25"
    assert str(parse_claim(str(parsed))) == str(parsed)


def test_value_is_the_largest_pairwise_abs_cos(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "model.pt")
    weights = tiny_state_dict()["blocks.0.mlp.W_out"].double().numpy()
    members = (2, 5, 7)
    expected = max(abs_cos(weights[i], weights[j]) for i in members for j in members if i < j)
    path = tmp_path / "o.claims.yaml"
    path.write_text(claim_file_text(f"""
        - id: loose
          claim: N2, N5, N7 orthogonal within {expected + 1e-9}
        - id: tight
          claim: N2, N5, N7 orthogonal within {expected - 1e-6}
        - id: aligned
          claim: N0, N1 orthogonal within 0.5
        """), encoding="utf-8")
    results = {r.claim_id: r for r in ia.load(path).run(plot_dir=tmp_path / "plots")}
    assert results["loose"].status == "holds"
    assert results["loose"].outcome.value == pytest.approx(expected, abs=1e-12)
    tight = results["tight"]
    assert tight.status == "fails" and tight.outcome.value == pytest.approx(expected, abs=1e-12)
    aligned = results["aligned"]
    assert aligned.status == "fails"
    assert aligned.outcome.value == pytest.approx(abs_cos(weights[0], weights[1]), abs=1e-12)
    report = ia.format_result(aligned)
    assert f"{path.name}:18:12: N0, N1 orthogonal within 0.5" in report.split("\n")[0]
    assert "measured max |cos| 0.9994 (N0, N1); 1 of 1 pairs overlap" in report
    assert "expected every pair |cos| <= 0.5" in report
    assert aligned.plot is not None and aligned.plot.exists()


def test_a_negative_or_nan_tolerance_is_an_error(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "model.pt")
    path = tmp_path / "o.claims.yaml"
    path.write_text(claim_file_text("""
        - id: negative
          claim: N2, N5 orthogonal within -0.1
        - id: nan
          claim: N2, N5 orthogonal within 0/0
        """), encoding="utf-8")
    for result in ia.load(path).run():
        assert result.status == "error"
        assert "the tolerance must be a number >= 0" in str(result.error)
