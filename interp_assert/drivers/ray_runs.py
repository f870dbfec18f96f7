"""Runs on a Ray cluster: one Ray task per (claim file, target).

``interp-assert check --ray [ADDRESS]`` and ``pytest --interp-ray=auto|ADDRESS`` hand each
(claim file, checkpoint) group of the checks that will run to a Ray task. The task builds its
own :class:`~interp_assert.run.runner.Runner` (and so its own plan), runs the group's checks
and returns, per check, the JSON record (``Runner.record``), the result (for the terminal
report) and the plot's bytes. The driver merges them in the order of the serial run, so the
JSON results are byte-identical; trajectories, the baseline update and the document are written
once, on the driver, by ``Runner.finish``.

A task whose worker dies is retried once (``max_retries=1``); if it fails again its claims are
reported as errors that say so. ``ray`` is imported only here, and only when a run asks for it.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interp_assert.errors import InterpAssertError
from interp_assert.evaluate import cache_config
from interp_assert.judge.verdict import ClaimResult
from interp_assert.loading.subject import clear_subjects
from interp_assert.loading.targets import Target
from interp_assert.resources import memory_limit, set_memory_limit
from interp_assert.run.runner import Check, Runner, RunOptions
from interp_assert.usercode import default_timeout

#: one evaluated check as a task returns it: JSON record, result, plot bytes (or None)
Returned = tuple[dict[str, Any], ClaimResult, bytes | None]


class RemoteError(InterpAssertError):
    """A claim's error as a Ray worker reported it: its text, unchanged (error classes with
    their own constructor arguments need not survive pickling)."""

    def __init__(self, text: str, kind: str = "InterpAssertError") -> None:
        super().__init__(text)
        self.text, self.kind = text, kind

    def __str__(self) -> str:
        return self.text

    def __reduce__(self) -> tuple[Any, ...]:
        return (RemoteError, (self.text, self.kind))


@dataclass
class Group:
    """The checks of one claim file on one target: one Ray task."""

    path: str
    target: int
    ids: list[str]
    checks: list[Check]
    gpus: float


def wants_gpu(device: str) -> bool:
    """Whether a subject's device asks for a GPU (``cuda``, ``cuda:N`` or ``auto``)."""
    return device == "auto" or device.startswith("cuda")


def groups(runner: Runner, checks: Iterable[Check], cluster_gpus: float) -> list[Group]:
    """The checks per (claim file, target), in the order they first appear."""
    found: dict[tuple[int, Target], Group] = {}
    for check in checks:
        key = (id(check.claim_file), check.target)
        if key not in found:
            targets = list(dict.fromkeys(c.target for c in runner.checks(check.claim_file)))
            spec = check.target.spec
            gpus = 1.0 if cluster_gpus >= 1 and spec and wants_gpu(spec.device) else 0.0
            found[key] = Group(str(check.claim_file.path), targets.index(check.target), [], [],
                               gpus)
        group = found[key]
        if check.entry.id not in group.ids:
            group.ids.append(check.entry.id)
            group.checks.append(check)
    return list(found.values())


# -- the worker's side -----------------------------------------------------------------------
def run_group(options: RunOptions, folder: str, limit: int | None,
              cache: tuple[Path, int | None] | None, path: str, target: int, ids: list[str],
              commands: dict[str, str]) -> list[Returned]:
    """Evaluate one group's checks in a Ray worker, as the serial run would on the driver:
    in the driver's folder (when this host has it), with its memory and time limits and its
    result cache."""
    here = os.getcwd()
    if os.path.isdir(folder):
        os.chdir(folder)
    set_memory_limit("none" if limit is None else limit)
    cache_config.use(cache)
    options.record_command = lambda check: commands.get(check.name, "")
    try:
        runner = Runner(options)
        claim_file = runner.load(path)
        every = runner.checks(claim_file)
        wanted = list(dict.fromkeys(c.target for c in every))[target]
        chosen = [c for c in every if c.target == wanted and c.entry.id in ids]
        return [(runner.record(result), portable(result), _plot_bytes(result))
                for result in runner.run(chosen)]
    finally:
        clear_subjects()
        set_memory_limit(None)
        cache_config.reset()
        os.chdir(here)


def portable(result: ClaimResult) -> ClaimResult:
    """A copy that pickles: the error as its text, the outcome without its plot data (the
    plot was drawn in the worker)."""
    result = copy.copy(result)
    if result.error is not None:
        result.error = RemoteError(str(result.error), type(result.error).__name__)
    if result.outcome is not None:
        result.outcome = copy.copy(result.outcome)
        result.outcome.plot_data = {}
    return result


def _plot_bytes(result: ClaimResult) -> bytes | None:
    try:
        return result.plot.read_bytes() if result.plot is not None else None
    except OSError:
        return None


