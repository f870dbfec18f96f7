"""Targets: the checkpoints a claim file is checked against (its subject, a sweep, or an
override).

``subject: checkpoints: ckpts/step_*.pt`` (a glob, a path, or a list of them) makes every claim
one check per checkpoint, labelled by the checkpoint's file stem (``step_5000``) and ordered
naturally (``step_200`` before ``step_1000``). The step of a checkpoint is the last number in
its stem. A claim with ``holds_from: 2000`` is expected to fail before step 2000 (an expected
failure) and must hold from step 2000 on.

This module imports nothing heavy at import time.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interp_assert.loading.source_files import not_a_file, safe_resolve
from interp_assert.resources import MAX_CHECKPOINTS, MAX_GLOB_VISITS

if TYPE_CHECKING:
    from interp_assert.loading.claim_file import ClaimEntry, ClaimFile
    from interp_assert.loading.subject import SubjectSpec

_DIGITS = re.compile(r"(\d+)")


# -- checkpoint series ---------------------------------------------------------------------------
def natural_key(text: str) -> tuple[Any, ...]:
    """Sort key that orders embedded numbers by value: step_200 < step_1000."""
    parts = _DIGITS.split(text)
    return tuple(int(part) if i % 2 else part.lower() for i, part in enumerate(parts))


def expand_checkpoints(patterns: Sequence[str], base: Path) -> tuple[Path, ...]:
    """Paths and globs (relative to ``base``) as absolute paths, deduplicated, in natural order.

    Raises ValueError naming the first pattern that matches nothing, starts at the filesystem
    root, visits more than MAX_GLOB_VISITS files and folders, or matches more than
    MAX_CHECKPOINTS files.
    """
    found: dict[Path, None] = {}
    for pattern in patterns:
        full = os.path.join(base, os.path.expanduser(pattern))
        if glob.has_magic(pattern):
            matches = bounded_glob(full, pattern)
            if not matches:
                raise ValueError(f"'subject: checkpoints' pattern '{pattern}' matches no files")
        else:
            matches = [safe_resolve(Path(full))]
        for match in matches:
            found[match] = None
        if len(found) > MAX_CHECKPOINTS:
            raise ValueError(f"'subject: checkpoints' names more than {MAX_CHECKPOINTS:,} "
                             "checkpoints")
    return tuple(sorted(found, key=lambda p: natural_key(p.as_posix())))


def bounded_glob(full: str, pattern: str) -> list[Path]:
    """The regular files matching the glob ``full`` (``**`` for any folders), found by a walk
    that follows no folder links and visits at most MAX_GLOB_VISITS entries."""
    parts = Path(os.path.normpath(full)).parts
    fixed = next(i for i, part in enumerate((*parts, "*")) if glob.has_magic(part))
    top, rest = Path(*parts[:fixed]), parts[fixed:]
    if top.parent == top:
        raise ValueError(f"'subject: checkpoints' pattern '{pattern}' searches from the "
                         "filesystem root; name the folder the checkpoints are in")
    deep = "**" in rest
    visits, matches = 0, []
    for folder, subfolders, names in os.walk(top, followlinks=False):
        relative = Path(folder).relative_to(top).parts
        visits += 1 + len(subfolders) + len(names)
        if visits > MAX_GLOB_VISITS:
            raise ValueError(f"'subject: checkpoints' pattern '{pattern}' would look at more "
                             f"than {MAX_GLOB_VISITS:,} files and folders under {top}; name a "
                             "narrower folder")
        if not deep and len(relative) >= len(rest) - 1:
            subfolders[:] = []  # deeper folders cannot match
        subfolders[:] = [d for d in subfolders if not d.startswith(".") or any(
            p.startswith(".") for p in rest)]
        for name in names:
            if _match(rest, (*relative, name)):
                path = Path(folder, name)
                if not_a_file(path) is None:
                    matches.append(safe_resolve(path))
    return matches


def _match(pattern: Sequence[str], parts: Sequence[str]) -> bool:
    """Whether path ``parts`` match glob ``pattern`` parts (``**``: any folders, hidden names
    only where the pattern part starts with a dot, as :mod:`glob` does)."""
    if not pattern:
        return not parts
    if pattern[0] == "**":
        return _match(pattern[1:], parts) or (
            bool(parts) and not parts[0].startswith(".") and _match(pattern, parts[1:]))
    if not parts or (parts[0].startswith(".") and not pattern[0].startswith(".")):
        return False
    return fnmatch.fnmatchcase(parts[0], pattern[0]) and _match(pattern[1:], parts[1:])


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
