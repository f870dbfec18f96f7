"""Benchmark: the main job, ``pytest specs``, against a plain script doing the same work.

Both are whole fresh processes, as a user runs them: ``python -m pytest specs/<file> ... -q
-p no:cacheprovider`` (default options: plots of failures, the JSON results written with
``--interp-json`` so the numbers can be compared) against ``python bench/main_job_plain.py``,
which loads the same checkpoints with the examples' loaders, generates the same data, runs
the same forward passes (clean, mean-ablated, patched) with forward hooks and computes the
claims' numbers with torch, numpy and the standard library.

pytest runs exactly the claim files that ``bench/plain/`` mirrors (``MIRRORED``, one module
per file of ``specs/``); the files run are printed with the table, and so is every result with
a value that no plain number mirrors (the plain script must do all the work pytest does for the
ratio to compare like with like).

The two run alternately (paired, the order swapped every repeat). The table gives medians
with min-max of the wall time and of the CPU time (user + system of the process and its
children, from ``os.wait4``; less sensitive than wall time to other work on the machine), and
the median of the per-pair ratios of each. Goal: ≤ 1.3×.

Afterwards the claims' recorded values are compared with the plain script's numbers
(within 1e-4): the count that agree is printed, and any that differ are listed. Where the plain
script also gives ``"<key> [low]"`` / ``"<key> [high]"``, the claim's recorded interval bounds
are compared the same way.

``--compared-only`` runs only the claims whose values are compared.

Run: python bench/bench_main_job.py [--repeats 3] [--compared-only] [--files STEM ...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.plain import key_of, mirrored, module  # noqa: E402

PLAIN = Path(__file__).resolve().parent / "main_job_plain.py"
GOAL = 1.3
TOLERANCE = 1e-4
#: the claim files of ``specs/`` that ``bench/plain/`` mirrors (loads, passes, numbers)
MIRRORED = tuple(mirrored())


def timed(command: list[str]) -> tuple[float, float]:
    """Wall and CPU time (user + system, children included) of one fresh process; exits on
    an unexpected failure."""
    with tempfile.TemporaryFile("w+") as out:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode not in (0, 1):
            out.seek(0)
            raise SystemExit(f"{' '.join(command)} failed ({process.returncode}):\n"
                             f"{out.read()[-6000:]}")
    return elapsed, usage.ru_utime + usage.ru_stime


def spec_files(compared_only: bool = False, stems: tuple[str, ...] = MIRRORED) -> list[str]:
    """The claim files pytest runs: those of ``specs/`` that the plain script mirrors; with
    ``compared_only``, only the claims whose values are compared (node ids; every claim of the
    sweep file)."""
    if not compared_only:
        return [f"specs/{stem}.claims.yaml" for stem in stems]
    claims = sorted({f"specs/{stem}.claims.yaml::{claim}" for stem in stems
                     for claim, _ in module(stem).SAME})
    swept = [f"specs/{stem}.claims.yaml" for stem in stems if hasattr(module(stem), "key")]
    return [*claims, *swept]


def compare(results: Path, numbers: Path) -> tuple[int, list[str], list[str]]:
    """How many claim values equal the plain script's numbers, those that differ, and the
    results with a value that no plain number mirrors."""
    plain: dict[str, dict[str, float]] = json.loads(numbers.read_text())
    agree, differ, missing = 0, [], []
    for record in json.loads(results.read_text())["results"]:
        stem = Path(record["file"]).name.split(".")[0]
        name = f"{stem}::{record['id']}" + (f"[{record['label']}]" if record.get("label") else "")
        key = key_of(stem, record) if stem in MIRRORED else None
        if key is None or key not in plain.get(stem, {}):
            if record.get("value") is not None:
                missing.append(name)
            continue
        pairs = [("", record.get("value"), plain[stem][key])]
        for side, suffix in enumerate((" [low]", " [high]")):
            if key + suffix in plain[stem]:
                bounds = record.get("interval") or [None, None]
                pairs.append((suffix, bounds[side], plain[stem][key + suffix]))
        for suffix, ours, theirs in pairs:
            if ours is not None and abs(ours - theirs) <= TOLERANCE * max(1.0, abs(theirs)):
                agree += 1
            else:
                differ.append(f"{name}{suffix}: {ours} vs {theirs}")
    return agree, differ, missing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="paired runs (median)")
    parser.add_argument("--compared-only", action="store_true",
                        help="run only the claims whose values the plain script computes (the "
                             "mirrored files also hold claims it does not compute)")
    parser.add_argument("--files", nargs="+", choices=MIRRORED, default=MIRRORED,
                        metavar="STEM", help="only these mirrored claim files (default: all)")
    args = parser.parse_args()
    stems = tuple(args.files)
    with tempfile.TemporaryDirectory(prefix="bench-main-") as tmp:
        folder = Path(tmp)
        results, numbers = folder / "results.json", folder / "numbers.json"
        commands = {
            "pytest specs": [sys.executable, "-m", "pytest", *spec_files(args.compared_only, stems),
                             "-q", "-p", "no:cacheprovider", f"--interp-json={results}",
                             f"--interp-artifacts={folder / 'artifacts'}"],
            "plain script": [sys.executable, str(PLAIN), "--out", str(numbers), *stems]}
        walls: dict[str, list[float]] = {name: [] for name in commands}
        cpus: dict[str, list[float]] = {name: [] for name in commands}
        for repeat in range(args.repeats):
            order = list(commands) if repeat % 2 == 0 else list(reversed(commands))
            for name in order:
                wall, cpu = timed(commands[name])
                walls[name].append(wall)
                cpus[name].append(cpu)
        agree, differ, missing = compare(results, numbers)
        summary: dict[str, Any] = json.loads(results.read_text())["summary"]
    what = ("only the claims whose values the plain script computes" if args.compared_only
            else "the claim files the plain script mirrors")
    print(f"main job, whole fresh processes, {args.repeats} paired repeats; pytest runs {what}: "
          f"{' '.join(spec_files(args.compared_only, stems))}")
    for what, times in (("wall", walls), ("CPU (user+sys)", cpus)):
        print(f"  {what}")
        for name, values in times.items():
            print(f"    {name:<13} {statistics.median(values):7.2f} s "
                  f"({min(values):.2f}-{max(values):.2f})")
        ratios = [o / b for o, b in zip(times["pytest specs"], times["plain script"])]
        ratio = statistics.median(ratios)
        print(f"    ratio         {ratio:7.2f}x ({min(ratios):.2f}-{max(ratios):.2f}); "
              f"goal <= {GOAL}x: {'met' if ratio <= GOAL else 'NOT met'}")
    print(f"pytest verdicts {summary}; {agree} claim values equal the plain script's numbers "
          f"within {TOLERANCE:g}" + (f"; {len(differ)} differ:" if differ else ""))
    for line in differ:
        print(f"  {line}")
    if missing:
        print(f"{len(missing)} results with a value have no plain number: {', '.join(missing)}")


if __name__ == "__main__":
    main()
