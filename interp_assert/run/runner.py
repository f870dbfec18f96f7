"""The one runner: claim files, targets and options in; judged results out.

Every driver (the pytest plugin, ``interp-assert check`` and ``report``, ``--interp-report``,
the Python API) is a thin layer over :class:`Runner`, and nothing else loops over claims:

1. :meth:`Runner.load` reads a claim file with the registered claim and quantity kinds;
2. :meth:`Runner.checks` lists its checks: one per claim and target (checkpoint);
3. :meth:`Runner.prepare` plans the forward passes of the checks that will run (deselected
   claims and unused quantities register nothing);
4. :meth:`Runner.result` evaluates a check once (its ``requires`` first), has the judge decide
   its verdict, and draws its plot when one is wanted;
5. :meth:`Runner.finish` writes what a run leaves behind, once: trajectories, the baseline
   update (under a file lock), the JSON results and the document.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interp_assert.claims.builtin import all_kinds
from interp_assert.claims.measure import Measured, measure
from interp_assert.errors import InterpAssertError, OutputError
from interp_assert.evaluate.evaluation import Evaluation
from interp_assert.evaluate.quantities.base import quantity_kinds
from interp_assert.judge.verdict import (
    WORDS,
    ClaimResult,
    Relations,
    Verdict,
    judge,
    requirement_met,
)
from interp_assert.loading.claim_file import ClaimEntry, ClaimFile, Kinds
from interp_assert.loading.claim_file import load_claim_file as _load
from interp_assert.loading.devices import targets_on_device
from interp_assert.loading.source_files import safe_resolve
from interp_assert.loading.subject import clear_subjects, get_subject, subject_summary
from interp_assert.loading.targets import Target, targets
from interp_assert.output.baseline import BaselineStore
from interp_assert.output.document import FileHeader, sections, write_document
from interp_assert.output.files import file_stem, relative, safe_name
from interp_assert.output.plotting import save_plot
from interp_assert.output.results import record, write_records
from interp_assert.output.trajectories import Trajectory, draw_trajectories, trajectories
from interp_assert.plan.plan import Plan, RunPlan
from interp_assert.progress import Progress, phase, using
from interp_assert.resources import gc_paused
from interp_assert.run.baseline_update import update_baseline
from interp_assert.run.run_level import ErrorControl, settle
from interp_assert.run.summary import exit_code, tally_line  # noqa: F401 - re-exported
from interp_assert.usercode import default_timeout, time_limit

PLOT_POLICIES = ("failed", "all", "never")


def builtin_kinds() -> Kinds:
    """Every registered claim and quantity kind, the built-in ones included."""
    return Kinds(all_kinds(), quantity_kinds())


def load_claim_file(path: str | Path) -> ClaimFile:
    """Read a claim file with every registered kind (see :class:`Runner` to check it)."""
    return _load(path, builtin_kinds())


@dataclass
class RunOptions:
    """What a run is asked to do; every driver fills this in from its own options."""

    #: paths in results, baselines and reports are relative to this folder
    root: Path = field(default_factory=Path.cwd)
    artifacts: Path = Path(".interp-assert")
    #: which claims get a plot: failed, all or never
    plots: str = "failed"
    #: where plots go (default ``<artifacts>/plots/<claim file>/[<checkpoint>/]``); with
    #: ``flat_plots`` they go straight into it, named after the claim
    plot_folder: Path | None = None
    flat_plots: bool = False
    #: check every claim file against this checkpoint instead of its own
    checkpoint: Path | None = None
    baseline: Path | None = None
    baseline_shown: str = ""
    baseline_update: bool = False
    baseline_prune: bool = False  # the update removes the entries no claim produces any more
    #: the command that records one check's baseline value (drivers phrase their own)
    record_command: Callable[[Check], str] | None = None
    json: Path | None = None
    report: Path | None = None
    report_title: str = "Claims"
    #: a sweep's document shows only its latest checkpoint
    report_latest_only: bool = False
    #: seconds the user code of one claim may run (None: INTERP_ASSERT_TIMEOUT, else no limit);
    #: a claim's own ``timeout:`` wins
    timeout: float | None = None
    device: str | None = None  # every model's device and dtype (None: the environment's,
    dtype: str | None = None  # else each subject's own)
    progress: Progress = field(default_factory=Progress)  # phases and batches, timed
    error_control: ErrorControl | None = None  # Holm / BH across the run's confidence claims

    def __post_init__(self) -> None:
        if self.plots not in PLOT_POLICIES:
            raise InterpAssertError(f"plots must be one of {', '.join(PLOT_POLICIES)}, not "
                                    f"{self.plots!r}")
        if self.baseline_update and self.baseline is None:
            raise InterpAssertError("updating the baseline needs a baseline file")


@dataclass(frozen=True, eq=False)
class Check:
    """One claim of a claim file on one target: the unit every driver runs and reports."""

    claim_file: ClaimFile
    entry: ClaimEntry
    target: Target

    @property
    def name(self) -> str:
        """``claim-id`` or ``claim-id[step_5000]``."""
        return self.target.name(self.entry.id)

    @property
    def key(self) -> tuple[str, str, str | None]:
        return (str(self.claim_file.path), self.entry.id, self.target.label)


class Runner:
    """Runs checks: each evaluated at most once, judged once, its plot drawn at most once."""

    def __init__(self, options: RunOptions | None = None, kinds: Kinds | None = None) -> None:
        self.options = options or RunOptions()
        self.kinds = kinds or builtin_kinds()
        self.plan = RunPlan()
        self._planned: set[tuple[str, str, str | None]] = set()
        self._results: dict[tuple[str, str, str | None], ClaimResult] = {}
        self._files: dict[Path, ClaimFile] = {}
        self._baselines: BaselineStore | None = None

    # -- loading ---------------------------------------------------------------------------
    def load(self, path: str | Path) -> ClaimFile:
        """A claim file, read once per runner (SpecError for problems with the whole file)."""
        key = safe_resolve(Path(path))
        if key not in self._files:
            with gc_paused():
                self._files[key] = _load(path, self.kinds)
        return self._files[key]

    def checks(self, claim_file: ClaimFile) -> list[Check]:
        """Every claim on every target, target after target (a sweep in step order)."""
        options = self.options
        found = targets_on_device(targets(claim_file, options.checkpoint), options.device,
                                  options.dtype)
        return [Check(claim_file, entry, t) for t in found for entry in claim_file.claims]

    def baselines(self) -> BaselineStore | None:
        """The baseline file, read once (an unreadable one raises InterpAssertError)."""
        if self.options.baseline is None:
            return None
        if self._baselines is None:
            self._baselines = BaselineStore.load(self.options.baseline,
                                                 self.options.baseline_shown or None)
        return self._baselines

    # -- planning and running --------------------------------------------------------------
    def prepare(self, checks: Iterable[Check]) -> None:
        """Plan the forward passes of the checks that will run (each check once)."""
        groups: dict[tuple[int, Target], tuple[ClaimFile, list[ClaimEntry]]] = {}
        for check in checks:
            if check.key in self._planned or check.target.spec is None:
                continue
            self._planned.add(check.key)
            group = groups.setdefault((id(check.claim_file), check.target),
                                      (check.claim_file, []))
            group[1].append(check.entry)
        for (_, target), (claim_file, entries) in groups.items():
            self.plan.add(Plan.build(claim_file, target.spec, entries))

    def run(self, checks: Iterable[Check]) -> Iterator[ClaimResult]:
        """Plan ``checks``, then yield each one's result in order; a sweep's checkpoint is
        forgotten when the run moves on to the next one, so memory does not grow with it."""
        checks = list(checks)
        self.prepare(checks)
        for index, check in enumerate(checks):
            yield self.result(check)
            self.release(check, checks[index + 1] if index + 1 < len(checks) else None)

    @staticmethod
    def release(check: Check, following: Check | None) -> None:
        """After the last check on a sweep's checkpoint, free the loaded checkpoints."""
        if check.target.label is not None and (following is None
                                               or following.target.spec != check.target.spec):
            clear_subjects()

    def result(self, check: Check, _trail: tuple[str, ...] = ()) -> ClaimResult:
        """The judged result of ``check`` (evaluated once per runner)."""
        if check.key not in self._results:
            self.prepare([check])
            with using(self.options.progress):
                self._results[check.key] = self._evaluate(check, _trail)
        return self._results[check.key]

    def _requirement(self, check: Check, trail: tuple[str, ...]) -> str | None:
        """Why a claim it requires does not count as holding, or None."""
        if not check.entry.requires:  # most claims: no look-up table to build
            return None
        entries = {entry.id: entry for entry in check.claim_file.claims}
        for required in check.entry.requires:
            if required in trail or required == check.entry.id:
                return f"requires '{required}', which requires it back (a cycle)"
            other = Check(check.claim_file, entries[required], check.target)
            self.prepare([other])
            needed = self.result(other, (*trail, check.entry.id))
            if not requirement_met(needed):
                what = {Verdict.ERROR: "errored", Verdict.SKIPPED: "was skipped"}.get(
                    needed.verdict, "does not hold")
                return f"requires '{required}', which {what}"
        return None

    def _evaluate(self, check: Check, trail: tuple[str, ...]) -> ClaimResult:
        started = time.perf_counter()
        entry, target = check.entry, check.target
        requirement = None if entry.error is not None else self._requirement(check, trail)
        measured, recorded, missing, advice = Measured(), None, None, ""
        if requirement is None:
            measured, recorded, missing = self._measure_with_baseline(check)
            if missing is not None:
                advice = f"record it with: {self._record_command(check)}"
        reason = (f"claimed to hold from step {entry.options['holds_from']}; this is step "
                  f"{target.step}") if target.expects_failure(entry) else None
        relations = Relations(requirement, entry.status == "open", reason, missing)
        result = ClaimResult(
            str(check.claim_file.path), entry.id, entry.text, entry.why, entry.location,
            judge(measured.outcome, measured.error, relations), measured.outcome,
            measured.error, subject=target.spec.label if target.spec else None,
            name=check.name, label=target.label, step=target.step,
            holds_from=entry.options.get("holds_from"), baseline=recorded,
            baseline_used=self.options.baseline is not None and requirement is None,
            advice=advice)
        if target.spec is not None and entry.error is None:
            with contextlib.suppress(InterpAssertError):  # identity even when evaluation failed
                result.sha256 = get_subject(target.spec).sha256
        result.quantities = list(measured.used)
        with phase("plots", check.name):
            self._plot(check, measured, result)
        result.duration = time.perf_counter() - started
        return result

    def _measure_with_baseline(self, check: Check) -> tuple[Measured, Any, str | None]:
        """Measure a check, judged against its recorded baseline value when a baseline is in
        use; a missing value fails it with the command that records it (unless recording:
        then a claim relative to ``baseline`` is judged against the value it measures now)."""
        store = self.baselines()
        if store is None:
            return self._measure(check, None), None, None
        recorded = store.get(check.claim_file.path, check.name)
        value = recorded.value if recorded is not None else math.nan
        if recorded is None and self.options.baseline_update and check.entry.uses_baseline:
            first = self._measure(check, value)
            if first.outcome is not None and first.outcome.value is not None:
                value = first.outcome.value
        measured = self._measure(check, value, recorded.unit_samples() if recorded else None)
        missing = None
        if measured.outcome is not None and recorded is not None:
            measured.outcome.notes.append(recorded.describe(measured.outcome.value))
        elif recorded is None and not self.options.baseline_update:
            missing = f"no baseline value for '{check.name}' in {store.shown}"
            if not check.entry.uses_baseline:  # judged on its own: the missing value is a note
                (measured.outcome.notes if measured.outcome else []).append(missing)
                missing = None
        return measured, recorded, missing

    def _record_command(self, check: Check) -> str:
        """How to record a check's baseline value, in the words of the driver."""
        if self.options.record_command is not None:
            return self.options.record_command(check)
        store = self.baselines()
        return store.command_hint(check.name) if store is not None else ""

    def _measure(self, check: Check, baseline: float | None, samples: Any = None) -> Measured:
        entry, spec = check.entry, check.target.spec
        if entry.error is not None or entry.parsed is None:
            return Measured(error=entry.error)
        subject = get_subject(spec) if spec is not None else None
        dataset = entry.options.get("data")
        evaluation = Evaluation(check.claim_file, subject, entry.options.get("on"),
                                str(dataset) if dataset is not None else None)
        evaluation.baseline, evaluation.baseline_samples = baseline, samples
        evaluation.plan = self.plan
        lock = subject.lock if subject is not None else contextlib.nullcontext()
        seconds = entry.options.get("timeout") or self.options.timeout or default_timeout()
        with lock, time_limit(seconds, f"claim '{entry.id}'"), phase("claims", check.name):
            measured = measure(entry.parsed, evaluation, entry.id, entry.location)
        measured.used = evaluation.used
        return measured

    def _plot(self, check: Check, measured: Measured, result: ClaimResult) -> None:
        """Draw the plot when the policy wants one: every claim (``all``), or a claim whose
        verdict fails the run (``failed``); expected failures only with ``all``."""
        policy = self.options.plots
        if measured.outcome is None or measured.claim is None or policy == "never" or (
                policy == "failed" and not result.judgement.fails_run):
            return
        path = self.plot_path(check)
        try:
            if measured.context is not None:
                subject = check.target.spec and get_subject(check.target.spec)
                with subject.lock if subject else contextlib.nullcontext():
                    measured.claim.plot_evidence(measured.outcome, measured.context)
            result.plot = save_plot(measured.claim, measured.outcome, path,
                                    f"{check.name}: {check.entry.text}",
                                    WORDS[result.verdict].table)
        except Exception as exc:
            measured.outcome.notes.append(f"the plot could not be drawn: "
                                          f"{type(exc).__name__}: {exc}")

    def plot_path(self, check: Check) -> Path:
        """Where a check's plot goes (the one place this is decided)."""
        options = self.options
        folder = options.plot_folder or options.artifacts / "plots"
        if not options.flat_plots:
            folder = folder / file_stem(relative(check.claim_file.path, options.root))
            if check.target.label:
                folder = folder / check.target.label
        return folder / f"{safe_name(check.name)}.png"

    def crashed(self, check: Check, message: str) -> ClaimResult:
        """The result of a check whose process died while evaluating it."""
        error = InterpAssertError(f"claim '{check.entry.id}': {message}", check.entry.location,
                                  hint="the claim's user code (or the library under it) "
                                       "killed the process; run it alone to see why")
        target = check.target
        result = ClaimResult(str(check.claim_file.path), check.entry.id, check.entry.text,
                             check.entry.why, check.entry.location, judge(None, error),
                             error=error, subject=target.spec.label if target.spec else None,
                             name=check.name, label=target.label, step=target.step,
                             holds_from=check.entry.options.get("holds_from"))
        self._results[check.key] = result
        return result

    def record(self, result: ClaimResult) -> dict[str, Any]:
        """The JSON record of a result (what xdist workers send and every output reads)."""
        return record(result, self.options.root)

    # -- the end of a run ------------------------------------------------------------------
    def finish(self, records: Iterable[dict[str, Any]], interrupted: bool = False) -> list[str]:
        """Write what the run leaves: trajectories, the baseline update (never after an
        interruption), the JSON results and the document. Returns the lines to show."""
        options, records = self.options, list(records)
        messages = settle(records, options)  # run-level error control: verdicts, plot
        errors: list[str] = []
        if not records:
            return messages

        def attempt(step: Callable[[], str | None]) -> None:
            """One file (or set of files) written; a failure is kept, the others still run."""
            try:
                message = step()
            except (InterpAssertError, OSError) as exc:
                errors.append(str(exc))
            else:
                messages.extend([message] if message else [])

        if (found := trajectories(records)) and options.plots != "never":
            def draw() -> str | None:
                nonlocal found
                found = draw_trajectories(records, options.artifacts,  # as claims' plots
                                          options.plots == "all" or options.report is not None)
                return (f"trajectories plotted in {options.artifacts / 'trajectories'}"
                        * any(t.plot is not None for t in found))

            attempt(draw)
        if options.baseline_update and options.baseline is not None:
            attempt(lambda: update_baseline(self, records, interrupted))
        if options.json is not None:
            json_path = options.json
            attempt(lambda: write_records(json_path, records, found, options.root)
                    or f"results written to {json_path}")
        if options.report is not None:
            report = options.report
            attempt(lambda: self.write_report(records, report, found)
                    or f"report written to {report}")
        if errors:
            failure = OutputError("\n".join(errors))
            failure.messages = messages
            raise failure
        return messages

    def write_report(self, records: list[dict[str, Any]], output: Path,
                     sweeps: Iterable[Trajectory] = ()) -> None:
        """The document of ``records`` (HTML, or Markdown for ``*.md``) and the sweeps."""
        headers = {}
        for file in sorted({item["file"] for item in records}):
            try:
                claim_file = self.load(self.options.root / file)
            except InterpAssertError:
                continue
            labels = {item.get("label") for item in records if item["file"] == file}
            subjects = {t.label: subject_summary(t.spec) for t in targets(
                claim_file, self.options.checkpoint) if t.label in labels and t.spec}
            headers[file] = FileHeader(claim_file.title, claim_file.description,
                                       tuple(e.id for e in claim_file.claims), subjects)
        markdown = output.suffix.lower() in (".md", ".markdown")
        write_document(sections(records, headers, self.options.report_latest_only),
                       self.options.root, output, markdown, self.options.report_title, sweeps)

