"""pytest-xdist: claims grouped by checkpoint (each loaded once), records, baselines, JUnit and
artifacts merged on the controller with nothing lost or duplicated."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest
from conftest import save_checkpoint
from test_sweeps import save_sweep, warm_heavy_modules

from interp_assert.drivers.pytest_xdist import checkpoint_scope

pytest.importorskip("xdist")

STEPS = (0, 250, 500, 1000, 2000, 3000, 4000, 5000)
PROBE = """\
import os


def load(checkpoint, path):
    with open(os.environ["INTERP_LOAD_LOG"], "a", encoding="utf-8") as log:
        log.write(f"{os.getpid()} {path.name}\\n")
    return checkpoint


def weights(model):
    return model["w"]
"""
SWEEP = """\
subject:
  checkpoints: ckpts/step_*.pt
  loader: probe.py:load
quantities:
  w: {call: probe.py:weights, axes: [i], labels: {i: [a, b]}}
claims:
  - id: grows
    claim: w at a >= 0.04
    holds_from: 250
  - id: positive
    claim: w at b > 0
"""
READOUT = """\
subject:
  checkpoint: model.pt
quantities:
  readout: {weight: readout, axes: [digit], labels: {digit: 0..9}}
claims:
  - {id: top, claim: "max(readout) >= 1.5"}
"""
PLAIN = READOUT + """\
  - {id: spread, claim: "max(readout) - min(readout) within 0.5 of baseline"}
"""
# plugins that only cost start-up time in each worker
QUIET = ("-p", "no:hypothesispytest", "-p", "no:typeguard", "-p", "no:jaxtyping", "-p",
         "no:anyio")
OUTPUTS = ("--interp-summary", "-p", "no:cacheprovider")


@pytest.fixture(scope="module", autouse=True)
def _heavy_modules(tmp_path_factory: pytest.TempPathFactory) -> None:
    warm_heavy_modules(tmp_path_factory.mktemp("warm"))


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = pytester.path
    save_sweep(root / "ckpts", STEPS)
    save_checkpoint(root / "model.pt")
    (root / "probe.py").write_text(PROBE, encoding="utf-8")
    (root / "sweep.claims.yaml").write_text(SWEEP, encoding="utf-8")
    (root / "plain.claims.yaml").write_text(PLAIN, encoding="utf-8")
    pytester.makepyfile(test_ordinary="""
        import pytest

        @pytest.mark.parametrize("n", [1, 2, 3])
        def test_ordinary(n):
            assert n
    """)
    monkeypatch.setenv("INTERP_LOAD_LOG", str(root / "loads.log"))
    return root


def loads(root: Path) -> list[tuple[str, str]]:
    path = root / "loads.log"
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    path.unlink(missing_ok=True)
    return [tuple(line.split()) for line in lines]  # type: ignore[misc]


def outputs(tag: str) -> tuple[str, ...]:
    return (*OUTPUTS, "--interp-json", f"{tag}.json", "--junitxml", f"{tag}.xml",
            "--interp-baseline", f"{tag}-baseline.json", "--interp-baseline-update")


def test_four_workers_match_a_serial_run(project: Path, pytester: pytest.Pytester) -> None:
    serial = pytester.runpytest(*outputs("serial"))
    serial.assert_outcomes(passed=20, xfailed=1)
    assert Counter(name for _, name in loads(project)) == {f"step_{s}.pt": 1 for s in STEPS}

    result = pytester.runpytest_subprocess("-n", "4", *QUIET, *outputs("xdist"))
    result.assert_outcomes(passed=20, xfailed=1)
    loaded = loads(project)
    # grouped by checkpoint: each checkpoint loaded by exactly one worker, once
    assert Counter(name for _, name in loaded) == {f"step_{s}.pt": 1 for s in STEPS}
    assert len({pid for pid, _ in loaded}) >= 2  # and the work was shared
    # the controller merged every worker's records: same JSON and baseline, byte for byte
    for suffix in (".json", "-baseline.json"):
        assert (project / f"xdist{suffix}").read_bytes() == (
            project / f"serial{suffix}").read_bytes()
    records = json.loads((project / "xdist.json").read_text())["results"]
    names = [(r["file"], r["name"]) for r in records]
    assert len(names) == len(set(names)) == 18
    baseline = json.loads((project / "xdist-baseline.json").read_text())["files"]
    assert len(baseline["sweep.claims.yaml"]) == 16 and len(baseline["plain.claims.yaml"]) == 2
    cases = [c.get("name") for c in ET.parse(project / "xdist.xml").iter("testcase")]
    assert len(cases) == len(set(cases)) == 21
    artifacts = project / ".interp-assert"
    # an expected failure (before holds_from) is plotted only with --interp-plots=all, and so
    # is the trajectory of a sweep that went as claimed
    assert not (artifacts / "trajectories").exists()
    assert not (artifacts / "plots" / "sweep.claims" / "step_0" / "grows.png").exists()
    result.stdout.fnmatch_lines(["*sweep sweep.claims.yaml:*",
                                 "grows*0 ✗ xfail*0.05 ✓*1 ✓*250"])


REPORTED = READOUT + """\
  - {id: low, claim: "min(readout) >= 0"}
  - {id: after-low, claim: "max(readout) > 0", requires: [low]}
  - {id: broken, claim: "max(redout) > 0"}
  - {id: open, claim: "min(readout) > 5", status: open}
