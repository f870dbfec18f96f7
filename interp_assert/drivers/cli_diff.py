"""``interp-assert diff OLD NEW``: the values that moved between two runs, as a table (two
baseline files, e.g. the committed one and the one a run just updated, or two results files
written by ``--json`` / ``--interp-json``). Exit 0 whatever moved; 2 on an unreadable file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from interp_assert.errors import InterpAssertError
from interp_assert.output.baseline_diff import diff_table, moved, read_values


def diff_command(args: argparse.Namespace) -> int:
    try:
        old, new = read_values(Path(args.old)), read_values(Path(args.new))
    except InterpAssertError as exc:
        print(f"ERROR {exc}", file=sys.stderr)
        return 2
    print(diff_table(moved(old, new, args.min_change), len(old.keys() | new.keys())))
    return 0


def add_diff(commands: argparse._SubParsersAction) -> None:
    """The ``diff`` subcommand."""
    diff = commands.add_parser("diff", help="the values that moved between two baseline or "
                                            "results files, as a table")
    diff.add_argument("old")
    diff.add_argument("new")
    diff.add_argument("--min-change", type=float, default=0.0, metavar="X",
                      help="leave out values that moved by X or less (default 0: any change)")
    diff.set_defaults(run=diff_command, memory_limit=None, cache=None, no_cache=True,
                      cache_size=None, artifacts=".interp-assert")
