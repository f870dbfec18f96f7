"""Text reports of claim results: one line measured vs expected, then the evidence table."""

from __future__ import annotations

from typing import Any

from interp_assert.claims.outcome import fmt
from interp_assert.evaluate.evaluation import ClaimResult

MAX_ROWS = 30


def format_table(rows: list[dict[str, Any]], limit: int = MAX_ROWS) -> str:
    """The evidence rows as a tabulate table; failing rows first and marked with ✗."""
    from tabulate import tabulate

    if not rows:
        return ""
    ordered = sorted(rows, key=lambda r: r.get("holds", True))
    shown = ordered[:limit]
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
            cells.append(value)
        body.append(cells)
    text = tabulate(body, headers=columns, tablefmt="simple", disable_numparse=True)
    if len(rows) > limit:
        text += f"\n... {len(rows) - limit} more rows (see the JSON results)"
    return text


def format_result(result: ClaimResult) -> str:
    """The full report of one claim: sentence, place, measured vs expected, table, plot."""
    lines = [f"claim '{result.claim_id}' at {result.location}: {result.sentence}"]
    if result.subject:
        lines.append(f"  subject: {result.subject}" + (f" (sha256 {result.sha256[:12]})"
                                                       if result.sha256 else ""))
    if result.error is not None:
        lines.append(f"  error: {result.error}")
        return "\n".join(lines)
    outcome = result.outcome
    assert outcome is not None
    verdict = "holds" if outcome.passed else "does not hold"
    lines.append(f"  {verdict}: measured {outcome.measured}; expected {outcome.expected}")
    for key, value in outcome.context.items():
        lines.append(f"  {key}: {value}")
    for note in outcome.notes:
        lines.append(f"  note: {note}")
    table = format_table(outcome.rows)
    if table:
        lines.append("")
        lines.extend("  " + line for line in table.splitlines())
    if result.plot is not None:
        lines.append("")
        lines.append(f"  plot: {result.plot}")
    return "\n".join(lines)


def summary_table(results: list[ClaimResult]) -> str:
    """One line per claim: file, id, checkpoint, value, verdict."""
    from tabulate import tabulate

    rows = []
    for result in results:
        value = result.outcome.value if result.outcome is not None else None
        verdict = {"passed": "holds", "failed": "FAILS", "error": "ERROR"}.get(result.status,
                                                                               result.status)
        rows.append([result.file, result.claim_id, result.subject or "", fmt(value), verdict])
    return tabulate(rows, headers=["file", "claim", "checkpoint", "value", "verdict"],
                    tablefmt="simple", disable_numparse=True)
