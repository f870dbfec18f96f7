"""Baselines: --interp-baseline / --interp-baseline-update, the name ``baseline`` in claims,
``x within tol of y``, and the baseline file format."""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path

import pytest
from conftest import save_checkpoint, tiny_state_dict
from test_sweeps import warm_heavy_modules

from interp_assert.claims import parse_claim
from interp_assert.claims.within import Within
from interp_assert.loading.subject import clear_subjects
from interp_assert.output.baseline import SCHEMA, BaselineEntry, BaselineStore

CLAIMS = """\
subject:
  checkpoint: model.pt
quantities:
  neurons:
    weight: blocks.0.mlp.W_out
    axes: [neuron, d_model]
    labels: {neuron: N0..N15}
  readout: {weight: readout, axes: [digit], labels: {digit: 0..9}}
claims:
  - id: top
    claim: max(readout) >= baseline - 0.5 points
  - id: cos
    claim: cos(N0, N1) within 0.05 of baseline
  - id: plain
    claim: max(readout) > 1
"""
RUN = ("-p", "no:cacheprovider", "--interp-plots", "never")


@pytest.fixture(scope="module", autouse=True)
def _heavy_modules(tmp_path_factory: pytest.TempPathFactory) -> None:
    warm_heavy_modules(tmp_path_factory.mktemp("warm"))


@pytest.fixture
def project(pytester: pytest.Pytester) -> Path:
    save_checkpoint(pytester.path / "model.pt")
    (pytester.path / "model.claims.yaml").write_text(CLAIMS, encoding="utf-8")
    return pytester.path


def lower_readout(path: Path, drop: float) -> Path:
    """A copy of the tiny model whose top readout value is ``drop`` lower."""
    state = tiny_state_dict()
    state["readout"] = state["readout"] - drop
    return save_checkpoint(path, state)


def test_within_parses_prints_and_round_trips() -> None:
    claim = parse_claim("cos(N1, N132) within 0.05 of baseline").claim
    assert isinstance(claim, Within)
    assert str(claim) == "cos(N1, N132) within 0.05 of baseline"
    assert parse_claim(str(claim)).claim == claim
    assert str(parse_claim("x within 5% of 0.9").claim) == "x within 5% of 0.9"


def test_missing_entry_fails_with_the_command_that_records_it(project: Path,
                                                              pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(*RUN, "--interp-baseline", "base.json", "-rf",
                                "--interp-json", "r.json")
    result.assert_outcomes(failed=2, passed=1)  # 'plain' does not use its baseline
    command = ("pytest model.claims.yaml::top --interp-baseline base.json "
               "--interp-baseline-update")
    assert command in result.stdout.str()
    assert not (project / "base.json").exists()
    # said plainly: no "does not hold: measured ...; expected >= nan"
    out = result.stdout.str()
    result.stdout.fnmatch_lines([
        "*does not hold: no baseline value for 'top' in base.json; record it with: pytest *",
        "*measured 2 (no recorded value to compare with)",
        "FAILED model.claims.yaml::top - no baseline value for 'top' in base.json"])
    assert "nan" not in out
    plain = next(r for r in json.loads((project / "r.json").read_text())["results"]
                 if r["id"] == "plain")
    assert plain["verdict"] == "holds"
    assert plain["notes"] == ["no baseline value for 'plain' in base.json"]
    # the printed command records exactly that entry
    clear_subjects()
    result = pytester.runpytest(*RUN, *shlex.split(command)[1:])
    result.assert_outcomes(passed=1)
    data = json.loads((project / "base.json").read_text())
    assert data["schema"] == SCHEMA and list(data["files"]["model.claims.yaml"]) == ["top"]
    clear_subjects()
    result = pytester.runpytest(*RUN, "--interp-baseline", "base.json")
    result.assert_outcomes(passed=2, failed=1)


def test_update_then_gate_a_new_checkpoint(project: Path, pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(*RUN, "--interp-baseline", "base.json",
                                "--interp-baseline-update")
    result.assert_outcomes(passed=3)  # claims relative to a missing baseline use the new value
    first = (project / "base.json").read_bytes()
    entry = json.loads(first)["files"]["model.claims.yaml"]["top"]
    assert entry["value"] == pytest.approx(2.0) and entry["checkpoint"] == "model.pt"
    assert len(entry["sha256"]) == 64
    clear_subjects()
    result = pytester.runpytest(*RUN, "--interp-baseline", "base.json",
                                "--interp-baseline-update")
    assert (project / "base.json").read_bytes() == first  # deterministic
    # a slightly worse checkpoint passes, a clearly worse one fails, with the change reported
    lower_readout(project / "ok.pt", 0.004)
    lower_readout(project / "bad.pt", 0.02)
    clear_subjects()
    result = pytester.runpytest(*RUN, "--interp-baseline", "base.json",
                                "--interp-checkpoint", "ok.pt", "--interp-summary")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*claim*checkpoint*value*verdict*baseline*change*",
                                 "*top*ok.pt*1.996*holds*2*-0.004*"])
    clear_subjects()
    result = pytester.runpytest(*RUN, "--interp-baseline", "base.json",
                                "--interp-checkpoint", "bad.pt")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines([
        "*does not hold: measured 1.98; expected >= 1.995*",
        "*note: baseline 2 (recorded on model.pt, sha256 *); change -0.02*"])
    assert (project / "base.json").read_bytes() == first  # comparing never writes


