"""Benchmark: a checkpoint sweep run serially and with pytest-xdist workers.

A claim file with behaviour claims (one planned forward pass per checkpoint) over a sweep of
>= 8 checkpoints of the induction model: ``examples/induction/checkpoints/step_*.pt`` when
they are there, else as many randomly initialised checkpoints of the same architecture. Each
configuration is a fresh ``pytest`` process; the configurations run one after the other in
every repeat (paired), and the table gives the median wall time and the median of the
per-repeat speed-ups against the serial run.

The baseline is what a user gets by default: ``-n 0`` with torch's default threads (nothing
pinned). Each worker count of ``--workers`` is run the same way (the environment as given, so
the workers use whatever threads the plugin and torch choose), and, with ``--threads T``
(default 1), once more with ``OMP_NUM_THREADS=T`` for every process, to show what pinning
threads per worker would give. Speed-ups are always against the unpinned serial run.

Run: python bench/bench_sweep_xdist.py [--n 8000] [--workers 0,1,2] [--repeats 3] [--threads 1]
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
    """Wall time of one pytest run of the sweep (a fresh process); ``threads`` 0: torch's
    default threads (OMP_NUM_THREADS and MKL_NUM_THREADS unset)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
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
    parser.add_argument("--repeats", type=int, default=3, help="paired runs (median)")
    parser.add_argument("--threads", type=int, default=1,
                        help="also run each worker count with this many threads per process "
                             "(OMP_NUM_THREADS); 0: only the unpinned runs")
    args = parser.parse_args()
    configs = [(0, 0)] + [(int(w), 0) for w in args.workers.split(",") if int(w) > 0]
    if args.threads:
        configs += [(w, args.threads) for w, _ in configs[1:]]
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        folder = Path(tmp)
        pattern, origin = checkpoints(folder / "ckpts")
        claims = folder / "sweep.claims.yaml"
        claims.write_text(CLAIMS.format(checkpoints=json.dumps(pattern), root=ROOT, n=args.n),
                          encoding="utf-8")
        print(f"sweep: {origin}; {args.n} sequences per checkpoint, 4 claims each; "
              f"{os.cpu_count()} CPUs; {args.repeats} paired repeats")
        times: dict[tuple[int, int], list[float]] = {c: [] for c in configs}
        outputs: dict[tuple[int, int], bytes] = {}
        for _ in range(args.repeats):
            for workers, threads in configs:
                json_path = folder / f"results-{workers}-{threads}.json"
                times[(workers, threads)].append(run(claims, workers, json_path, threads))
                outputs[(workers, threads)] = json_path.read_bytes()
        base = times[(0, 0)]
        print(f"{'run':<34} {'wall s (median, min-max)':>26} {'speed-up vs serial':>19}")
        for workers, threads in configs:
            wall = times[(workers, threads)]
            speed = statistics.median(b / t for b, t in zip(base, wall))
            name = "serial (-n 0), default threads" if workers == 0 else (
                f"-n {workers}, " + (f"OMP_NUM_THREADS={threads}" if threads
                                     else "default threads"))
            print(f"{name:<34} {statistics.median(wall):8.2f} ({min(wall):.2f}-{max(wall):.2f})"
                  f"{'':>5} {speed:17.2f}x")
        records = json.loads(outputs[(0, 0)])
        same = len(set(outputs.values())) == 1
        print(f"{len(records['results'])} results per run {records['summary']}; JSON results "
              f"identical across runs: {same}")


if __name__ == "__main__":
    main()
