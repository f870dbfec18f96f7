"""The one judge: a claim's outcome on a target, plus its relations, becomes one verdict.

Every output (terminal lines, pytest outcomes, JUnit, JSON, the HTML and Markdown documents,
the summary table, the CLI's exit code) renders the :class:`Verdict` decided here, with its
words taken from :data:`WORDS`. Nothing else decides whether a claim holds.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interp_assert.errors import InterpAssertError, Location

if TYPE_CHECKING:
    from interp_assert.claims.outcome import Outcome


class Verdict(str, enum.Enum):
    """What a claim's check came to."""

    HOLDS = "holds"
    FAILS = "fails"
    ERROR = "error"
    #: a claim it ``requires`` does not hold, so it was not evaluated
    SKIPPED = "skipped"
    #: expected not to hold yet (``status: open``, or before its ``holds_from`` step) and so
    XFAIL = "xfail"
    #: expected not to hold yet, but it holds
    XPASS = "xpass"
    #: a sequential claim whose budget ran out with its confidence sequence still on the bound
    UNDECIDED = "undecided"


@dataclass(frozen=True)
class Words:
    """How outputs name a verdict."""

    #: in text reports ("does not hold")
    text: str
    #: in the summary table ("FAILS")
    table: str
    #: in the claims × checkpoints table (a mark after the value)
    mark: str
    #: the CLI's closing line ("2 failed"), pytest-style
    tally: str
    #: the HTML document's colour
    colour: str


WORDS: dict[Verdict, Words] = {
    Verdict.HOLDS: Words("holds", "holds", "✓", "passed", "#1a7f37"),
    Verdict.FAILS: Words("does not hold", "FAILS", "✗", "failed", "#cf222e"),
    Verdict.ERROR: Words("error", "ERROR", "ERROR", "errors", "#9a6700"),
    Verdict.SKIPPED: Words("skipped", "skipped", "skipped", "skipped", "#57606a"),
    Verdict.XFAIL: Words("does not hold yet, as expected", "xfail", "✗ xfail", "xfailed",
                         "#57606a"),
    Verdict.XPASS: Words("holds, though not expected to yet", "XPASS", "✓ XPASS", "xpassed",
                         "#8250df"),
    Verdict.UNDECIDED: Words("undecided", "UNDECIDED", "? undecided", "undecided", "#bc4c00"),
}


@dataclass(frozen=True)
class Relations:
    """What a claim's verdict depends on beyond its own outcome."""

    #: why a claim it ``requires`` does not count as holding (then it is skipped), or None
    requirement: str | None = None
    #: ``status: open``: a hypothesis not expected to hold yet
    open: bool = False
    #: ``holds_from`` says the claim does not hold yet at this step: the reason, or None
    before_onset: str | None = None
    #: a baseline file is in use but has no value for this claim (and none is being recorded):
    #: the sentence that says how to record it, or None
    missing_baseline: str | None = None


@dataclass(frozen=True)
class Judgement:
    """A verdict and why."""

    verdict: Verdict
    reason: str = ""
    #: an XPASS that fails the run (``status: open`` claims must be marked 'holds')
    strict: bool = False

    @property
    def fails_run(self) -> bool:
        """Whether this verdict makes a run fail (exit status, pytest outcome)."""
        return self.verdict in (Verdict.FAILS, Verdict.ERROR, Verdict.UNDECIDED) or (
            self.verdict is Verdict.XPASS and self.strict)


def judge(outcome: Outcome | None, error: InterpAssertError | None,
          relations: Relations = Relations()) -> Judgement:
    """The verdict of one claim on one target. The order of the rules is the contract:
    a failed requirement skips, an error is an error, a missing baseline fails, an open
    hypothesis or a step before ``holds_from`` turns holds/fails into xpass/xfail."""
    if relations.requirement is not None:
        return Judgement(Verdict.SKIPPED, relations.requirement)
    if error is not None or outcome is None:
        return Judgement(Verdict.ERROR, "")
    holds = outcome.passed
    reason = ""
    if relations.missing_baseline is not None:
        holds, reason = False, relations.missing_baseline
    if relations.open:
        if holds:
            return Judgement(Verdict.XPASS, "status: open, but the claim now holds: mark it "
                                            "'holds'", strict=True)
        return Judgement(Verdict.XFAIL, "status: open (a hypothesis not expected to hold yet)")
    if relations.before_onset is not None:
        return Judgement(Verdict.XPASS if holds else Verdict.XFAIL, relations.before_onset)
    if not holds and not reason and outcome.sequential and not outcome.sequential["decided"]:
        return _undecided(outcome)
    return Judgement(Verdict.HOLDS if holds else Verdict.FAILS, reason)


def _undecided(outcome: Outcome) -> Judgement:
    """A sequential claim left undecided by its budget: UNDECIDED (fails the run), or XFAIL
    under ``--interp-undecided=xfail``."""
    from interp_assert.plan.sequential import undecided_policy

    reason = next((n for n in outcome.notes if n.startswith("undecided")), "undecided")
    return Judgement(Verdict.XFAIL if undecided_policy() == "xfail" else Verdict.UNDECIDED,
                     reason)


def requirement_met(result: ClaimResult) -> bool:
    """Whether a claim that ``requires`` this one may run: it was measured and holds."""
    return result.verdict in (Verdict.HOLDS, Verdict.XPASS)


@dataclass
class ClaimResult:
    """One claim judged on one target: what was measured, and the verdict."""

    file: str
    claim_id: str
    sentence: str
    why: str
    location: Location
    judgement: Judgement
    outcome: Outcome | None = None
    error: InterpAssertError | None = None
    plot: Path | None = None
    #: the checkpoint's file name (or the loader's name)
    subject: str | None = None
    sha256: str | None = None
    duration: float = 0.0
    quantities: list[str] = field(default_factory=list)
    #: ``claim-id`` or ``claim-id[step_5000]``
    name: str = ""
    #: the sweep checkpoint's label and step (None outside sweeps)
    label: str | None = None
    step: int | None = None
    holds_from: int | None = None
    #: the baseline entry it was judged against (``BaselineEntry``), if any
    baseline: Any = None
    #: a baseline file was in use for this claim
    baseline_used: bool = False
    #: what to do about the verdict, in the driver's words (shown in reports, not recorded:
    #: the JSON results are the same whichever driver ran)
    advice: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or self.claim_id

    @property
    def verdict(self) -> Verdict:
        return self.judgement.verdict

    @property
    def passed(self) -> bool:
        """Whether the claim holds (the verdict is HOLDS)."""
        return self.verdict is Verdict.HOLDS

    @property
    def status(self) -> str:
        """The verdict's value (``holds``, ``fails``, ...), for outputs and tests."""
        return self.verdict.value

    def __repr__(self) -> str:
        """One line: the name and the verdict line."""
        from interp_assert.judge.notebook import verdict_line

        line = " ".join(verdict_line(self).split())
        return f"<ClaimResult {self.name!r}: {line[:200]}>"

    def _repr_html_(self) -> str:
        """In a notebook: the verdict line, the evidence table and the plot inline."""
        from interp_assert.judge.notebook import result_html

        return result_html(self)
