"""Baselines: every claim's measured value recorded in a JSON file, to compare later runs with.

The file maps claim files (paths relative to the baseline file's folder) to check names
(``claim-id`` or ``claim-id[step_5000]``) to the recorded value and the checkpoint it came
from::

    {"schema": "interp-assert/baseline/1",
     "files": {"specs/adder.claims.yaml": {
         "exact-match": {"checkpoint": "adder.pt", "sha256": "…", "value": 0.9952}}}}

It is written sorted and indented (one value per line, so diffs stay small) and atomically.
An update changes only the entries of the checks that ran and measured a value.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interp_assert.errors import InterpAssertError, OutputError
from interp_assert.output.files import write_error, write_json

SCHEMA = "interp-assert/baseline/1"


@dataclass(frozen=True)
class BaselineEntry:
    """A recorded value and the checkpoint that produced it."""

    value: float
    checkpoint: str | None = None
    sha256: str | None = None
    #: a confidence claim's per-sample values (output/unit_samples.py), and their dataset
    samples: str | None = None
    dataset: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {"value": self.value, "checkpoint": self.checkpoint, "sha256": self.sha256}
        if self.samples is not None:  # only confidence claims: older files read the same
            out.update(samples=self.samples, dataset=self.dataset)
        return out

    def unit_samples(self) -> dict[str, Any] | None:
        """The recorded per-sample values, {"samples": array, "dataset": text}, if any."""
        from interp_assert.output.unit_samples import decode_samples

        if self.samples is None:
            return None
        samples = decode_samples(self.samples)
        return None if samples is None else {"samples": samples, "dataset": self.dataset}

    def describe(self, now: float | None) -> str:
        """One report line: the recorded value, where it came from, and the change."""
        from interp_assert.claims.outcome import fmt

        origin = self.checkpoint or "?"
        if self.sha256:
            origin += f", sha256 {self.sha256[:12]}"
        change = ""
        if now is not None and math.isfinite(now):
            change = f"; change {now - self.value:+.4g}"
        return f"baseline {fmt(self.value)} (recorded on {origin}){change}"


@dataclass
class BaselineStore:
    """A baseline file in memory: ``files[file key][check name] -> entry``."""

    path: Path
    shown: str = ""
    files: dict[str, dict[str, BaselineEntry]] = field(default_factory=dict)
    #: how to re-record a check, e.g. "pytest {nodeid} --interp-baseline b.json ..."
    command: str = ""

    @classmethod
    def load(cls, path: Path, shown: str | None = None, command: str = "") -> BaselineStore:
        """Read ``path``; a missing file is an empty baseline."""
        store = cls(path.resolve(), shown or str(path), {}, command)
        if not path.exists():
            return store
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InterpAssertError(f"cannot read baseline file {store.shown}: {exc}",
                                    hint="fix or delete it, then record it again with "
                                         "--interp-baseline-update") from None
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise InterpAssertError(f"{store.shown} is not an interp-assert baseline file "
                                    f"(schema {SCHEMA!r})")
        for file, checks in sorted(data.get("files", {}).items()):
            store.files[file] = {}
            for name, entry in checks.items():
                value = entry.get("value") if isinstance(entry, dict) else None
                if isinstance(value, int | float) and not isinstance(value, bool):
                    store.files[file][name] = BaselineEntry(
                        float(value), entry.get("checkpoint"), entry.get("sha256"),
                        _text(entry.get("samples")), _text(entry.get("dataset")))
        return store

    def file_key(self, claim_file: str | Path) -> str:
        """A claim file's key: its path relative to the baseline file's folder."""
        return Path(os.path.relpath(Path(claim_file).resolve(), self.path.parent)).as_posix()

    def get(self, claim_file: str | Path, name: str) -> BaselineEntry | None:
        return self.files.get(self.file_key(claim_file), {}).get(name)

    def command_hint(self, name: str) -> str:
        return self.command.format(name=name) if self.command else (
            f"interp-assert check FILE --baseline {self.shown} --baseline-update --select "
            f"'{name}'")

    def update(self, records: Iterable[dict[str, Any]], root: Path) -> int:
        """Record the value of every record that measured one; returns how many changed."""
        changed = 0
        for item in records:
            value = item.get("value")
            if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(
                    value):
                continue
            key = self.file_key(root / item["file"])
            entry = BaselineEntry(float(value), item.get("checkpoint"), item.get("sha256"),
                                  _text(item.get("samples")), _text(item.get("dataset")))
            checks = self.files.setdefault(key, {})
            if checks.get(item["name"]) != entry:
                checks[item["name"]] = entry
                changed += 1
        return changed

    def as_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "files": {
            file: {name: entry.as_dict() for name, entry in sorted(checks.items())}
            for file, checks in sorted(self.files.items()) if checks}}

    def save(self) -> None:
        """Write the file atomically, keys sorted."""
        write_json(self.path, self.as_dict())


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


#: how long an update waits for another process's update of the same file
LOCK_TIMEOUT = 600.0


def record_values(path: Path, shown: str, records: Iterable[dict[str, Any]],
                  root: Path) -> tuple[int, int]:
    """Record the measured values of ``records`` in the baseline file at ``path`` (see
    :func:`update_baseline_file`). Returns (changed, records)."""
    changed, count, _ = update_baseline_file(path, shown, records, root)
    return changed, count


def stale_entries(store: BaselineStore, known: Mapping[str, set[str]]) -> list[tuple[str, str]]:
    """Entries no claim produces any more: (file key, check name). ``known`` maps the file
    keys of the claim files this run read to every check name they have now; an entry of a
    claim file that no longer exists is stale too. Other files' entries are not judged."""
    stale = []
    for file, checks in sorted(store.files.items()):
        if file in known:
            stale += [(file, name) for name in sorted(checks) if name not in known[file]]
        elif not (store.path.parent / file).exists():
            stale += [(file, name) for name in sorted(checks)]
    return stale


def update_baseline_file(path: Path, shown: str, records: Iterable[dict[str, Any]], root: Path,
                         known: Mapping[str, set[str]] | None = None, prune: bool = False
                         ) -> tuple[int, int, list[tuple[str, str]]]:
    """Record the measured values of ``records`` in the baseline file at ``path``: read,
    update and write under a file lock, so that concurrent updaters (CLI runs, pytest runs,
    xdist controllers) never lose each other's entries. With ``known`` (claim file key ->
    its check names now) the stale entries are found, and removed when ``prune``. Returns
    (changed, records, stale entries)."""
    from filelock import FileLock, Timeout

    records = list(records)
    lock = FileLock(str(path.with_name(f".{path.name}.lock")), timeout=LOCK_TIMEOUT)
    try:
        with lock:
            store = BaselineStore.load(path, shown)  # what is there now, others' entries too
            changed = store.update(records, root)
            stale = stale_entries(store, known) if known is not None else []
            for file, name in stale if prune else ():
                del store.files[file][name]
            store.save()
    except OutputError:
        raise
    except OSError as exc:  # the lock file cannot be made (a read-only folder...)
        raise write_error(path, exc) from None
    except Timeout:
        raise InterpAssertError(f"baseline {shown}: another run held its lock for "
                                f"{LOCK_TIMEOUT:.0f} s; not updated",
                                hint="run the update again when the other run has finished"
                                ) from None
    return changed, len(records), stale
