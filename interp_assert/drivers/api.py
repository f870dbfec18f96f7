"""The Python API: check claims from ordinary code and tests."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from interp_assert.errors import ClaimFailed, Location, SpecError
from interp_assert.judge.verdict import ClaimResult, Verdict
from interp_assert.labels import Labelled
from interp_assert.language.parser import parse_claim
from interp_assert.loading.claim_file import ClaimEntry, ClaimFile, check_names
from interp_assert.loading.devices import targets_on_device
from interp_assert.loading.quantity_def import QuantityDef
from interp_assert.loading.source_files import safe_resolve
from interp_assert.loading.subject import SubjectScope, SubjectSpec
from interp_assert.loading.targets import Target
from interp_assert.output.text import format_result
from interp_assert.plan.plan import Plan
from interp_assert.run.runner import Check, Runner, RunOptions, builtin_kinds, load_claim_file

_CONSTANT_IDS = itertools.count()


class Subject:
    """A checkpoint (and optional loader) with named quantities, for :func:`check`.

    Build one with :func:`subject` or take a claim file's with ``load(path).subject``.
    """

    def __init__(self, claim_file: ClaimFile) -> None:
        self.claim_file = claim_file
        #: the subject on INTERP_ASSERT_DEVICE / INTERP_ASSERT_DTYPE when they are set
        self.target = targets_on_device([Target(claim_file.subject)])[0]
        #: plans every forward quantity once, so that all checks share one pass
        self.plan = Plan.build_all(claim_file, self.target.spec) if claim_file.subject else None

    def check(self, sentence: str, *, plot_dir: str | Path | None = None,
              plots: str | None = None, id: str | None = None) -> ClaimResult:
        return check(sentence, self, plot_dir=plot_dir, plots=plots, id=id)

    @property
    def model(self) -> Any:
        """The model its loader builds (loaded once per process), or None without one."""
        from interp_assert.loading.subject import get_subject

        return get_subject(self.target.spec).model if self.target.spec else None

    def weight(self, name: str) -> Any:
        """A tensor of the checkpoint (or of the model) by name."""
        from interp_assert.loading.subject import get_subject

        if self.target.spec is None:
            raise SpecError("this subject has no checkpoint")
        return get_subject(self.target.spec).weight(name)

    def run(self, plot_dir: str | Path | None = None, plots: str = "failed", *,
            artifacts: str | Path | None = None, json: str | Path | None = None,
            root: str | Path | None = None, select: Iterable[str] | None = None,
            baseline: str | Path | None = None, alpha: float | str | None = None,
            error_control: str | None = None) -> list[ClaimResult]:
        """Evaluate every claim of the claim file on every target (as ``pytest`` and
        ``interp-assert check`` do). Plots go flat into ``plot_dir``, or under ``artifacts``
        as the other drivers lay them out (none with neither); ``json`` writes the results
        file the other drivers write. ``select`` keeps only these claim ids, check names or
        checkpoint labels; ``baseline`` judges against a baseline file. ``alpha`` and
        ``error_control`` (``holm``, ``bh``; else INTERP_ASSERT_ALPHA and
        INTERP_ASSERT_ERROR_CONTROL) correct the confidence claims for multiplicity: the
        results carry the run-level verdicts."""
        from interp_assert.judge.error_control import judgement_of, parse_control

        options = RunOptions(root=Path(root).resolve() if root else Path.cwd(),
                             plots=plots if plot_dir or artifacts else "never",
                             json=Path(json) if json else None,
                             baseline=Path(baseline) if baseline else None,
                             baseline_shown=str(baseline) if baseline else "",
                             error_control=parse_control(alpha, error_control, "alpha"))
        if artifacts is not None:
            options.artifacts = Path(artifacts)
        elif plot_dir is not None:
            options.plot_folder, options.flat_plots = Path(plot_dir), True
        runner = Runner(options)
        chosen = set(select) if select is not None else None
        checks = [c for c in runner.checks(self.claim_file) if chosen is None
                  or {c.name, c.entry.id, c.target.label} & chosen]
        results = list(runner.run(checks))
        records = [runner.record(r) for r in results]
        runner.finish(records)
        for result, item in zip(results, records):  # the run-level verdicts (error control)
            if item.get("error_control"):
                result.judgement = judgement_of(item)
        return results


def subject(checkpoint: str | Path | None = None, *, loader: str | None = None,
            quantities: Mapping[str, Any] | None = None, allow_pickle: bool = False,
            base_dir: str | Path = ".") -> Subject:
    """Make a subject from Python.

    ``quantities`` maps names to definitions exactly as in a claim file's ``quantities:``
    section (``{"neurons": {"weight": "blocks.0.mlp.W_out", "labels": "N0..N255"}}``);
    a definition may also be an already computed tensor, array or :class:`Labelled`, taken as
    it is when ``subject()`` is called (call ``subject()`` again to see later changes).
    """
    base = Path(base_dir).resolve()
    from interp_assert.loading.claim_file import default_search_path

    quantities = dict(quantities or {})
    constants = any(not isinstance(d, str | Mapping) for d in quantities.values())
    spec = SubjectSpec(checkpoint=safe_resolve(base / checkpoint) if checkpoint else None,
                       loader=loader, allow_pickle=allow_pickle,
                       search_path=default_search_path(base / "<python>"),
                       # values computed from Python-side constants stay with this subject
                       scope=SubjectScope() if constants else None)
    claim_file = ClaimFile(base / "<python>", spec, {}, [])
    kinds = builtin_kinds()
    for name, definition in quantities.items():
        location = Location("<python>", 1)
        if isinstance(definition, str | Mapping):
            claim_file.quantities[name] = QuantityDef.from_yaml(name, definition, location,
                                                                kinds.quantities)
        else:
            claim_file.quantities[name] = _constant(name, definition, location)
    return Subject(claim_file)


def _constant(name: str, value: Any, location: Location) -> QuantityDef:
    from interp_assert.evaluate.quantities.base import QuantityKind
    from interp_assert.labels import as_labelled

    converted = as_labelled(value, name)
    # a snapshot: changing the tensor afterwards does not change this subject's value
    labelled = Labelled(converted.values.copy(), converted.axes, name, converted.meta)
    identity = f"value:{next(_CONSTANT_IDS)}"  # never reused, unlike id(value)

    class Constant(QuantityKind):
        key = "value"

        def compute(self, ev: Any) -> Labelled:
            return labelled

        def fingerprint(self) -> str:
            return identity

    labels = {i: list(a.labels) for i, a in enumerate(labelled.axes) if a.labels is not None}
    return QuantityDef(name, Constant(name, {}, location), None, labels, "", location)


def load(path: str | Path) -> Subject:
    """Load a claim file; ``load(path).run()`` evaluates its claims, ``.check(...)`` more."""
    return Subject(load_claim_file(path))


def check(sentence: str, on: Subject, *, plot_dir: str | Path | None = None,
          plots: str | None = None, id: str | None = None) -> ClaimResult:
    """Check one claim sentence against ``on``; raise :class:`ClaimFailed` (an AssertionError)
    with the full report when it does not hold, or the error when it cannot be evaluated.

    The plot is named after the claim (``id``, default the sentence as a slug) and goes to
    ``plot_dir``, else to a temporary folder of this process; ``plots`` says which claims get
    one (default: every claim in a notebook, the failing ones with ``plot_dir``, else none).
    In a notebook the result shows its verdict, evidence table and plot."""
    from interp_assert.errors import InterpAssertError
    from interp_assert.loading.claim_file import slugify

    if not isinstance(on, Subject):
        raise TypeError("check(sentence, on): 'on' must come from interp_assert.subject() or "
                        "interp_assert.load()")
    location = Location("<check>", 1)
    entry = ClaimEntry(id or slugify(sentence), sentence, "", location)
    try:
        entry.parsed = parse_claim(sentence, builtin_kinds().claims)
        check_names(entry.parsed, on.claim_file)
    except InterpAssertError as exc:
        exc.at(location)
        raise
    default = "all" if _in_notebook() else "failed" if plot_dir is not None else "never"
    options = RunOptions(plots=plots or default,
                         plot_folder=Path(plot_dir) if plot_dir is not None else _plot_folder(),
                         flat_plots=True)
    runner = Runner(options)
    if on.plan is not None:
        runner.plan.add(on.plan)
    result = runner.result(Check(on.claim_file, entry, on.target))
    if result.error is not None:
        raise result.error
    if result.verdict is not Verdict.HOLDS:
        raise ClaimFailed(format_result(result), result)
    return result


_PLOTS: list[Path] = []


def _plot_folder() -> Path:
    """This process's temporary folder for the plots of :func:`check` (made on first use)."""
    if not _PLOTS:
        import tempfile

        _PLOTS.append(Path(tempfile.mkdtemp(prefix="interp-assert-plots-")))
    return _PLOTS[0]


def _in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (where a result shows its plot)."""
    import sys

    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return type(shell).__name__ == "ZMQInteractiveShell"


def validate(path: str | Path) -> list[str]:
    """Problems found in a claim file without evaluating it (empty when none)."""
    try:
        claim_file = load_claim_file(path)
    except SpecError as exc:
        return [str(exc)]
    problems = [str(e) for e in claim_file.quantity_errors.values()]
    problems += [str(entry.error) for entry in claim_file.claims if entry.error is not None]
    return problems
