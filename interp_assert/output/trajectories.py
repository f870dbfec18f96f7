"""Trajectories: each claim's values over the checkpoints of a sweep, grouped from the run's
records, and plotted with the step from which the claim holds."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interp_assert.loading.targets import natural_key
from interp_assert.output.files import file_stem, safe_name, save_figure


@dataclass
class Trajectory:
    """One claim's values over the checkpoints of a sweep, in step order."""

    file: str
    claim_id: str
    sentence: str
    labels: list[str]
    steps: list[int | None]
    values: list[float | None]
    verdicts: list[str]
    intervals: list[list[float] | None]
    holds_from: int | None = None
    plot: Path | None = None

    @property
    def onset(self) -> int | None:
        """Index of the first checkpoint from which the claim holds at every later one."""
        start = None
        for index in range(len(self.verdicts) - 1, -1, -1):
            if self.verdicts[index] not in ("holds", "xpass"):
                break
            start = index
        return start

    @property
    def where(self) -> str:
        """``step 2000`` (or the label) from which the claim holds, for plots."""
        observed = self.observed
        return f"step {observed}" if isinstance(observed, int) else str(observed)

    @property
    def observed(self) -> int | str | None:
        """The step (or label) from which the claim holds, None when it does not at the end."""
        index = self.onset
        if index is None:
            return None
        step = self.steps[index]
        return step if step is not None else self.labels[index]

    def as_dict(self, root: Path | None = None) -> dict[str, Any]:
        plot = self.plot
        if plot is not None and root is not None:
            with contextlib.suppress(ValueError):
                plot = plot.resolve().relative_to(root.resolve())
        return {"file": self.file, "id": self.claim_id, "labels": self.labels,
                "steps": self.steps, "values": self.values, "verdicts": self.verdicts,
                "holds_from": self.holds_from, "holds_from_observed": self.observed,
                "plot": plot.as_posix() if plot is not None else None}


def trajectories(records: Iterable[dict[str, Any]]) -> list[Trajectory]:
    """Group sweep records (those with a label) into one trajectory per file and claim."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for item in records:
        if item.get("label") is not None:
            groups.setdefault((item["file"], item["id"]), []).append(item)
    out = []
    for (file, claim_id), items in sorted(groups.items()):
        items.sort(key=lambda r: (r.get("step") is None, r.get("step") or 0,
                                  natural_key(r["label"])))
        values = [v if isinstance(v, int | float) else None for v in
                  (r.get("value") for r in items)]
        out.append(Trajectory(file, claim_id, items[0].get("claim", ""),
                              [r["label"] for r in items], [r.get("step") for r in items],
                              values, [r["verdict"] for r in items],
                              [r.get("interval") for r in items], items[0].get("holds_from")))
    return out


def sweep_grid(group: Iterable[Trajectory]
               ) -> tuple[list[str], list[dict[str, tuple[Any, Any]]]]:
    """A sweep's checkpoints in step order (unstepped last, then by name), and each
    trajectory's (value, verdict) per checkpoint: the claims × checkpoints table."""
    group = list(group)
    order: dict[str, tuple[Any, ...]] = {}
    for trajectory in group:
        for label, step in zip(trajectory.labels, trajectory.steps):
            order[label] = (step is None, step or 0, natural_key(label))
    cells = [dict(zip(t.labels, zip(t.values, t.verdicts))) for t in group]
    return sorted(order, key=order.__getitem__), cells


def plot_trajectory(trajectory: Trajectory, path: Path) -> Path:
    """Draw value against step (green holds, red fails) with the step from which it holds."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    numeric = all(s is not None for s in trajectory.steps)
    xs = [float(s) for s in trajectory.steps] if numeric else list(range(len(trajectory.labels)))
    figure = Figure(figsize=(7.5, 4.5), dpi=100, layout="constrained")
    ax = figure.add_subplot()
    known = [(x, v) for x, v in zip(xs, trajectory.values) if v is not None]
    if known:
        ax.plot([x for x, _ in known], [v for _, v in known], color="0.6", zorder=1)
    for x, value, verdict, interval in zip(xs, trajectory.values, trajectory.verdicts,
                                           trajectory.intervals):
        if value is None:
            ax.axvline(x, color="0.4", linestyle=":", linewidth=1)
            continue
        color = "C2" if verdict in ("holds", "xpass") else "C3"
        marker = "o" if verdict in ("holds", "fails") else "s"
        if interval is not None and len(interval) == 2:
            ax.errorbar(x, value, yerr=[[value - interval[0]], [interval[1] - value]],
                        fmt="none", ecolor=color, alpha=0.6, capsize=3)
        ax.scatter([x], [value], color=color, marker=marker, zorder=3)
    onset = trajectory.onset
    if onset is not None:
        ax.axvline(xs[onset], color="C2", linestyle="--", label=f"holds from {trajectory.where}")
    if trajectory.holds_from is not None and numeric:
        ax.axvline(trajectory.holds_from, color="k", linestyle=":",
                   label=f"claimed from step {trajectory.holds_from}")
    if not numeric:
        ax.set_xticks(xs, trajectory.labels, rotation=45, fontsize=7)
    ax.set_xlabel("step" if numeric else "checkpoint")
    ax.set_ylabel("value")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=8)
    held = "does not hold at the end" if onset is None else f"holds from {trajectory.where}"
    figure.suptitle(f"{trajectory.claim_id}: {trajectory.sentence}\n{held}", fontsize=8)
    return save_figure(figure, path)


def draw_trajectories(records: Iterable[dict[str, Any]], artifacts: Path,
                      every: bool = True) -> list[Trajectory]:
    """Trajectories of every sweep, plotted to ``<artifacts>/trajectories/<file>/<claim>.png``:
    all of them (``every``), else only those of claims with a step whose verdict fails the run
    (a sweep that went as claimed, expected failures included, is not drawn)."""
    records = list(records)
    failing = {(r["file"], r["id"]) for r in records if r.get("fails_run")}
    out = trajectories(records)
    for trajectory in out:
        if len(trajectory.labels) < 2 or not (
                every or (trajectory.file, trajectory.claim_id) in failing):
            continue
        path = (artifacts / "trajectories" / file_stem(trajectory.file)
                / f"{safe_name(trajectory.claim_id)}.png")
        try:
            trajectory.plot = plot_trajectory(trajectory, path)
        except Exception:  # a plot never breaks a run; the values are in the results
            trajectory.plot = None
    return out
