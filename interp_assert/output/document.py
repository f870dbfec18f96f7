"""Claim files rendered as documents from the run's records: per claim the hypothesis
(``why``), the sentence, its verdict, the measured value with its interval, and the plot.

HTML output is a dashboard followed by the cards (:mod:`.dashboard`, Jinja2 templates),
self-contained (compressed plots embedded, inline style and script, no network) so it reads
anywhere without the tool installed; Markdown output links the PNGs. The verdicts and their
words are the judge's (:mod:`interp_assert.judge.verdict`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interp_assert.judge.verdict import WORDS, Verdict
from interp_assert.loading.targets import natural_key
from interp_assert.output.error_control import control_line
from interp_assert.output.files import write_text
from interp_assert.output.renderers import value_text

if TYPE_CHECKING:
    from interp_assert.output.trajectories import Trajectory


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


def render_html(parts: Sequence[Section], root: Path, title: str = "Claims",
                output: Path | None = None, sweeps: Iterable[Trajectory] = ()) -> str:
    """The self-contained HTML dashboard and document (see :mod:`.dashboard`)."""
    from interp_assert.output.dashboard import render_html as render

    return render(parts, root, title, output, sweeps)


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
                lines += [f"measured {value_text(item)}; expected {item.get('expected')}", ""]
            if item.get("error_control"):
                lines += [control_line(item), ""]
            if item.get("error"):
                lines += ["```", item["error"], "```", ""]
            if item.get("plot"):
                link = os.path.relpath(root / item["plot"], output.resolve().parent)
                lines += [f"![plot of {item['name']}]({Path(link).as_posix()})", ""]
    return "\n".join(lines)


def write_document(parts: Sequence[Section], root: Path, output: Path, markdown: bool = False,
                   title: str = "Claims", sweeps: Iterable[Trajectory] = ()) -> Path:
    """Render and write atomically (Markdown when ``markdown``, else HTML with the sweeps'
    claims × checkpoints tables and trajectory plots)."""
    text = (render_markdown(parts, root, output, title) if markdown
            else render_html(parts, root, title, output, sweeps))
    write_text(output, text)
    return output