"""


def test_report_from_workers_matches_a_serial_report(pytester: pytest.Pytester) -> None:
    save_checkpoint(pytester.path / "model.pt")
    for name in ("a", "b"):
        (pytester.path / f"{name}.claims.yaml").write_text(REPORTED, encoding="utf-8")
    serial = pytester.runpytest("--interp-report=serial.md", "-p", "no:cacheprovider")
    serial.assert_outcomes(passed=2, failed=2, skipped=2, errors=2, xfailed=2)
    result = pytester.runpytest_subprocess("-n", "2", *QUIET, "--interp-report=xdist.md",
                                           "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=2, skipped=2, errors=2, xfailed=2)
    text = (pytester.path / "xdist.md").read_text(encoding="utf-8")
    # every claim of both files, with its status, error and skip reason, as in a serial run
    assert text == (pytester.path / "serial.md").read_text(encoding="utf-8")
    for needle in ("a.claims.yaml", "b.claims.yaml", "unknown name 'redout'",
                   "requires 'low', which does not hold", "status: open"):
        assert needle in text, needle


def test_scheduler_choice(pytester: pytest.Pytester) -> None:
    from interp_assert.drivers.pytest_xdist import XdistHooks

    hooks = XdistHooks(pytester.parseconfig())
    for args, ours in ((["-n", "2"], True), (["-n", "2", "--dist", "loadgroup"], True),
                       (["-n", "2", "--dist", "load"], False),
                       (["-n", "2", "--dist", "loadscope"], False)):
        config = pytester.parseconfig(*args)
        config.option.tx = ["popen", "popen"]
        if config.option.dist == "no":  # what xdist's pytest_cmdline_main does for -n
            config.option.dist = "load"
        scheduler = hooks.pytest_xdist_make_scheduler(config, None)
        assert (scheduler is not None) == ours, args
        if scheduler is not None:
            assert scheduler._split_scope("s.claims.yaml::grows[step_0]") == "checkpoint step_0"


def test_scopes() -> None:
    patterns = ["*.claims.yaml"]
    assert checkpoint_scope("a.claims.yaml::em[step_2]@step_2", patterns) == "group step_2"
    assert checkpoint_scope("tests/test_a.py::test_b[x@y]", patterns) == (
        "tests/test_a.py::test_b[x@y]")
    assert checkpoint_scope("specs/a.claims.yaml::em[step_200]", patterns) == (
        "checkpoint step_200")
    assert checkpoint_scope("b.claims.yaml::x[y][step_200]", patterns) == "checkpoint step_200"
    assert checkpoint_scope("specs/a.claims.yaml::em", patterns) == (
        "claim file specs/a.claims.yaml")
    for nodeid in ("tests/test_a.py::test_b[1]", "tests/test_a.py::C::test_d"):
        assert checkpoint_scope(nodeid, patterns) == nodeid


def test_reporting_modules_import_nothing_heavy() -> None:
    code = textwrap.dedent("""
        import json, sys
        import interp_assert.drivers.pytest_session, interp_assert.drivers.pytest_xdist
        import interp_assert.output.baseline, interp_assert.output.results
        import interp_assert.loading.targets
        print(json.dumps(sorted(m for m in ("torch", "matplotlib", "pandas") if m in sys.modules)))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert json.loads(out) == []
