"""Progress of ``interp-assert check`` and ``report`` on a terminal, drawn with ``rich``: the
phase the run is in (load, pass, claims, plots) and the claims done, and during a forward pass
its batches, samples, samples per second and ETA. Nothing is drawn elsewhere (a file, a pipe,
``-q``); the display is removed when the run ends.
"""

from __future__ import annotations

import math
import time
from typing import Any, TextIO

from interp_assert.progress import Progress

#: seconds between two redraws
REDRAW = 0.1


class RichProgress(Progress):
    """Draws the run's progress with ``rich`` when ``enabled`` (a terminal), else only times."""

    def __init__(self, total: int, stream: TextIO, enabled: bool) -> None:
        super().__init__()
        self.enabled, self.total = enabled, total
        self.done = 0
        self.bars: Any = None
        self.pass_task: Any = None
        self.phase_text = ""
        self.batches = 0
        self.drawn = 0.0
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as Bars

            console = Console(file=stream, force_terminal=True)
            texts = [TextColumn(f"{{task.{name}}}", markup=False)  # names hold [step_5000]
                     for name in ("description", "fields[count]", "fields[rate]")]
            self.bars = Bars(texts[0], BarColumn(bar_width=24), *texts[1:],
                             TimeRemainingColumn(), console=console, transient=True,
                             auto_refresh=False)
            self.claims_task = self.bars.add_task("claims", total=max(total, 1), count="",
                                                  rate="")
            self.bars.start()
            self._claims_text(force=True)

    # -- the driver's steps ----------------------------------------------------------------------
    def step(self, name: str) -> None:
        """A check is done (``name``: what to show for it)."""
        self.done += 1
        if self.bars is not None:
            self.bars.update(self.claims_task, completed=self.done)
            self._claims_text(name, force=self.done >= self.total)

    def _claims_text(self, name: str = "", force: bool = False) -> None:
        phase = f" [{self.phase_text}]" if self.phase_text else ""
        self.bars.update(self.claims_task, description=f"claims{phase}",
                         count=f"{self.done}/{self.total} claims", rate=name[:40])
        self._refresh(force)

    # -- what the run reports ----------------------------------------------------------------------
    def entered(self, name: str, detail: str) -> None:
        self.phase_text = f"{name} {detail}".strip()
        if self.bars is None:
            return
        if name == "pass":
            self.batches = 0
            self.started = time.perf_counter()
            self.pass_task = self.bars.add_task(f"pass {detail}"[:40], total=None,
                                                count="batch 0", rate="")
        self._claims_text()

    def batch_done(self, done: int, total: int) -> None:
        self.batches += 1
        if self.bars is None or self.pass_task is None:
            return
        size = max(1, done // self.batches)
        elapsed = time.perf_counter() - self.started
        rate = f"{done / elapsed:,.0f} samples/s" if elapsed > 0 else ""
        self.bars.update(self.pass_task, completed=done, total=total,
                         count=f"batch {self.batches}/{math.ceil(total / size)}, "
                               f"{done:,}/{total:,} samples", rate=rate)
        self._refresh(force=self.batches == 1 or done >= total)  # others: at most 10/s

    def left(self, name: str) -> None:
        self.phase_text = self.current_phase or ""  # the enclosing phase goes on
        if self.bars is None:
            return
        if name == "pass" and self.pass_task is not None:
            self.bars.remove_task(self.pass_task)
            self.pass_task = None
        self._claims_text()

    def _refresh(self, force: bool = False) -> None:
        now = time.perf_counter()
        if force or now - self.drawn >= REDRAW:
            self.drawn = now
            self.bars.refresh()

    def close(self) -> None:
        if self.bars is not None:
            self.bars.stop()
            self.bars = None
