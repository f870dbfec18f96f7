"""The fuzzing harness of the claim language, shared by ``tests/test_fuzz.py`` (bounded, in CI)
and ``bench/fuzz_campaign.py`` (the large offline run).

Sentences come from two sources:

* a **mutation corpus** grown from the bundled claim files (``specs/*.claims.yaml``: every
  claim sentence and quantity expression) and the sentences in README.md, each mutated by
  deleting, duplicating, splicing and inserting hostile fragments (huge numbers, deep
  nesting, backwards ranges, out-of-range heads, odd characters...);
* a **hypothesis strategy** for the claim language (:func:`sentences`), which writes claims of
  the main kinds over expressions of functions, operators, indexing and slicing.

:func:`examine` asserts three things of a sentence: it parses or gives ``ClaimSyntaxError``;
evaluated on a small state-dict subject it gives a verdict or a project error (an
``InterpAssertError`` that is not an "unexpected ..., may be a bug"); and it does both within
a time limit.
"""

from __future__ import annotations

import random
import re
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
#: seconds one sentence may take to parse and evaluate
TIME_LIMIT = 5.0

# ---- the corpus ------------------------------------------------------------------------------
_CLAIMISH = re.compile(r"[<>≥≤≈]|\b(cluster|monotone|attends|ablate|patch|for all|in \[|"
                       r"orthogonal|ranks?|top|composes?|drops|rises)\b")


