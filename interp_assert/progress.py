"""A run's progress: the phase it is in (load, pass, claims, plots), the batches of each forward
pass, and the wall time spent in each phase.

The runner makes its :class:`Progress` the current one while it evaluates; the steps under it
report through :func:`phase` and :func:`current` without knowing who listens. The base class
only keeps the times; drivers subclass it to draw (``rich`` in the command line tool, pytest's
terminal reporter in the plugin). Nothing here imports anything heavy.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

PHASES = ("load", "pass", "claims", "plots")


class Progress:
    """Receives a run's progress and times its phases. Phases nest (a forward pass starts
    inside a claim, a model loads inside a pass); time counts for the innermost phase only, so
    the phase times add up to the time the run spent in them."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(PHASES, 0.0)
        self.samples = 0  #: samples through forward passes
        self.passes = 0  #: forward passes run
        self._pass_done = 0
        self._stack: list[str] = []
        self._since = time.perf_counter()

    @contextlib.contextmanager
    def phase(self, name: str, detail: str = "") -> Iterator[None]:
        """Time the block as phase ``name`` (``detail``: what it works on, for the display)."""
        self._switch()
        self._stack.append(name)
        if name == "pass":
            self.passes += 1
            self._pass_done = 0
        self.entered(name, detail)
        try:
            yield
        finally:
            self._switch()
            self._stack.pop()
            self.left(name)

    def _switch(self) -> None:
        now = time.perf_counter()
        if self._stack:
            self.seconds[self._stack[-1]] += now - self._since
        self._since = now

    @property
    def current_phase(self) -> str | None:
        return self._stack[-1] if self._stack else None

    def batch(self, done: int, total: int) -> None:
        """A forward pass has fed ``done`` of its ``total`` samples (called after each batch)."""
        self.samples += max(0, done - self._pass_done)
        self._pass_done = done
        self.batch_done(done, total)

    # -- what drivers override to draw --------------------------------------------------------
    def entered(self, name: str, detail: str) -> None:
        """A phase began."""

    def left(self, name: str) -> None:
        """A phase ended (the enclosing one, if any, goes on)."""

    def batch_done(self, done: int, total: int) -> None:
        """A batch of the current forward pass is done: ``done`` of ``total`` samples."""

    def close(self) -> None:
        """The run is over: remove what was drawn."""

    # -- the end of a run ---------------------------------------------------------------------
    def times_line(self) -> str:
        """``interp-assert: time per phase: load 1.20 s, pass 3.41 s, claims 0.52 s, plots
        0.00 s (2 forward passes, 4,096 samples)``."""
        times = ", ".join(f"{name} {self.seconds[name]:.2f} s" for name in PHASES)
        passes = f"{self.passes} forward pass{'es' * (self.passes != 1)}"
        return f"interp-assert: time per phase: {times} ({passes}, {self.samples:,} samples)"

    def add(self, seconds: dict[str, float], passes: int, samples: int) -> None:
        """Add another process's phase times (an xdist worker's)."""
        for name, value in seconds.items():
            if name in self.seconds:
                self.seconds[name] += float(value)
        self.passes += int(passes)
        self.samples += int(samples)


_current = Progress()


def current() -> Progress:
    """The progress of the run in this process (a plain timer when no driver set one)."""
    return _current


@contextlib.contextmanager
def using(progress: Progress) -> Iterator[Progress]:
    """Make ``progress`` the current one inside the block."""
    global _current
    previous, _current = _current, progress
    try:
        yield progress
    finally:
        _current = previous


def phase(name: str, detail: str = "") -> contextlib.AbstractContextManager[None]:
    """Time a block as phase ``name`` of the current run."""
    return _current.phase(name, detail)
