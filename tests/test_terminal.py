"""pytest's terminal output of claims: the ``-r`` line, ``--tb`` styles and ``-v``'s why."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import claim_file_text, save_checkpoint, tiny_state_dict

from interp_assert.claims.outcome import fmt

CLAIMS = """
- id: aligned
  claim: N0, N1, N3 cluster with cos > 0.9
  why: the three neurons write the same direction
- id: mixed
  claim: N0, N1, N4 cluster with cos > 0.9
  why: >
    N4 was thought to
    write it too
- id: broken
  claim: N0,N1 cluster with cos >
"""

pytestmark = pytest.mark.usefixtures("heavy_modules_loaded")


def min_cos() -> tuple[float, str]:
    """The smallest pairwise cosine of N0, N1, N4 and its pair, straight from the weights."""
    w = tiny_state_dict()["blocks.0.mlp.W_out"].double().numpy()
    rows = {"N0": w[0], "N1": w[1], "N4": w[4]}
    pairs = {(a, b): float(rows[a] @ rows[b] / np.linalg.norm(rows[a]) / np.linalg.norm(rows[b]))
             for a, b in (("N0", "N1"), ("N0", "N4"), ("N1", "N4"))}
    (a, b), value = min(pairs.items(), key=lambda item: item[1])
    return value, f"({a}, {b})"


@pytest.fixture
def project(pytester: pytest.Pytester) -> Path:
    save_checkpoint(pytester.path / "model.pt")
    path = pytester.path / "model.claims.yaml"
    path.write_text(claim_file_text(CLAIMS), encoding="utf-8")
    return path


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:randomly", "-p", "no:cacheprovider",
                              "--interp-plots=never", *args)


def claim_line(path: Path, needle: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_summary_line_carries_measured_against_expected(pytester, project):
    value, pair = min_cos()
    result = run(pytester, "-rfE")
    result.assert_outcomes(passed=1, failed=1, errors=1)
    expected = (f"FAILED model.claims.yaml::mixed - min pairwise cos {fmt(value)} {pair}; "
                f"expected every pair cos > 0.9")
    lines = result.outlines
    failed = next(line for line in lines if line.startswith("FAILED "))
    # cut only at the terminal's width, after the measured value
    assert expected.startswith(failed.removesuffix("...")), failed
    assert fmt(value) in failed
    error = next(line for line in lines if line.startswith("ERROR "))
    assert error.startswith("ERROR model.claims.yaml::broken - claim 'broken': ")
    assert "mixed - claim 'mixed'" not in result.stdout.str()


def test_summary_line_is_whole_on_ci(pytester, project, monkeypatch):
    monkeypatch.setenv("CI", "true")  # pytest does not cut summary lines on CI
    value, pair = min_cos()
    result = run(pytester, "-rf", "-k", "mixed")
    result.stdout.fnmatch_lines([f"FAILED model.claims.yaml::mixed - min pairwise cos "
                                 f"{fmt(value)} {pair}; expected every pair cos > 0.9"])


def test_tb_line_is_one_line_per_claim(pytester, project):
    value, pair = min_cos()
    result = run(pytester, "--tb=line", "-k", "mixed")
    out = result.outlines
    line = claim_line(project, "N0, N1, N4 cluster")
    start = out.index(next(x for x in out if "FAILURES" in x))
    assert out[start + 1] == (f"model.claims.yaml:{line}: min pairwise cos {fmt(value)} "
                              f"{pair}; expected every pair cos > 0.9")
    assert "short test summary" in out[start + 2]
    assert "cos      holds" not in result.stdout.str()  # no evidence table


def test_tb_no_and_short(pytester, project):
    result = run(pytester, "--tb=no", "-k", "mixed")
    assert "FAILURES" not in result.stdout.str() and "claim 'mixed'" not in result.stdout.str()
    result = run(pytester, "--tb=short", "-k", "mixed")
    out = result.stdout.str()
    assert "claim 'mixed' at model.claims.yaml:" in out
    assert "(3 evidence rows not shown)" in out and "cos      holds" not in out
    result = run(pytester, "--tb=long", "-k", "mixed")
    result.stdout.fnmatch_lines(["*a*b*cos*holds*"])


def test_verbose_shows_why(pytester, project):
    result = run(pytester, "-v", "--tb=short")
    lines = result.outlines
    aligned = next(i for i, x in enumerate(lines) if "::aligned PASSED" in x)
    assert lines[aligned + 1] == "    why: the three neurons write the same direction"
    mixed = next(i for i, x in enumerate(lines) if "::mixed FAILED" in x)
    assert lines[mixed + 1] == "    why: N4 was thought to write it too"
    assert "  why: N4 was thought to write it too" in result.stdout.str().split("FAILURES")[1]
    quiet = run(pytester)
    assert "why:" not in quiet.stdout.str()


def test_cli_verbose_shows_why(project, capsys, monkeypatch):
    from interp_assert.drivers.cli import main

    monkeypatch.chdir(project.parent)
    assert main(["check", "-v", "-q", "--plots", "never", "--no-cache", str(project.name)]) == 2
    out = capsys.readouterr().out
    assert "claim 'aligned' at model.claims.yaml:" in out
    assert "  why: the three neurons write the same direction" in out
    assert "  why: N4 was thought to write it too" in out