def corpus() -> list[str]:
    """Seed sentences: the bundled claim files' claims and quantity expressions, and the
    README's sentences (in backticks or after ``claim:``)."""
    seeds: list[str] = []
    for path in sorted((ROOT / "specs").glob("*.claims.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        claims = data.get("claims") or []
        items = claims.values() if isinstance(claims, dict) else claims
        for item in items:
            text = item.get("claim") if isinstance(item, dict) else item
            if isinstance(text, str):
                seeds.append(" ".join(text.split()))
        for definition in (data.get("quantities") or {}).values():
            expr = definition.get("expr") if isinstance(definition, dict) else definition
            if isinstance(expr, str):
                seeds.append(f"norm({expr}) > 0")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    spans = re.findall(r"`([^`\n]+)`", readme) + re.findall(r"claim: \"?([^\n\"]+)", readme)
    seeds += [s.strip() for s in spans if _CLAIMISH.search(s)]
    # the sentences the tiny subject below can evaluate
    seeds += ["N0, N1, N3 cluster with cos > 0.9", "all of N0, N1 norm > 0.5",
              "A·V monotone over digits", "norm(N0) > 0", "max(A·V) < 1e9",
              "mean(norm(neurons)) in [0, 10]", "norm(neurons[N0:N7, 0:2]) ≈ 3 ± 10",
              "norm(N{i}) > 0 for i in 0..15", "cos(N0, N1) > 0.5", "svd_s(neurons)[0] > 0",
              "N0, N1 orthogonal within 0.1", "norm(readout[3]) >= 0"]
    return list(dict.fromkeys(s for s in seeds if s))


HOSTILE = [
    "-" * 120, "[0]" * 120, " + 1" * 110, "(" * 60, ")" * 60, "9" * 5000, "9" * 320, "1e309",
    "-1e309", "0:-1e309", "nan", "inf", "∞", "for i in 9..0", "for i in 0..99999999",
    "for i in 0.." + "9" * 400, "{i}", "{i+1}", "{j}", "N0..N999999999", "N0..N99999",
    "L{0..11}N{0..3071}", "L0H99", "L9H0", "L0N99999", "ablate L0H99 (mean): ", "top 0",
    "top " + "9" * 400, "norm(-1)", "max(neurons[0:0])", "[:, :]", "[,]", ".T" * 30, "@", "^",
    "**", "%", " points", " nats", "with 101% confidence", "with 0% confidence", "≥≥", "<>",
    "±", "+-", "≈", "..", "...", ",", ", of", "of of", "\"\"", "\"", "'", "\\", "\x00", "\t",
    "\n", "\u200b", "é", "日本", "😀", "\ud7ff", "A·V", "·", "⋅", "−", "×", "ᵀ", "at A5",
    "with carry", "without", "baseline", "exhaustively", "for all a in integers(0, 99999999):",
    "os.system('true')", "__import__('os')", "examples.adder.check:adds_correctly(a, b)",
    "!!python/object", "&a", "*a", "#", ": ", "- ", "? ", "|", ">",
]
_TOKEN = re.compile(r"\w+|[^\w\s]")


def mutate(rng: random.Random, sentence: str, seeds: list[str]) -> str:
    """``sentence`` changed one to three times: a cut, a copy, a splice with another seed, a
    hostile fragment inserted, a token repeated, or two tokens swapped."""
    text = sentence
    for _ in range(rng.randint(1, 3)):
        tokens = _TOKEN.findall(text) or [text]
        action = rng.randrange(7)
        if action == 0 and len(text) > 1:  # cut a range
            i = rng.randrange(len(text))
            text = text[:i] + text[i + rng.randint(1, 8):]
        elif action == 1:  # insert a hostile fragment
            i = rng.randrange(len(text) + 1)
            text = text[:i] + rng.choice(HOSTILE) + text[i:]
        elif action == 2:  # splice with another seed
            other = rng.choice(seeds)
            text = text[:rng.randrange(len(text) + 1)] + other[rng.randrange(len(other) + 1):]
        elif action == 3:  # repeat a token many times
            token = rng.choice(tokens)
            i = text.find(token)
            text = text[:i] + token * rng.choice((2, 3, 50, 150)) + text[i + len(token):]
        elif action == 4 and len(tokens) > 1:  # swap two tokens
            a, b = rng.sample(tokens, 2)
            text = text.replace(a, "\0", 1).replace(b, a, 1).replace("\0", b, 1)
        elif action == 5:  # change a number
            text = re.sub(r"\d+(\.\d+)?", lambda m: rng.choice(
                ("0", "-1", "99", "1e309", "9" * rng.choice((5, 30, 400)), "0.5", "100000000")),
                text, count=1)
        else:  # append a template or a confidence clause
            text += rng.choice((" for i in 0..3", " for i in 3..0", " with 95% confidence",
                                " for i in 0..99999999", " for x in 0..1", ""))
    return text


def mutations(count: int, seed: int = 0) -> Iterator[str]:
    """``count`` mutated sentences, the same for the same ``seed``."""
    rng = random.Random(seed)
    seeds = corpus()
    for _ in range(count):
        yield mutate(rng, rng.choice(seeds), seeds)


# ---- a hypothesis strategy for the claim language --------------------------------------------
def sentences() -> Any:
    """Claim sentences of the main kinds over generated expressions."""
    from hypothesis import strategies as st

    names = st.sampled_from(["neurons", "A·V", "readout", "blocks.0.mlp.W_out", "unembed.W_U",
                             "N0", "N3", "N15", "N16", "baseline", "nope", "exact-match"])
    numbers = st.one_of(
        st.integers(-3, 20).map(str), st.sampled_from(["0.5", "1e-9", "1e309", "-0", "99%",
                                                       "3 nats", "12 points", "9" * 400]),
        st.floats(allow_nan=False, allow_infinity=False, width=32).map(lambda f: f"{f:g}"))
    labels = st.one_of(st.integers(0, 20).map(lambda i: f"N{i}"), st.integers(-12, 12).map(str),
                       st.sampled_from(["N0", "0", "3", "X3", "L0H1"]))
    index_item = st.one_of(
        labels, st.just(":"), st.tuples(st.one_of(st.just(""), labels),
                                         st.one_of(st.just(""), labels, numbers)).map(":".join))
    functions = st.sampled_from(["norm", "max", "min", "mean", "sum", "cos", "softmax", "abs",
                                 "svd_s", "unit", "transpose", "dot", "std", "nrom"])

    def extend(inner: Any) -> Any:
        return st.one_of(
            st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "@", "^"]), inner).map(
                lambda t: f"{t[0]} {t[1]} {t[2]}"),
            inner.map(lambda e: f"-{e}"), inner.map(lambda e: f"({e})"),
            inner.map(lambda e: f"{e}.T"),
            st.tuples(functions, st.lists(inner, min_size=1, max_size=2)).map(
                lambda t: f"{t[0]}({', '.join(t[1])})"),
            st.tuples(inner, st.lists(index_item, min_size=1, max_size=3)).map(
                lambda t: f"{t[0]}[{', '.join(t[1])}]"))

    exprs = st.recursive(st.one_of(names, numbers), extend, max_leaves=12)
    comparisons = st.one_of(
        st.tuples(st.sampled_from([">", ">=", "<", "<=", "==", "!=", "≥"]), exprs).map(" ".join),
        st.tuples(exprs, exprs).map(lambda t: f"in [{t[0]}, {t[1]}]"),
        st.tuples(exprs, exprs).map(lambda t: f"≈ {t[0]} ± {t[1]}"))
    members = st.lists(st.one_of(labels, st.tuples(labels, labels).map("..".join)), min_size=1,
                       max_size=4).map(", ".join)
    claim = st.one_of(
        st.tuples(exprs, comparisons).map(" ".join),
        st.tuples(members, numbers).map(lambda t: f"{t[0]} cluster with cos > {t[1]}"),
        st.tuples(members, comparisons).map(lambda t: f"all of {t[0]} norm {t[1]}"),
        st.sampled_from(["A·V", "neurons", "readout"]).map(lambda q: f"{q} monotone over digits"),
        st.tuples(members, numbers).map(lambda t: f"{t[0]} orthogonal within {t[1]}"),
        st.tuples(st.sampled_from(["L0H1", "L0H99", "L0N3"]), exprs).map(
            lambda t: f"ablate {t[0]} (mean): {t[1]} drops by ≥ 1 point"))
    template = st.one_of(st.just(""), st.tuples(st.integers(-2, 20), st.integers(-2, 20)).map(
        lambda t: f" for i in {t[0]}..{t[1]}"))
    return st.tuples(claim, template).map("".join)


