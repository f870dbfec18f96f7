"""Progress and phase times: forward passes counted in batches and samples (rich in the command
line tool, pytest's terminal in the plugin), only where a person watches a terminal; ``-v``
prints the time of each phase; ``-q``, captured output and piped output stay as they were."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_devices import PROBE

from interp_assert import progress as progress_module
from interp_assert.drivers.cli import main
from interp_assert.progress import PHASES, Progress

ROOT = Path(__file__).resolve().parents[1]
CLAIMS = """\
subject:
  loader: probe.py:load
data:
  x: {generate: probe.py:data, n: 100, batch_size: 25}
quantities:
  hidden: {distribution: "1"}
claims:
  - {id: relu, claim: "min(hidden) >= 0"}
  - {id: top, claim: "max(hidden) >= 0"}
"""
TEST_FILE = """\
def test_prints():
    print("captured line")
    assert False
"""

pytestmark = pytest.mark.usefixtures("heavy_modules_loaded")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "probe.py").write_text(PROBE, encoding="utf-8")
    (tmp_path / "p.claims.yaml").write_text(CLAIMS, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_phases_nest_and_time_only_the_innermost(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([0.0, 1.0, 3.0, 4.0, 10.0, 10.5, 11.0])
    monkeypatch.setattr(progress_module.time, "perf_counter", lambda: next(clock))
    run = Progress()  # reads the clock once (0.0)
    with run.phase("claims"), run.phase("pass"):  # 1.0, 3.0
        with run.phase("load"):  # 4.0
            pass  # 10.0
        run.batch(40, 100)
        run.batch(100, 100)
    # 10.5, 11.0
    assert run.seconds == {"load": 6.0, "pass": 1.5, "claims": 2.5, "plots": 0.0}
    assert (run.passes, run.samples) == (1, 100)
    assert run.times_line() == ("interp-assert: time per phase: load 6.00 s, pass 1.50 s, "
                                "claims 2.50 s, plots 0.00 s (1 forward pass, 100 samples)")


def test_cli_progress_counts_batches_on_a_terminal(folder: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["check", "p.claims.yaml"]) == 0
    shown = terminal.getvalue()
    # 100 samples in batches of 25: the first and last batches are always drawn (the others
    # at most ten times a second)
    assert "batch 1/4, 25/100 samples" in shown and "batch 4/4, 100/100 samples" in shown
    assert "samples/s" in shown and "pass x on probe.py:load" in shown
    assert "2/2 claims" in shown
    assert "time per phase" not in capsys.readouterr().out  # only with -v
    terminal.truncate(0)
    assert main(["check", "p.claims.yaml", "-q"]) == 0 and terminal.getvalue() == ""


def test_cli_verbose_prints_the_phase_times(folder: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "p.claims.yaml", "-v"]) == 0
    out, err = capsys.readouterr()
    assert err == ""  # not a terminal: no progress
    [line] = [line for line in out.splitlines() if "time per phase" in line]
    assert line.endswith("(1 forward pass, 100 samples)")
    for phase in PHASES:
        assert f" {phase} " in line


def test_pytest_verbose_prints_phase_times_and_quiet_output_is_unchanged(
        folder: Path, pytester: pytest.Pytester) -> None:
    for name in ("probe.py", "p.claims.yaml"):
        (pytester.path / name).write_text((folder / name).read_text(), encoding="utf-8")
    verbose = pytester.runpytest("-v", "-p", "no:randomly")
    verbose.assert_outcomes(passed=2)
    times = [line for line in verbose.outlines if "time per phase" in line]
    assert len(times) == 1 and times[0].startswith("interp-assert: time per phase: load ")
    assert times[0].endswith("(1 forward pass, 100 samples)")
    quiet = pytester.runpytest("-q", "-p", "no:randomly")
    quiet.assert_outcomes(passed=2)
    assert len(quiet.outlines) == 2 and quiet.outlines[0].split() == ["..", "[100%]"]
    plain = pytester.runpytest("-p", "no:randomly")
    assert not any("interp-assert" in line for line in plain.outlines
                   if not line.startswith("plugins:"))


def test_pytest_draws_progress_on_a_terminal_but_never_into_captured_output(
        folder: Path, tmp_path: Path) -> None:
    (folder / "test_prints.py").write_text(TEST_FILE, encoding="utf-8")
    primary, secondary = os.openpty()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "150"}
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly",
         "-p", "no:xdist", "-rA", "p.claims.yaml", "test_prints.py"],
        cwd=folder, stdout=secondary, stderr=secondary, stdin=subprocess.DEVNULL, env=env)
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # the terminal closed: the process ended
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert process.wait(timeout=300) == 1
    os.close(primary)
    shown = b"".join(chunks).decode("utf-8", "replace")
    assert "interp-assert pass x on probe.py:load: 100/100 samples" in shown
    assert "samples/s, ETA" in shown
    captured = shown.split("Captured stdout call", 1)[1].split("====", 1)[0]
    assert "captured line" in captured and "interp-assert" not in captured
    assert "2 passed" in shown and "1 failed" in shown
