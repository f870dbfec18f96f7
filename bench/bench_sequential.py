"""Sequential evaluation on the bundled claim files: how much of its budget each confidence
claim uses when judged by a confidence sequence, and the wall time of ``pytest specs`` with
the confidence claims judged sequentially (``--interp-sequential``) against fixed-sample.
Under ``--interp-sequential`` every confidence claim that can be sequential is: rates, loss and
logit_diff comparisons, attention scores, ablation/patching effects that drop or rise.

    python bench/bench_sequential.py [--skip-timing]

Part 1 runs every ``with C% confidence`` claim of ``specs/`` alone (so that no fixed-sample
claim shares its pass) with every confidence claim sequential, plus claims far from their
bound on the adder, and prints samples used of the budget. Part 2 times ``pytest`` on copies
of ``specs/`` in fresh processes with the result cache off: confidence claims written
fixed-sample (', sequentially' removed) against the same files run with
``--interp-sequential``; then the confidence claims alone (``-k 'confident or sequential'``).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FAR = {  # claims far from their bound, on the adder's own sums
    "exact-match ≥ 50% with 95% confidence, sequentially": "adder.claims.yaml",
    "token-accuracy ≥ 50% with 95% confidence, sequentially": "adder.claims.yaml",
    "exact-match ≥ 90% with 95% confidence, sequentially": "adder.claims.yaml",
    "L0H1 attends to the previous token ≥ 0.2 with 95% confidence, sequentially":
        "induction.claims.yaml",
    "loss ≤ 0.1 with 95% confidence, sequentially": "adder.claims.yaml",
    "ablate L0H3 (mean): loss rises by ≥ 0.3 with 95% confidence, sequentially":
        "adder.claims.yaml",
}
#: a loss on the adder (its claim file has none), for the claims above that read one
LOSS = "  loss:\n    metric: loss\n    answer: A0..A10\n"


def budget_fractions() -> list[tuple[str, str, str, int, int]]:
    """(file, claim, verdict, samples used, budget) of each confidence claim run alone."""
    sys.path.insert(0, str(ROOT))
    from interp_assert.plan.sequential import set_sequential
    from interp_assert.run.runner import Runner, RunOptions

    set_sequential(True)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        jobs: list[tuple[Path, str | None, str | None]] = []
        for path in sorted((ROOT / "specs").glob("*.claims.yaml")):
            text = path.read_text(encoding="utf-8")
            if "confidence" in text:
                jobs.append((path, None, None))
        for sentence, name in FAR.items():
            jobs.append((ROOT / "specs" / name, sentence, None))
        for path, sentence, _ in jobs:
            runner = Runner(RunOptions(root=ROOT, artifacts=Path(folder), plots="never"))
            if sentence is not None:
                head = path.read_text(encoding="utf-8").split("\nclaims:\n")[0]
                head = head.replace("../examples", str(ROOT / "examples"))
                if "loss" in sentence and name == "adder.claims.yaml":
                    head += "\n" + LOSS
                path = Path(folder) / f"far{len(rows)}.claims.yaml"
                path.write_text(f"{head}\nclaims:\n  - id: far\n    claim: \"{sentence}\"\n",
                                encoding="utf-8")
            claim_file = runner.load(path)
            checks = [c for c in runner.checks(claim_file) if "confidence" in c.entry.text]
            for check, result in zip(checks, runner.run(checks)):  # planned together
                info = result.outcome.sequential if result.outcome else None
                if info is None:
                    rows.append((path.name, check.entry.text, result.verdict.value, 0, 0))
                    continue
                rows.append((path.name, check.entry.text, result.verdict.value, info["used"],
                             info["budget"]))
    set_sequential(None)
    return rows


def spec_copies(folder: Path, sequential: bool) -> Path:
    """The bundled claim files copied into ``folder`` (paths made absolute), confidence claims
    written fixed-sample (', sequentially' removed) or left for --interp-sequential."""
    target = folder / ("seq_copy" if sequential else "fixed_copy")  # not matched by -k
    target.mkdir()
    for path in sorted((ROOT / "specs").glob("*.claims.yaml")):
        text = path.read_text(encoding="utf-8").replace("../examples", str(ROOT / "examples"))
        if not sequential:
            text = text.replace(" confidence, sequentially", " confidence")
        (target / path.name).write_text(text, encoding="utf-8")
    return target


def pytest_seconds(folder: Path, *args: str) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + sys of the child process and its children) of one
    ``pytest`` run in a fresh process (result cache off)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "INTERP_ASSERT_CACHE": "off"}
    env.pop("INTERP_ASSERT_SEQUENTIAL", None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-p", "no:randomly", "-c", str(ROOT / "pyproject.toml"),
                           "--rootdir", str(ROOT), str(folder), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    tail = done.stdout.strip().splitlines()[-1:] or [""]
    print(f"  pytest {folder.name} {' '.join(args)}: wall {seconds:.1f} s, CPU {cpu:.1f} s "
          f"({tail[0]})")
    return seconds, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-timing", action="store_true", help="only part 1")
    parser.add_argument("--skip-whole", action="store_true",
                        help="time only the confidence claims, not the whole of specs/")
    args = parser.parse_args()
    print("1. samples used of the budget, each confidence claim alone on its pass")
    for file, claim, verdict, used, budget in budget_fractions():
        share = f"{used}/{budget} = {used / budget:.1%}" if budget else "not sequential"
        print(f"  {file}: {claim}: {verdict}, {share}")
    if args.skip_timing:
        return
    print("2. wall time, fixed-sample vs sequential (fresh processes, result cache off)")
    with tempfile.TemporaryDirectory() as folder:
        fixed_specs = spec_copies(Path(folder), sequential=False)
        sequential_specs = spec_copies(Path(folder), sequential=True)
        if not args.skip_whole:
            fixed = pytest_seconds(fixed_specs)
            sequential = pytest_seconds(sequential_specs, "--interp-sequential")
            print(f"  pytest specs: {fixed[0] / sequential[0]:.2f}x (wall), "
                  f"{fixed[1] / sequential[1]:.2f}x (CPU) faster sequentially")
        only = ("-k", "confident or sequential or surely")
        fixed_only = pytest_seconds(fixed_specs, *only)
        sequential_only = pytest_seconds(sequential_specs, *only, "--interp-sequential")
        print(f"  confidence claims alone: {fixed_only[0] / sequential_only[0]:.2f}x (wall), "
              f"{fixed_only[1] / sequential_only[1]:.2f}x (CPU) faster sequentially")

if __name__ == "__main__":
    main()
