"""Per-run state of the pytest plugin: the runner, and the records of the claims that ran.

Results travel as plain JSON records: a worker (or the single pytest process) attaches each
claim's record to its test report, and the process that writes reports (the xdist controller,
or the single process) gathers them in ``pytest_runtest_logreport``, keyed by node id so that
nothing is lost or counted twice. Only that process finishes the run (trajectories, the
baseline update, the JSON results, the document), once, through the runner.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interp_assert.drivers.pytest_error_control import error_control_of
from interp_assert.drivers.pytest_keys import SESSION_KEY
from interp_assert.drivers.pytest_progress import make_progress
from interp_assert.errors import InterpAssertError
from interp_assert.loading.source_files import safe_resolve
from interp_assert.output.results import summary_text
from interp_assert.run.runner import Check, Runner, RunOptions
from interp_assert.usercode import parse_timeout

if TYPE_CHECKING:
    import pytest

    from interp_assert.drivers.ray_runs import RayRun
    from interp_assert.judge.verdict import ClaimResult


def session_of(config: pytest.Config) -> ClaimSession:
    """The run's session, made on first use (when the first claim file is collected)."""
    session = config.stash.get(SESSION_KEY, None)
    if session is None:
        session = config.stash[SESSION_KEY] = ClaimSession.from_config(config)
    return session


@dataclass
class ClaimSession:
    """The runner of this pytest run and the records of the claims it evaluated."""

    runner: Runner
    summary: bool = False
    #: the baseline file comes from the ini option (so commands need not name it)
    baseline_from_ini: bool = False
    #: where pytest was started (claim files are shown relative to it)
    invocation_dir: Path = field(default_factory=Path.cwd)
    #: node id -> record (a rerun replaces the earlier record)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    #: the run's Ray tasks (``--interp-ray``), or None
    remote: RayRun | None = None
    #: xdist workers whose phase times were added (the controller's)
    workers: int = 0
    #: freeze what the first evaluated claim loaded (set when collection froze the claims)
    settle_loads: bool = False

    @classmethod
    def from_config(cls, config: pytest.Config) -> ClaimSession:
        folder = config.getoption("interp_artifacts") or config.getini("interp_assert_artifacts")
        plots = config.getoption("interp_plots") or config.getini("interp_assert_plots")
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
        prune = bool(config.getoption("interp_baseline_prune", False))
        options = RunOptions(
            root=config.rootpath, artifacts=artifacts, plots="all" if report else plots,
            checkpoint=safe_resolve(here / checkpoint) if checkpoint else None,
            baseline=(here / baseline).resolve() if baseline else None, baseline_shown=shown,
            baseline_update=bool(config.getoption("interp_baseline_update") or prune),
            baseline_prune=prune,
            json=(here / json_path).resolve() if json_path else None,
            report=(here / report).resolve() if report else None,
            timeout=parse_timeout(config.getoption("interp_timeout")
                                  or config.getini("interp_assert_timeout") or None,
                                  "--interp-timeout"),
            device=config.getoption("interp_device") or config.getini("interp_assert_device")
            or None, dtype=config.getoption("interp_dtype") or config.getini(
                "interp_assert_dtype") or None, progress=make_progress(config),
            error_control=error_control_of(config))
        session = cls(Runner(options), bool(config.getoption("interp_summary")), from_ini, here)
        options.record_command = session.record_command
        return session

    def shown(self, path: Path) -> Path:
        """A path as the user typed it: relative to the invocation folder when possible."""
        try:
            return path.relative_to(self.invocation_dir)
        except ValueError:
            return path

    def nodeid(self, check: Check) -> str:
        try:
            path = Path(check.claim_file.path).resolve().relative_to(self.runner.options.root)
        except ValueError:
            path = Path(check.claim_file.path)
        return f"{path.as_posix()}::{check.name}"

    def record_command(self, check: Check) -> str:
        """The command that records one check's baseline value."""
        options = self.runner.options
        words = ["pytest", self.nodeid(check)]
        if not self.baseline_from_ini:
            words += ["--interp-baseline", options.baseline_shown]
        if options.checkpoint is not None and check.claim_file.subject is None:
            words += ["--interp-checkpoint", str(options.checkpoint)]
        return shlex.join([*words, "--interp-baseline-update"])

    def dispatch(self, checks: list[Check], address: str) -> None:
        """Hand the checks to Ray, one task per claim file and checkpoint (--interp-ray)."""
        from interp_assert.drivers.ray_runs import RayRun

        try:
            self.remote = RayRun(self.runner, checks, address)
        except InterpAssertError as exc:
            import pytest

            raise pytest.UsageError(f"--interp-ray: {exc}") from None

    def result(self, check: Check) -> tuple[ClaimResult, dict[str, Any]]:
        """A check's result and JSON record: from its Ray task, or evaluated here."""
        if self.remote is not None:
            return self.remote.result(check)
        result = self.runner.result(check)
        if self.settle_loads:  # the model and the libraries the first claim loaded live on
            from interp_assert.resources import settle_gc

            self.settle_loads = False
            settle_gc()
        return result, self.runner.record(result)

    # -- the reporting process -----------------------------------------------------------------
    def add(self, nodeid: str, record: dict[str, Any]) -> None:
        self.records[nodeid] = record

    def crashed(self, nodeid: str, message: str) -> None:
        """A claim whose xdist worker died: an error record, so that no output misses it."""
        path, _, name = nodeid.partition("::")
        try:
            claim_file = self.runner.load(self.runner.options.root / path)
        except InterpAssertError:
            return
        check = next((c for c in self.runner.checks(claim_file) if c.name == name), None)
        if check is not None:
            self.add(nodeid, self.runner.record(self.runner.crashed(check, message)))

    def finish(self, interrupted: bool = False) -> bool:
        """Trajectory plots, the baseline update, the JSON results and the document, each
        written once. An interrupted run (Ctrl-C) writes its results and document for the
        claims that finished, but never the baseline. False when a file could not be written
        (its error is among the end-of-run lines)."""
        if self.remote is not None:  # tasks still running after Ctrl-C are stopped
            self.remote.cancel()
            self.remote.close()
        try:
            messages = self.runner.finish(self.records.values(), interrupted)
        except (InterpAssertError, OSError) as exc:
            messages = [*getattr(exc, "messages", []), f"ERROR {exc}"]
            self.messages.extend(f"interp-assert: {m}" for m in messages)
            return False
        except Exception as exc:  # never a raw traceback from pytest_sessionfinish
            self.messages.append(f"interp-assert: ERROR writing the run's files failed: "
                                 f"{type(exc).__name__}: {exc}")
            return False
        self.messages.extend(f"interp-assert: {m}" for m in messages)
        return True

    def phase_times(self) -> str:
        """The time of each phase (``-v``), summed over the xdist workers that ran claims."""
        line = self.runner.options.progress.times_line()
        return line + (f", summed over {self.workers} xdist workers" if self.workers else "")

    def report(self, terminal: Any) -> None:
        """The end-of-run lines and, with --interp-summary, the claims table."""
        if self.summary and self.records:
            terminal.section("interp-assert claims")
            terminal.write_line(summary_text(self.records.values()))
        for message in self.messages:
            terminal.write_line(message)
