"""Claim files rendered as documents from the run's records: per claim the hypothesis
(``why``), the sentence, its verdict, the measured value with its interval, and the plot.

HTML output is self-contained (PNG images embedded as data URIs, inline CSS, no scripts, no
network) so it reads anywhere without the tool installed; Markdown output links the PNGs.
The verdicts and their words are the judge's (:mod:`interp_assert.judge.verdict`).
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interp_assert.claims.outcome import fmt
from interp_assert.judge.verdict import WORDS, Verdict
from interp_assert.loading.targets import natural_key
from interp_assert.output.files import write_text


@dataclass(frozen=True)
class FileHeader:
    """What a document shows of a claim file above its claims."""

    title: str = ""
    description: str = ""
    #: the claims' ids in file order (the order of its cards)
    order: tuple[str, ...] = ()
    #: checkpoint label -> subject summary (checkpoint, sha256, model size, training step)
    subjects: Mapping[str | None, Mapping[str, str]] = field(default_factory=dict)


@dataclass
class Section:
    """One claim file on one checkpoint, and the records of its claims."""

    file: str
    header: FileHeader
    label: str | None
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def heading(self) -> str:
        name = self.header.title or Path(self.file).name
        return f"{name} — checkpoint {self.label}" if self.label else name


def sections(records: Iterable[dict[str, Any]], headers: Mapping[str, FileHeader],
             latest_only: bool = False) -> list[Section]:
    """Records grouped per claim file and checkpoint, files in path order, checkpoints in step
    order, claims in file order: the same document whatever order the claims ran in.
    ``latest_only`` keeps a sweep's last checkpoint."""
    grouped: dict[tuple[str, str | None], list[dict[str, Any]]] = {}
    for item in records:
        grouped.setdefault((item["file"], item.get("label")), []).append(item)
    if latest_only:
        last: dict[str, str | None] = {}
        for file, label in sorted(grouped, key=lambda k: (k[0], natural_key(k[1] or ""))):
            last[file] = label
        grouped = {key: value for key, value in grouped.items() if last[key[0]] == key[1]}
    out = []
    for (file, label) in sorted(grouped, key=lambda k: (k[0], natural_key(k[1] or ""))):
        header = headers.get(file, FileHeader())
        order = {claim_id: i for i, claim_id in enumerate(header.order)}
        chosen = sorted(grouped[(file, label)], key=lambda r: (order.get(r["id"], 1 << 30),
                                                               r["id"]))
        out.append(Section(file, header, label, chosen))
    return out


def _value_text(item: Mapping[str, Any]) -> str:
    text = str(item.get("measured") or "")
    interval = item.get("interval")
    if interval and "CI" not in text:
        text += f" (interval [{fmt(interval[0])}, {fmt(interval[1])}])"
    return text


def _image_tag(path: Path | None, alt: str) -> str:
    if path is None or not path.exists():
        return ""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}" '
            'style="max-width:100%">')


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


def render_html(parts: Sequence[Section], root: Path, title: str = "Claims") -> str:
    """A self-contained HTML document of every section; plots are read from ``root``."""
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
           f"<h1>{html.escape(title)}</h1>"]
    counts: dict[Verdict, int] = {}
    for section in parts:
        for item in section.records:
            verdict = Verdict(item["verdict"])
            counts[verdict] = counts.get(verdict, 0) + 1
    out.append('<p class="summary">' + "".join(
        f'<span style="color:{WORDS[v].colour}">{n} {html.escape(WORDS[v].text)}</span>'
        for v, n in sorted(counts.items(), key=lambda kv: list(Verdict).index(kv[0])))
        + "</p>")
    for section in parts:
        out.append(f"<h2>{html.escape(section.heading)}</h2>")
        if section.header.description:
            out.append(f'<p class="why">{html.escape(section.header.description.strip())}</p>')
        subject = section.header.subjects.get(section.label, {})
        out.append('<table class="meta">' + "".join(
            f"<tr><td>{html.escape(k)}</td><td><code>{html.escape(v)}</code></td></tr>"
            for k, v in subject.items()) + "</table>")
        for item in section.records:
            out.extend(_card(item, root))
    out.append("</body></html>")
    return "\n".join(p for p in out if p)


def _card(item: Mapping[str, Any], root: Path) -> list[str]:
    words = WORDS[Verdict(item["verdict"])]
    out = [f'<div class="claim" id="{html.escape(item["name"])}">',
           f"<h3>{html.escape(item['id'])} "
           f'<span class="status" style="color:{words.colour}">{html.escape(words.text)}'
           "</span></h3>",
           f'<p><span class="sentence">{html.escape(item["claim"])}</span> '
           f"<small>{html.escape(item['file'])}:{item['line']}</small></p>"]
    if item.get("why"):
        out.append(f'<p class="why">{html.escape(item["why"])}</p>')
    if item.get("reason"):
        out.append(f"<p><em>{html.escape(item['reason'])}</em></p>")
    if item.get("measured") is not None:
        out.append(f"<p>measured {html.escape(_value_text(item))}; expected "
                   f"{html.escape(str(item.get('expected') or ''))}</p>")
        for key, value in (item.get("context") or {}).items():
            out.append(f"<p><small>{html.escape(str(key))}: {html.escape(str(value))}</small></p>")
    if item.get("error"):
        out.append(f'<div class="error">{html.escape(item["error"])}</div>')
    if item.get("plot"):
        out.append(_image_tag(root / item["plot"], f"plot of {item['name']}"))
    out.append("</div>")
    return out


def render_markdown(parts: Sequence[Section], root: Path, output: Path,
                    title: str = "Claims") -> str:
    """A Markdown document; plots are linked relative to ``output``."""
    lines = [f"# {title}", ""]
    for section in parts:
        lines += [f"## {section.heading}", ""]
        if section.header.description:
            lines += [section.header.description.strip(), ""]
        subject = section.header.subjects.get(section.label, {})
        lines += [f"- {k}: `{v}`" for k, v in subject.items()] + [""]
        for item in section.records:
            words = WORDS[Verdict(item["verdict"])]
            lines += [f"### {item['id']} — {words.text}", "",
                      f"`{item['claim']}` ({item['file']}:{item['line']})", ""]
            if item.get("why"):
                lines += [item["why"], ""]
            if item.get("reason"):
                lines += [f"*{item['reason']}*", ""]
            if item.get("measured") is not None:
                lines += [f"measured {_value_text(item)}; expected {item.get('expected')}", ""]
            if item.get("error"):
                lines += ["```", item["error"], "```", ""]
            if item.get("plot"):
                link = os.path.relpath(root / item["plot"], output.resolve().parent)
                lines += [f"![plot of {item['name']}]({Path(link).as_posix()})", ""]
    return "\n".join(lines)


def write_document(parts: Sequence[Section], root: Path, output: Path, markdown: bool = False,
                   title: str = "Claims") -> Path:
    """Render and write atomically (Markdown when ``markdown``, else HTML)."""
    text = (render_markdown(parts, root, output, title) if markdown
            else render_html(parts, root, title))
    write_text(output, text)
    return output
