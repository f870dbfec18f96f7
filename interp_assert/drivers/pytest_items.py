"""Collector and items: one pytest item per claim of a claim file and checkpoint.

Items only render the judge's verdict as pytest outcomes: ERROR at setup for an error,
skipped for a failed requirement, xfail/XPASS for an expected failure, FAILED for a claim that
does not hold. The runner evaluates and judges.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest

from interp_assert.drivers.pytest_session import session_of as _session
from interp_assert.errors import InterpAssertError
from interp_assert.judge.verdict import ClaimResult, Verdict
from interp_assert.output.text import format_result
from interp_assert.run.runner import Check


@functools.lru_cache(maxsize=256)
def _mark(name: str, *args: str) -> pytest.MarkDecorator:
    """``pytest.mark.<name>(*args)``, made once (items of one file share their marks)."""
    decorator = getattr(pytest.mark, name)
    return decorator(*args) if args else decorator


class ClaimFailure(AssertionError):
    """A claim that was evaluated and does not hold (reported as FAILED)."""


class ClaimFileCollector(pytest.File):
    """A ``*.claims.yaml`` file; problems with the whole file are collection errors.

    A sweep (``subject: checkpoints:``) gives one item per claim and checkpoint, checkpoint
    after checkpoint in step order, named ``claim-id[step_5000]``.
    """

    def collect(self) -> Any:
        session = _session(self.config)
        try:
            claim_file = session.runner.load(session.shown(self.path))
            session.runner.baselines()  # a broken baseline file stops every claim file early
        except InterpAssertError as exc:
            raise self.CollectError(str(exc)) from None
        for check in session.runner.checks(claim_file):
            yield ClaimItem.from_parent(self, name=check.name, check=check)


class ClaimItem(pytest.Item):
    """One claim on one checkpoint: setup runs and judges it, the test renders the verdict."""

    def __init__(self, *, check: Check, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check = check
        self.result: ClaimResult | None = None
        #: the JSON record of the result, attached to this item's report (see pytest_plugin)
        self.interp_record: dict[str, Any] | None = None
        self.interp_plot: str | None = None
        self.add_marker(_mark("interp_claim"))
        for tag in check.entry.tags:
            self.config.addinivalue_line("markers", f"{tag}: interp-assert claim tag")
            self.add_marker(tag)
        if self.config.pluginmanager.hasplugin("xdist"):
            # for --dist loadgroup; the default scheduler groups the same way (pytest_xdist)
            group = check.target.label or str(self.path.name)
            self.add_marker(_mark("xdist_group", group))

    def setup(self) -> None:
        self.result, self.interp_record = _session(self.config).result(self.check)
        result = self.result
        properties: list[tuple[str, Any]] = [("verdict", result.verdict.value),
                                             ("checkpoint", result.label or result.subject),
                                             ("sha256", result.sha256)]
        outcome = result.outcome
        if outcome is not None:
            properties += [("measured", outcome.measured), ("expected", outcome.expected)]
            if outcome.value is not None:
                properties.append(("value", repr(outcome.value)))
        if result.baseline is not None:
            properties.append(("baseline", repr(result.baseline.value)))
        if result.plot is not None:
            self.interp_plot = str(result.plot.resolve())
            properties.append(("plot", self.interp_plot))
        self.user_properties.extend(p for p in properties if p[1] is not None)
        verdict, reason = result.verdict, result.judgement.reason
        if verdict is Verdict.ERROR:  # an error, not a failure: ERROR at setup, report only
            pytest.fail(format_result(result), pytrace=False)
        if verdict is Verdict.SKIPPED:
            pytest.skip(reason)
        if verdict in (Verdict.XFAIL, Verdict.XPASS):
            self.add_marker(pytest.mark.xfail(reason=reason, raises=ClaimFailure,
                                              strict=result.judgement.strict))

    def interp_release(self, nextitem: pytest.Item | None) -> None:
        """After the last claim on a sweep's checkpoint, forget the loaded checkpoints."""
        following = getattr(nextitem, "check", None)
        _session(self.config).runner.release(self.check, following)

    def runtest(self) -> None:
        assert self.result is not None
        if self.result.verdict in (Verdict.FAILS, Verdict.XFAIL):
            raise ClaimFailure(format_result(self.result))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str:
        if isinstance(excinfo.value, ClaimFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.check.entry.location.line - 1, f"claim {self.name}"
