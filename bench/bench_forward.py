"""Benchmarks of the planned forward pass (issue: behaviour on data).

1. A claim file with 12 activation and metric claims on one dataset, evaluated by
   interp-assert, against one bare torch forward pass over the same data and batches with the
   same forward hooks, both warm in one process (model load excluded). Goal: ratio <= 1.3. The
   same file plus two distribution claims, which stream exact moments and 1024-bin histograms
   of every neuron of an MLP layer, is measured too (the bare pass then also hooks that layer).
2. The same two files as whole fresh processes, what a user waits for: interp-assert's
   (Python start, imports, reading and parsing the claim file, loading the checkpoint,
   generating the data, the pass, the claims) against a bare script's (Python start,
   ``import torch``, loading the checkpoint with the same loader, generating the same data,
   the same hooked pass); paired, alternating which goes first, median.
3. Peak memory of a distribution claim over n and 10 n samples, each in a fresh process whose
   peak RSS is its own (VmHWM of /proc/self/status, reset at exec; ``ru_maxrss`` would carry
   the parent's peak into the child). Goal: ratio <= 1.2; the table says whether it is met.

Run: python bench/bench_forward.py [--n 4000] [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = ROOT / "examples" / "adder" / "checkpoints" / "adder.pt"

CLAIMS = """
subject:
  checkpoint: {checkpoint}
  loader: examples.tiny_transformer:load
  python_path: {root}
data:
  sums:
    generate: examples.adder.data:generate
    n: {n}
    seed: 7
    batch_size: 500
    positions: X0..X9, +, Y0..Y9, =, A0..A10
