"""Interrupted runs: Ctrl-C, a killed xdist worker and a failure in the middle of a write leave
the files of earlier runs (baseline, results JSON, report, plots) intact and no temp files.

The plugin writes its files once, at the end of the session, and pytest ends the session also
after Ctrl-C: then the baseline is left as it was (only a whole run updates it), while the
results JSON and report describe the claims that completed. A killed xdist worker does not
end the run: the baseline records the claims that completed and keeps the crashed claim's
entry. Each file is replaced atomically (a temp file in the same folder, renamed).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import claim_file_text, save_checkpoint, tiny_state_dict, write_claims

from interp_assert.output import files
from interp_assert.output.baseline import BaselineEntry, BaselineStore
from interp_assert.output.document import write_document

posix_only = pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals")

PROBE = '''\
import os
import signal
import time
from pathlib import Path


def readout(state_dict):
    return state_dict["readout"]


def blocking(state_dict):
    """With INTERP_BLOCK_MARKER set: create that file, then wait to be interrupted."""
    marker = os.environ.get("INTERP_BLOCK_MARKER")
    if marker:
        Path(marker).write_text(str(os.getpid()), encoding="utf-8")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.02)
        raise RuntimeError("not interrupted within 60 s")
    return state_dict["readout"]


def fatal(state_dict):
    """With INTERP_KILL_WORKER set, in an xdist worker: kill that worker (SIGKILL)."""
    if os.environ.get("INTERP_KILL_WORKER") and os.environ.get("PYTEST_XDIST_WORKER"):
        os.kill(os.getpid(), signal.SIGKILL)
    return state_dict["readout"]
'''
QUANTITIES = """\
quantities:
  readout: {call: probe.py:readout, axes: [digit], labels: {digit: 0..9}}
  blocking: {call: probe.py:blocking, axes: [digit], labels: {digit: 0..9}}
  fatal: {call: probe.py:fatal, axes: [digit], labels: {digit: 0..9}}
"""
# claims that hold on both checkpoints (readout is linspace(-1, 2) less 0 or 0.25)
MODEL = """\
- {id: top, claim: "max(readout) > 1"}
- {id: low, claim: "min(readout) < 0"}
- {id: slow, claim: "max(blocking) > 1"}
- {id: mean, claim: "mean(readout) > 0"}
"""
OTHER = """\
- {id: first, claim: "max(readout) > 1"}
- {id: fatal, claim: "max(fatal) > 1"}
- {id: last, claim: "mean(readout) > 0"}
"""
# plugins that only cost start-up time (in each xdist worker too)
QUIET = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:typeguard", "-p",
         "no:jaxtyping", "-p", "no:anyio")
OUTPUTS = ("--interp-baseline=baseline.json", "--interp-baseline-update",
           "--interp-json=results.json")
REPORT = ("--interp-report=report.html",)  # implies a plot for every claim
TIMEOUT = 120


def env(**extra: str) -> dict[str, str]:
    """This environment without the outer pytest's (and xdist's) variables."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("PYTEST_", "INTERP_ASSERT_", "INTERP_BLOCK", "INTERP_KILL"))}
    return {**clean, **extra}


def run_pytest(root: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", *QUIET, *args], cwd=root,
                          env=env(**extra), capture_output=True, text=True, timeout=TIMEOUT)


