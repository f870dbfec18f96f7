"""Sequential evaluation on the bundled claim files: how much of its budget each confidence
claim uses when judged by a confidence sequence, and the wall time of ``pytest specs`` with
every claim that can be sequential written as sequential against the files as they are.

    python bench/bench_sequential.py [--skip-timing] [--skip-whole] [--validity]

Part 1 runs every ``with C% confidence`` claim of ``specs/`` alone (so that no fixed-sample
claim shares its pass) with every confidence claim sequential, plus claims far from their
bound, and prints samples used of the budget. Part 2 writes two copies of ``specs/``: the
files as they are (', sequentially' removed), and the same files with every claim that can be
sequential written ``... with 95% confidence, sequentially`` (a claim that already has a
confidence level keeps it; which claims can is found by judging the rewritten files once and
keeping the rewrites judged by a confidence sequence). It times ``pytest`` on both in fresh
processes with the result cache off, and prints the Amdahl bound: the share of the session
spent in forward passes that sequential claims could stop (every reader of the pass is
sequential), measured in-process on the sequential copy with those passes run whole, and so
the largest speed-up stopping them could give. ``--validity`` runs 1,000 seeded streams per
case with the truth on the bound through the sequential ``changes``/``recovers`` rules on
rates (betting sequences) and prints the false-pass rates.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
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
    """The bundled claim files copied into ``folder`` (paths made absolute): as they are
    (', sequentially' removed), or with every claim that can be sequential written so."""
    target = folder / ("seq_copy" if sequential else "fixed_copy")  # not matched by -k
    target.mkdir()
    for path in sorted((ROOT / "specs").glob("*.claims.yaml")):
        text = path.read_text(encoding="utf-8").replace("../examples", str(ROOT / "examples"))
        text = text.replace(" confidence, sequentially", " confidence")
        (target / path.name).write_text(text, encoding="utf-8")
    if sequential:
        kept = make_sequential(target)
        print(f"  {kept} claims of specs/ written as sequential")
    return target


_EACH = re.compile(r"\s+for\s+\w+\s+in\s+\S+$")
_LEVEL = re.compile(r"with\s+\d+(?:\.\d+)?%\s+confidence$")


def rewritten(sentence: str) -> str | None:
    """``sentence`` written as sequential, at its own confidence level or 95% (before a
    template's ``for i in ...``); None when it already is. Whether the result parses and is
    judged sequentially is found by running it (:func:`make_sequential`)."""
    text = " ".join(sentence.split())
    if "sequentially" in text:
        return None
    each = _EACH.search(text)
    body, tail = (text[:each.start()], text[each.start():]) if each else (text, "")
    level = "" if _LEVEL.search(body) else " with 95% confidence"
    return f"{body}{level}, sequentially{tail}"


def _yaml_loader() -> type:
    """A SafeLoader reading only true/false as booleans (YAML 1.2, as claim files are read):
    an ``on:`` key stays the string 'on'."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    bool_tag = "tag:yaml.org,2002:bool"
    Loader.yaml_implicit_resolvers = {
        first: [r for r in resolvers if r[0] != bool_tag]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    Loader.add_implicit_resolver(bool_tag, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                 list("tTfF"))
    return Loader


def make_sequential(folder: Path) -> int:
    """Rewrite every claim of the files in ``folder`` that can be sequential (judged once
    in-process: the rewrites whose results carry a confidence sequence stay); the count."""
    import yaml

    sys.path.insert(0, str(ROOT))
    from interp_assert.run.runner import Runner, RunOptions

    kept = 0
    for path in sorted(folder.glob("*.claims.yaml")):
        original = yaml.load(path.read_text(encoding="utf-8"), Loader=_yaml_loader())
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_yaml_loader())
        changed = {}
        for i, entry in enumerate(data.get("claims") or []):
            new = rewritten(str(entry.get("claim", "")))
            if new is not None:
                entry["claim"] = new
                changed[str(entry.get("id", i))] = i
        if not changed:
            continue
        path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False),
                        encoding="utf-8")
        runner = Runner(RunOptions(root=folder, artifacts=folder.parent / "probe",
                                   plots="never"))
        checks = runner.checks(runner.load(path))
        for check, result in zip(checks, runner.run(checks)):
            index = changed.get(check.entry.id)
            if index is None:
                continue
            if result.outcome is None or result.outcome.sequential is None:
                data["claims"][index]["claim"] = original["claims"][index]["claim"]
            else:
                kept += 1
        path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False),
                        encoding="utf-8")
    return kept


