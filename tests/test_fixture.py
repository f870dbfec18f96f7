"""The ``interp_subject`` fixture: ordinary tests get a claim file's loaded subject."""

from __future__ import annotations

import pytest
from conftest import claim_file_text, save_checkpoint

pytestmark = pytest.mark.usefixtures("heavy_modules_loaded")

TESTS = '''
import numpy as np
import pytest
import torch

import interp_assert as ia

EXPECTED = torch.load("model.pt")

def test_by_path(interp_subject):
    subject = interp_subject("specs/model.claims.yaml")
    assert subject is interp_subject("specs/model.claims.yaml")  # loaded once
    assert subject.check("N0, N1, N3 cluster with cos > 0.9").passed
    np.testing.assert_array_equal(subject.weight("readout").numpy(),
                                  EXPECTED["readout"].numpy())
    assert subject.model is None  # a bare state dict: no loader, no model
    with pytest.raises(ia.ClaimFailed, match="does not hold"):
        subject.check("N0, N1, N4 cluster with cos > 0.9")

@pytest.mark.interp_subject("specs/model.claims.yaml")
def test_by_marker(interp_subject):
    assert [r.status for r in interp_subject().run()] == ["holds", "fails"]

def test_without_a_path(interp_subject):
    interp_subject()
'''


def test_interp_subject(pytester: pytest.Pytester) -> None:
    save_checkpoint(pytester.path / "model.pt")
    (pytester.path / "specs").mkdir()
    (pytester.path / "specs" / "model.claims.yaml").write_text(claim_file_text(
        "- N0, N1, N3 cluster with cos > 0.9\n- N0, N1, N4 cluster with cos > 0.9\n",
        checkpoint="../model.pt"), encoding="utf-8")
    pytester.makepyfile(test_uses=TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider", "test_uses.py")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*interp_subject() needs a claim file*"])
    pytester.makeini("[pytest]\ninterp_assert_subject = specs/model.claims.yaml\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "test_uses.py")
    result.assert_outcomes(passed=3)


def test_fixture_is_listed(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--fixtures", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["interp_subject*", "*the subject of a claim file*"])