def _default_sigint() -> None:
    """In the child before exec: SIGINT back to its default disposition. A signal ignored in
    the parent stays ignored across exec (a library an earlier test ran in this xdist worker
    may have ignored it), and Python then installs no KeyboardInterrupt handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt_at_marker(root: Path, *args: str) -> tuple[int, str]:
    """Run pytest until a claim blocks in ``blocking`` (its marker file appears), then send
    SIGINT, as Ctrl-C does. Returns the exit status and the output."""
    marker = root / "blocked.marker"
    marker.unlink(missing_ok=True)
    process = subprocess.Popen([sys.executable, "-m", "pytest", *QUIET, *args], cwd=root,
                               env=env(INTERP_BLOCK_MARKER=str(marker)),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               preexec_fn=_default_sigint)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if not marker.exists():
            process.kill()
            pytest.fail("the claim never blocked:\n" + process.communicate(timeout=30)[0])
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return process.returncode, out


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (by relative path) and its bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def temp_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.name.endswith(".tmp"))


def entries(root: Path) -> dict[str, dict[str, dict[str, Any]]]:
    data = json.loads((root / "baseline.json").read_text(encoding="utf-8"))
    assert data["schema"] == "interp-assert/baseline/1"
    return data["files"]


def retrain(root: Path) -> str:
    """Replace the checkpoint by one whose readout is 0.25 lower; returns its sha256."""
    import hashlib

    state = tiny_state_dict()
    state["readout"] = state["readout"] - 0.25
    save_checkpoint(root / "model.pt", state)
    return hashlib.sha256((root / "model.pt").read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project whose baseline, results JSON, report and plots a successful run recorded."""
    root = tmp_path_factory.mktemp("recorded")
    save_checkpoint(root / "model.pt")
    (root / "probe.py").write_text(PROBE, encoding="utf-8")
    write_claims(root / "model.claims.yaml", claim_file_text(MODEL, quantities=QUANTITIES))
    write_claims(root / "other.claims.yaml", claim_file_text(OTHER, quantities=QUANTITIES))
    done = run_pytest(root, *OUTPUTS, *REPORT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "7 passed" in done.stdout
    return root


@pytest.fixture
def project(recorded: Path, tmp_path: Path) -> Path:
    """A copy of the recorded project, with the checkpoint retrained."""
    root = tmp_path / "project"
    shutil.copytree(recorded, root)
    return root


# -- Ctrl-C ----------------------------------------------------------------------------------
@posix_only
def test_ctrl_c_before_any_claim_completes_changes_no_file(project: Path) -> None:
    before = snapshot(project)
    retrain(project)
    status, out = interrupt_at_marker(project, "model.claims.yaml::slow",
                                      "model.claims.yaml::mean", *OUTPUTS, *REPORT)
    assert status == pytest.ExitCode.INTERRUPTED, out
    assert "KeyboardInterrupt" in out
    after = snapshot(project)
    # nothing was measured: baseline, results, report and plots are the earlier ones
    for name in ("baseline.json", "results.json", "report.html"):
        assert after[name] == before[name], name
    plots = {name for name in before if name.startswith(".interp-assert/")}
    assert len(plots) == 7
    assert {name: after.get(name) for name in plots} == {name: before[name] for name in plots}
    assert temp_files(project) == []


@posix_only
def test_ctrl_c_part_way_keeps_the_baseline_and_reports_what_completed(project: Path) -> None:
    before = snapshot(project)
    retrain(project)
    status, out = interrupt_at_marker(project, "model.claims.yaml", *OUTPUTS, *REPORT)
    assert status == pytest.ExitCode.INTERRUPTED, out
    assert "KeyboardInterrupt" in out and "2 passed" in out
    assert ("baseline baseline.json not updated: the run was interrupted (run it again to "
            "record the values)") in out
    # top and low completed, 'slow' was interrupted, 'mean' never ran: the baseline is the
    # earlier one, byte for byte
    assert snapshot(project)["baseline.json"] == before["baseline.json"]

    # the results JSON and the report are whole files about the claims that completed
    data = json.loads((project / "results.json").read_text(encoding="utf-8"))
    assert sorted(r["name"] for r in data["results"]) == ["low", "top"]
    assert data["summary"] == {"holds": 2}
    report = (project / "report.html").read_text(encoding="utf-8")
    assert report.rstrip().endswith("</html>") and "max(readout) &gt; 1" in report
    assert "mean(readout)" not in report
    # plots: those of the completed claims redrawn, the others untouched
    after = snapshot(project)
    for name in ("slow", "mean"):
        key = f".interp-assert/plots/model.claims/{name}.png"
        assert after[key] == before[key]
    assert temp_files(project) == []


# -- a killed xdist worker -------------------------------------------------------------------
@posix_only
def test_killed_xdist_worker_fails_its_claim_and_keeps_its_baseline(project: Path) -> None:
    pytest.importorskip("xdist")
    old = entries(project)
    sha = retrain(project)
    done = run_pytest(project, "-p", "xdist", "-n", "2", "--interp-plots=never", *OUTPUTS,
                      INTERP_KILL_WORKER="1")
    out = done.stdout + done.stderr
    assert done.returncode == pytest.ExitCode.TESTS_FAILED, out
    # xdist reports the claim its worker died on as failed, once, replaces the worker, and
    # the claims after it on that claim file run on the replacement
    assert re.search(r"worker 'gw[01]' crashed while running 'other\.claims\.yaml::fatal'",
                     out), out
    assert "replacing crashed worker" in out
    assert "1 failed, 6 passed" in out  # not one failure per replacement worker

    # the baseline: every claim that completed recorded, the crashed one's entry kept
    new = entries(project)
    assert new["other.claims.yaml"]["fatal"] == old["other.claims.yaml"]["fatal"]
    updated = [(file, name) for file, checks in new.items() for name in checks
               if checks[name] != old[file][name]]
    assert sorted(updated) == sorted(
        [("model.claims.yaml", n) for n in ("top", "low", "slow", "mean")]
        + [("other.claims.yaml", n) for n in ("first", "last")])
    assert all(new[file][name]["sha256"] == sha for file, name in updated)
    data = json.loads((project / "results.json").read_text(encoding="utf-8"))
    # the results name every claim: the crashed one too, as an error
    fatal = ("other.claims.yaml", "fatal")
    assert sorted((r["file"], r["name"]) for r in data["results"]) == sorted([*updated, fatal])
    (crashed,) = [r for r in data["results"] if (r["file"], r["name"]) == fatal]
    assert crashed["verdict"] == "error" and "crashed while running" in crashed["error"]
    assert temp_files(project) == []


def test_scheduler_does_not_rerun_the_test_a_worker_crashed_on(pytester: pytest.Pytester) -> None:
    """xdist's loadscope re-queues it with the rest of its unit (pytest-xdist#1371), so every
    replacement worker would crash on it again; only the tests after it are re-queued."""
    pytest.importorskip("xdist")
    from interp_assert.drivers.pytest_xdist import make_scheduler

    config = pytester.parseconfig("-n", "2")
    config.option.tx = ["popen", "popen"]
    scheduler = make_scheduler(config, None)
    collection = ["a.claims.yaml::x", "a.claims.yaml::crash", "a.claims.yaml::z",
                  "b.claims.yaml::u"]

    class Node:
        """What the scheduler uses of xdist's WorkerController."""

        def __init__(self, name: str) -> None:
            self.gateway = SimpleNamespace(id=name)
            self.shutting_down = False
            self.sent: list[int] = []

        def send_runtest_some(self, indices: list[int]) -> None:
            self.sent.extend(indices)

        def shutdown(self) -> None:
            self.shutting_down = True

    node = Node
    first, second = node("gw0"), node("gw1")
    for worker in (first, second):
        scheduler.add_node(worker)
        scheduler.add_node_collection(worker, collection)
    scheduler.schedule()
    crashing = first if 0 in first.sent else second
    assert crashing.sent == [0, 1, 2]
    scheduler.mark_test_complete(crashing, 0)
    assert scheduler.remove_node(crashing) == "a.claims.yaml::crash"
    replacement = node("gw2")
    scheduler.add_node(replacement)
    scheduler.add_node_collection(replacement, collection)
    scheduler.schedule()
    sent = (replacement.sent + (second if crashing is first else first).sent)
    assert 1 not in sent and 2 in sent
    # a node that finished all its work is removed without a crash
    other = second if crashing is first else first
    for index in other.sent:
        scheduler.mark_test_complete(other, index)
    assert scheduler.remove_node(other) is None


# -- a failure in the middle of writing ------------------------------------------------------
def siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


@pytest.mark.parametrize("error", [KeyboardInterrupt, OSError])
def test_failed_rename_keeps_the_old_json_and_no_temp_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: type[BaseException]) -> None:
    path = tmp_path / "results.json"
    files.write_json(path, {"run": 1})
    old = path.read_bytes()
    seen: list[list[str]] = []

    def fail(src: Any, dst: Any) -> None:
        seen.append(siblings(path))
        raise error("interrupted before the rename")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(error):
        files.write_json(path, {"run": 2})
    monkeypatch.undo()
    # the new content was complete in a temp file next to it; that is gone again
    assert len(seen) == 1 and len(seen[0]) == 2 and seen[0][0].endswith(".tmp")
    assert path.read_bytes() == old and siblings(path) == ["results.json"]


