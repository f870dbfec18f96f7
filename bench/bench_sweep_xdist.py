"""Benchmark: a checkpoint sweep run serially and with pytest-xdist workers.

A claim file with behaviour claims (one planned forward pass per checkpoint) over a sweep of
>= 8 checkpoints of the induction model: ``examples/induction/checkpoints/step_*.pt`` when
they are there, else as many randomly initialised checkpoints of the same architecture. It
is run with ``-n 0``, ``-n 1`` and ``-n 2`` (pytest in a fresh process each time); the wall
times and the speed-ups against ``-n 0`` are printed. With xdist, the claims are distributed
by checkpoint, so each worker loads a checkpoint and runs its forward pass once.

Each pytest process runs torch with ``--threads`` intra-op threads (default 1, through
OMP_NUM_THREADS), so that workers do not compete for the cores; ``--threads 0`` leaves torch's
default.

Run: python bench/bench_sweep_xdist.py [--n 8000] [--workers 0,1,2] [--repeats 1] [--threads 1]
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

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "examples" / "induction" / "checkpoints"
MIN_CHECKPOINTS = 8
#: pytest plugins of this environment that only add start-up time to every process
UNRELATED = ("-p", "no:randomly", "-p", "no:hypothesispytest", "-p", "no:typeguard", "-p",
             "no:jaxtyping", "-p", "no:anyio")

CLAIMS = """
subject:
  checkpoints: {checkpoints}
  loader: examples.tiny_transformer:load
  python_path: {root}
data:
  seqs:
    generate: examples.induction.data:generate
    n: {n}
    seed: 11
    batch_size: 500
quantities:
  loss: {{metric: loss, mask: repeated}}
  first-loss: {{metric: loss, mask: not repeated}}
  p1: {{activation: blocks.1.attn.hook_pattern}}
  mean_p1: "mean(p1, batch)"
claims:
  - {{id: loss, claim: "loss < 1 nats", holds_from: 1000}}
  - {{id: first, claim: "first-loss > loss"}}
  - {{id: pattern, claim: "max(mean_p1[L1H0]) <= 1"}}
  - {{id: gap, claim: "first-loss - loss >= 0.5 nats", holds_from: 1000}}
"""


def checkpoints(folder: Path) -> tuple[str, str]:
    """(glob of the sweep, where it came from): the bundled series or a synthetic one."""
    bundled = sorted(BUNDLED.glob("step_*.pt"))
    if len(bundled) >= MIN_CHECKPOINTS:
        return str(BUNDLED / "step_*.pt"), f"bundled: {len(bundled)} checkpoints in {BUNDLED}"
    sys.path.insert(0, str(ROOT))
    import torch

    from examples.induction.train import MODEL_CONFIG
    from examples.tiny_transformer import TinyTransformer, save_checkpoint

    for index in range(MIN_CHECKPOINTS):
        torch.manual_seed(index)
        save_checkpoint(folder / f"step_{index * 250:04d}.pt", TinyTransformer(MODEL_CONFIG),
                        step=index * 250)
    return (str(folder / "step_*.pt"),
            f"synthetic: {MIN_CHECKPOINTS} random checkpoints of the induction architecture")


def run(claims: Path, workers: int, json_path: Path, threads: int) -> float:
    """Wall time of one pytest run of the sweep (a fresh process)."""
    env = dict(os.environ)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    command = [sys.executable, "-m", "pytest", str(claims), "-q", "-p", "no:cacheprovider",
               *UNRELATED, "-n", str(workers), "--interp-plots", "never",
               "--interp-json", str(json_path), "--rootdir", str(claims.parent)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=claims.parent, env=env)
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(f"pytest -n {workers} failed ({done.returncode}):\n{done.stdout}"
                         f"{done.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=8000, help="sequences per checkpoint")
    parser.add_argument("--workers", default="0,1,2", help="xdist worker counts to compare")
    parser.add_argument("--repeats", type=int, default=1, help="runs per worker count (median)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per process (0: torch's default)")
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        folder = Path(tmp)
        pattern, origin = checkpoints(folder / "ckpts")
        claims = folder / "sweep.claims.yaml"
        claims.write_text(CLAIMS.format(checkpoints=json.dumps(pattern), root=ROOT, n=args.n),
                          encoding="utf-8")
        threads = args.threads or "default"
        print(f"sweep: {origin}; {args.n} sequences per checkpoint, 4 claims each; "
              f"{threads} torch thread(s) per process, {os.cpu_count()} CPUs")
        times: dict[int, float] = {}
        outputs: dict[int, bytes] = {}
        for workers in counts:
            json_path = folder / f"results-{workers}.json"
            times[workers] = statistics.median(run(claims, workers, json_path, args.threads)
                                               for _ in range(args.repeats))
            outputs[workers] = json_path.read_bytes()
        records = json.loads(next(iter(outputs.values())))["results"]
        same = len(set(outputs.values())) == 1
        base = times[counts[0]]
        print(f"{'workers':>8} {'wall s':>8} {'speed-up':>9}")
        for workers in counts:
            print(f"{workers:>8} {times[workers]:8.2f} {base / times[workers]:8.2f}x")
        verdicts = json.loads(next(iter(outputs.values())))["summary"]
        print(f"{len(records)} results per run {verdicts}; JSON results identical across runs: "
              f"{same}")


if __name__ == "__main__":
    main()