def test_update_touches_only_the_entries_that_ran(project: Path,
                                                  pytester: pytest.Pytester) -> None:
    before = {"schema": SCHEMA, "files": {
        "model.claims.yaml": {"plain": {"value": 123.0, "checkpoint": "x.pt", "sha256": "a"},
                              "gone": {"value": 1.0, "checkpoint": None, "sha256": None}},
        "other/z.claims.yaml": {"k[step_1]": {"value": 0.5, "checkpoint": "s.pt",
                                              "sha256": "b"}}}}
    (project / "base.json").write_text(json.dumps(before), encoding="utf-8")
    result = pytester.runpytest(*RUN, "--interp-baseline", "base.json",
                                "--interp-baseline-update", "-k", "top or cos")
    result.assert_outcomes(passed=2, deselected=1)
    after = json.loads((project / "base.json").read_text())
    assert after["files"]["other/z.claims.yaml"] == before["files"]["other/z.claims.yaml"]
    checks = after["files"]["model.claims.yaml"]
    assert checks["plain"] == before["files"]["model.claims.yaml"]["plain"]
    assert checks["gone"] == before["files"]["model.claims.yaml"]["gone"]
    assert sorted(checks) == ["cos", "gone", "plain", "top"]
    text = (project / "base.json").read_text()
    assert text == json.dumps(after, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_baseline_name_without_a_baseline_file_is_an_error(project: Path,
                                                           pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(*RUN)
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines(["*'baseline' is this claim's recorded value, but no baseline "
                                 "file was given*", "*hint: run with --interp-baseline FILE*"])
    result = pytester.runpytest(*RUN, "--interp-baseline-update")
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_store_keys_are_relative_to_the_baseline_file(tmp_path: Path) -> None:
    store = BaselineStore.load(tmp_path / "ci" / "base.json")
    assert store.file_key(tmp_path / "specs" / "a.claims.yaml") == "../specs/a.claims.yaml"
    records = [{"file": "specs/a.claims.yaml", "name": "x", "value": 0.5, "checkpoint": "m.pt",
                "sha256": "s"},
               {"file": "specs/a.claims.yaml", "name": "y", "value": "nan"},
               {"file": "specs/a.claims.yaml", "name": "z", "value": math.inf}]
    assert store.update(records, tmp_path) == 1
    store.save()
    again = BaselineStore.load(tmp_path / "ci" / "base.json")
    assert again.get(tmp_path / "specs" / "a.claims.yaml", "x") == BaselineEntry(0.5, "m.pt", "s")
    assert again.get(tmp_path / "specs" / "a.claims.yaml", "y") is None
    (tmp_path / "bad.json").write_text("{}", encoding="utf-8")
    with pytest.raises(Exception, match="not an interp-assert baseline file"):
        BaselineStore.load(tmp_path / "bad.json")


def test_baseline_file_from_the_ini(project: Path, pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ninterp_assert_baseline = ci/base.json\n")
    result = pytester.runpytest(*RUN, "-k", "top")
    result.stdout.fnmatch_lines(["*record it with: pytest model.claims.yaml::top "
                                 "--interp-baseline-update"])
    clear_subjects()
    pytester.runpytest(*RUN, "--interp-baseline-update").assert_outcomes(passed=3)
    data = json.loads((project / "ci" / "base.json").read_text())
    assert sorted(data["files"]["../model.claims.yaml"]) == ["cos", "plain", "top"]
