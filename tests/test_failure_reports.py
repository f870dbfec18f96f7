"""Every built-in weight-level claim kind, made to fail: its report names the file, the line,
the measured and the expected values, and its plot file exists."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import claim_file_text, save_checkpoint, write_claims

import interp_assert
from interp_assert.output.text import format_result

FAILING = {
    "compare": "norm(N0) > 1000",
    "aggregate": "all of N0, N1, N2 norm > 1000",
    "cluster": "N0, N1, N2 cluster with cos > 0.9",
    "monotone": "A·V monotone decreasing over digits",
    "top-k": "N2 in top 1 of norm(neurons)",
    "ranks-above": "0 ranks above 9 in A·V",
    "argmax": "argmax of A·V over digits is 0",
    "reaches": "A·V reaches 5 by digit 3",
    "final": "final A·V < 0",
    "close": "A·V[0:2] ≈ [100, 100, 100] within 0.1",
    "cluster-of": "the cluster of N0 at |cos| > 0.999 includes N1, N2 and excludes N3",
    "circle": "pca(neurons[N0:N9], 2) lies on a circle within 0.001",
    "links": "cos(neurons) > 0.99 links N0 to N1, N2",
}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("failing")
    save_checkpoint(folder / "model.pt")
    claims = "\n".join(f"- id: {key}\n  claim: '{text}'" for key, text in FAILING.items())
    path = write_claims(folder / "failing.claims.yaml", claim_file_text(claims))
    run = interp_assert.load(path).run(plot_dir=folder / "plots")
    return path, {r.claim_id: r for r in run}


@pytest.mark.parametrize("claim_id", list(FAILING))
def test_failure_report_and_plot(results: tuple[Path, dict], claim_id: str) -> None:
    path, by_id = results
    result = by_id[claim_id]
    report = format_result(result)
    assert result.status == "fails", report
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1)
                if text.strip() == f"- id: {claim_id}") + 1
    assert f"{path.name}:{line}:" in report
    assert "measured" in report and "expected" in report
    assert result.outcome is not None and result.outcome.measured in report
    assert result.plot is not None and result.plot.exists()
    assert result.plot.read_bytes()[:4] == b"\x89PNG"
