"""``interp-assert``: check claim files without pytest (exit 0 all hold, 1 some fail, 2 errors)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import InterpAssertError

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2


def _claim_files(paths: Sequence[str]) -> list[Path]:
    from .spec import SUFFIXES

    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.name.endswith(SUFFIXES)))
        else:
            files.append(path)
    return files


def check_command(args: argparse.Namespace) -> int:
    """Evaluate every claim of the given files and print the reports."""
    from dataclasses import replace

    from .engine import evaluate_entry
    from .report import format_result, summary_table
    from .results import write_results
    from .spec import load_claim_file

    results, broken = [], 0
    files = _claim_files(args.paths)
    if not files:
        print("interp-assert: no claim files found", file=sys.stderr)
        return EXIT_ERROR
    show_progress = sys.stderr.isatty() and not args.quiet
    total = 0
    for path in files:
        try:
            claim_file = load_claim_file(path)
        except InterpAssertError as exc:
            print(f"ERROR {exc}", file=sys.stderr)
            broken += 1
            continue
        spec = claim_file.subject
        if args.checkpoint and spec is not None:
            spec = replace(spec, checkpoint=Path(args.checkpoint).resolve())
        plot_dir = Path(args.artifacts) / "plots" / path.name.removesuffix(".yaml")
        for entry in claim_file.claims:
            total += 1
            if show_progress:
                print(f"\r[{total}] {path.name}::{entry.id}"[:100].ljust(100), end="",
                      file=sys.stderr, flush=True)
            results.append(evaluate_entry(claim_file, entry, spec, plot_dir, args.plots))
    if show_progress:
        print("\r" + " " * 100 + "\r", end="", file=sys.stderr)
    for result in results:
        if not result.passed or args.verbose:
            print(format_result(result))
            print()
    print(summary_table(results))
    if args.json:
        write_results(Path(args.json), results, Path.cwd())
    failed = sum(r.status == "failed" for r in results)
    errors = sum(r.status == "error" for r in results) + broken
    print(f"{sum(r.passed for r in results)} passed, {failed} failed, {errors} errors")
    if errors:
        return EXIT_ERROR
    return EXIT_FAILED if failed else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="interp-assert", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="check claim files (or folders of them)")
    check.add_argument("paths", nargs="+")
    check.add_argument("--checkpoint", help="run the claims against this checkpoint instead")
    check.add_argument("--json", help="write JSON results to this file")
    check.add_argument("--artifacts", default=".interp-assert", help="folder for plots")
    check.add_argument("--plots", choices=("failed", "all", "never"), default="failed")
    check.add_argument("-v", "--verbose", action="store_true", help="report passing claims too")
    check.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    check.set_defaults(run=check_command)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    raise SystemExit(main())
