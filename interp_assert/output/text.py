"""Text reports of claim results: one line measured vs expected, then the evidence table."""

from __future__ import annotations

from typing import Any

from interp_assert.claims.outcome import fmt
from interp_assert.judge.verdict import WORDS, ClaimResult, Verdict

MAX_ROWS = 30


def format_table(rows: list[dict[str, Any]], limit: int = MAX_ROWS) -> str:
    """The evidence rows as a tabulate table; failing rows first and marked with ✗."""
    from tabulate import tabulate

    if not rows:
        return ""
    columns, _, body = evidence_cells(rows, limit)
    text = tabulate(body, headers=columns, tablefmt="simple", disable_numparse=True)
    if len(rows) > limit:
        text += f"\n... {len(rows) - limit} more rows (see the JSON results)"
    return text


def evidence_cells(rows: list[Any], limit: int = MAX_ROWS
                   ) -> tuple[list[str], list[Any], list[list[str]]]:
    """The evidence table every output prints: its columns, the first ``limit`` rows (failing
    rows first) and their cells, ``holds`` as ✓/✗ and floats formatted."""
    shown = sorted(rows, key=lambda r: bool(r.get("holds", True)))[:limit]
    columns = list(dict.fromkeys(key for row in shown for key in row))
    body = []
    for row in shown:
        cells = []
        for key in columns:
            value = row.get(key, "")
            if key in ("holds", "is_expected"):
                value = "✓" if value else "✗"
            elif isinstance(value, float):
                value = fmt(value)
            cells.append(str(value))
        body.append(cells)
    return columns, shown, body


def headline(result: ClaimResult) -> str:
    """One line that says why a claim fails the run: measured against expected (or the error,
    or the missing baseline value), for pytest's ``-r`` summary and ``--tb=line``."""
    if result.error is not None:
        return result.error.message.split("\n")[0]
    if result.verdict is Verdict.SKIPPED or result.outcome is None:
        return result.judgement.reason
    if result.judgement.reason and result.verdict is not Verdict.XFAIL:
        return result.judgement.reason  # a missing baseline value, an XPASS of an open claim
    measured = str(result.outcome.measured).split("; ")[0]  # the value, not the details
    return f"{measured}; expected {result.outcome.expected}"


def format_result(result: ClaimResult, *, why: bool = False, evidence: bool = True) -> str:
    """The full report of one claim: sentence, place, measured vs expected, table, plot.
    ``why`` adds the claim's ``why:``; ``evidence=False`` leaves out the evidence table."""
    lines = [f"claim '{result.claim_id}' at {result.location}: {result.sentence}"]
    if why and result.why:
        lines.append(f"  why: {' '.join(result.why.split())}")
    if result.subject:
        lines.append(f"  subject: {result.subject}" + (f" (sha256 {result.sha256[:12]})"
                                                       if result.sha256 else ""))
    if result.error is not None:
        lines.append(f"  error: {result.error}")
        return "\n".join(lines)
    if result.verdict is Verdict.SKIPPED:
        lines.append(f"  skipped: {result.judgement.reason}")
        return "\n".join(lines)
    outcome = result.outcome
    assert outcome is not None
    unrecorded = result.verdict is Verdict.FAILS and bool(result.judgement.reason)
    if unrecorded:  # no recorded value: nothing was compared (no evidence table either)
        lines.append(f"  {WORDS[result.verdict].text}: {result.judgement.reason}"
                     + (f"; {result.advice}" if result.advice else ""))
        lines.append(f"  measured {outcome.measured} (no recorded value to compare with)")
    else:
        lines.append(f"  {WORDS[result.verdict].text}: measured {outcome.measured}; expected "
                     f"{outcome.expected}")
    if result.judgement.reason and result.verdict is not Verdict.FAILS:
        lines.append(f"  {result.judgement.reason}" + (f"; {result.advice}"
                                                       if result.advice else ""))
    for key, value in outcome.context.items():
        lines.append(f"  {key}: {value}")
    for note in outcome.notes:
        lines.append(f"  note: {note}")
    table = format_table(outcome.rows) if evidence and not unrecorded else ""
    if not evidence and outcome.rows:
        lines.append(f"  ({len(outcome.rows)} evidence rows not shown)")
    if table:
        lines.append("")
        lines.extend("  " + line for line in table.splitlines())
    if result.plot is not None:
        lines.append("")
        lines.append(f"  plot: {result.plot}")
    return "\n".join(lines)
