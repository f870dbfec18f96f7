"""Claim files rendered as documents: per claim the hypothesis (``why``), the sentence, its
status, the measured value with its interval, and the plot inline.

HTML output is self-contained (PNG images embedded as data URIs, inline CSS, no scripts, no
network) so it reads anywhere without the tool installed; Markdown output links the PNGs.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interp_assert.claims.outcome import fmt
from interp_assert.evaluate.evaluation import ClaimResult
from interp_assert.loading.claim_file import ClaimEntry, ClaimFile
from interp_assert.loading.subject import SubjectSpec

STATUS_TEXT = {"passed": "holds", "failed": "does not hold", "error": "error",
               "skipped": "skipped", "xfailed": "open (fails, as expected)",
               "xpassed": "open, but now holds"}
STATUS_COLOUR = {"passed": "#1a7f37", "failed": "#cf222e", "error": "#9a6700",
                 "skipped": "#57606a", "xfailed": "#57606a", "xpassed": "#8250df"}


@dataclass
class FileSection:
    """One claim file and the results of its claims."""

    claim_file: ClaimFile
    results: list[ClaimResult] = field(default_factory=list)
    subject_summary: dict[str, str] = field(default_factory=dict)
    #: the sweep checkpoint these results are for (None: the file's own subject)
    label: str | None = None
    #: claim id -> a note shown under the claim (why it was skipped, open status, ...)
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def heading(self) -> str:
        name = self.claim_file.title or self.claim_file.path.name
        return f"{name} — checkpoint {self.label}" if self.label else name


def subject_summary(claim_file: ClaimFile, results: Sequence[ClaimResult]) -> dict[str, str]:
    """Checkpoint, hash and a short model summary (tensor count, parameters)."""
    spec = claim_file.subject
    if spec is None:
        return {}
    out = {"checkpoint": str(spec.checkpoint or "—")}
    if spec.loader:
        out["loader"] = spec.loader
    hashes = {r.sha256 for r in results if r.sha256}
    if hashes:
        out["sha256"] = ", ".join(sorted(hashes))
    try:
        from interp_assert.loading.subject import get_subject

        checkpoint = get_subject(spec).checkpoint
        if checkpoint is not None:
            tensors = checkpoint.state_dict
            params = sum(int(t.numel()) for t in tensors.values() if hasattr(t, "numel"))
            out["model"] = f"{len(tensors)} tensors, {params:,} parameters"
            step = checkpoint.metadata.get("step")
            if step is not None:
                out["training step"] = str(step)
    except Exception as exc:  # a broken checkpoint still gets its document
        out["model"] = f"could not be loaded: {exc}"
    return out


def _image_tag(path: Path | None, alt: str) -> str:
    if path is None or not Path(path).exists():
        return ""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}" '
            'style="max-width:100%">')


def _value_text(result: ClaimResult) -> str:
    outcome = result.outcome
    if outcome is None:
        return ""
    text = outcome.measured
    if outcome.interval is not None and "CI" not in text:
        text += f" (interval [{fmt(outcome.interval[0])}, {fmt(outcome.interval[1])}])"
    return text


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:60rem;margin:2rem auto;
padding:0 1rem;color:#1f2328;line-height:1.5}
h1{border-bottom:1px solid #d0d7de}h2{margin-top:2.5rem;border-bottom:1px solid #d0d7de}
.claim{border:1px solid #d0d7de;border-radius:6px;padding:0.8rem 1rem;margin:1rem 0}
.sentence{font-family:ui-monospace,SFMono-Regular,monospace;background:#f6f8fa;padding:0.2rem
0.4rem;border-radius:4px}.status{font-weight:600}.why{white-space:pre-wrap}
table.meta td{padding:0 1rem 0 0;vertical-align:top}.error{white-space:pre-wrap;
font-family:ui-monospace,monospace;font-size:0.85rem;background:#fff8c5;padding:0.5rem}
.summary span{margin-right:1rem}
"""


