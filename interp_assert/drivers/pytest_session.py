"""Per-run state of the pytest plugin: options, artifacts folder, baselines and the results.

Results travel as plain JSON records: a worker (or the single pytest process) attaches each
claim's record to its test report, and the process that writes reports (the xdist controller,
or the single process) gathers them in ``pytest_runtest_logreport``, keyed by node id so that
nothing is lost or counted twice. Only that process writes the JSON results, the baseline and
the trajectory plots, once, at the end of the session.
"""

from __future__ import annotations

import contextlib
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest

    from interp_assert.loading.claim_file import ClaimFile
    from interp_assert.loading.targets import Target, Trajectory
    from interp_assert.output.baseline import BaselineStore


@dataclass
class ClaimSession:
    """Options of this run and the records of the claims it evaluated."""

    artifacts: Path
    plots: str
    rootpath: Path
    json_path: Path | None = None
    checkpoint: Path | None = None
    summary: bool = False
    baseline_path: Path | None = None
    baseline_shown: str = ""
    baseline_update: bool = False
    #: the baseline file comes from the ini option (so commands need not name it)
    baseline_from_ini: bool = False
    #: node id -> record (a rerun replaces the earlier record)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    trajectories: list[Trajectory] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    _baselines: BaselineStore | None = None
    #: --interp-report FILE (every claim is plotted then)
    report_path: Path | None = None
    #: (file, claim id, checkpoint label) -> (result, baseline entry): each claim once
    results: dict[tuple[str, str, str | None], Any] = field(default_factory=dict)
    #: node id -> (claim file, entry, label, result, note) for --interp-report
    documented: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    #: where pytest was started (claim files are shown relative to it)
    invocation_dir: Path = field(default_factory=Path.cwd)
    #: claim files loaded by the controller to document claims that workers evaluated
    _claim_files: dict[Path, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: pytest.Config) -> ClaimSession:
        folder = config.getoption("interp_artifacts") or config.getini("interp_assert_artifacts")
        plots = config.getoption("interp_plots") or config.getini("interp_assert_plots")
        if plots not in ("failed", "all", "never"):
            raise ValueError(f"interp_assert_plots must be failed, all or never, not {plots!r}")
        artifacts = Path(folder)
        if not artifacts.is_absolute():
            artifacts = config.rootpath / artifacts
        here = config.invocation_params.dir
        json_path = config.getoption("interp_json")
        checkpoint = config.getoption("interp_checkpoint") or os.environ.get(
            "INTERP_ASSERT_CHECKPOINT")
        baseline = config.getoption("interp_baseline")
        shown = baseline or ""
        from_ini = not baseline and bool(config.getini("interp_assert_baseline"))
        if from_ini:
            shown = str(config.getini("interp_assert_baseline"))
            baseline = str(config.rootpath / shown)
        report = config.getoption("interp_report", None)
        if report:
            plots = "all"
        session = cls(artifacts, plots, config.rootpath,
                   (here / json_path).resolve() if json_path else None,
                   (here / checkpoint).resolve() if checkpoint else None,
                   bool(config.getoption("interp_summary")),
                   (here / baseline).resolve() if baseline else None, shown,
                   bool(config.getoption("interp_baseline_update")), from_ini)
        session.report_path = (here / report).resolve() if report else None
        session.invocation_dir = here
        return session

    # -- collection and evaluation (every process) -------------------------------------------
    def targets(self, claim_file: ClaimFile) -> list[Target]:
        """The checkpoints to check a file against: its sweep, subject, or --interp-checkpoint."""
        from interp_assert.loading.targets import targets

        return targets(claim_file, self.checkpoint)

    def subject_for(self, claim_file: Any) -> Any:
        """The claim file's subject, or the --interp-checkpoint override."""
        return self.targets(claim_file)[-1].spec

    def baselines(self) -> BaselineStore | None:
        """The baseline file (read once per process), or None without --interp-baseline."""
        if self.baseline_path is None:
            return None
        if self._baselines is None:
            from interp_assert.output.baseline import BaselineStore

            self._baselines = BaselineStore.load(self.baseline_path, self.baseline_shown)
        return self._baselines

    def record_command(self, nodeid: str, claim_file: ClaimFile) -> str:
        """The command that records one check's baseline value."""
        words = ["pytest", nodeid]
        if not self.baseline_from_ini:
            words += ["--interp-baseline", self.baseline_shown]
        if self.checkpoint is not None and claim_file.subject is None:
            words += ["--interp-checkpoint", str(self.checkpoint)]
        return shlex.join([*words, "--interp-baseline-update"])

    def plot_dir(self, claim_file: Path, label: str | None = None) -> Path:
        """Plots of one claim file go to <artifacts>/plots/<path relative to rootdir>/[label/]."""
        from interp_assert.loading.targets import file_stem
        from interp_assert.output.results import relative

        folder = self.artifacts / "plots" / file_stem(relative(claim_file, self.rootpath))
        return folder / label if label else folder

    # -- the reporting process -----------------------------------------------------------------
    def add(self, nodeid: str, record: dict[str, Any]) -> None:
        self.records[nodeid] = record

    def add_document(self, nodeid: str, part: dict[str, Any]) -> None:
        """A claim documented on an xdist worker: rebuilt from its record for the report."""
        if self.report_path is None or nodeid in self.documented:
            return
        from interp_assert.loading.claim_file import load_claim_file
        from interp_assert.output.document import result_from_record

        record = part["record"]
        path = (self.rootpath / record["file"]).resolve()
        if path not in self._claim_files:
            shown = path  # as the collector names it: relative to the invocation folder
            with contextlib.suppress(ValueError):
                shown = path.relative_to(self.invocation_dir)
            self._claim_files[path] = load_claim_file(shown)
        claim_file = self._claim_files[path]
        entry = next((e for e in claim_file.claims if e.id == part["entry"]), None)
        if entry is None:
            return
        result = result_from_record(record, entry, self.rootpath)
        self.documented[nodeid] = (claim_file, entry, part["label"], result, part["note"])

    def write_document(self) -> None:
        """The --interp-report document: one section per claim file and checkpoint."""
        if self.report_path is None:
            return
        from interp_assert.loading.targets import natural_key
        from interp_assert.output.document import FileSection, subject_summary, write_document

        def order(item: tuple[Any, ...]) -> tuple[Any, ...]:
            claim_file, entry, label = item[:3]
            # files, then checkpoints in step order, then claims as the file lists them:
            # the same document whatever order xdist workers finished in
            return (str(claim_file.path), natural_key(label or ""),
                    [e.id for e in claim_file.claims].index(entry.id))

        sections: dict[tuple[str, str | None], FileSection] = {}
        for claim_file, _entry, label, result, note in sorted(self.documented.values(),
                                                               key=order):
            key = (str(claim_file.path), label)
            if key not in sections:
                sections[key] = FileSection(claim_file, label=label)
            sections[key].results.append(result)
            if note:
                sections[key].notes[result.claim_id] = note
        for section in sections.values():
            section.subject_summary = subject_summary(section.claim_file, section.results)
        markdown = self.report_path.suffix.lower() in (".md", ".markdown")
        write_document(list(sections.values()), self.report_path,
                       "markdown" if markdown else "html")
        self.messages.append(f"interp-assert: report written to {self.report_path}")

    def finish(self, interrupted: bool = False) -> None:
        """Trajectory plots, the baseline update and the JSON results, each written once.

        An interrupted run (Ctrl-C) writes its results and report for the claims that
        finished, but never the baseline: a baseline is only updated by a whole run."""
        if self.documented or not interrupted:
            self.write_document()
        if not self.records:
            return
        from interp_assert.loading.targets import draw_trajectories, trajectories

        records = list(self.records.values())
        if self.plots == "never":
            self.trajectories = trajectories(records)
        else:
            self.trajectories = draw_trajectories(records, self.artifacts)
            if any(t.plot is not None for t in self.trajectories):
                self.messages.append("interp-assert: trajectories plotted in "
                                     f"{self.artifacts / 'trajectories'}")
        if self.baseline_update and self.baseline_path is not None and interrupted:
            self.messages.append(f"interp-assert: baseline {self.baseline_shown} not updated: "
                                 "the run was interrupted (run it again to record the values)")
        elif self.baseline_update and self.baseline_path is not None:
            from interp_assert.output.baseline import BaselineStore

            # re-read, so that entries another run wrote meanwhile are kept too
            store = BaselineStore.load(self.baseline_path, self.baseline_shown)
            changed = store.update(records, self.rootpath)
            store.save()
            self.messages.append(f"interp-assert: baseline {store.shown}: {changed} of "
                                 f"{len(records)} values recorded or changed")
        if self.json_path is not None:
            from interp_assert.output.results import write_records

            write_records(self.json_path, records, self.trajectories, self.rootpath)
            self.messages.append(f"interp-assert: results written to {self.json_path}")

    def report(self, terminal: Any) -> None:
        """The end-of-run lines and, with --interp-summary, the claims table."""
        if self.summary and self.records:
            from interp_assert.output.results import summary_text

            terminal.section("interp-assert claims")
            terminal.write_line(summary_text(self.records.values()))
        for message in self.messages:
            terminal.write_line(message)
