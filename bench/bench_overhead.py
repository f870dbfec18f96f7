"""Where interp-assert's own time goes on the 500-claim MiniLM file, phase by phase.

Runs ``python -m pytest -q --interp-plots=never --interp-json ... FILE`` on the claim file of
``bench/bench_minilm_claims.py`` in fresh processes with a small probe plugin that reads the
process's CPU time (``time.process_time``) at each phase: start-up (pytest and its plugins),
collection, the first claim (imports, model and tokenizer load, the forward pass), the other
claims, the end of the session (results file, terminal summary) and the interpreter's exit
(from the child's rusage). It also sums the time of Python's cyclic garbage collections per
phase (``gc.callbacks``) and the CPU time of the innermost ``pytest_runtest_setup`` (where an
item asks the runner for its claim's result). Each run is repeated with ``-p no:logging`` to
measure what pytest's logging plugin costs per item (it attaches its handlers to every
non-propagating logger, about 60 of them once torch and transformers are imported, for each
phase of each item). The bare script of ``bench_minilm_claims.py`` is timed the same way.

    python bench/bench_overhead.py [--repeat 3] [--claims 500] [--tree PATH]

``--tree`` runs the interp-assert of another checkout (a before/after comparison).

CPU times, medians over the repeats. Needs the extra [hf].
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_minilm_claims import BARE, ROOT, SENTENCES, claim_file

PROBE = r'''
import atexit, gc, json, os, time
import pytest

MARKS = {"plugin": time.process_time()}
GC = {}
SETUP = [0.0]
_phase = ["start-up"]
_items = [0]
_began = [0.0]


def _gc(stage, info):
    if stage == "start":
        _began[0] = time.process_time()
    else:
        GC[_phase[0]] = GC.get(_phase[0], 0.0) + time.process_time() - _began[0]


gc.callbacks.append(_gc)


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session):
    MARKS["start-up"] = time.process_time()
    _phase[0] = "collection"


def pytest_collection_finish(session):
    MARKS["collection"] = time.process_time()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    _items[0] += 1
    if _items[0] == 2:
        MARKS["first claim"] = time.process_time()
    _phase[0] = "first claim" if _items[0] == 1 else "other claims"


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_setup(item):
    began = time.process_time()
    try:
        return (yield)
    finally:
        if _items[0] > 1:
            SETUP[0] += time.process_time() - began


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    MARKS["other claims"] = time.process_time()
    _phase[0] = "session end"


def _write():
    MARKS["session end"] = time.process_time()
    with open(os.environ["OVERHEAD_PROBE_OUT"], "w") as out:
        json.dump({"marks": MARKS, "gc": GC, "setup": SETUP[0]}, out)


atexit.register(_write)
'''

BARE_PROBE = r'''
import atexit, gc, json, os, runpy, sys, time
GC = [0.0]
_began = [0.0]
def _gc(stage, info):
    if stage == "start":
        _began[0] = time.process_time()
    else:
        GC[0] += time.process_time() - _began[0]
gc.callbacks.append(_gc)
def _write():
    with open(os.environ["OVERHEAD_PROBE_OUT"], "w") as out:
        json.dump({"marks": {"script": time.process_time()}, "gc": {"script": GC[0]}}, out)
atexit.register(_write)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
'''

PHASES = ("start-up", "collection", "first claim", "other claims", "session end", "exit")


def run(command: list[str], folder: Path, tree: Path = ROOT) -> dict:
    """One fresh process: the probe's marks and the child's total CPU time (rusage)."""
    out = folder / "probe.json"
    env = dict(os.environ, OVERHEAD_PROBE_OUT=str(out), PYTHONPATH=os.pathsep.join(
        [str(folder), str(tree), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    process = subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise SystemExit(f"{' '.join(command)} failed")
    found = json.loads(out.read_text())
    found["total"] = usage.ru_utime + usage.ru_stime
    return found


def phases(found: dict) -> dict[str, float]:
    """CPU seconds per phase (the marks are cumulative; 'exit' is after the last mark)."""
    marks, result, previous = found["marks"], {}, 0.0
    for name in PHASES[:-1]:
        result[name] = marks[name] - previous
        previous = marks[name]
    result["exit"] = found["total"] - previous
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--claims", type=int, default=500)
    parser.add_argument("--tree", type=Path, default=ROOT, help="the interp-assert checkout")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path, _ = claim_file(folder, args.claims)
        (folder / "overhead_probe.py").write_text(PROBE, encoding="utf-8")
        (folder / "bare.py").write_text(BARE, encoding="utf-8")
        (folder / "bare_probe.py").write_text(BARE_PROBE, encoding="utf-8")
        (folder / "wanted.json").write_text("[]")
        ours = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
                "overhead_probe", "--interp-plots=never", "--interp-json", "results.json",
                path.name]
        quiet = [*ours[:-1], "-p", "no:logging", path.name]
        bare = [sys.executable, "bare_probe.py", "bare.py", str(SENTENCES), "wanted.json",
                "bare.json"]
        runs: dict[str, list[dict]] = {"pytest": [], "pytest -p no:logging": [], "bare": []}
        for command in (ours, bare):  # untimed: compiles what both import
            run(command, folder, args.tree)
        for _ in range(args.repeat):
            for name, command in (("pytest", ours), ("pytest -p no:logging", quiet),
                                  ("bare", bare)):
                runs[name].append(run(command, folder, args.tree))
    report(runs)


def report(runs: dict[str, list[dict]]) -> None:
    med = statistics.median
    print(f"CPU seconds, medians of {len(runs['bare'])} fresh processes each")
    print(f"{'phase':14s} {'pytest':>8s} {'no:logging':>11s} {'gc (pytest)':>12s}")
    for name in PHASES:
        values = [med(phases(r)[name] for r in runs[key]) for key in ("pytest",
                                                                      "pytest -p no:logging")]
        gc_time = med(r["gc"].get(name, 0.0) for r in runs["pytest"])
        print(f"{name:14s} {values[0]:8.2f} {values[1]:11.2f} {gc_time:12.2f}")
    totals = {k: med(r["total"] for r in v) for k, v in runs.items()}
    setup = med(r["setup"] for r in runs["pytest"])
    print(f"{'total':14s} {totals['pytest']:8.2f} {totals['pytest -p no:logging']:11.2f}")
    print(f"runner results of the claims after the first (innermost setup): {setup:.2f} s")
    script = med(r["marks"]["script"] for r in runs["bare"])
    print(f"bare script: {totals['bare']:.2f} s ({script:.2f} s until its end, then "
          f"{totals['bare'] - script:.2f} s exit; gc "
          f"{med(r['gc']['script'] for r in runs['bare']):.2f} s); pytest/bare "
          f"{totals['pytest'] / totals['bare']:.2f}x CPU")


if __name__ == "__main__":
    main()