quantities:
  exact-match: {{metric: exact_match, answer: A0..A10}}
  error: {{metric: position_error, answer: A0..A10, by: carry}}
  accuracy: {{metric: token_accuracy, answer: A0..A10}}
  loss: {{metric: loss, answer: A0..A10}}
  direction: {{metric: error_direction, answer: A0..A10}}
  p0: {{activation: blocks.0.attn.hook_pattern}}
  p1: {{activation: blocks.1.attn.hook_pattern}}
  mean_p0: "mean(p0, batch)"
  mean_p1: "mean(p1, batch)"
{extra_quantities}
claims:
  - {{id: c1, claim: "exact-match >= 0"}}
  - {{id: c2, claim: "error[A3, without] <= 1"}}
  - {{id: c3, claim: "error at A5 with carry <= 1"}}
  - {{id: c4, claim: "accuracy >= 0"}}
  - {{id: c5, claim: "loss >= 0"}}
  - {{id: c6, claim: "loss <= 10"}}
  - {{id: c7, claim: "mean_p0[L0H0, A3, X3] >= 0"}}
  - {{id: c8, claim: "mean_p1[L1H1, A4, Y4] >= 0"}}
  - {{id: c9, claim: "mean_p1[L1H0, A2, X2] >= 0"}}
  - {{id: c10, claim: "mean_p0[L0H2, A5, Y5] >= 0"}}
  - {{id: c11, claim: "mean_p0[L0H1, A0, X0] >= 0"}}
  - {{id: c12, claim: "exact-match <= 1"}}
{extra_claims}"""

PATTERNS = ["blocks.0.attn.hook_pattern", "blocks.1.attn.hook_pattern"]
# the second benchmark adds distribution claims: streamed statistics (exact moments and
# 1024-bin histograms) of all 256 neurons x 33 positions of the MLP, batch by batch
DISTRIBUTION = {
    "extra_quantities": "  post: {distribution: blocks.0.mlp.hook_post}",
    "extra_claims": '  - {id: d1, claim: "every neuron of post has kurtosis in [-3, 10000]"}\n'
                    '  - {id: d2, claim: "post[L0N0] has fraction |x| < 1000 >= 0.99"}\n'}


def bare_forward(model, tokens, batch_size: int,  # type: ignore[no-untyped-def]
                 hooks: list[str]) -> float:
    """One forward pass with the same hooks storing the same tensors, timed."""
    import torch

    store: dict[str, list] = {h: [] for h in hooks}
    handles = [model.get_submodule(h).register_forward_hook(
        lambda _m, _a, out, _h=h: store[_h].append(out.detach().float().cpu().numpy()))
        for h in hooks]
    started = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(tokens), batch_size):
            logits = model(tokens[start:start + batch_size])
            logits.float().cpu().numpy()
    elapsed = time.perf_counter() - started
    for handle in handles:
        handle.remove()
    return elapsed


def bench_overhead(n: int, repeats: int, distribution: bool) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from examples.adder.data import generate
    from interp_assert.evaluate import forward, stats
    from interp_assert.loading.subject import get_subject
    from interp_assert.run.runner import Runner, RunOptions, load_claim_file

    folder = Path(tempfile.mkdtemp())
    path = folder / "bench.claims.yaml"
    extra = DISTRIBUTION if distribution else {"extra_quantities": "", "extra_claims": ""}
    path.write_text(CLAIMS.format(checkpoint=CHECKPOINT, root=ROOT, n=n, **extra))
    hooks = PATTERNS + (["blocks.0.mlp.hook_post"] if distribution else [])
    claim_file = load_claim_file(path)
    subject = get_subject(claim_file.subject)
    model = subject.model  # load excluded from timings
    tokens = generate(n, 7)["tokens"]
    bare, ours = [], []
    for _ in range(repeats):
        bare.append(bare_forward(model, tokens, 500, hooks))
        subject.cache.clear()
        forward.FORWARD_PASSES.clear()
        stats._BOOTSTRAPS.clear()  # each repeat computes its intervals afresh
        started = time.perf_counter()
        runner = Runner(RunOptions(plots="never"))
        results = list(runner.run(runner.checks(claim_file)))
        ours.append(time.perf_counter() - started)
        assert all(r.status == "holds" for r in results), [
            (r.claim_id, r.outcome.measured if r.outcome else str(r.error)) for r in results]
        assert len(forward.FORWARD_PASSES) == 1, forward.FORWARD_PASSES
    # each repeat times both, one after the other: the median of the per-repeat ratios is
    # robust to the machine's speed drifting during the benchmark
    ratios = [o / b for o, b in zip(ours, bare)]
    return {"claims": len(claim_file.claims), "hooks": len(hooks), "samples": n,
            "bare_s": statistics.median(bare),
            "interp_assert_s": statistics.median(ours), "ratio": statistics.median(ratios),
            "ratio_range": f"{min(ratios):.2f}-{max(ratios):.2f}"}


WHOLE_OURS = """
import sys
sys.path.insert(0, {root!r})
from pathlib import Path
from interp_assert.run.runner import Runner, RunOptions, load_claim_file
claim_file = load_claim_file(Path({path!r}))
runner = Runner(RunOptions(plots="never", root=Path({folder!r})))
results = list(runner.run(runner.checks(claim_file)))
assert all(r.status == "holds" for r in results), [(r.claim_id, r.status) for r in results]
"""

WHOLE_BARE = """
import sys
sys.path.insert(0, {root!r})
import torch
from examples.adder.data import generate
from examples.tiny_transformer import load
model = load({checkpoint!r})
tokens = generate({n}, 7)["tokens"]
store = {{h: [] for h in {hooks!r}}}
for h in store:
    model.get_submodule(h).register_forward_hook(
        lambda _m, _a, out, _h=h: store[_h].append(out.detach().float().cpu().numpy()))
with torch.inference_mode():
    for start in range(0, len(tokens), 500):
        model(tokens[start:start + 500]).float().cpu().numpy()
