"""``interp-assert``: check claim files without pytest (exit 0 all hold, 1 some fail, 2 errors).

``interp-assert check FILES [--checkpoint PATH] [--json FILE] [--baseline FILE
[--baseline-update]]`` evaluates every claim on every checkpoint of its file (sweeps included),
prints the same reports as the pytest plugin for claims that do not hold, then the summary
table (claims × checkpoints for sweeps). A progress bar is drawn on a terminal only.
``--ray [ADDRESS]`` runs each claim file and checkpoint as a task on a Ray cluster
(:mod:`interp_assert.drivers.ray_runs`).

``interp-assert report FILES [-o report.html] [--format markdown]`` writes the claim files and
their results as one document (see :mod:`interp_assert.output.document`).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from interp_assert.drivers.cli_diff import add_diff
from interp_assert.drivers.cli_lint import add_lint
from interp_assert.drivers.cli_progress import RichProgress
from interp_assert.errors import InterpAssertError
from interp_assert.evaluate import cache_config
from interp_assert.judge.error_control import control, parse_control
from interp_assert.judge.verdict import ClaimResult
from interp_assert.loading.claim_file import SUFFIXES
from interp_assert.loading.devices import DTYPES, check_device, check_run_device
from interp_assert.loading.source_files import safe_resolve
from interp_assert.output.error_control import control_text
from interp_assert.output.results import summary_text
from interp_assert.output.text import format_result
from interp_assert.plan.sequential import set_sequential, set_undecided
from interp_assert.resources import freeze_at_exit, parse_size, set_memory_limit
from interp_assert.run.runner import Check, Runner, RunOptions, exit_code, tally_line
from interp_assert.usercode import parse_timeout

EXIT_ERROR, EXIT_INTERRUPTED = 2, 130


def _claim_files(paths: Sequence[str]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.name.endswith(SUFFIXES)))
        else:
            files.append(path)
    return files


def _options(args: argparse.Namespace, plots: str) -> RunOptions:
    """The run's options from the command line (paths relative to the current folder)."""
    options = RunOptions(
        root=Path.cwd(), artifacts=Path(args.artifacts), plots=plots,
        checkpoint=safe_resolve(Path(args.checkpoint)) if args.checkpoint else None,
        baseline=Path(args.baseline) if args.baseline else None,
        baseline_shown=args.baseline or "",
        baseline_update=args.baseline_update or args.baseline_prune,
        baseline_prune=args.baseline_prune,
        json=Path(args.json) if args.json else None, timeout=args.timeout,
        device=args.device, dtype=args.dtype)

    def record_command(check: Check) -> str:
        words = ["interp-assert", "check", str(check.claim_file.path), "--baseline",
                 args.baseline, "--baseline-update", "--select", check.name]
        if args.checkpoint and check.claim_file.subject is None:
            words += ["--checkpoint", args.checkpoint]
        return shlex.join(words)

    options.record_command = record_command
    return options


def _selected(check: Check, select: list[str] | None) -> bool:
    return not select or bool({check.name, check.entry.id, check.target.label} & set(select))


def _load_all(runner: Runner, files: Sequence[Path]) -> tuple[list[Check], int]:
    """Every check of the files; a file that cannot be read is reported and counted."""
    checks: list[Check] = []
    broken = 0
    for path in files:
        try:
            checks.extend(runner.checks(runner.load(path)))
        except InterpAssertError as exc:
            print(f"ERROR {exc}", file=sys.stderr)
            broken += 1
    return checks, broken


def check_command(args: argparse.Namespace) -> int:
    """Evaluate every claim of the given files, print the reports and the summary."""
    return _run(args, args.plots, document=None)


def report_command(args: argparse.Namespace) -> int:
    """Evaluate the claim files and write them as one document (HTML or Markdown)."""
    output = Path(args.output or ("report.md" if args.format == "markdown" else "report.html"))
    return _run(args, "all", document=output)


