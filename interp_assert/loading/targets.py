"""Sweeps: a claim file checked against a series of checkpoints, and the trajectories of its
claims over training steps.

``subject: checkpoints: ckpts/step_*.pt`` (a glob, a path, or a list of them) makes every claim
one check per checkpoint, labelled by the checkpoint's file stem (``step_5000``) and ordered
naturally (``step_200`` before ``step_1000``). The step of a checkpoint is the last number in
its stem. A claim with ``holds_from: 2000`` is expected to fail before step 2000 (an expected
failure) and must hold from step 2000 on.

This module imports nothing heavy at import time; :mod:`.spec` uses its path helpers.
"""

from __future__ import annotations

import contextlib
import glob
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from interp_assert.evaluate.evaluation import ClaimResult
    from interp_assert.loading.claim_file import ClaimEntry, ClaimFile
    from interp_assert.loading.subject import SubjectSpec
    from interp_assert.output.baseline import BaselineEntry, BaselineStore

_DIGITS = re.compile(r"(\d+)")


# -- checkpoint series ---------------------------------------------------------------------------
def natural_key(text: str) -> tuple[Any, ...]:
    """Sort key that orders embedded numbers by value: step_200 < step_1000."""
    parts = _DIGITS.split(text)
    return tuple(int(part) if i % 2 else part.lower() for i, part in enumerate(parts))


def expand_checkpoints(patterns: Sequence[str], base: Path) -> tuple[Path, ...]:
    """Paths and globs (relative to ``base``) as absolute paths, deduplicated, in natural order.

    Raises ValueError naming the first pattern that matches nothing.
    """
    found: dict[Path, None] = {}
    for pattern in patterns:
        full = os.path.join(base, os.path.expanduser(pattern))
        if glob.has_magic(pattern):
            matches = [Path(p).resolve() for p in glob.glob(full, recursive=True)]
            matches = [p for p in matches if p.is_file()]
            if not matches:
                raise ValueError(f"'subject: checkpoints' pattern '{pattern}' matches no files")
        else:
            matches = [Path(full).resolve()]
        for match in matches:
            found[match] = None
    return tuple(sorted(found, key=lambda p: natural_key(p.as_posix())))


def step_of(label: str) -> int | None:
    """The training step of a checkpoint: the last number in its label (None without one)."""
    numbers = _DIGITS.findall(label)
    return int(numbers[-1]) if numbers else None


def sweep_labels(paths: Sequence[Path], base: Path) -> list[str]:
    """One label per checkpoint: the file stem, or the relative path when stems repeat."""
    stems = [p.name.split(".")[0] if p.name.endswith(".safetensors") else p.stem for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    labels = []
    for path, stem in zip(paths, stems):
        try:
            relative = path.parent.relative_to(base) / stem
        except ValueError:
            relative = path.parent / stem
        labels.append(relative.as_posix())
    return labels


@dataclass(frozen=True)
class Target:
    """One checkpoint (subject) a claim file is checked against."""

    spec: SubjectSpec | None
    #: the sweep label (checkpoint stem) or None when the file has a single subject
    label: str | None = None
    step: int | None = None

    def name(self, claim_id: str) -> str:
        """The check's name: ``claim-id`` or ``claim-id[step_5000]``."""
        return claim_id if self.label is None else f"{claim_id}[{self.label}]"

    def expects_failure(self, entry: ClaimEntry) -> bool:
        """Whether ``holds_from`` says this claim does not hold yet at this step."""
        holds_from = entry.options.get("holds_from")
        return holds_from is not None and self.step is not None and self.step < holds_from


def targets(claim_file: ClaimFile, override: Path | None = None) -> list[Target]:
    """The subjects to check the file against: its sweep, its subject, or ``override``."""
    from interp_assert.loading.subject import SubjectSpec

    spec = claim_file.subject
    if override is not None:
        base = spec or SubjectSpec(search_path=claim_file.search_path)
        return [Target(replace(base, checkpoint=override), None, step_of(override.stem))]
    if claim_file.checkpoints and spec is not None:
        labels = sweep_labels(claim_file.checkpoints, claim_file.path.resolve().parent)
        return [Target(replace(spec, checkpoint=path), label, step_of(label))
                for path, label in zip(claim_file.checkpoints, labels)]
    step = step_of(spec.checkpoint.stem) if spec is not None and spec.checkpoint else None
    return [Target(spec, None, step)]


# -- one claim on one target ---------------------------------------------------------------------
def uses_baseline(entry: ClaimEntry) -> bool:
    """Whether the claim's sentence refers to ``baseline`` (its recorded value)."""
    from interp_assert.language import ast

    if entry.parsed is None:
        return False
    pending: list[Any] = list(entry.parsed.claim.expressions())
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Ref) and node.name == "baseline":
            return True
        if isinstance(node, ast.Node | ast.Members):
            pending.extend(v for v in vars(node).values() if isinstance(v, ast.Node))
            pending.extend(a for v in vars(node).values() if isinstance(v, tuple)
                           for a in v if isinstance(a, ast.Node))
    return False


