"""The end-of-run baseline update: record the measured values, report the stale entries (checks
that no claim file produces any more) and, with ``prune``, remove them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from interp_assert.errors import InterpAssertError
from interp_assert.loading.targets import targets
from interp_assert.output.baseline import BaselineStore, update_baseline_file

if TYPE_CHECKING:
    from interp_assert.run.runner import Runner

#: stale entries named in the message (the rest are counted)
SHOWN = 10


def known_checks(runner: Runner, records: list[dict[str, Any]], store: BaselineStore
                 ) -> dict[str, set[str]]:
    """Every check name each claim file of the run has now, by baseline file key: on its own
    checkpoints and on the run's override, so a sweep run with --checkpoint keeps its steps."""
    known: dict[str, set[str]] = {}
    root = runner.options.root
    for file in sorted({str(item["file"]) for item in records}):
        try:
            claim_file = runner.load(root / file)
        except InterpAssertError:
            continue
        found = [*targets(claim_file, None), *targets(claim_file, runner.options.checkpoint)]
        names = {target.name(entry.id) for target in found for entry in claim_file.claims}
        known[store.file_key(root / file)] = names
    return known


def update_baseline(runner: Runner, records: list[dict[str, Any]], interrupted: bool) -> str:
    """Record the values of ``records`` (never after an interruption); the lines to show."""
    options = runner.options
    assert options.baseline is not None
    shown = options.baseline_shown or str(options.baseline)
    if interrupted:
        return (f"baseline {shown} not updated: the run was interrupted (run it again to "
                "record the values)")
    store = BaselineStore(Path(options.baseline).resolve(), shown)
    changed, count, stale = update_baseline_file(
        options.baseline, shown, records, options.root, known_checks(runner, records, store),
        options.baseline_prune)
    message = f"baseline {shown}: {changed} of {count} values recorded or changed"
    if not stale:
        return message
    names = ", ".join(f"{file}::{name}" for file, name in stale[:SHOWN])
    names += f" and {len(stale) - SHOWN} more" if len(stale) > SHOWN else ""
    if options.baseline_prune:
        return f"{message}; {len(stale)} stale entries removed: {names}"
    return (f"{message}\nbaseline {shown}: {len(stale)} stale entries (no claim has that name "
            f"any more): {names}; remove them with --interp-baseline-prune (interp-assert: "
            f"--baseline-prune)")
