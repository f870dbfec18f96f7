"""``interp-assert lint FILES``: check claim files without loading a model (exit 0 clean, 1 on
any problem). Reports YAML syntax and key errors, sentence syntax errors, undeclared labels,
misspelt names, unknown datasets and positions (:mod:`interp_assert.run.lint`); ``-v`` also
lists the names only a model can confirm."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from interp_assert.errors import InterpAssertError
from interp_assert.run.lint import LintResult, lint_claim_file, lint_error
from interp_assert.run.runner import Runner


def lint_command(args: argparse.Namespace, claim_files: Callable[[list[str]], list[Path]]) -> int:
    files = claim_files(args.paths)
    if not files:
        print("interp-assert: no claim files found", file=sys.stderr)
        return 2
    runner = Runner()
    results: list[LintResult] = []
    for path in files:
        try:
            results.append(lint_claim_file(runner.load(path), path))
        except InterpAssertError as exc:
            results.append(lint_error(path, exc))
    problems = sum(len(r.problems) for r in results)
    for result in results:
        for problem in result.problems:
            print(problem)
        if args.verbose and result.unchecked:
            print(f"{result.path}: not checked without a model (weights, hooks, components, "
                  f"labels from the model): {', '.join(sorted(result.unchecked))}")
    bad = sum(1 for r in results if r.problems)
    print(f"interp-assert lint: {len(results)} claim files, {problems} problems"
          + (f" in {bad} files" if bad else ""))
    return 1 if problems else 0


def add_lint(commands: argparse._SubParsersAction,
             claim_files: Callable[[list[str]], list[Path]]) -> None:
    """The ``lint`` subcommand."""
    lint = commands.add_parser("lint", help="check claim files without loading a model")
    lint.add_argument("paths", nargs="+")
    lint.add_argument("-v", "--verbose", action="store_true",
                      help="also list the names only a model can confirm")
    lint.set_defaults(run=lambda args: lint_command(args, claim_files), memory_limit=None,
                      cache=None, no_cache=True, cache_size=None, artifacts=".interp-assert")