# ---- checking one sentence ----------------------------------------------------------------------
QUANTITIES = {
    "neurons": {"weight": "blocks.0.mlp.W_out", "axes": ["neuron", "d_model"],
                "labels": {"neuron": "N0..N15"}},
    "A·V": {"weight": "readout", "axes": ["digit"], "labels": {"digit": "0..9"}},
}


def tiny_subject(folder: Path) -> Any:
    """A state-dict subject (tests/conftest.py's tiny model) with two labelled quantities."""
    from conftest import save_checkpoint

    import interp_assert as ia

    save_checkpoint(folder / "model.pt")
    return ia.subject(folder / "model.pt", quantities=QUANTITIES)


class Hang(BaseException):
    """Raised by the watchdog when a sentence runs past its time limit."""


@contextmanager
def watchdog(seconds: float) -> Iterator[None]:
    """Raise :class:`Hang` after ``seconds`` (POSIX, main thread; elsewhere only measured)."""
    if not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise Hang()

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@dataclass
class Finding:
    """A sentence that broke one of the three rules."""

    sentence: str
    kind: str  # "parser crash", "evaluation crash", "hang" or "known elsewhere"
    detail: str
    seconds: float

    def __str__(self) -> str:
        return f"{self.kind} ({self.seconds:.1f} s): {self.sentence[:300]!r}\n  {self.detail}"


#: crashes found in modules this harness's authors do not own, reported to their owners; a
#: finding whose last frames name one of these is counted as "known elsewhere", not a crash
#: (remove the entry once it is fixed, and the harness holds it to the rule again)
#: crashes known to live in code outside the harness's reach, set apart from the count (none)
KNOWN_ELSEWHERE: list[tuple[str, ...]] = []


def known_elsewhere(detail: str) -> bool:
    return any(all(part in detail for part in parts) for parts in KNOWN_ELSEWHERE)


def _is_unexpected(error: BaseException) -> bool:
    text = str(error)
    return "may be a bug" in text or (": unexpected " in text and "Error:" in text)


def examine(sentence: str, subject: Any, limit: float = TIME_LIMIT,
            evaluate: bool = True) -> Finding | None:
    """None when ``sentence`` parses or gives ClaimSyntaxError, evaluates to a verdict or a
    project error, and takes at most ``limit`` seconds; else what went wrong."""
    import interp_assert as ia
    from interp_assert.errors import ClaimSyntaxError, InterpAssertError
    from interp_assert.language.parser import parse_claim
    from interp_assert.run.runner import builtin_kinds

    started = time.perf_counter()
    stage = "parser crash"
    try:
        with watchdog(limit * 4):  # far past the limit: stop it, it is a hang either way
            try:
                parse_claim(sentence, builtin_kinds().claims)
            except ClaimSyntaxError:
                return _timed(sentence, started, limit)
            if not evaluate:
                return _timed(sentence, started, limit)
            stage = "evaluation crash"
            try:
                ia.check(sentence, subject)
            except ia.ClaimFailed:
                pass
            except InterpAssertError as exc:
                if _is_unexpected(exc):
                    kind = "known elsewhere" if known_elsewhere(str(exc)) else stage
                    return Finding(sentence, kind, str(exc)[-1500:], _since(started))
    except Hang:
        return Finding(sentence, "hang", f"stopped after {limit * 4:g} s", _since(started))
    except Exception as exc:  # anything else escaping is a crash
        import traceback

        detail = "".join(traceback.format_exception(exc)[-3:])
        return Finding(sentence, stage, detail[-1500:], _since(started))
    return _timed(sentence, started, limit)


def _since(started: float) -> float:
    return time.perf_counter() - started


def _timed(sentence: str, started: float, limit: float) -> Finding | None:
    seconds = _since(started)
    return Finding(sentence, "hang", f"took {seconds:.1f} s", seconds) if seconds > limit else None
