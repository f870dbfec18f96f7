"""``interp-assert check``: exit codes, reports, sweeps, baselines, JSON and the progress bar."""

from __future__ import annotations

import io
import json
import shlex
import sys
from pathlib import Path

import pytest
from conftest import save_checkpoint
from test_sweeps import SWEEP, save_sweep

from interp_assert.drivers.cli import main
from interp_assert.loading.subject import clear_subjects

CLAIMS = """\
subject:
  checkpoint: model.pt
quantities:
  readout: {weight: readout, axes: [digit], labels: {digit: 0..9}}
claims:
  - {id: top, claim: "max(readout) >= baseline - 1 points"}
  - {id: low, claim: "min(readout) > -2"}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    save_checkpoint(tmp_path / "model.pt")
    (tmp_path / "m.claims.yaml").write_text(CLAIMS, encoding="utf-8")
    save_sweep(tmp_path / "ckpts", (0, 200, 2000))
    (tmp_path / "s.claims.yaml").write_text(SWEEP, encoding="utf-8")
    return tmp_path


def check(*args: str) -> int:
    clear_subjects()
    return main(["check", *args, "--plots", "never"])


def test_exit_codes_and_reports(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert check("s.claims.yaml") == 0
    out = capsys.readouterr().out
    assert "sweep s.claims.yaml:" in out and "holds from" in out
    assert "4 passed, 0 failed, 0 errors, 2 xfailed, 0 xpassed" in out
    (project / "f.claims.yaml").write_text(CLAIMS.replace("> -2", "> 0"), encoding="utf-8")
    assert check("f.claims.yaml", "--select", "low") == 1
    out = capsys.readouterr().out
    assert "claim 'low' at f.claims.yaml:7:23: min(readout) > 0" in out
    assert "does not hold: measured -1; expected > 0" in out
    assert check("m.claims.yaml") == 2  # 'top' needs a baseline file
    assert "no baseline file was given" in capsys.readouterr().out
    (project / "bad.claims.yaml").write_text("claims: [", encoding="utf-8")
    assert check("bad.claims.yaml", "s.claims.yaml") == 2
    assert "invalid YAML" in capsys.readouterr().err
    assert check(str(project / "empty-folder-that-is-missing")) == 2


def test_baseline_record_and_gate(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert check("m.claims.yaml", "--baseline", "b.json") == 1
    out = capsys.readouterr().out
    command = ("interp-assert check m.claims.yaml --baseline b.json --baseline-update "
               "--select top")
    assert command in out
    assert check(*shlex.split(command)[2:]) == 0
    assert list(json.loads((project / "b.json").read_text())["files"]["m.claims.yaml"]) == [
        "top"]
    assert check("m.claims.yaml", "--baseline", "b.json", "--baseline-update") == 0
    assert check("m.claims.yaml", "--baseline", "b.json", "--json", "r.json") == 0
    records = json.loads((project / "r.json").read_text())["results"]
    assert records[1]["name"] == "top" and records[1]["baseline"]["change"] == 0
    assert check("m.claims.yaml", "--baseline-update") == 2


def test_checkpoint_override_and_json(project: Path) -> None:
    assert check("s.claims.yaml", "--checkpoint", "ckpts/step_200.pt", "--json", "r.json") == 0
    data = json.loads((project / "r.json").read_text())
    assert [(r["name"], r["verdict"]) for r in data["results"]] == [
        ("grows", "xfail"), ("positive", "holds")]
    assert check("s.claims.yaml", "--json", "r.json") == 0
    data = json.loads((project / "r.json").read_text())
    assert [t["holds_from_observed"] for t in data["trajectories"]] == [2000, 0]
    assert check("s.claims.yaml", "--select", "step_200", "--json", "r.json") == 0
    data = json.loads((project / "r.json").read_text())
    assert [r["name"] for r in data["results"]] == ["grows[step_200]", "positive[step_200]"]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal(project: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    assert check("s.claims.yaml") == 0
    assert capsys.readouterr().err == ""
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert check("s.claims.yaml") == 0
    shown = terminal.getvalue()
    assert "0/6 claims" in shown and "6/6 claims s.claims.yaml::positive[step_2000]" in shown
    assert check("s.claims.yaml", "-q") == 0 and terminal.getvalue() == shown


def test_console_script_entry_point() -> None:
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "interp-assert"]
    assert script.value == "interp_assert.drivers.cli:main"
