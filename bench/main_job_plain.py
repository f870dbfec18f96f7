"""The main job without interp-assert: the loads, forward passes and numbers of ``specs/``.

A plain script of the kind a researcher writes instead of claim files: for every claim file
that ``bench/plain/`` mirrors, it loads the checkpoints that file uses (with the examples'
loaders and data generators, each checkpoint once per process), runs the same forward passes
(clean, mean-ablated, patched, ...) with forward hooks, and computes the claims' numbers with
torch, numpy, scipy and the standard library. ``bench/bench_main_job.py`` times it as a fresh
process against ``pytest`` on the same files and compares its numbers with the claims'
recorded values.

Run: python bench/main_job_plain.py [--out numbers.json] [STEM ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.plain import mirrored, module  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="write the numbers here (JSON)")
    parser.add_argument("stems", nargs="*", help="claim files to mirror (default: all mirrored)")
    args = parser.parse_args()
    # every mirror is imported first: those of claim files whose passes pytest shares ask
    # for their hooks on one shared pass (bench.plain.common.observe)
    mirrors = {stem: module(stem) for stem in args.stems or mirrored()}
    numbers = {stem: mirror.numbers() for stem, mirror in mirrors.items()}
    if args.out:
        args.out.write_text(json.dumps(numbers, indent=1))


if __name__ == "__main__":
    main()
