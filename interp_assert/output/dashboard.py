"""The HTML report: a dashboard over the claims (summary table, contents, sweeps) followed by
every claim's card, rendered from Jinja2 templates (``templates/``).

The page is self-contained: plots are embedded as compressed PNGs (:mod:`.images`), the style
and the script that sorts and filters the summary table are inline, and nothing is fetched
from the network. Links to the full-size plots, and every path it prints, are relative to the
report. The cards' blocks come from the registered renderers (:mod:`.renderers`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interp_assert.claims.outcome import fmt
from interp_assert.judge.verdict import WORDS, Verdict
from interp_assert.output.images import data_uri
from interp_assert.output.renderers import ReportContext, change_text, render_card, value_text

if TYPE_CHECKING:
    import jinja2

    from interp_assert.output.document import Section
    from interp_assert.output.trajectories import Trajectory


@cache
def environment() -> jinja2.Environment:
    """The templates of the report (package data of :mod:`interp_assert.output`)."""
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader("interp_assert.output", "templates"),
                              autoescape=True, trim_blocks=True, lstrip_blocks=True,
                              undefined=jinja2.StrictUndefined)


def _stem(file: str) -> str:
    """A claim file's anchor part: its name without the suffix (no folders, never absolute)."""
    return Path(file).name.removesuffix(".yaml").removesuffix(".yml")