def skippable_seconds(folder: Path) -> tuple[float, float, float]:
    """(seconds of the passes that sequential claims could stop, seconds of every pass,
    seconds of the whole run): the claim files of ``folder`` run in-process with every pass
    run whole, each timed."""
    sys.path.insert(0, str(ROOT))
    from interp_assert.evaluate import forward, sequential
    from interp_assert.loading.subject import clear_subjects
    from interp_assert.run.runner import Runner, RunOptions

    clear_subjects()  # nothing computed by an earlier run in this process
    stoppable: list[bool] = []
    seconds = {True: 0.0, False: 0.0}
    original_rule, original_forward = sequential.pass_rule, forward.run_forward

    def rule(*args: object, **kwargs: object) -> None:
        stoppable.append(original_rule(*args, **kwargs) is not None)
        return None  # run it whole, in its usual batches

    def timed(*args: object, **kwargs: object) -> None:
        with contextlib.suppress(Exception):  # the pass itself reports a failed load
            getattr(args[0], "model", None)  # loading the model is not the pass's time
        started = time.perf_counter()
        try:
            original_forward(*args, **kwargs)
        finally:
            seconds[stoppable[-1] if stoppable else False] += time.perf_counter() - started

    sequential.pass_rule, forward.run_forward = rule, timed
    try:
        runner = Runner(RunOptions(root=folder, artifacts=folder.parent / "timing",
                                   plots="never"))
        started = time.perf_counter()
        files = [runner.load(path) for path in sorted(folder.glob("*.claims.yaml"))]
        list(runner.run([check for file in files for check in runner.checks(file)]))
        whole = time.perf_counter() - started
    finally:
        sequential.pass_rule, forward.run_forward = original_rule, original_forward
    return seconds[True], seconds[True] + seconds[False], whole


def validity(runs: int = 1000) -> dict[str, float]:
    """False-pass rates of the sequential ``changes`` / ``recovers`` rules on rates (betting
    sequences), ``runs`` seeded streams each with the truth on the bound, checked at 50, 100,
    200 samples (budget 200) and stopped at the first decision, α = 0.05."""
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from interp_assert.claims.sequential_effects import judge_change, judge_recovery

    def first(judge: object) -> bool | None:
        for k in (50, 100, 200):
            verdict = judge(k)  # type: ignore[operator]
            if verdict is not None:
                return verdict
        return None

    passes = {"changes by > 0.3 (rate)": 0, "recovers ≥ 0.5 (rate)": 0}
    for seed in range(runs):
        rng = np.random.default_rng(seed)
        b = (rng.random(200) < 0.5).astype(float)
        a = (rng.random(200) < 0.8).astype(float)  # |m| = 0.3 on the bound
        passes["changes by > 0.3 (rate)"] += first(lambda k, a=a, b=b: judge_change(
            a[:k] - b[:k], (-1.0, 1.0), 0.05, 200, ">", 0.3, None, False)[0].holds) is True
        before = (rng.random(200) < 0.2).astype(float)
        source = (rng.random(200) < 0.9).astype(float)  # D = 0.7
        after = (rng.random(200) < 0.55).astype(float)  # N = 0.35: R = 0.5 on the bound
        passes["recovers ≥ 0.5 (rate)"] += first(
            lambda k, b=before, a=after, s=source: judge_recovery(
                b[:k], a[:k], s[:k], (0.0, 1.0), 0.05, 200, ">=", 0.5, None, False)["holds"]
        ) is True
    return {name: count / runs for name, count in passes.items()}


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
    parser.add_argument("--validity", action="store_true",
                        help="also the false-pass rates of changes/recovers on rates")
    args = parser.parse_args()
    os.environ["INTERP_ASSERT_CACHE"] = "off"
    print("1. samples used of the budget, each confidence claim alone on its pass")
    for file, claim, verdict, used, budget in budget_fractions():
        share = f"{used}/{budget} = {used / budget:.1%}" if budget else "not sequential"
        print(f"  {file}: {claim}: {verdict}, {share}")
    if args.validity:
        print("3. false-pass rates, 1,000 seeded runs each, truth on the bound, α = 0.05")
        for name, rate in validity().items():
            print(f"  {name}: {rate:.3f}")
    if args.skip_timing:
        return
    print("2. wall time, as written vs every claim that can be sequential (fresh processes, "
          "result cache off)")
    with tempfile.TemporaryDirectory() as folder:
        fixed_specs = spec_copies(Path(folder), sequential=False)
        sequential_specs = spec_copies(Path(folder), sequential=True)
        if not args.skip_whole:
            fixed = pytest_seconds(fixed_specs)
            sequential = pytest_seconds(sequential_specs, "--interp-sequential")
            print(f"  pytest specs: {fixed[0] / sequential[0]:.2f}x (wall), "
                  f"{fixed[1] / sequential[1]:.2f}x (CPU) faster sequentially")
            skip, passes, whole = skippable_seconds(sequential_specs)
            share = skip / whole
            print(f"  Amdahl bound (one in-process run, every pass whole): the passes "
                  f"sequential claims could stop take {skip:.1f} s of {passes:.1f} s of passes "
                  f"and of the {whole:.1f} s run ({share:.1%}): at most "
                  f"{1 / max(1 - share, 1e-9):.2f}x faster if they stopped at once")
        only = ("-k", "confident or sequential or surely")
        fixed_only = pytest_seconds(fixed_specs, *only)
        sequential_only = pytest_seconds(sequential_specs, *only, "--interp-sequential")
        print(f"  confidence claims alone: {fixed_only[0] / sequential_only[0]:.2f}x (wall), "
              f"{fixed_only[1] / sequential_only[1]:.2f}x (CPU) faster sequentially")


if __name__ == "__main__":
    main()
