"""Collector and items: one pytest item per claim of a claim file and checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from interp_assert.drivers.pytest_plugin import _is_worker, _session
from interp_assert.errors import InterpAssertError
from interp_assert.evaluate.evaluation import ClaimResult, plan
from interp_assert.loading.claim_file import ClaimEntry, ClaimFile, load_claim_file
from interp_assert.loading.subject import clear_subjects
from interp_assert.loading.targets import Target, run_claim
from interp_assert.output.results import record
from interp_assert.output.text import format_result


class ClaimFailure(AssertionError):
    """A claim that was evaluated and does not hold (reported as FAILED)."""


class ClaimFileCollector(pytest.File):
    """A ``*.claims.yaml`` file; problems with the whole file are collection errors.

    A sweep (``subject: checkpoints:``) gives one item per claim and checkpoint, checkpoint
    after checkpoint in step order, named ``claim-id[step_5000]``.
    """

    def collect(self) -> Any:
        try:
            claim_file = load_claim_file(_shown(self.path, self.config))
        except InterpAssertError as exc:
            raise self.CollectError(str(exc)) from None
        session = _session(self.config)
        try:
            session.baselines()  # a broken baseline file stops every claim file early
        except InterpAssertError as exc:
            raise self.CollectError(str(exc)) from None
        targets = session.targets(claim_file)
        for target in targets:
            if target.spec is not None:
                plan(claim_file, target.spec)
        for target in targets:
            for entry in claim_file.claims:
                yield ClaimItem.from_parent(self, name=target.name(entry.id),
                                            claim_file=claim_file, entry=entry, target=target)


class ClaimItem(pytest.Item):
    """One claim on one checkpoint. Setup evaluates it (errors -> ERROR); the test judges it
    (false -> FAILED; before its ``holds_from`` step -> XFAIL)."""

    def __init__(self, *, claim_file: ClaimFile, entry: ClaimEntry, target: Target,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.claim_file = claim_file
        self.entry = entry
        self.target = target
        self.result: ClaimResult | None = None
        #: the JSON record of the result, attached to this item's report (see pytest_plugin)
        self.interp_record: dict[str, Any] | None = None
        self.interp_plot: str | None = None
        #: on an xdist worker with --interp-report: this claim's part of the document
        self.interp_document: dict[str, Any] | None = None
        self.add_marker("interp_claim")
        for tag in entry.tags:
            self.config.addinivalue_line("markers", f"{tag}: interp-assert claim tag")
            self.add_marker(tag)
        if target.expects_failure(entry):
            self.add_marker(pytest.mark.xfail(
                reason=f"claimed to hold from step {entry.options['holds_from']}; this is step "
                       f"{target.step}", raises=ClaimFailure, strict=False))
        if entry.status == "open":
            self.add_marker(pytest.mark.xfail(
                reason="status: open (a hypothesis not expected to hold yet); when it holds "
                       "this fails as XPASS(strict): mark it 'holds'",
                raises=ClaimFailure, strict=True))
        if self.config.pluginmanager.hasplugin("xdist"):
            # for --dist loadgroup; the default scheduler groups the same way (_pytest_xdist)
            group = target.label or str(self.path.name)
            self.add_marker(pytest.mark.xdist_group(group))

    def _evaluate(self, entry: ClaimEntry) -> tuple[ClaimResult, Any]:
        """Run one claim of this file on this checkpoint, once per session (cached)."""
        session = _session(self.config)
        key = (str(self.path), entry.id, self.target.label)
        if key not in session.results:
            baselines = session.baselines()
            nodeid = (f"{_shown(self.path, self.config).as_posix()}::"
                      f"{self.target.name(entry.id)}")
            session.results[key] = run_claim(
                self.claim_file, entry, self.target,
                plot_dir=session.plot_dir(self.path, self.target.label), plots=session.plots,
                baselines=baselines, update=session.baseline_update,
                record_command=session.record_command(nodeid, self.claim_file)
                if baselines is not None else "")
        return session.results[key]

    def _requirement_problem(self) -> str | None:
        """Why this claim is skipped (a required claim fails or errors), or None."""
        from interp_assert.output.document import requirement_problem

        entries = {e.id: e for e in self.claim_file.claims}
        for required in self.entry.requires:
            other = entries.get(required)
            if other is None:
                pytest.fail(f"claim '{self.entry.id}' requires '{required}', which is not a "
                            f"claim of {self.path.name}", pytrace=False)
            reason = requirement_problem(required, self._evaluate(other)[0])
            if reason is not None:
                return reason
        return None

    def _document(self, result: ClaimResult, note: str = "") -> None:
        session = _session(self.config)
        if session.report_path is None:
            return
        from interp_assert.output.document import relation_status

        status, extra = relation_status(self.entry, result)
        if status != result.status:
            import dataclasses

            result = dataclasses.replace(result, status=status)
        session.documented[self.nodeid] = (self.claim_file, self.entry, self.target.label,
                                           result, note or extra)
        if _is_worker(self.config):  # the controller writes the document
            self.interp_document = {
                "record": record(result, session.rootpath, file=self.path, name=self.name,
                                 label=self.target.label),
                "entry": self.entry.id, "label": self.target.label, "note": note or extra}

    def setup(self) -> None:
        session = _session(self.config)
        target = self.target
        baselines = session.baselines()
        reason = self._requirement_problem()
        if reason is not None:
            from interp_assert.output.document import skipped_result

            self._document(skipped_result(self.entry, self.claim_file), f"skipped: {reason}")
            pytest.skip(reason)
        self.result, recorded = self._evaluate(self.entry)
        result = self.result
        self._document(result)
        self.interp_record = record(
            result, session.rootpath, file=self.path, name=self.name, label=target.label,
            step=target.step, holds_from=self.entry.options.get("holds_from"),
            expect_failure=target.expects_failure(self.entry), baseline=recorded,
            baseline_used=baselines is not None)
        outcome = result.outcome
        properties: list[tuple[str, Any]] = [("checkpoint", target.label or result.subject),
                                             ("sha256", result.sha256)]
        if outcome is not None:
            properties += [("measured", outcome.measured), ("expected", outcome.expected)]
            if outcome.value is not None:
                properties.append(("value", repr(outcome.value)))
        if recorded is not None:
            properties.append(("baseline", repr(recorded.value)))
        if result.plot is not None:
            self.interp_plot = str(result.plot.resolve())
            properties.append(("plot", self.interp_plot))
        self.user_properties.extend(p for p in properties if p[1] is not None)
        if result.error is not None:
            # an error, not a failure: reported as ERROR at setup, with the report only
            pytest.fail(format_result(result), pytrace=False)

    def interp_release(self, nextitem: pytest.Item | None) -> None:
        """After the last claim on a sweep's checkpoint, forget the loaded checkpoints and
        their cached activations, so that memory does not grow with the sweep."""
        following = getattr(nextitem, "target", None)
        if self.target.label is not None and (following is None
                                              or following.spec != self.target.spec):
            clear_subjects()

    def runtest(self) -> None:
        assert self.result is not None
        if not self.result.passed:
            raise ClaimFailure(format_result(self.result))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str:
        if isinstance(excinfo.value, ClaimFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.entry.location.line - 1, f"claim {self.name}"


def _shown(path: Path, config: pytest.Config) -> Path:
    """The path as the user typed it: relative to the invocation folder when possible."""
    try:
        return path.relative_to(config.invocation_params.dir)
    except ValueError:
        return path
