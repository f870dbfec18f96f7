"""One claim file, one verdict, whoever runs it.

A matrix of claims that hold, fail and error; ``requires`` on a claim that fails, errors or is
open; open claims that fail and hold; ``holds_from`` over a sweep; a baseline with an entry and
one without; a memory-limit refusal; user code that calls ``sys.exit``; and a deselected
(broken) claim. It runs through pytest (serial and ``-n 2``), ``interp-assert check``,
``interp-assert report`` and the Python API: every driver gives each claim the same verdict,
and the JSON results are byte-identical.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import claim_file_text, save_checkpoint, tiny_state_dict

from interp_assert.loading.subject import clear_subjects

pytestmark = pytest.mark.usefixtures("heavy_modules_loaded")

CLAIMS = """
- id: holds
  claim: N0, N1, N3 cluster with cos > 0.9
- id: fails
  claim: N0, N1, N4 cluster with cos > 0.9
- id: errors
  claim: norm(nothing) > 0
- id: needs-fails
  claim: N0, N1, N3 cluster with cos > 0.9
  requires: fails
- id: needs-errors
  claim: N0, N1, N3 cluster with cos > 0.9
  requires: errors
- id: needs-open
  claim: N0, N1, N3 cluster with cos > 0.9
  requires: open-fails
- id: open-fails
  claim: N0, N1, N4 cluster with cos > 0.9
  status: open
- id: open-holds
  claim: N0, N1, N3 cluster with cos > 0.9
  status: open
- id: recorded
  claim: mean(A·V) >= baseline - 0.1
- id: unrecorded
  claim: mean(A·V) >= baseline - 0.1
- id: too-big
  claim: mean(big) >= 0
- id: exits
  claim: bye > 0
- id: deselected
  claim: norm(also-nothing) > 0
"""

EXTRA = """\
  big:
    weight: big
  bye:
    call: users.py:leave
"""

SWEEP = """\
subject:
  checkpoints: ckpts/step_*.pt
quantities:
  A·V:
    weight: readout
    axes: [digit]
    labels: {digit: 0..9}
claims:
  - id: grows
    claim: mean(A·V) > 0.4
    holds_from: 1000
"""

EXPECTED = {
    "holds": "holds", "fails": "fails", "errors": "error", "needs-fails": "skipped",
    "needs-errors": "skipped", "needs-open": "skipped", "open-fails": "xfail",
    "open-holds": "xpass", "recorded": "holds", "unrecorded": "fails", "too-big": "error",
    "exits": "error", "grows[step_0]": "xfail", "grows[step_1000]": "holds",
    "grows[step_2000]": "holds",
}
SELECTED = sorted({name.split("[")[0] for name in EXPECTED})
MEMORY_LIMIT = "16KB"  # the 64 x 64 'big' weight needs 32 KiB as float64


@pytest.fixture
def claim_files(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The checkpoints, user code and both claim files (no baseline yet)."""
    import torch

    root = pytester.path
    state = tiny_state_dict()
    save_checkpoint(root / "model.pt", {**state, "big": torch.zeros(64, 64)})
    for step in (0, 1000, 2000):  # mean(A·V) is 0.5 * step / 1000: holds from step 1000
        save_checkpoint(root / "ckpts" / f"step_{step}.pt",
                        {"readout": state["readout"] * step / 1000})
    (root / "users.py").write_text("def leave():\n    raise SystemExit(3)\n")
    quantities = claim_file_text("[]").split("quantities:\n")[1].split("claims:")[0]
    (root / "weights.claims.yaml").write_text(
        claim_file_text(CLAIMS, quantities="quantities:\n" + quantities + EXTRA))
    (root / "sweep.claims.yaml").write_text(SWEEP)
    monkeypatch.setenv("INTERP_ASSERT_MEMORY_LIMIT", MEMORY_LIMIT)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    return root


