"""The offline fuzz campaign of the claim language (the large run of ``tests/test_fuzz.py``).

Every sentence must parse or give ``ClaimSyntaxError``, evaluate on a small state-dict subject
to a verdict or a project error (never "unexpected ..., may be a bug"), and take at most
``--limit`` seconds (default 5). Sentences come from the mutation corpus (the bundled claim
files and README, mutated) and from the hypothesis strategy of the claim language, in the
proportion ``--hypothesis``; see ``tests/fuzzing.py``.

    python bench/fuzz_campaign.py --sentences 20000 --seed 1 [--out findings.txt]

It prints the counts (sentences, crashes, hangs over the limit) and each finding, and exits 1
when there is any. About 20,000 sentences take 10-20 minutes on one core.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

import fuzzing  # noqa: E402


def hypothesis_sentences(count: int, seed: int) -> list[str]:
    """``count`` sentences drawn from the hypothesis strategy (reproducible per seed)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hseed

    drawn: list[str] = []

    @hseed(seed)
    @settings(max_examples=count, database=None, deadline=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(fuzzing.sentences())
    def collect(sentence: str) -> None:
        drawn.append(sentence)

    collect()
    return drawn[:count]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sentences", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--limit", type=float, default=fuzzing.TIME_LIMIT,
                        help="seconds a sentence may take (default %(default)s)")
    parser.add_argument("--hypothesis", type=float, default=0.25,
                        help="share of sentences from the hypothesis strategy")
    parser.add_argument("--parse-only", action="store_true")
    parser.add_argument("--out", help="write the findings to this file")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")

    drawn = int(args.sentences * args.hypothesis)
    sentences = hypothesis_sentences(drawn, args.seed) if drawn else []
    sentences += list(fuzzing.mutations(args.sentences - len(sentences), args.seed))
    folder = Path(tempfile.mkdtemp(prefix="fuzz-campaign-"))
    subject = fuzzing.tiny_subject(folder)
    findings: list[fuzzing.Finding] = []
    slowest = (0.0, "")
    started = time.perf_counter()
    for number, sentence in enumerate(sentences, start=1):
        t0 = time.perf_counter()
        found = fuzzing.examine(sentence, subject, args.limit, evaluate=not args.parse_only)
        took = time.perf_counter() - t0
        slowest = max(slowest, (took, sentence))
        if found is not None:
            findings.append(found)
            print(found, flush=True)
        if number % 1000 == 0:
            print(f"... {number} sentences, {len(findings)} findings, "
                  f"{time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    kinds = Counter(f.kind for f in findings)
    crashes = kinds["parser crash"] + kinds["evaluation crash"]
    summary = (f"sentences {len(sentences)} (hypothesis {drawn}, mutations "
               f"{len(sentences) - drawn}); crashes {crashes} (parser {kinds['parser crash']}, "
               f"evaluation {kinds['evaluation crash']}); hangs over {args.limit:g} s "
               f"{kinds['hang']}; known elsewhere {kinds['known elsewhere']}; slowest "
               f"{slowest[0]:.2f} s; total {time.perf_counter() - started:.0f} s")
    print(summary)
    if args.out:
        Path(args.out).write_text("\n\n".join(map(str, findings)) + f"\n\n{summary}\n",
                                  encoding="utf-8")
    return 1 if crashes or kinds["hang"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
