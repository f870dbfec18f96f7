"""Baseline upkeep: stale entries reported by the update and removed by the prune, and the
table of values that moved between two runs (``interp-assert diff``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_state_dict
from test_baselines import CLAIMS, RUN, lower_readout, project  # noqa: F401 - a fixture
from test_sweeps import warm_heavy_modules

from interp_assert.drivers.cli import main
from interp_assert.loading.subject import clear_subjects
from interp_assert.output.baseline import SCHEMA


@pytest.fixture(scope="module", autouse=True)
def _heavy_modules(tmp_path_factory: pytest.TempPathFactory) -> None:
    warm_heavy_modules(tmp_path_factory.mktemp("warm"))


def entries(path: Path) -> dict[str, dict[str, float]]:
    data = json.loads(path.read_text())
    return {file: {name: e["value"] for name, e in checks.items()}
            for file, checks in data["files"].items()}


def test_update_reports_stale_entries_and_prune_removes_them(project: Path,  # noqa: F811
                                                             pytester: pytest.Pytester) -> None:
    gone = {"value": 0.5, "checkpoint": "old.pt", "sha256": None}
    (project / "base.json").write_text(json.dumps({"schema": SCHEMA, "files": {
        "model.claims.yaml": {"renamed-away": gone},
        "deleted.claims.yaml": {"x": gone},
        "elsewhere/kept.claims.yaml": {"y": gone}}}), encoding="utf-8")
    (project / "elsewhere").mkdir()
    (project / "elsewhere" / "kept.claims.yaml").write_text("claims: []\n")
    # only 'top' runs: the file's other claims are not stale though they did not run
    result = pytester.runpytest(*RUN, "--interp-baseline", "base.json",
                                "--interp-baseline-update", "-k", "top")
    result.assert_outcomes(passed=1, deselected=2)
    result.stdout.fnmatch_lines([
        "interp-assert: baseline base.json: 1 of 1 values recorded or changed",
        "baseline base.json: 2 stale entries (no claim has that name any more): "
        "deleted.claims.yaml::x, model.claims.yaml::renamed-away; remove them with "
        "--interp-baseline-prune*"])
    kept = entries(project / "base.json")
    assert kept["model.claims.yaml"] == {"renamed-away": 0.5, "top": 2.0}
    assert "deleted.claims.yaml" in kept  # reported, not removed
    clear_subjects()
    result = pytester.runpytest(*RUN, "--interp-baseline", "base.json",
                                "--interp-baseline-prune")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines([
        "interp-assert: baseline base.json: 2 of 3 values recorded or changed; 2 stale "
        "entries removed: deleted.claims.yaml::x, model.claims.yaml::renamed-away"])
    pruned = entries(project / "base.json")
    w = tiny_state_dict()["blocks.0.mlp.W_out"].double().numpy()
    cos = float(w[0] @ w[1] / np.linalg.norm(w[0]) / np.linalg.norm(w[1]))
    assert pruned == {"model.claims.yaml": {"top": 2.0, "plain": 2.0,
                                            "cos": pytest.approx(cos, abs=1e-6)},
                      "elsewhere/kept.claims.yaml": {"y": 0.5}}  # not read by this run


def test_prune_needs_a_baseline_file(project: Path, pytester: pytest.Pytester) -> None:  # noqa: F811
    result = pytester.runpytest(*RUN, "--interp-baseline-prune")
    assert "--interp-baseline-prune needs --interp-baseline FILE" in result.stderr.str()


def test_diff_prints_the_values_that_moved(project: Path, pytester: pytest.Pytester,  # noqa: F811
                                           capsys: pytest.CaptureFixture[str]) -> None:
    pytester.runpytest(*RUN, "--interp-baseline", "old.json", "--interp-baseline-update")
    lower_readout(project / "worse.pt", 0.25)
    clear_subjects()
    pytester.runpytest(*RUN, "--interp-baseline", "new.json", "--interp-baseline-update",
                       "--interp-checkpoint", "worse.pt", "-k", "not cos")
    capsys.readouterr()
    assert main(["diff", str(project / "old.json"), str(project / "new.json")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["claim", "file", "check", "old", "new", "change"]
    # 'cos' was not measured the second time: gone; the readout's maximum fell by 0.25
    assert lines[2].split() == ["model.claims.yaml", "cos", lines[2].split()[2], "—", "gone"]
    assert lines[3].split() == ["model.claims.yaml", "plain", "2", "1.75", "-0.25"]
    assert lines[4].split() == ["model.claims.yaml", "top", "2", "1.75", "-0.25"]
    assert lines[5] == "3 of 3 checks moved"
    assert main(["diff", "--min-change", "0.3", str(project / "old.json"),
                 str(project / "new.json")]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1 of 3 checks moved"
    assert main(["diff", str(project / "old.json"), str(project / "old.json")]) == 0
    assert capsys.readouterr().out == "no value moved (3 checks compared)\n"
    (project / "x.json").write_text("{}")
    assert main(["diff", str(project / "x.json"), str(project / "old.json")]) == 2
