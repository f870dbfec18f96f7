"""Claim files checked without a model: ``pytest --collect-only`` and ``interp-assert lint``."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from interp_assert.drivers.cli import main
from interp_assert.run.lint import lint_claim_file
from interp_assert.run.runner import Runner

ROOT = Path(__file__).resolve().parents[1]

TYPOS = """\
subject:
  checkpoint: absent.pt
data:
  sums: {generate: pkg.mod:gen, n: 10, positions: "X0..X9, =, A0..A10"}
quantities:
  neurons: {weight: blocks.0.mlp.W_out, labels: N0..N255}
  exact-match: {metric: exact_match, answer: A0..A10}
claims:
  - id: label
    claim: N1320, N7 cluster with cos > 0.5
  - id: fine
    claim: N1, N7 cluster with cos > 0.5
  - id: name
    claim: exact-matc ≥ 99%
  - id: position
    claim: "L0H0: A{i} attends to X{i+1}, Y{i+1} ≥ 0.8 for i in 0..8"
  - id: syntax
    claim: N0,N1 cluster with cos >
  - id: key
    claim: N1, N7 cluster with cos > 0.5
    wyh: because
  - id: dataset
    claim: exact-match ≥ 99%
    data: sum
  - id: weights
    claim: norm(blocks.1.attn.W_Q) + norm(readout) > 0
"""


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


def test_every_problem_without_a_model(tmp_path: Path) -> None:
    path = tmp_path / "t.claims.yaml"
    path.write_text(TYPOS, encoding="utf-8")
    result = lint_claim_file(Runner().load(path), "t.claims.yaml")
    problems = {p.split("claim '")[1].split("'")[0]: p for p in result.problems}
    assert sorted(problems) == ["dataset", "key", "label", "name", "position", "syntax"]
    assert problems["label"].startswith(f"{path}:{line_of(TYPOS, 'N1320')}:12: claim "
                                        "'label': unknown label 'N1320'; did you mean 'N132'")
    assert "unknown name 'exact-matc'; did you mean 'exact-match'?" in problems["name"]
    assert "unknown position 'Y1'" in problems["position"]  # X1 exists, Y1 does not
    assert "the claim ends too early" in problems["syntax"]
    assert "unknown key 'wyh' in claim 'key'; did you mean 'why'?" in problems["key"]
    assert "unknown dataset 'sum'; did you mean 'sums'?" in problems["dataset"]
    # weight names cannot be checked without the model: listed, not reported
    assert {"blocks.1.attn.W_Q", "readout", "L0H0"} <= result.unchecked


def test_bundled_claim_files_are_clean(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", str(ROOT / "specs"), str(ROOT / "examples")]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "interp-assert lint: 12 claim files, 0 problems")


def test_lint_command_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "t.claims.yaml").write_text(TYPOS, encoding="utf-8")
    (tmp_path / "broken.claims.yaml").write_text("claims:\n  - id: a\n    claim: [x\n")
    assert main(["lint", "-v", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == "interp-assert lint: 2 claim files, 7 problems in 2 files"
    assert "broken.claims.yaml:3:" in out
    assert "not checked without a model" in out and "blocks.1.attn.W_Q" in out


CONFTEST = """
import json, sys, time
START, CPU = time.perf_counter(), time.process_time()

def pytest_collectreport(report):
    if report.failed:
        json.dump({"seconds": time.perf_counter() - START, "cpu": time.process_time() - CPU,
                   "heavy": sorted(m for m in ("torch", "matplotlib", "pandas", "scipy")
                                   if m in sys.modules)},
                  open("collect.json", "w"))
"""


def test_collect_only_fails_fast_without_torch(pytester: pytest.Pytester,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A misspelt label fails ``pytest --collect-only`` in well under a second of the
    process's time, with torch never imported (a fresh process: nothing is preloaded)."""
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)  # as users run it
    pytester.makeconftest(CONFTEST)
    pytester.makefile(".claims.yaml", model=textwrap.dedent("""\
        subject: {checkpoint: absent.pt}
        quantities:
          neurons: {weight: w, labels: N0..N255}
        claims:
          - id: typo
            claim: N1320, N7 cluster with cos > 0.5
        """))
    args = ("--collect-only", "-q", "-p", "no:cacheprovider")
    pytester.runpytest_subprocess(*args)  # compiles the bytecode a user's install has
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*model.claims.yaml:6:12: claim 'typo': unknown label "
                                 "'N1320'; did you mean 'N132'*"])
    seen = json.loads((pytester.path / "collect.json").read_text())
    assert seen["heavy"] == []
    # the plugin's work: from the conftest's import (pytest's own start-up is before it) to
    # the failed collection, in CPU time (the wall time of a shared test machine varies)
    assert seen["cpu"] < 1.0, seen
