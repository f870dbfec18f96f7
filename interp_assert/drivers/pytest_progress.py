"""Progress in pytest's terminal: the phase of the run (load, pass, claims, plots), and during a
forward pass its samples, samples per second and ETA, on the line pytest is writing.

Drawn only where it cannot end up in anything but a person's terminal: stdout is a terminal,
the run is not ``-q`` and this process is not an xdist worker. It is written through the
terminal reporter with output capturing suspended (so never into a test's captured output),
and the line pytest was writing is put back when the pass ends.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Any

from interp_assert.progress import Progress

#: seconds between two redraws
REDRAW = 0.1
#: the phases drawn (claims and plots come and go too fast for a line of their own)
SHOWN = ("load", "pass")


def make_progress(config: Any) -> Progress:
    """A drawing progress for this pytest run where one may draw, else a plain timer."""
    terminal = config.pluginmanager.getplugin("terminalreporter")
    quiet = config.get_verbosity() < 0 if hasattr(config, "get_verbosity") else (
        config.option.verbose < 0)
    tty = getattr(sys.stdout, "isatty", lambda: False)()
    if terminal is None or quiet or hasattr(config, "workerinput") or not tty:
        return Progress()
    return TerminalProgress(terminal, config.pluginmanager.getplugin("capturemanager"))


def describe(phase: str, detail: str, done: int, total: int, seconds: float) -> str:
    """``interp-assert pass sentences on model.pt: 1,024/4,096 samples, 812 samples/s,
    ETA 4s``."""
    text = f"interp-assert {phase} {detail}".rstrip()
    if phase != "pass" or total <= 0:
        return text
    rate = done / seconds if seconds > 0 else 0.0
    eta = f"{(total - done) / rate:.0f}s" if rate > 0 else "?"
    return f"{text}: {done:,}/{total:,} samples, {rate:,.0f} samples/s, ETA {eta}"


class TerminalProgress(Progress):
    """Draws the run's phase and the current pass's batches on pytest's terminal."""

    def __init__(self, terminal: Any, capture: Any) -> None:
        super().__init__()
        self.terminal, self.capture = terminal, capture
        self.detail = ""
        self.started = 0.0
        self.last = (0, 0)
        self.drawn = 0.0
        self.showing = False

    def entered(self, name: str, detail: str) -> None:
        if name == "pass":
            self.detail, self.started, self.last = detail, time.perf_counter(), (0, 0)
        if name in SHOWN:
            self._draw(describe(name, detail, 0, 0, 0.0), force=True)

    def batch_done(self, done: int, total: int) -> None:
        self.last = (done, total)
        elapsed = time.perf_counter() - self.started
        self._draw(describe("pass", self.detail, done, total, elapsed), force=done >= total)

    def left(self, name: str) -> None:
        if name not in SHOWN:
            return
        if self.current_phase == "pass":  # a model loaded inside a pass: the pass goes on
            elapsed = time.perf_counter() - self.started
            self._draw(describe("pass", self.detail, *self.last, elapsed), force=True)
        else:
            self.close()

    def close(self) -> None:
        if self.showing:
            self._write(None)
            self.showing = False

    def _draw(self, text: str, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self.drawn < REDRAW:
            return
        self.drawn = now
        self._write(text)
        self.showing = True

    def _write(self, text: str | None) -> None:
        """Write ``text`` over the current line (None: put pytest's line back)."""
        writer = self.terminal._tw
        line = getattr(writer, "_current_line", None)
        width = max(20, writer.fullwidth - 1)
        shown = (" " * width + "\r" + (line or "")) if text is None else text[:width].ljust(width)
        suspended = (self.capture.global_and_fixture_disabled() if self.capture is not None
                     else contextlib.nullcontext())
        with suspended:
            writer.write("\r" + shown, flush=True)
        if line is not None:
            writer._current_line = line  # pytest aligns its percentages by this line's width