def render_html(sections: Sequence[FileSection], title: str = "Claims") -> str:
    """A self-contained HTML document of every claim file."""
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    counts: dict[str, int] = {}
    for section in sections:
        for result in section.results:
            counts[result.status] = counts.get(result.status, 0) + 1
    parts.append('<p class="summary">' + "".join(
        f'<span style="color:{STATUS_COLOUR.get(k, "#000")}">{v} {STATUS_TEXT.get(k, k)}</span>'
        for k, v in sorted(counts.items())) + "</p>")
    for section in sections:
        cf = section.claim_file
        parts.append(f"<h2>{html.escape(section.heading)}</h2>")
        if cf.description:
            parts.append(f'<p class="why">{html.escape(cf.description.strip())}</p>')
        parts.append('<table class="meta">' + "".join(
            f"<tr><td>{html.escape(k)}</td><td><code>{html.escape(v)}</code></td></tr>"
            for k, v in section.subject_summary.items()) + "</table>")
        for result in section.results:
            colour = STATUS_COLOUR.get(result.status, "#000")
            parts.append(f'<div class="claim" id="{html.escape(result.claim_id)}">')
            parts.append(f"<h3>{html.escape(result.claim_id)} "
                         f'<span class="status" style="color:{colour}">'
                         f"{html.escape(STATUS_TEXT.get(result.status, result.status))}"
                         "</span></h3>")
            parts.append(f'<p><span class="sentence">{html.escape(result.sentence)}</span> '
                         f"<small>{html.escape(str(result.location))}</small></p>")
            if result.why:
                parts.append(f'<p class="why">{html.escape(result.why)}</p>')
            if result.claim_id in section.notes:
                parts.append(f"<p><em>{html.escape(section.notes[result.claim_id])}</em></p>")
            if result.outcome is not None:
                parts.append(f"<p>measured {html.escape(_value_text(result))}; expected "
                             f"{html.escape(result.outcome.expected)}</p>")
                for key, value in result.outcome.context.items():
                    parts.append(f"<p><small>{html.escape(str(key))}: "
                                 f"{html.escape(str(value))}</small></p>")
            if result.error is not None:
                parts.append(f'<div class="error">{html.escape(str(result.error))}</div>')
            parts.append(_image_tag(result.plot, f"plot of {result.claim_id}"))
            parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p)


def render_markdown(sections: Sequence[FileSection], output: Path,
                    title: str = "Claims") -> str:
    """A Markdown document; plots are linked relative to ``output``."""
    lines = [f"# {title}", ""]
    for section in sections:
        cf = section.claim_file
        lines += [f"## {section.heading}", ""]
        if cf.description:
            lines += [cf.description.strip(), ""]
        lines += [f"- {k}: `{v}`" for k, v in section.subject_summary.items()] + [""]
        for result in section.results:
            lines += [f"### {result.claim_id} — {STATUS_TEXT.get(result.status, result.status)}",
                      "", f"`{result.sentence}` ({result.location})", ""]
            if result.why:
                lines += [result.why, ""]
            if result.claim_id in section.notes:
                lines += [f"*{section.notes[result.claim_id]}*", ""]
            if result.outcome is not None:
                lines += [f"measured {_value_text(result)}; expected {result.outcome.expected}",
                          ""]
            if result.error is not None:
                lines += ["```", str(result.error), "```", ""]
            if result.plot is not None:
                relative = os.path.relpath(result.plot, output.parent)
                lines += [f"![plot of {result.claim_id}]({relative})", ""]
    return "\n".join(lines)


def write_document(sections: Sequence[FileSection], output: Path, fmt_name: str = "html",
                   title: str = "Claims") -> Path:
    """Render and write atomically."""
    text = (render_html(sections, title) if fmt_name == "html"
            else render_markdown(sections, output, title))
    from interp_assert.output.results import write_text

    write_text(output, text)
    return output


def relation_status(entry: ClaimEntry, result: ClaimResult) -> tuple[str, str]:
    """The displayed status of a claim with ``status: open`` (xfailed/xpassed) and a note."""
    if entry.status != "open" or result.status not in ("passed", "failed"):
        return result.status, ""
    if result.passed:
        return "xpassed", "status: open, but the claim now holds: mark it 'holds'"
    return "xfailed", "status: open (an open hypothesis, expected not to hold yet)"


def requirement_problem(required: str, result: ClaimResult | None) -> str | None:
    """Why a claim that requires ``required`` is skipped, or None when the requirement holds."""
    if result is None:
        return f"requires '{required}', which is not a claim of this file"
    if result.status == "passed":
        return None
    what = "errored" if result.status == "error" else "does not hold"
    return f"requires '{required}', which {what}"