# -- the driver's side -----------------------------------------------------------------------
class RayRun:
    """The Ray tasks of one run: submitted at once, their results read in the run's order."""

    def __init__(self, runner: Runner, checks: Iterable[Check], address: str = "auto") -> None:
        self.started = connect(address)
        import ray

        self.runner, self.checks = runner, list(checks)
        self._ray = ray
        self._results: dict[tuple[str, str, str | None], tuple[ClaimResult, dict[str, Any]]] = {}
        cluster_gpus = ray.cluster_resources().get("GPU", 0)
        self.groups = groups(runner, self.checks, cluster_gpus)
        options = dataclasses.replace(runner.options, record_command=None,
                                      timeout=runner.options.timeout or default_timeout())
        self._task = ray.remote(run_group)
        self._arguments = (options, os.getcwd(), memory_limit(), cache_config.setting())
        self._pending: dict[tuple[str, str, str | None], tuple[Group, Any]] = {}
        for group in self.groups:
            self._submit(group, retries=1)

    def _submit(self, group: Group, retries: int) -> Any:
        """One task for ``group``: its checks are pending on its result."""
        commands = {c.name: self.runner._record_command(c) for c in group.checks}
        future = self._task.options(num_cpus=1, num_gpus=group.gpus, max_retries=retries,
                                    retry_exceptions=False).remote(
            *self._arguments, group.path, group.target, group.ids, commands)
        for check in group.checks:
            self._pending[check.key] = (group, future)
        return future

    def result(self, check: Check) -> tuple[ClaimResult, dict[str, Any]]:
        """A check's result and JSON record (waiting for its group's task)."""
        if check.key not in self._results:
            if check.key not in self._pending:
                result = self.runner.result(check)  # not dispatched: evaluated here
                return result, self.runner.record(result)
            self._collect(*self._pending[check.key])
        return self._results[check.key]

    def results(self) -> Iterator[tuple[ClaimResult, dict[str, Any]]]:
        """Every check's result and record, in the order of the checks."""
        try:
            for check in self.checks:
                yield self.result(check)
        except KeyboardInterrupt:
            self.cancel()
            raise

    def _collect(self, group: Group, future: Any, alone: bool = False) -> None:
        """A task's results; when its worker died twice, each of its claims runs alone
        (once), so that only the claim that kills its process is reported."""
        ray = self._ray
        try:
            returned: list[Returned] = ray.get(future)
        except ray.exceptions.RayError as exc:
            if len(group.checks) > 1 and not isinstance(exc, ray.exceptions.RayTaskError):
                singles = [dataclasses.replace(group, ids=[c.entry.id], checks=[c])
                           for c in group.checks]
                for single, single_future in [(g, self._submit(g, 0)) for g in singles]:
                    self._collect(single, single_future, alone=True)
                return
            message = _failure(exc, group, alone)
            for check in group.checks:
                result = self.runner.crashed(check, message)
                self._results[check.key] = (result, self.runner.record(result))
            return
        by_id = {result.claim_id: (record, result, plot) for record, result, plot in returned}
        for check in group.checks:
            record, result, plot = by_id[check.entry.id]
            if plot is not None and result.plot is not None and not result.plot.exists():
                result.plot.parent.mkdir(parents=True, exist_ok=True)
                result.plot.write_bytes(plot)  # drawn on another host
            self._results[check.key] = (result, record)

    def cancel(self) -> None:
        """Stop the tasks still running (an interrupted run)."""
        for group, future in {id(f): (g, f) for g, f in self._pending.values()}.values():
            if group.checks[0].key not in self._results:
                with contextlib.suppress(Exception):  # already finished or gone
                    self._ray.cancel(future, force=True)

    def close(self) -> None:
        """Disconnect, when this run connected (or started a local cluster)."""
        if self.started:
            self._ray.shutdown()


def connect(address: str) -> bool:
    """Connect to the cluster at ``address``; ``auto``: the running one (``RAY_ADDRESS``, or a
    ``ray start`` on this host), else a new local one. False when already connected."""
    try:
        import ray
    except ImportError:
        raise InterpAssertError("running on Ray needs the 'ray' package",
                                hint="pip install 'interp-assert[ray]'") from None
    if ray.is_initialized():
        return False
    try:
        if address == "auto":
            ray.init(configure_logging=False)
        else:
            ray.init(address=address, configure_logging=False)
    except Exception as exc:  # no cluster there, a refused token, a version mismatch
        raise InterpAssertError(
            f"cannot connect to the Ray cluster at '{address}': {exc}",
            hint="start one with 'ray start --head' and pass its address (host:6379 or "
                 "ray://host:10001), or pass 'auto' to start a local one") from None
    return True


def _failure(exc: Exception, group: Group, alone: bool) -> str:
    """Why a task gave no results, for the report of each of its claims."""
    import ray

    first = (str(exc).strip().splitlines() or [""])[0]
    where = f"the Ray task running {group.path}"
    if group.checks and group.checks[0].target.label:
        where += f" on {group.checks[0].target.label}"
    if isinstance(exc, ray.exceptions.RayTaskError):
        return f"{where} failed: {type(exc).__name__}: {first}"
    if alone:
        return (f"{where} died twice (the second time retried), then again with this claim "
                f"alone ({type(exc).__name__}: {first})")
    return f"{where} died, and again when retried ({type(exc).__name__}: {first})"


def ray_results(runner: Runner, checks: list[Check],
                address: str) -> Iterator[tuple[ClaimResult, dict[str, Any]]]:
    """Every check's result and record from Ray, in the order of ``checks`` (the CLI's)."""
    run = RayRun(runner, checks, address)
    try:
        yield from run.results()
    finally:
        run.close()

