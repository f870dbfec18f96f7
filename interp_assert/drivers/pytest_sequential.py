"""The pytest options of sequential evaluation: ``--interp-sequential`` and
``--interp-undecided`` (and their ini options). Imports only pytest at start-up; the library
is imported only by a run that sets one."""

from __future__ import annotations

from typing import Any

import pytest


def add_sequential_options(group: Any, parser: pytest.Parser) -> None:
    """Add the options to the plugin's group and the ini file."""
    group.addoption("--interp-sequential", action="store_true", default=False,
                    help="judge every 'with C%% confidence' claim by an anytime-valid confidence "
                         "sequence that may stop its forward pass early (ini: "
                         "interp_assert_sequential; env: INTERP_ASSERT_SEQUENTIAL)")
    group.addoption("--interp-undecided", choices=("fail", "xfail"), default=None,
                    help="what a sequential claim still undecided when its samples run out "
                         "becomes (ini: interp_assert_undecided; env: INTERP_ASSERT_UNDECIDED; "
                         "default fail)")
    parser.addini("interp_assert_sequential", "true: every confidence claim is sequential",
                  default="")
    parser.addini("interp_assert_undecided", "fail or xfail: undecided sequential claims",
                  default="")


def set_sequential_options(config: pytest.Config) -> None:
    """--interp-sequential and --interp-undecided (or their ini options); only a run that
    sets one imports the library here."""
    every = config.getoption("interp_sequential") or config.getini("interp_assert_sequential")
    policy = config.getoption("interp_undecided") or config.getini("interp_assert_undecided")
    if not every and not policy:
        return
    from interp_assert.errors import InterpAssertError
    from interp_assert.plan.sequential import parse_flag, set_sequential, set_undecided

    try:
        set_sequential(every is True or parse_flag(str(every), "interp_assert_sequential")
                       or None)
        set_undecided(policy or None)
    except InterpAssertError as exc:
        raise pytest.UsageError(exc.message) from None
    config.add_cleanup(lambda: (set_sequential(None), set_undecided(None)))
