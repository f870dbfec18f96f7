"""Relations between claims in the pytest plugin: ``requires``, ``status: open`` and tags."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from conftest import claim_file_text, save_checkpoint

CLAIMS = """
- id: aligned
  claim: N0, N1, N3 cluster with cos > 0.9
  tags: [fast]
- id: mixed
  claim: N0, N1, N4 cluster with cos > 0.9
- id: needs-mixed
  claim: N0, N1, N3 cluster with cos > 0.9
  requires: mixed
- id: needs-aligned
  claim: N0, N1, N3 cluster with cos > 0.9
  requires: [aligned]
- id: open-fails
  claim: N0, N1, N4 cluster with cos > 0.9
  status: open
- id: open-holds
  claim: N0, N1, N3 cluster with cos > 0.9
  status: open
"""

pytestmark = pytest.mark.usefixtures("heavy_modules_loaded")


@pytest.fixture
def project(pytester: pytest.Pytester) -> Path:
    save_checkpoint(pytester.path / "model.pt")
    path = pytester.path / "model.claims.yaml"
    path.write_text(claim_file_text(CLAIMS), encoding="utf-8")
    return path


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:randomly", "-rsxX", *args)


def test_requires_open_and_tags(pytester: pytest.Pytester, project: Path) -> None:
    result = run(pytester)
    result.assert_outcomes(passed=2, failed=2, skipped=1, xfailed=1)
    result.stdout.fnmatch_lines(["*SKIPPED*requires 'mixed', which does not hold*"])
    result.stdout.fnmatch_lines(["*claim open-holds*", "*XPASS(strict)*status: open*"])


def test_requires_evaluates_the_required_claim_on_demand(pytester: pytest.Pytester,
                                                         project: Path) -> None:
    result = run(pytester, "-k", "needs")
    result.assert_outcomes(passed=1, skipped=1)


def test_tags_are_markers(pytester: pytest.Pytester, project: Path) -> None:
    result = run(pytester, "-m", "fast", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*::aligned PASSED*"])


def test_interp_report_option(pytester: pytest.Pytester, project: Path) -> None:
    result = run(pytester, "--interp-report", "out/report.html")
    result.assert_outcomes(passed=2, failed=2, skipped=1, xfailed=1)
    page = (pytester.path / "out" / "report.html").read_text(encoding="utf-8")
    for claim_id in ("aligned", "mixed", "needs-mixed", "open-fails", "open-holds"):
        assert re.search(f'<article class="card" id="[^"]*--{claim_id}"', page)
    assert page.count("<img ") == 5  # every evaluated claim is plotted; the skipped one not
    assert "requires 'mixed', which does not hold" in html.unescape(page)
    assert "status: open, but the claim now holds" in page
