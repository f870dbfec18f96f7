"""``interp-assert``: check claim files without pytest (exit 0 all hold, 1 some fail, 2 errors).

``interp-assert check FILES [--checkpoint PATH] [--json FILE] [--baseline FILE
[--baseline-update]]`` evaluates every claim on every checkpoint of its file (sweeps included),
prints the same reports as the pytest plugin for claims that do not hold, then the summary
table (claims × checkpoints for sweeps). A progress bar is drawn on a terminal only.

``interp-assert report FILES [-o report.html] [--format markdown]`` writes the claim files and
their results as one document (see :mod:`interp_assert.output.document`).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from interp_assert.errors import InterpAssertError
from interp_assert.resources import parse_size, set_memory_limit

if TYPE_CHECKING:
    from interp_assert.loading.claim_file import ClaimEntry, ClaimFile
    from interp_assert.loading.targets import Target

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2
BAR_WIDTH = 24


def _claim_files(paths: Sequence[str]) -> list[Path]:
    from interp_assert.loading.claim_file import SUFFIXES

    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.name.endswith(SUFFIXES)))
        else:
            files.append(path)
    return files


class Progress:
    """``[#####-----] 12/40 file::claim`` on one rewritten line of a terminal; silent else."""

    def __init__(self, total: int, stream: TextIO, enabled: bool) -> None:
        self.total, self.stream, self.enabled, self.done = total, stream, enabled, 0

    def step(self, text: str) -> None:
        if not self.enabled:
            return
        filled = BAR_WIDTH * self.done // max(self.total, 1)
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        line = f"[{bar}] {self.done}/{self.total} {text}"[:100]
        print("\r" + line.ljust(100), end="", file=self.stream, flush=True)
        self.done += 1

    def close(self) -> None:
        if self.enabled:
            print("\r" + " " * 100 + "\r", end="", file=self.stream, flush=True)


def _record_command(path: Path, name: str, args: argparse.Namespace,
                    claim_file: ClaimFile) -> str:
    words = ["interp-assert", "check", str(path), "--baseline", args.baseline,
             "--baseline-update", "--select", name]
    if args.checkpoint and claim_file.subject is None:
        words += ["--checkpoint", args.checkpoint]
    return shlex.join(words)


def check_command(args: argparse.Namespace) -> int:
    """Evaluate every claim of the given files and print the reports."""
    from interp_assert.loading.claim_file import load_claim_file
    from interp_assert.loading.subject import clear_subjects
    from interp_assert.loading.targets import (
        draw_trajectories,
        file_stem,
        run_claim,
        targets,
        trajectories,
    )
    from interp_assert.output.results import record, relative, summary_text, write_records
    from interp_assert.output.text import format_result

    files = _claim_files(args.paths)
    if not files:
        print("interp-assert: no claim files found", file=sys.stderr)
        return EXIT_ERROR
    root = Path.cwd()
    override = Path(args.checkpoint).resolve() if args.checkpoint else None
    baselines = None
    if args.baseline_update and not args.baseline:
        print("interp-assert: --baseline-update needs --baseline FILE", file=sys.stderr)
        return EXIT_ERROR
    if args.baseline:
        from interp_assert.output.baseline import BaselineStore

        try:
            baselines = BaselineStore.load(Path(args.baseline), args.baseline)
        except InterpAssertError as exc:
            print(f"ERROR {exc}", file=sys.stderr)
            return EXIT_ERROR
    broken = 0
    work: list[tuple[Path, ClaimFile, Target, ClaimEntry]] = []
    for path in files:
        try:
            claim_file = load_claim_file(path)
        except InterpAssertError as exc:
            print(f"ERROR {exc}", file=sys.stderr)
            broken += 1
            continue
        for target in targets(claim_file, override):
            for entry in claim_file.claims:
                name = target.name(entry.id)
                if not args.select or {name, entry.id, target.label} & set(args.select):
                    work.append((path, claim_file, target, entry))
    progress = Progress(len(work), sys.stderr, sys.stderr.isatty() and not args.quiet)
    records: list[dict[str, Any]] = []
    reports: list[str] = []
    for index, (path, claim_file, target, entry) in enumerate(work):
        if target.label is not None and index and work[index - 1][2] != target:
            clear_subjects()  # a sweep moved on: free the previous checkpoint's memory
        name = target.name(entry.id)
        progress.step(f"{path.name}::{name}")
        plot_dir = Path(args.artifacts) / "plots" / file_stem(relative(path, root))
        result, recorded = run_claim(
            claim_file, entry, target, plot_dir=plot_dir / target.label if target.label
            else plot_dir, plots=args.plots, baselines=baselines, update=args.baseline_update,
            record_command=_record_command(path, name, args, claim_file) if baselines else "")
        item = record(result, root, name=name, label=target.label, step=target.step,
                      holds_from=entry.options.get("holds_from"),
                      expect_failure=target.expects_failure(entry), baseline=recorded,
                      baseline_used=baselines is not None)
        records.append(item)
        if item["verdict"] in ("fails", "error") or args.verbose:
            reports.append(format_result(result))
    progress.close()
    for text in reports:
        print(text)
        print()
    if records:
        print(summary_text(records))
    found = (trajectories(records) if args.plots == "never"
             else draw_trajectories(records, Path(args.artifacts)))
    if any(t.plot is not None for t in found):
        print(f"trajectories plotted in {Path(args.artifacts) / 'trajectories'}")
    if baselines is not None and args.baseline_update:
        from interp_assert.output.baseline import BaselineStore

        baselines = BaselineStore.load(Path(args.baseline), args.baseline)  # what is there now
        changed = baselines.update(records, root)
        baselines.save()
        print(f"baseline {args.baseline}: {changed} of {len(records)} values recorded or changed")
    if args.json:
        write_records(Path(args.json), records, found, root)
    tally = {v: sum(r["verdict"] == v for r in records) for v in ("holds", "fails", "error",
                                                                    "xfail", "xpass")}
    errors = tally["error"] + broken
    line = f"{tally['holds']} passed, {tally['fails']} failed, {errors} errors"
    if tally["xfail"] or tally["xpass"]:
        line += f", {tally['xfail']} xfailed, {tally['xpass']} xpassed"
    print(line)
    if errors:
        return EXIT_ERROR
    return EXIT_FAILED if tally["fails"] else EXIT_OK


def report_command(args: argparse.Namespace) -> int:
    """Evaluate the claim files and write them as one HTML (or Markdown) document."""
    from interp_assert.output.document import build_sections, write_document

    files = _claim_files(args.paths)
    if not files:
        print("interp-assert: no claim files found", file=sys.stderr)
        return EXIT_ERROR
    try:
        sections = build_sections(files, Path(args.artifacts), args.all_checkpoints)
    except InterpAssertError as exc:
        print(f"ERROR {exc}", file=sys.stderr)
        return EXIT_ERROR
    output = Path(args.output or ("report.md" if args.format == "markdown" else "report.html"))
    write_document(sections, output, "markdown" if args.format == "markdown" else "html",
                   args.title)
    count = sum(len(s.results) for s in sections)
    print(f"report of {count} claims in {len(files)} files written to {output}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="interp-assert", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="check claim files (or folders of them)")
    check.add_argument("paths", nargs="+")
    check.add_argument("--checkpoint", help="run the claims against this checkpoint instead")
    check.add_argument("--json", help="write JSON results to this file")
    check.add_argument("--baseline", metavar="FILE",
                       help="judge claims against the values recorded in FILE; a claim "
                            "without a recorded value fails")
    check.add_argument("--baseline-update", action="store_true",
                       help="record the measured values of the claims that ran into FILE")
    check.add_argument("--select", action="append", metavar="NAME",
                       help="only this claim id, check name (claim-id[step_5000]) or "
                            "checkpoint label (step_5000); repeatable")
    check.add_argument("--artifacts", default=".interp-assert", help="folder for plots")
    check.add_argument("--plots", choices=("failed", "all", "never"), default="failed")
    check.add_argument("-v", "--verbose", action="store_true", help="report passing claims too")
    check.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    check.set_defaults(run=check_command)
    report = commands.add_parser("report", help="render claim files and their results as a "
                                                 "document (HTML or Markdown)")
    report.add_argument("paths", nargs="+")
    report.add_argument("-o", "--output", help="report file (default report.html / report.md)")
    report.add_argument("--format", choices=("html", "markdown"), default="html")
    report.add_argument("--title", default="Claims", help="the document's title")
    report.add_argument("--all-checkpoints", action="store_true",
                        help="one section per checkpoint of a sweep (default: the latest)")
    report.add_argument("--artifacts", default=".interp-assert", help="folder for plots")
    report.set_defaults(run=report_command)
    for command in (check, report):
        command.add_argument("--memory-limit", metavar="SIZE", type=_memory_limit,
                             help="fail a quantity early when it would need more memory than "
                                  "SIZE (512MB, 4GiB, 50%%, none; default 50%% of physical "
                                  "memory or INTERP_ASSERT_MEMORY_LIMIT)")
    args = parser.parse_args(argv)
    if args.memory_limit is not None:
        set_memory_limit(args.memory_limit)
    return int(args.run(args))


def _memory_limit(text: str) -> str:
    try:
        parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


if __name__ == "__main__":
    raise SystemExit(main())
