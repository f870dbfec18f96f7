"""Errors raised by interp-assert, each naming where in a claim file it happened and the fix."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    """A place in a claim file: path, 1-based line and column."""

    path: str
    line: int
    column: int = 1

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"


def did_you_mean(name: str, candidates: Iterable[str], n: int = 3) -> str:
    """Return "; did you mean 'x'?" for the closest candidates, or an empty string."""
    pool = sorted({str(c) for c in candidates})
    close = difflib.get_close_matches(name, pool, n=n, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in pool}
        close = [lowered[c] for c in difflib.get_close_matches(name.lower(), list(lowered), n=n)]
    if not close:
        return ""
    return "; did you mean " + " or ".join(f"'{c}'" for c in close) + "?"


class InterpAssertError(Exception):
    """Base class: a problem with a claim file, a checkpoint or user code (not a failed claim)."""

    def __init__(self, message: str, location: Location | None = None, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.location = location
        self.hint = hint

    def at(self, location: Location | None) -> InterpAssertError:
        """Attach a location if none is known yet and return self."""
        if self.location is None and location is not None:
            self.location = location
        return self

    def copy(self) -> InterpAssertError:
        """A copy with the same type, message, place and hint: what to hand to each claim an
        error concerns, so that naming one claim never changes the message of another."""
        twin = type(self).__new__(type(self))
        twin.__dict__.update(self.__dict__)
        twin.args = self.args
        return twin

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        hint = f"\n  hint: {self.hint}" if self.hint else ""
        return f"{where}{self.message}{hint}"


#: characters of a sentence shown with a syntax error (a longer one: the part around the column)
SHOWN = 100


class ClaimSyntaxError(InterpAssertError):
    """A claim sentence or expression that the grammar does not accept."""

    def __init__(
        self, message: str, text: str, column: int, location: Location | None = None,
        hint: str = "",
    ) -> None:
        super().__init__(message, location, hint)
        self.text = text
        self.column = column  # 1-based column within ``text``

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        hint = f"\n  hint: {self.hint}" if self.hint else ""
        # a sentence over several lines (a YAML block scalar) is shown on one, so that the
        # caret stays under its column; a long one as the part around the column
        text, column = self.text.rstrip("\n").replace("\n", " "), self.column
        if len(text) > SHOWN:
            start = max(0, min(column - 1 - SHOWN // 2, len(text) - SHOWN))
            head, tail = ("..." if start else ""), ("..." if start + SHOWN < len(text) else "")
            text, column = head + text[start:start + SHOWN] + tail, column - start + len(head)
        caret = " " * (column - 1) + "^"
        return f"{where}{self.message}\n    {text}\n    {caret}{hint}"


class SpecError(InterpAssertError):
    """A claim file whose structure is wrong: bad YAML, unknown keys, wrong types."""


class UnknownNameError(SpecError):
    """A quantity, label, axis or weight name that does not exist."""


class CheckpointError(InterpAssertError):
    """A checkpoint that is missing, unreadable, unsafe to load or lacks a needed tensor."""


class QuantityError(InterpAssertError):
    """A quantity that cannot be computed (shape mismatch, user code failure, NaN input...)."""


class UserCodeError(QuantityError):
    """An exception raised inside a user's loader, callable or metric."""


class TimeLimitError(UserCodeError):
    """User code that ran past its claim's time limit (``timeout:``, ``--interp-timeout``)."""


class OutputError(InterpAssertError, OSError):
    """A file the run writes (results, report, baseline, plot) that could not be written
    (read-only folder, full disk...); an OSError too. ``messages``: what the run did write."""

    messages: list[str] = []  # noqa: RUF012 - replaced per instance


class ClaimFailed(AssertionError):
    """Raised by :func:`interp_assert.check` when a claim does not hold; carries the report."""

    def __init__(self, report: str, result: object = None) -> None:
        super().__init__(report)
        self.result = result