"""


def bench_whole(n: int, repeats: int, distribution: bool) -> dict[str, Any]:
    """Whole fresh processes: interp-assert checking the file vs the bare script, paired."""
    folder = Path(tempfile.mkdtemp())
    path = folder / "bench.claims.yaml"
    extra = DISTRIBUTION if distribution else {"extra_quantities": "", "extra_claims": ""}
    path.write_text(CLAIMS.format(checkpoint=CHECKPOINT, root=ROOT, n=n, **extra))
    hooks = PATTERNS + (["blocks.0.mlp.hook_post"] if distribution else [])
    scripts = {"ours": WHOLE_OURS.format(root=str(ROOT), path=str(path), folder=str(folder)),
               "bare": WHOLE_BARE.format(root=str(ROOT), checkpoint=str(CHECKPOINT), n=n,
                                         hooks=hooks)}
    times: dict[str, list[float]] = {"ours": [], "bare": []}
    for repeat in range(repeats):
        for side in ("ours", "bare") if repeat % 2 == 0 else ("bare", "ours"):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", scripts[side]], check=True, cwd=folder,
                           capture_output=True)
            times[side].append(time.perf_counter() - started)
    ratios = [o / b for o, b in zip(times["ours"], times["bare"])]
    return {"claims": 12 + 2 * distribution, "hooks": len(hooks), "samples": n,
            "bare_s": statistics.median(times["bare"]),
            "interp_assert_s": statistics.median(times["ours"]),
            "ratio": statistics.median(ratios),
            "ratio_range": f"{min(ratios):.2f}-{max(ratios):.2f}"}


MEMORY_SCRIPT = """
import json, resource, sys, tracemalloc
sys.path.insert(0, {root!r})
from pathlib import Path
from interp_assert.loading.subject import get_subject
from interp_assert.run.runner import Runner, RunOptions, load_claim_file
path = Path({path!r})
cf = load_claim_file(path)
get_subject(cf.subject).model
tracemalloc.start()
runner = Runner(RunOptions(plots="never"))
result = next(iter(runner.run(runner.checks(cf)[:1])))
assert result.status == "holds", result.error
_, peak = tracemalloc.get_traced_memory()
status = Path("/proc/self/status")
hwm = [int(line.split()[1]) for line in status.read_text().splitlines()
       if line.startswith("VmHWM:")] if status.exists() else []
# VmHWM is this process's own peak; ru_maxrss can carry the parent's peak over the fork
print(json.dumps({{"rss_kb": hwm[0] if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "traced_peak": peak}}))
"""

MEMORY_CLAIMS = """
subject:
  checkpoint: {checkpoint}
  loader: examples.tiny_transformer:load
  python_path: {root}
data:
  sums: {{generate: examples.adder.data:generate, n: {n}, seed: 3, batch_size: 500}}
quantities:
  post: {{distribution: blocks.0.mlp.hook_post}}
claims:
  - {{id: kurtosis, claim: "all of L0N0, L0N1 of post >= -1000"}}
"""


def bench_memory(n: int) -> dict[str, float]:
    peaks = {}
    for size in (n, 10 * n):
        folder = Path(tempfile.mkdtemp())
        path = folder / "memory.claims.yaml"
        path.write_text(MEMORY_CLAIMS.format(checkpoint=CHECKPOINT, root=ROOT, n=size))
        out = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT.format(root=str(ROOT),
                                                                         path=str(path))],
                             capture_output=True, text=True, check=True)
        peaks[size] = json.loads(out.stdout.strip().splitlines()[-1])
    small, large = peaks[n], peaks[10 * n]
    return {"samples": f"{n} vs {10 * n}", "rss_small_mb": small["rss_kb"] / 1024,
            "rss_large_mb": large["rss_kb"] / 1024,
            "rss_ratio": large["rss_kb"] / small["rss_kb"],
            "traced_small_mb": small["traced_peak"] / 2**20,
            "traced_large_mb": large["traced_peak"] / 2**20,
            "traced_ratio": large["traced_peak"] / small["traced_peak"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    from tabulate import tabulate

    rows = [{"claims in the file": "12 activation and metric claims",
             **bench_overhead(args.n, args.repeats, distribution=False)},
            {"claims in the file": "the same + 2 distribution claims (256 neurons)",
             **bench_overhead(args.n, args.repeats, distribution=True)}]
    print("planned forward pass vs bare torch forward with the same hooks (goal ratio <= 1.3 "
          "for 10+ activation and metric claims)")
    print(tabulate([r.values() for r in rows], headers=list(rows[0]), floatfmt=".3f"))
    whole = [{"claims in the file": "12 activation and metric claims",
              **bench_whole(args.n, args.repeats, distribution=False)},
             {"claims in the file": "the same + 2 distribution claims (256 neurons)",
              **bench_whole(args.n, args.repeats, distribution=True)}]
    print("\nwhole fresh processes (imports, parsing, load, data, pass, claims) vs a bare script "
          "(import torch, load, data, the same hooked pass)")
    print(tabulate([r.values() for r in whole], headers=list(whole[0]), floatfmt=".3f"))
    memory = bench_memory(args.n // 2)
    memory["goal rss_ratio <= 1.2 met"] = "yes" if memory["rss_ratio"] <= 1.2 else "NO"
    print("\ndistribution claim, peak memory at n vs 10 n samples, each in a fresh process "
          "(goal ratio <= 1.2)")
    print(tabulate([memory.values()], headers=list(memory), floatfmt=".2f"))


if __name__ == "__main__":
    main()
