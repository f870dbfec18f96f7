"""Concurrent baseline updates lose nothing: 2 and 4 processes running
``python -m interp_assert.drivers.cli check FILE --baseline b.json --baseline-update`` on one
baseline file at the same moment, round after round, and every entry of every process is in
the file afterwards (load, update and save run under a file lock).

Starting a Python process that imports the library takes longer than a run of these claims,
so each updater is one long-lived process that runs the CLI module as ``python -m`` does
(``runpy``, with its ``sys.argv``) once per round, when the test tells every updater to go at
the same moment; one more round starts fresh ``python -m`` processes. The updaters' update
step is slowed a little (inside the lock): without the lock their read-modify-writes would
overlap in most rounds, so a missing lock cannot pass by luck."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CLAIMS_PER_FILE = 20
ROUNDS = int(os.environ.get("INTERP_ASSERT_BASELINE_ROUNDS", "50"))

UPDATER = textwrap.dedent('''
    import contextlib, io, runpy, sys, time
    import interp_assert.drivers.cli  # imported once; each round runs it as python -m does
    from interp_assert.output.baseline import BaselineStore
    update = BaselineStore.update
    def slow_update(self, *args, **kwargs):  # widens load-update-save: unlocked, they overlap
        time.sleep(0.03)
        return update(self, *args, **kwargs)
    BaselineStore.update = slow_update
    argv = sys.argv[1:]
    for line in sys.stdin:
        sys.argv = ["interp-assert", *argv]
        out = io.StringIO()
        code = 0
        with contextlib.redirect_stdout(out):
            try:
                runpy.run_module("interp_assert.drivers.cli", run_name="__main__")
            except SystemExit as exc:
                code = exc.code
        recorded = [l for l in out.getvalue().splitlines() if l.startswith("baseline ")]
        print(code, *recorded, flush=True)
''')


def claim_file(folder: Path, name: str) -> Path:
    lines = ["claims:"]
    for i in range(CLAIMS_PER_FILE):
        lines += [f"  - id: {name}-{i}", f"    claim: {i} + 1 > 0"]
    path = folder / f"{name}.claims.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def lost_entries(baseline: Path, names: list[str]) -> int:
    data = json.loads(baseline.read_text(encoding="utf-8"))
    files = data["files"]
    lost = 0
    for name in names:
        entries = files.get(f"{name}.claims.yaml", {})
        lost += CLAIMS_PER_FILE - len(entries)
        for i in range(CLAIMS_PER_FILE):
            assert entries.get(f"{name}-{i}", {}).get("value", i + 1.0) == i + 1.0
    return lost


@pytest.mark.parametrize("updaters", [2, 4])
def test_concurrent_updaters_lose_no_entry(tmp_path: Path, updaters: int) -> None:
    names = [f"w{k}" for k in range(updaters)]
    args = [["check", str(claim_file(tmp_path, name)), "--baseline", "b.json",
             "--baseline-update", "-q", "--plots", "never"] for name in names]
    processes = [subprocess.Popen([sys.executable, "-c", UPDATER, *argv], cwd=tmp_path,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                 for argv in args]
    baseline = tmp_path / "b.json"
    lost = 0
    try:
        for _ in range(ROUNDS):
            baseline.unlink(missing_ok=True)
            for process in processes:  # every updater starts at the same moment
                assert process.stdin is not None
                process.stdin.write("go\n")
            for process in processes:
                process.stdin.flush()
            for process in processes:
                assert process.stdout is not None
                reply = process.stdout.readline()
                assert reply.startswith("0 baseline b.json: 20 of 20 values recorded"), reply
            lost += lost_entries(baseline, names)
    finally:
        for process in processes:
            process.stdin.close()
            process.wait(timeout=60)
    assert lost == 0, f"{lost} entries lost over {ROUNDS} rounds of {updaters} updaters"


def test_concurrent_fresh_cli_processes_lose_no_entry(tmp_path: Path) -> None:
    """One round of four fresh ``python -m interp_assert.drivers.cli`` processes."""
    names = [f"p{k}" for k in range(4)]
    processes = [subprocess.Popen(
        [sys.executable, "-m", "interp_assert.drivers.cli", "check",
         str(claim_file(tmp_path, name)), "--baseline", "b.json", "--baseline-update", "-q"],
        cwd=tmp_path, stdout=subprocess.PIPE, text=True) for name in names]
    outputs = [process.communicate(timeout=120)[0] for process in processes]
    assert [p.returncode for p in processes] == [0] * 4, outputs
    assert all("baseline b.json: 20 of 20 values recorded" in out for out in outputs)
    assert lost_entries(tmp_path / "b.json", names) == 0
