"""The end of a run in numbers: the exit code and the tally line every driver prints."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from interp_assert.judge.verdict import WORDS, Verdict


def exit_code(records: Iterable[dict[str, Any]], broken_files: int = 0) -> int:
    """0 when no verdict fails the run, 1 when some claim fails, 2 on any error."""
    records = list(records)
    if broken_files or any(item["verdict"] == Verdict.ERROR.value for item in records):
        return 2
    return 1 if any(item["fails_run"] for item in records) else 0


def tally_line(records: Iterable[dict[str, Any]], broken_files: int = 0) -> str:
    """``3 passed, 1 failed, 0 errors``, then skipped, and xfailed and xpassed, when there
    are any (pytest's words)."""
    counts = {verdict: 0 for verdict in Verdict}
    for item in records:
        counts[Verdict(item["verdict"])] += 1
    counts[Verdict.ERROR] += broken_files
    parts = [f"{counts[v]} {WORDS[v].tally}" for v in (Verdict.HOLDS, Verdict.FAILS,
                                                        Verdict.ERROR)]
    if counts[Verdict.UNDECIDED]:
        parts.append(f"{counts[Verdict.UNDECIDED]} {WORDS[Verdict.UNDECIDED].tally}")
    if counts[Verdict.SKIPPED]:
        parts.append(f"{counts[Verdict.SKIPPED]} {WORDS[Verdict.SKIPPED].tally}")
    if counts[Verdict.XFAIL] or counts[Verdict.XPASS]:
        parts += [f"{counts[v]} {WORDS[v].tally}" for v in (Verdict.XFAIL, Verdict.XPASS)]
    return ", ".join(parts)
