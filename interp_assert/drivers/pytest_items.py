"""Collector and items: one pytest item per claim of a claim file and checkpoint.

Items only render the judge's verdict as pytest outcomes: ERROR at setup for an error,
skipped for a failed requirement, xfail/XPASS for an expected failure, FAILED for a claim that
does not hold. The runner evaluates and judges.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from interp_assert.drivers.pytest_session import session_of as _session
from interp_assert.errors import InterpAssertError
from interp_assert.judge.verdict import ClaimResult, Verdict
from interp_assert.output.text import format_result, headline
from interp_assert.run.runner import Check


@functools.lru_cache(maxsize=256)
def _mark(name: str, *args: str) -> pytest.MarkDecorator:
    """``pytest.mark.<name>(*args)``, made once (items of one file share their marks)."""
    decorator = getattr(pytest.mark, name)
    return decorator(*args) if args else decorator


class ClaimFailure(AssertionError):
    """A claim that was evaluated and does not hold (reported as FAILED)."""


class ClaimErrored(Exception):
    """A claim that could not be evaluated (raised at setup: reported as ERROR)."""


def claim_repr(result: ClaimResult, config: pytest.Config,
               report: Callable[..., str] = format_result) -> Any:
    """The claim's report as pytest's own failure representation: the crash line (``-r``,
    ``--tb=line``) carries measured against expected, ``--tb=short`` drops the evidence
    table, ``-v`` adds the claim's ``why``. ``report`` formats the result (an item passes
    its own, which formats each variant once)."""
    from _pytest._code.code import ReprExceptionInfo, ReprFileLocation, ReprTracebackNative

    style = config.getoption("tbstyle", "auto")
    text = report(result, why=config.option.verbose > 0, evidence=style != "short")
    crash = ReprFileLocation(result.location.path, result.location.line, headline(result))
    lines = [] if style in ("line", "no") else [text + "\n"]  # line: only the crash line
    return ReprExceptionInfo(ReprTracebackNative(lines), crash)


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
        if self.config.option.collectonly:  # a lint: every problem the file alone shows
            from interp_assert.run.lint import lint_claim_file

            problems = lint_claim_file(claim_file, session.shown(self.path)).problems
            if problems:
                raise self.CollectError("\n".join(problems))
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
        self._reports: dict[tuple[bool, bool], str] = {}
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
            properties.append(("plot", attachment_path(self.config, self.interp_plot)))
        self.user_properties.extend(p for p in properties if p[1] is not None)
        verdict, reason = result.verdict, result.judgement.reason
        if verdict is Verdict.ERROR:  # an error, not a failure: ERROR at setup, report only
            raise ClaimErrored(headline(result))
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
        if self.result.verdict in (Verdict.FAILS, Verdict.XFAIL, Verdict.UNDECIDED):
            raise ClaimFailure(self._report(self.result))

    def _report(self, result: ClaimResult, *, why: bool = False, evidence: bool = True) -> str:
        """``format_result`` of this item's result, formatted once per variant (the failure
        and its report share it)."""
        key = (why, evidence)
        if key not in self._reports:
            self._reports[key] = format_result(result, why=why, evidence=evidence)
        return self._reports[key]

    def _repr_failure_py(self, excinfo: pytest.ExceptionInfo[BaseException],
                         style: Any = None) -> Any:
        """Setup errors and failures of the claim render as :func:`claim_repr` (pytest
        calls this for setup errors, and ``repr_failure`` for failures)."""
        if isinstance(excinfo.value, ClaimFailure | ClaimErrored) and self.result is not None:
            return claim_repr(self.result, self.config, self._report)
        return super()._repr_failure_py(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.check.entry.location.line - 1, f"claim {self.name}"


def attachment_path(config: pytest.Config, plot: str) -> str:
    """A plot's path as JUnit shows it: relative to the ``interp_assert_attachments`` folder
    (default the rootdir; GitLab shows attachments only relative to the project folder), or
    absolute with ``interp_assert_attachments = absolute``."""
    import os

    setting = str(config.getini("interp_assert_attachments") or "").strip()
    if setting == "absolute":
        return str(Path(plot).resolve())
    base = Path(config.rootpath) / setting if setting else Path(config.rootpath)
    try:
        return Path(os.path.relpath(Path(plot).resolve(), base.resolve())).as_posix()
    except ValueError:  # another drive (Windows): only an absolute path reaches it
        return str(Path(plot).resolve())