def result_from_record(record: dict[str, Any], entry: ClaimEntry, root: Path) -> ClaimResult:
    """A claim's result rebuilt from its JSON record (what an xdist worker sends back), with
    what a document shows: status, measured, expected, interval, context, error and plot."""
    from interp_assert.claims.outcome import Outcome
    from interp_assert.errors import InterpAssertError

    outcome = None
    if record.get("measured") is not None:
        interval = record.get("interval")
        outcome = Outcome(record["status"] == "passed", record["measured"],
                          record.get("expected") or "", record.get("value"),
                          list(record.get("rows") or []), list(record.get("notes") or []),
                          interval=tuple(interval) if interval else None,
                          context=dict(record.get("context") or {}))
    error = InterpAssertError(record["error"]) if record.get("error") else None
    plot = root / record["plot"] if record.get("plot") else None
    return ClaimResult(record["file"], record["id"], record.get("claim") or entry.text,
                       record.get("why") or entry.why, entry.location, record["status"],
                       outcome, error, plot, record.get("checkpoint"), record.get("sha256"),
                       quantities=list(record.get("quantities") or []))


def skipped_result(entry: ClaimEntry, claim_file: ClaimFile) -> ClaimResult:
    """The result of a claim skipped because a claim it requires does not hold."""
    return ClaimResult(str(claim_file.path), entry.id, entry.text, entry.why, entry.location,
                       "skipped")


def build_sections(paths: Sequence[Path], artifacts: Path,
                   all_checkpoints: bool = False) -> list[FileSection]:
    """Evaluate every claim of the claim files with all plots drawn.

    A sweep gets one section for its latest checkpoint, or one per checkpoint with
    ``all_checkpoints``. ``requires`` skips a claim whose requirement does not hold;
    ``status: open`` shows as xfailed / xpassed.
    """
    from interp_assert.loading.claim_file import load_claim_file
    from interp_assert.loading.subject import clear_subjects
    from interp_assert.loading.targets import targets

    sections = []
    for path in paths:
        claim_file = load_claim_file(path)
        chosen = targets(claim_file)
        if not all_checkpoints:
            chosen = chosen[-1:]
        for target in chosen:
            plot_dir = artifacts / "report" / path.name.removesuffix(".yaml")
            if target.label:
                plot_dir = plot_dir / target.label
            results, notes = _evaluate_file(claim_file, target.spec, plot_dir)
            section = FileSection(claim_file, results, subject_summary(claim_file, results),
                                  target.label, notes)
            if target.label is not None:
                section.subject_summary["checkpoint"] = str(target.spec.checkpoint
                                                            if target.spec else target.label)
                clear_subjects()
            sections.append(section)
    return sections


def _evaluate_file(claim_file: ClaimFile, spec: SubjectSpec | None,
                   plot_dir: Path) -> tuple[list[ClaimResult], dict[str, str]]:
    """Every claim on one subject, in file order, each requirement evaluated first."""
    from interp_assert.evaluate.evaluation import evaluate_entry

    entries = {e.id: e for e in claim_file.claims}
    done: dict[str, ClaimResult] = {}
    notes: dict[str, str] = {}

    def evaluate(entry: ClaimEntry, trail: tuple[str, ...] = ()) -> ClaimResult:
        if entry.id in done:
            return done[entry.id]
        for required in entry.requires:
            other = entries.get(required)
            needed = (evaluate(other, (*trail, entry.id))
                      if other is not None and required not in trail else None)
            reason = requirement_problem(required, needed)
            if reason is not None:
                notes[entry.id] = f"skipped: {reason}"
                done[entry.id] = skipped_result(entry, claim_file)
                return done[entry.id]
        done[entry.id] = evaluate_entry(claim_file, entry, spec, plot_dir=plot_dir, plots="all")
        return done[entry.id]

    results = []
    for entry in claim_file.claims:
        result = evaluate(entry)
        status, note = relation_status(entry, result)
        if note:
            notes[entry.id] = note
        if status != result.status:
            result = dataclasses.replace(result, status=status)
        results.append(result)
    return results, notes
