"""Collector and items: one pytest item per claim of a claim file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from interp_assert.engine import ClaimResult, evaluate_entry, plan
from interp_assert.errors import InterpAssertError
from interp_assert.report import format_result
from interp_assert.spec import ClaimEntry, ClaimFile, load_claim_file

from .pytest_plugin import _session


class ClaimFailure(AssertionError):
    """A claim that was evaluated and does not hold (reported as FAILED)."""


class ClaimFileCollector(pytest.File):
    """A ``*.claims.yaml`` file; problems with the whole file are collection errors."""

    def collect(self) -> Any:
        try:
            claim_file = load_claim_file(_shown(self.path, self.config))
        except InterpAssertError as exc:
            raise self.CollectError(str(exc)) from None
        session = _session(self.config)
        subject = session.subject_for(claim_file)
        if subject is not None:
            plan(claim_file, subject)
        for entry in claim_file.claims:
            yield ClaimItem.from_parent(self, name=entry.id, claim_file=claim_file, entry=entry)


class ClaimItem(pytest.Item):
    """One claim. Setup evaluates it (errors -> ERROR); the test judges it (false -> FAILED)."""

    def __init__(self, *, claim_file: ClaimFile, entry: ClaimEntry, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.claim_file = claim_file
        self.entry = entry
        self.result: ClaimResult | None = None
        self.add_marker("interp_claim")
        for tag in entry.tags:
            self.config.addinivalue_line("markers", f"{tag}: interp-assert claim tag")
            self.add_marker(tag)

    def setup(self) -> None:
        session = _session(self.config)
        self.result = evaluate_entry(self.claim_file, self.entry,
                                     session.subject_for(self.claim_file),
                                     plot_dir=session.plot_dir(self.path), plots=session.plots)
        session.results.append(self.result)
        outcome = self.result.outcome
        if outcome is not None:
            self.user_properties.extend([("measured", outcome.measured),
                                         ("expected", outcome.expected)])
            if outcome.value is not None:
                self.user_properties.append(("value", repr(outcome.value)))
        if self.result.plot is not None:
            self.user_properties.append(("plot", str(self.result.plot)))
        if self.result.error is not None:
            # an error, not a failure: reported as ERROR at setup, with the report only
            pytest.fail(format_result(self.result), pytrace=False)

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
        return self.path, self.entry.location.line - 1, f"claim {self.entry.id}"


def _shown(path: Path, config: pytest.Config) -> Path:
    """The path as the user typed it: relative to the invocation folder when possible."""
    try:
        return path.relative_to(config.invocation_params.dir)
    except ValueError:
        return path