class Anchors:
    """Unique, readable ``id`` attributes: a repeated name gets ``-2``, ``-3`` ..."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def make(self, text: str) -> str:
        base = re.sub(r"[^A-Za-z0-9_\-]+", "-", text).strip("-") or "claim"
        anchor, n = base, 1
        while anchor in self.used:
            n += 1
            anchor = f"{base}-{n}"
        self.used.add(anchor)
        return anchor


class Report(ReportContext):
    """Paths as the report at ``output`` shows them (relative to its folder)."""

    def __init__(self, root: Path, output: Path) -> None:
        self.root = root.resolve()
        self.folder = output.resolve().parent
        prefix = Path(os.path.relpath(self.root, self.folder)).as_posix()
        self.prefix = "" if prefix == "." else prefix + "/"

    def relative(self, path: Path | str) -> str:
        """``path`` (absolute, or relative to the run's root) relative to the report."""
        path = Path(path)
        path = path if path.is_absolute() else self.root / path
        return Path(os.path.relpath(path, self.folder)).as_posix()

    def display(self, file: str) -> str:
        """A claim file as the report names it: relative to the run's root as in the results,
        or to the report when outside the root (never an absolute path)."""
        return file if not Path(file).is_absolute() else self.relative(file)

    def shown(self, text: str) -> str:
        return text.replace(f"{self.root}{os.sep}", self.prefix).replace(str(self.root), ".")

    def image(self, plot: str | None) -> tuple[str | None, str | None]:
        if not plot:
            return None, None
        path = Path(plot) if Path(plot).is_absolute() else self.root / plot
        return data_uri(path), self.relative(path)


#: the symbol before a verdict's words in the summary, the contents and the cards
SYMBOLS = {"holds": "✓", "fails": "✗", "error": "⚠", "skipped": "–", "xfail": "✗", "xpass": "✓",
           "undecided": "?"}


def _words(verdict: str) -> dict[str, str]:
    words = WORDS[Verdict(verdict)]
    return {"verdict": verdict, "status": words.text, "colour": words.colour,
            "mark": words.mark, "symbol": SYMBOLS.get(verdict, "")}


def _number(value: Any) -> str:
    """A sort key for the summary table ('' when not a number)."""
    return repr(float(value)) if isinstance(value, int | float) else ""


def _card(item: Mapping[str, Any], anchor: str, report: Report) -> dict[str, Any]:
    return {**_words(item["verdict"]), "anchor": anchor, "id": item["id"],
            "name": item["name"], "sentence": item["claim"],
            "where": f"{report.display(item['file'])}:{item['line']}",
            "checkpoint": item.get("label") or report.shown(str(item.get("checkpoint") or "")),
            "why": (item.get("why") or "").strip(), "blocks": render_card(item, report)}


def _row(item: Mapping[str, Any], anchor: str, report: Report) -> dict[str, Any]:
    error = str(item.get("error") or "").strip().splitlines()
    measured = value_text(item) if item.get("measured") is not None else (
        f"error: {report.shown(error[0])}" if error else item.get("reason") or "")
    change = (item.get("baseline") or {}).get("change")
    return {**_words(item["verdict"]), "anchor": anchor, "file": report.display(item["file"]),
            "claim": item["name"], "fails_run": bool(item.get("fails_run")),
            "checkpoint": item.get("label") or report.shown(str(item.get("checkpoint") or "")),
            "measured": measured, "baseline": "baseline" in item,
            "value_key": _number(item.get("value")), "expected": item.get("expected") or "",
            "change": change_text(item), "change_key": _number(change)}


def _sweep(file: str, group: Sequence[Trajectory], cards: Mapping[tuple[str, str], str],
           report: Report) -> dict[str, Any]:
    """A sweep's claims × checkpoints table and its trajectory plots."""
    from interp_assert.output.trajectories import sweep_grid

    labels, grid = sweep_grid(group)
    rows = []
    for trajectory, cells in zip(group, grid):
        row = []
        for label in labels:
            value, verdict = cells.get(label, (None, None))
            row.append(None if verdict is None else {
                **_words(verdict), "text": "error" if verdict == "error" else fmt(value)})
        observed = trajectory.observed
        source, link = report.image(str(trajectory.plot) if trajectory.plot else None)
        rows.append({"id": trajectory.claim_id, "sentence": trajectory.sentence, "cells": row,
                     "card": cards.get((file, trajectory.claim_id)),
                     "holds_from": "never" if observed is None else trajectory.where,
                     "claimed_from": trajectory.holds_from, "src": source, "link": link})
    return {"file": report.display(file), "labels": labels, "rows": rows}


def view(parts: Sequence[Section], root: Path, output: Path, title: str,
         sweeps: Iterable[Trajectory] = ()) -> dict[str, Any]:
    """Everything the templates show, from the document's sections and the sweeps."""
    report, anchors = Report(root, output), Anchors()
    files: dict[str, dict[str, Any]] = {}
    rows, counts = [], {v.value: 0 for v in Verdict}
    cards: dict[tuple[str, str], str] = {}
    for section in parts:
        entry = files.setdefault(section.file, {
            "anchor": anchors.make(_stem(section.file)),
            "title": section.header.title or Path(section.file).name,
            "path": report.display(section.file),
            "description": (section.header.description or "").strip(),
            "sections": [], "counts": {}})
        subject = section.header.subjects.get(section.label, {})
        shown = {"anchor": anchors.make(f"{entry['anchor']}--{section.label}")
                 if section.label else None, "label": section.label,
                 "subject": [(k, report.shown(str(v))) for k, v in subject.items()],
                 "cards": []}
        for item in section.records:
            anchor = anchors.make(f"{_stem(item['file'])}--{item['name']}")
            cards[(item["file"], item["id"])] = anchor
            shown["cards"].append(_card(item, anchor, report))
            rows.append(_row(item, anchor, report))
            counts[item["verdict"]] = counts.get(item["verdict"], 0) + 1
            entry["counts"][item["verdict"]] = entry["counts"].get(item["verdict"], 0) + 1
        entry["sections"].append(shown)
    by_file: dict[str, list[Trajectory]] = {}
    for trajectory in sweeps:
        if len(trajectory.labels) > 1:
            by_file.setdefault(trajectory.file, []).append(trajectory)
    sweep_views = []
    for file, group in sorted(by_file.items()):
        sweep = _sweep(file, group, cards, report)
        sweep["anchor"] = anchors.make(f"sweep--{_stem(file)}")
        sweep["title"] = files[file]["title"] if file in files else Path(file).name
        sweep_views.append(sweep)
    tally = [{**_words(v), "count": n} for v, n in counts.items() if n]
    for entry in files.values():
        entry["tally"] = [{**_words(v), "count": n} for v, n in entry["counts"].items()]
    rows.sort(key=lambda row: not row["fails_run"])  # what fails the run first, else in order
    return {"title": title, "tally": tally, "rows": rows,
            "baselines": any(row["baseline"] for row in rows), "files": list(files.values()),
            "sweeps": sweep_views, "total": len(rows),
            "verdicts": [_words(v.value) for v in Verdict]}


def render_html(parts: Sequence[Section], root: Path, title: str = "Claims",
                output: Path | None = None, sweeps: Iterable[Trajectory] = ()) -> str:
    """The self-contained HTML report of ``parts`` to be written at ``output`` (default:
    ``root/report.html``); plots are read from ``root``."""
    data = view(parts, root, output or root / "report.html", title, sweeps)
    return environment().get_template("report.html.j2").render(**data)
