"""A claim result in a notebook: ``_repr_html_`` shows the verdict line, the evidence table and
the plot inline (a base64 PNG), so that ``check(...)`` or a result in a cell reads at a glance."""

from __future__ import annotations

import base64
import html
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from interp_assert.judge.verdict import ClaimResult

#: evidence rows shown (failing rows first)
MAX_ROWS = 30


def verdict_line(result: ClaimResult) -> str:
    """``does not hold: measured ...; expected ...`` (or the error, or why it was skipped)."""
    from interp_assert.judge.verdict import WORDS, Verdict

    words = WORDS[result.verdict].text
    if result.error is not None:
        return f"{words}: {result.error.message}"
    outcome = result.outcome
    if outcome is None:
        return f"{words}: {result.judgement.reason}"
    if result.verdict is Verdict.FAILS and result.judgement.reason:  # no recorded value
        return f"{words}: {result.judgement.reason}; measured {outcome.measured}"
    line = f"{words}: measured {outcome.measured}; expected {outcome.expected}"
    return f"{line} ({result.judgement.reason})" if result.judgement.reason else line


def _cell(key: str, value: Any) -> str:
    if key in ("holds", "is_expected"):
        return "✓" if value else "✗"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def evidence_html(rows: list[dict[str, Any]]) -> str:
    """The evidence rows as an HTML table (failing rows first)."""
    if not rows:
        return ""
    ordered = sorted(rows, key=lambda r: r.get("holds", True))[:MAX_ROWS]
    columns = list(dict.fromkeys(key for row in ordered for key in row))
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(c, row.get(c, '')))}</td>"
                                    for c in columns) + "</tr>" for row in ordered)
    more = (f"<p>… {len(rows) - MAX_ROWS} more rows</p>" if len(rows) > MAX_ROWS else "")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


def plot_html(result: ClaimResult) -> str:
    """The plot inline, or nothing when there is none (or it cannot be read)."""
    if result.plot is None:
        return ""
    try:
        data = base64.b64encode(result.plot.read_bytes()).decode("ascii")
    except OSError:
        return ""
    return (f'<img alt="plot of {html.escape(result.name)}" style="max-width:100%" '
            f'src="data:image/png;base64,{data}">')


def result_html(result: ClaimResult) -> str:
    """The whole result as HTML: claim, verdict line, why, evidence table, plot."""
    from interp_assert.judge.verdict import WORDS

    colour = WORDS[result.verdict].colour
    parts = [f"<div><p><b>{html.escape(result.name)}</b>: "
             f"<code>{html.escape(result.sentence)}</code></p>",
             f'<p style="color:{colour}">{html.escape(verdict_line(result))}</p>']
    if result.why:
        parts.append(f"<p><i>why:</i> {html.escape(' '.join(result.why.split()))}</p>")
    if result.outcome is not None:
        parts += [f"<p>note: {html.escape(note)}</p>" for note in result.outcome.notes]
        parts.append(evidence_html(result.outcome.rows))
    parts.append(plot_html(result))
    return "".join(parts) + "</div>"
