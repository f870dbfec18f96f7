"""Collection time against the number of claims: ``pytest --collect-only`` on claim files of
500 and 10,000 attention claims (all-MiniLM-L6-v2's 72 heads, seven targets, varied bounds).

Each measurement is a fresh process (``python -m pytest --collect-only -q``), the two sizes
alternate, and the medians are reported with the cost per added claim. Collection reads and
parses the file and makes one pytest item per claim; it loads no model. Goal (issue 15): 10,000
claims collect well under 10 s, and the cost grows linearly.

    python bench/bench_collection.py [--repeat 3] [--sizes 500 10000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ("the previous token", "the next token", "the first token", "itself", '"[CLS]"',
           '"[SEP]"', "the token after the previous occurrence")


def write(folder: Path, count: int) -> Path:
    """A claim file of ``count`` attention claims."""
    lines = ["title: collection benchmark", "subject:", "  loader: examples.minilm.model:load",
             "data:", "  sentences:",
             f"    sentences: {ROOT / 'examples' / 'minilm' / 'sentences.txt'}",
             "    tokenizer: examples.minilm.model:model_folder", "quantities:"]
    lines += [f"  attn{layer}: {{activation: blocks.{layer}.attn.hook_pattern}}"
              for layer in range(6)]
    lines.append("claims:")
    for i in range(count):
        head, target = divmod(i, len(TARGETS))
        layer, index = divmod(head % 72, 12)
        bound = f"≥ {(i % 997) / 1000:.3f}" if i % 2 else f"≤ {(i % 89) / 100:.2f}"
        lines.append(f"  - id: c{i}")
        lines.append(f"    claim: 'L{layer}H{index} attends to {TARGETS[target]} {bound}'")
    path = folder / f"claims{count}.claims.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def collect(path: Path) -> float:
    """Seconds of one fresh ``pytest --collect-only`` (which must find every claim)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                           "-p", "no:cacheprovider", path.name], cwd=path.parent, env=env,
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0 or "error" in done.stdout.lower().splitlines()[-1]:
        raise SystemExit(f"collection failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 10000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = {n: write(Path(tmp), n) for n in args.sizes}
        collect(paths[args.sizes[0]])  # untimed: compiles the modules
        times: dict[int, list[float]] = {n: [] for n in args.sizes}
        for i in range(args.repeat):
            for n in args.sizes if i % 2 == 0 else args.sizes[::-1]:
                times[n].append(collect(paths[n]))
            print("run", i + 1, ", ".join(f"{n}: {times[n][-1]:.2f} s" for n in args.sizes),
                  flush=True)
    medians = {n: statistics.median(t) for n, t in times.items()}
    for n, median in medians.items():
        print(f"{n:>6} claims: median {median:.2f} s (min {min(times[n]):.2f})")
    small, large = min(medians), max(medians)
    if small != large:
        slope = (medians[large] - medians[small]) / (large - small)
        print(f"cost per added claim {slope * 1000:.2f} ms; {large} claims take "
              f"{medians[large] / medians[small]:.2f}x the time of {small}")


if __name__ == "__main__":
    main()