def test_interrupt_while_writing_keeps_the_old_json(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "results.json"
    files.write_json(path, {"run": 1, "values": list(range(100))})
    old = path.read_bytes()
    fdopen = os.fdopen
    torn: list[int] = []

    class Torn:
        """A stream that writes half the text, then is interrupted (Ctrl-C)."""

        def __init__(self, stream: Any) -> None:
            self.stream = stream

        def __enter__(self) -> Torn:
            return self

        def __exit__(self, *exc: object) -> None:
            self.stream.close()

        def write(self, text: str) -> None:
            self.stream.write(text[:len(text) // 2])
            self.stream.flush()
            torn.extend(len(p.read_bytes()) for p in tmp_path.glob("*.tmp"))
            raise KeyboardInterrupt

    monkeypatch.setattr(os, "fdopen", lambda *args, **kwargs: Torn(fdopen(*args, **kwargs)))
    with pytest.raises(KeyboardInterrupt):
        files.write_json(path, {"run": 2, "values": list(range(1000))})
    monkeypatch.undo()
    assert len(torn) == 1 and torn[0] > 0  # a partial temp file existed ...
    assert path.read_bytes() == old and siblings(path) == ["results.json"]  # ... and is gone
    # serialization fails before any file is opened
    with pytest.raises(TypeError):
        files.write_json(path, {"run": 3, "bad": object()})
    assert path.read_bytes() == old and siblings(path) == ["results.json"]


def test_interrupted_plot_save_keeps_the_old_plot(tmp_path: Path) -> None:
    from matplotlib.figure import Figure

    path = tmp_path / "claim.png"
    figure = Figure()
    figure.add_subplot().plot([0, 1], [1, 0])
    files.save_figure(figure, path)
    old = path.read_bytes()
    assert old.startswith(b"\x89PNG")

    class Interrupting(Figure):
        def savefig(self, stream: Any, **kwargs: Any) -> None:
            stream.write(b"\x89PNG half a picture")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        files.save_figure(Interrupting(), path)
    assert path.read_bytes() == old and siblings(path) == ["claim.png"]


def test_failed_baseline_save_keeps_every_earlier_entry(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    store = BaselineStore(tmp_path / "baseline.json", "baseline.json",
                          {"a.claims.yaml": {"x": BaselineEntry(1.0, "m.pt", "abc")}})
    store.save()
    old = store.path.read_bytes()
    store.update([{"file": "a.claims.yaml", "name": "x", "value": 2.0},
                  {"file": "b.claims.yaml", "name": "y", "value": 3.0}], tmp_path)

    def fail(src: Any, dst: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(KeyboardInterrupt):
        store.save()
    monkeypatch.undo()
    assert store.path.read_bytes() == old and siblings(store.path) == ["baseline.json"]
    assert BaselineStore.load(store.path).files == {
        "a.claims.yaml": {"x": BaselineEntry(1.0, "m.pt", "abc")}}


@pytest.mark.parametrize("name", ["report.html", "report.md"])
def test_failed_report_write_keeps_the_old_report(tmp_path: Path, name: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / name
    markdown = name.endswith(".md")
    write_document([], tmp_path, path, markdown, title="Earlier")
    old = path.read_bytes()

    def fail(src: Any, dst: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(KeyboardInterrupt):
        write_document([], tmp_path, path, markdown, title="Later")
    monkeypatch.undo()
    assert path.read_bytes() == old and siblings(path) == [name]


@posix_only
def test_written_files_get_the_permissions_of_a_plain_write(tmp_path: Path) -> None:
    plain = tmp_path / "plain.json"
    plain.write_text("{}", encoding="utf-8")
    files.write_json(tmp_path / "results.json", {})
    write_document([], tmp_path, tmp_path / "report.html")
    for name in ("results.json", "report.html"):
        assert (tmp_path / name).stat().st_mode == plain.stat().st_mode, name