def _run(args: argparse.Namespace, plots: str, document: Path | None) -> int:
    files = _claim_files(args.paths)
    if not files:
        print("interp-assert: no claim files found", file=sys.stderr)
        return EXIT_ERROR
    if (args.baseline_update or args.baseline_prune) and not args.baseline:
        print("interp-assert: --baseline-update needs --baseline FILE", file=sys.stderr)
        return EXIT_ERROR
    options = _options(args, plots)
    if document is not None:
        options.report, options.report_title = document, args.title
        options.report_latest_only = not args.all_checkpoints
    runner = Runner(options)
    try:
        options.error_control = parse_control(args.alpha, args.error_control, "--alpha")
        runner.baselines()  # a broken baseline file stops the run before any work
        check_run_device(args.device, args.dtype)
    except InterpAssertError as exc:
        print(f"ERROR {exc}", file=sys.stderr)
        return EXIT_ERROR
    freeze_at_exit()  # this process ends with the run: its exit need not collect
    checks, broken = _load_all(runner, files)
    checks = [c for c in checks if _selected(c, args.select)]
    progress = RichProgress(len(checks), sys.stderr, sys.stderr.isatty() and not args.quiet)
    runner.options.progress = progress
    records, reports = [], []
    interrupted = False
    try:
        for check, (result, record) in zip(checks, _results(runner, checks, args.ray)):
            progress.step(f"{check.claim_file.path.name}::{check.name}")
            records.append(record)
            if result.judgement.fails_run or args.verbose:
                reports.append(format_result(result, why=args.verbose))
    except KeyboardInterrupt:  # Ctrl-C, or user code raising it: report what finished
        interrupted = True
    except InterpAssertError as exc:  # the Ray cluster could not be reached
        print(f"ERROR {exc}", file=sys.stderr)
        return EXIT_ERROR
    progress.close()
    for text in reports:
        print(text)
        print()
    control(records, options.error_control)  # run-level verdicts, as Runner.finish decides
    if records:
        print(summary_text(records))
        if control_text(records):
            print(control_text(records))
    failed = False
    try:
        messages = runner.finish(records, interrupted)
    except (InterpAssertError, OSError) as exc:
        messages, failed = getattr(exc, "messages", []), True
        print(f"ERROR {exc}", file=sys.stderr)
    for message in messages:
        print(message)
    print(tally_line(records, broken))
    if args.verbose and records:
        print(progress.times_line())
    if interrupted:
        print(f"interp-assert: interrupted after {len(records)} of {len(checks)} checks",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_ERROR if failed else exit_code(records, broken)


def _results(runner: Runner, checks: list[Check],
             ray: str | None) -> Iterator[tuple[ClaimResult, dict[str, Any]]]:
    """Each check's result and JSON record, in order: here, or on a Ray cluster."""
    if ray is None:
        return ((result, runner.record(result)) for result in runner.run(checks))
    from interp_assert.drivers.ray_runs import ray_results

    return ray_results(runner, checks, ray)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="interp-assert", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="check claim files (or folders of them)")
    check.add_argument("paths", nargs="+")
    check.add_argument("--artifacts", default=".interp-assert", help="folder for plots")
    check.add_argument("--plots", choices=("failed", "all", "never"), default="failed")
    check.add_argument("-v", "--verbose", action="store_true",
                       help="report passing claims too, and the time of each phase at the end")
    check.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    check.set_defaults(run=check_command)
    report = commands.add_parser("report", help="render claim files and their results as a "
                                                 "document (HTML or Markdown)")
    report.add_argument("paths", nargs="+")
    report.add_argument("-o", "--output", help="report file (default report.html / report.md)")
    report.add_argument("--format", choices=("html", "markdown"), default="html")
    report.add_argument("--title", default="Claims", help="the document's title")
    report.add_argument("--all-checkpoints", action="store_true",
                        help="cards for every checkpoint of a sweep (default: the latest; the "
                             "sweep's claims × checkpoints table shows them all)")
    report.add_argument("--artifacts", default=".interp-assert", help="folder for plots")
    report.set_defaults(run=report_command, plots="all", verbose=False, quiet=False)
    for command in (check, report):
        command.add_argument("--checkpoint", help="run the claims against this checkpoint "
                                                  "instead")
        command.add_argument("--json", help="write JSON results to this file")
        command.add_argument("--baseline", metavar="FILE",
                             help="judge claims against the values recorded in FILE; a claim "
                                  "that uses it and has no recorded value fails")
        command.add_argument("--baseline-update", action="store_true",
                             help="record the measured values of the claims that ran into FILE")
        command.add_argument("--baseline-prune", action="store_true",
                             help="as --baseline-update, and remove the entries of claims that "
                                  "no longer exist")
        command.add_argument("--select", action="append", metavar="NAME",
                             help="only this claim id, check name (claim-id[step_5000]) or "
                                  "checkpoint label (step_5000); repeatable")
        command.add_argument("--device", type=_device,
                             help="run every model on DEVICE: cpu, cuda, cuda:N, mps or auto "
                                  "(cuda, else mps, else cpu); default INTERP_ASSERT_DEVICE, "
                                  "else the subject's 'device:', else cpu")
        command.add_argument("--dtype", choices=DTYPES,
                             help="run every model in this dtype (reductions stay float64); "
                                  "default INTERP_ASSERT_DTYPE, else the subject's 'dtype:'")
        command.add_argument("--memory-limit", metavar="SIZE", type=_memory_limit,
                             help="fail a quantity early when it would need more memory than "
                                  "SIZE (512MB, 4GiB, 50%%, none; default 50%% of physical "
                                  "memory or INTERP_ASSERT_MEMORY_LIMIT)")
        command.add_argument("--cache", metavar="DIR",
                             help="reuse forward-pass results stored in DIR by earlier runs "
                                  "(default INTERP_ASSERT_CACHE, else <artifacts>/cache)")
        command.add_argument("--no-cache", action="store_true",
                             help="neither read nor write the result cache")
        command.add_argument("--cache-size", metavar="SIZE", type=_cache_size,
                             help="bound of the result cache; least recently used results "
                                  "are removed beyond it (default INTERP_ASSERT_CACHE_SIZE, "
                                  "else 2GiB)")
        command.add_argument("--ray", nargs="?", const="auto", metavar="ADDRESS",
                             help="run each claim file and checkpoint as a task on the Ray "
                                  "cluster at ADDRESS (host:6379, ray://host:10001); without "
                                  "ADDRESS, the running one or a new local one (pip install "
                                  "'interp-assert[ray]')")
        command.add_argument("--alpha", metavar="ALPHA",
                             help="control the error rate across the run's confidence claims "
                                  "at ALPHA (0.05; off: none); a claim that holds alone but "
                                  "not after the correction fails (default "
                                  "INTERP_ASSERT_ALPHA, else off)")
        command.add_argument("--error-control", choices=("holm", "bh"),
                             help="holm: family-wise error, bh: false-discovery rate "
                                  "(Benjamini-Hochberg); alone it sets alpha 0.05 (default "
                                  "INTERP_ASSERT_ERROR_CONTROL, else holm)")

        command.add_argument("--sequential", action="store_true",
                             help="judge every 'with C%% confidence' claim by an anytime-valid "
                                  "confidence sequence that may stop its pass early (env: "
                                  "INTERP_ASSERT_SEQUENTIAL)")
        command.add_argument("--undecided", choices=("fail", "xfail"), default=None,
                             help="what a sequential claim undecided when its samples run out "
                                  "becomes (env: INTERP_ASSERT_UNDECIDED; default fail)")
        command.add_argument("--timeout", metavar="SECONDS", type=_timeout,
                             help="stop a claim's user code (loaders, callables, metrics) "
                                  "after SECONDS and report the claim as an error (default "
                                  "INTERP_ASSERT_TIMEOUT, else none); a claim's 'timeout:' "
                                  "wins")
    add_lint(commands, _claim_files)
    add_diff(commands)
    args = parser.parse_args(argv)
    if args.memory_limit is not None:
        set_memory_limit(args.memory_limit)
    _use_cache(args)
    if getattr(args, "sequential", False) or getattr(args, "undecided", None):
        set_sequential(True if args.sequential else None)
        set_undecided(args.undecided)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:  # before any claim ran (loading): nothing to write
        print("interp-assert: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        cache_config.reset()
        set_sequential(None)
        set_undecided(None)


def _use_cache(args: argparse.Namespace) -> None:
    """The result cache: --no-cache, --cache DIR, INTERP_ASSERT_CACHE, else on in
    <artifacts>/cache."""
    import os

    folder = args.cache or os.environ.get(cache_config.ENV_VAR)
    if args.no_cache:
        folder = None
    elif folder is None:
        folder = str(Path(args.artifacts) / "cache")
    try:
        cache_config.configure(folder, args.cache_size)
    except ValueError as exc:  # INTERP_ASSERT_CACHE_SIZE
        print(f"interp-assert: {cache_config.SIZE_ENV_VAR}: {exc}; the result cache is off",
              file=sys.stderr)
        cache_config.configure(None)


def _timeout(text: str) -> float | None:
    try:
        return parse_timeout(text, "--timeout")
    except InterpAssertError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def _device(text: str) -> str:
    try:
        return check_device(text, "--device")
    except InterpAssertError as exc:
        raise argparse.ArgumentTypeError(f"{exc.message} ({exc.hint})") from None


def _memory_limit(text: str) -> str:
    try:
        parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _cache_size(text: str) -> str:
    try:
        parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).replace("memory limit", "cache size")
                                         ) from None
    return text


if __name__ == "__main__":
    raise SystemExit(main())