def run_claim(claim_file: ClaimFile, entry: ClaimEntry, target: Target, *,
              plot_dir: Path | None = None, plots: str = "failed",
              baselines: BaselineStore | None = None, update: bool = False,
              record_command: str = "") -> tuple[ClaimResult, BaselineEntry | None]:
    """Evaluate one claim on one target, judged against its baseline entry when given.

    Without an entry a claim fails with ``record_command`` (unless ``update``: then a claim
    relative to ``baseline`` is judged against the value it measures now).
    """
    from interp_assert.evaluate.evaluation import evaluate_entry

    name = target.name(entry.id)
    recorded = baselines.get(claim_file.path, name) if baselines is not None else None
    value = recorded.value if recorded is not None else None
    if baselines is not None and recorded is None:
        value = math.nan
        if update and uses_baseline(entry):
            first = evaluate_entry(claim_file, entry, target.spec, None, "never", baseline=value)
            if first.outcome is not None and first.outcome.value is not None:
                value = first.outcome.value
    result = evaluate_entry(claim_file, entry, target.spec, plot_dir, plots, baseline=value)
    outcome = result.outcome
    if baselines is None or outcome is None:
        return result, recorded
    if recorded is not None:
        outcome.notes.append(recorded.describe(outcome.value))
    elif not update:
        assert baselines is not None
        outcome.passed = False
        result.status = "failed"
        outcome.notes.append(f"no baseline value for '{name}' in {baselines.shown}; record it "
                             f"with: {record_command or baselines.command_hint(name)}")
    return result, recorded


# -- trajectories --------------------------------------------------------------------------------
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
    from interp_assert.output.results import save_figure

    return save_figure(figure, path)


def file_stem(file: str) -> str:
    """Folder name for a claim file's artifacts: its relative path with '/' as '__'."""
    return file.replace("/", "__").removesuffix(".yaml").removesuffix(".yml")


def safe_name(name: str) -> str:
    """A claim id as a file name."""
    return re.sub(r"[^A-Za-z0-9_.\-\[\]=]+", "_", name)


def draw_trajectories(records: Iterable[dict[str, Any]], artifacts: Path) -> list[Trajectory]:
    """Trajectories of every sweep, plotted to ``<artifacts>/trajectories/<file>/<claim>.png``."""
    out = trajectories(records)
    for trajectory in out:
        if len(trajectory.labels) < 2:
            continue
        path = (artifacts / "trajectories" / file_stem(trajectory.file)
                / f"{safe_name(trajectory.claim_id)}.png")
        try:
            trajectory.plot = plot_trajectory(trajectory, path)
        except Exception:  # a plot never breaks a run; the values are in the results
            trajectory.plot = None
    return out