@pytest.fixture
def project(claim_files: Path) -> Path:
    """:func:`claim_files` and a baseline: every claim's value recorded by the CLI, then
    'unrecorded' taken out again."""
    root = claim_files
    # the baseline: every claim's value recorded, then 'unrecorded' taken out again
    cli(root, "check", *FILES, "--baseline", "base.json", "--baseline-update")
    base = json.loads((root / "base.json").read_text())
    del base["files"]["weights.claims.yaml"]["unrecorded"]
    (root / "base.json").write_text(json.dumps(base))
    return root


FILES = ("weights.claims.yaml", "sweep.claims.yaml")


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "interp_assert.drivers.cli", *args,
                           "--artifacts", ".ia"]
                          + [word for name in SELECTED for word in ("--select", name)],
                          cwd=root, capture_output=True, text=True, timeout=300)


def verdicts(path: Path) -> dict[str, str]:
    return {r["name"]: r["verdict"] for r in json.loads(path.read_text())["results"]}


def test_every_driver_reaches_the_same_verdicts_and_json(
        project: Path, pytester: pytest.Pytester) -> None:
    pytest_args = ["-p", "no:cacheprovider", "-rsxX", "--interp-plots=all",
                   "--interp-artifacts=.ia", "--interp-baseline=base.json", "-k", "not deselected"]
    # the serial run in this process (its imports are warm); the other drivers do not reuse
    # what it loaded
    serial = pytester.runpytest(*pytest_args, "--interp-json=serial.json")
    serial.assert_outcomes(passed=4, failed=3, errors=3, skipped=3, xfailed=2)
    clear_subjects()
    xdist = pytester.runpytest_subprocess(*pytest_args, "-n", "2", "--interp-json=xdist.json")
    xdist.assert_outcomes(passed=4, failed=3, errors=3, skipped=3, xfailed=2)
    check = cli(project, "check", *FILES, "--baseline", "base.json", "--plots", "all",
                "--json", "check.json")
    assert check.returncode == 2, check.stdout + check.stderr
    # pytest counts a strict XPASS among its failures; the CLI names it
    assert "4 passed, 2 failed, 3 errors, 3 skipped, 2 xfailed, 1 xpassed" in check.stdout
    report = cli(project, "report", *FILES, "--baseline", "base.json", "--all-checkpoints",
                 "-o", "report.html", "--json", "report.json")
    assert report.returncode == 2, report.stdout + report.stderr

    import interp_assert

    for name in FILES:  # the API, in this process, one claim file at a time
        interp_assert.load(project / name).run(
            artifacts=project / ".ia", plots="all", root=project, select=SELECTED,
            baseline=project / "base.json", json=project / f"api-{name}.json")
    api = {}
    for name in FILES:
        api.update(verdicts(project / f"api-{name}.json"))

    assert verdicts(project / "serial.json") == EXPECTED
    assert api == EXPECTED
    serial_bytes = (project / "serial.json").read_bytes()
    for other in ("xdist.json", "check.json", "report.json"):
        assert (project / other).read_bytes() == serial_bytes, other
    # the terminal renders the same verdicts
    serial.stdout.fnmatch_lines(["*XPASS(strict)*status: open, but the claim now holds*"])
    serial.stdout.fnmatch_lines(["*SKIPPED*requires 'open-fails', which does not hold*"])
    page = (project / "report.html").read_text(encoding="utf-8")
    assert page.count('<article class="card"') == len(EXPECTED)


def test_deselected_and_unused_quantities_are_not_planned(claim_files: Path) -> None:
    """The plan holds only what the selected claims read: a deselected claim and a quantity
    no selected claim uses register no sink."""
    from interp_assert.run.runner import Runner, RunOptions

    runner = Runner(RunOptions(root=claim_files))
    checks = runner.checks(runner.load(claim_files / "weights.claims.yaml"))
    runner.prepare([c for c in checks if c.entry.id == "holds"])
    assert runner.plan._passes == {}  # weight claims read no forward pass
