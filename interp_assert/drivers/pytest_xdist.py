"""pytest-xdist integration: claims are distributed by checkpoint, so that each worker loads a
checkpoint (and runs its planned forward pass) once.

With ``-n N`` (or ``-n auto``) and no explicit ``--dist``, interp-assert's scheduler replaces
xdist's ``load``: it is xdist's ``loadscope`` scheduler with the scope of a node id being

* ``claim-id[step_5000]`` (a sweep item): its checkpoint label, across all claim files;
* ``claim-id`` of a claim file with one subject: the claim file;
* any other test: the test itself (distributed one by one, as with ``load``).

``--dist loadgroup`` uses the same scheduler, with tests that xdist marks ``...@group`` (its
``xdist_group`` mark) grouped by that name; claim items carry ``xdist_group`` marks named
after their checkpoint, so both ways agree. (With pytest 9, xdist 3.8 can no longer add the
``@group`` suffix, so its own loadgroup scheduler no longer groups anything; this one still
groups claims by checkpoint.) Any other explicit ``--dist`` is respected.
"""

from __future__ import annotations

import contextlib
import os
import shlex
from pathlib import PurePosixPath
from typing import Any

import pytest

from interp_assert.drivers.pytest_keys import claim_patterns


def checkpoint_scope(nodeid: str, patterns: list[str]) -> str:
    """The work unit of a node id: an ``xdist_group`` (``...@group``, with ``--dist
    loadgroup``), a checkpoint label, a claim file, or the test itself."""
    if nodeid.rfind("@") > nodeid.rfind("]"):
        return "group " + nodeid.rsplit("@", 1)[1]
    path, sep, name = nodeid.partition("::")
    if not sep or "::" in name or not any(PurePosixPath(path).match(p) for p in patterns):
        return nodeid
    if name.endswith("]") and "[" in name:
        return "checkpoint " + name[name.rindex("[") + 1:-1]
    return "claim file " + path


def dist_chosen(config: pytest.Config) -> bool:
    """Whether the user asked for a distribution mode (``--dist``, ``-d``) explicitly."""
    words = [*config.invocation_params.args, *shlex.split(os.environ.get("PYTEST_ADDOPTS", ""))]
    with contextlib.suppress(ValueError):
        words += list(config.getini("addopts"))
    return any(word in ("--dist", "-d", "--distload") or word.startswith("--dist=")
               for word in map(str, words))


def make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's loadscope scheduler with :func:`checkpoint_scope` as its scope."""
    from xdist.scheduler import LoadScopeScheduling

    patterns = claim_patterns(config)

    class CheckpointScheduling(LoadScopeScheduling):
        """Whole checkpoints (or claim files) per worker; other tests one by one."""

        def _split_scope(self, nodeid: str) -> str:
            return checkpoint_scope(nodeid, patterns)

        def remove_node(self, node: Any) -> str | None:
            """xdist's, except that the test a crashed worker was running is not run again.

            loadscope puts that test back into the queue with the rest of its work unit
            (pytest-xdist#1371), so a claim that kills its worker (a segfault or the OOM
            killer in user code) would kill every replacement until --max-worker-restart is
            spent, and the claims after it on that checkpoint would never run.
            """
            workload = self.assigned_work.pop(node)
            pending = [(unit, nodeid) for unit in workload.values()
                       for nodeid, done in unit.items() if not done]
            if not pending:
                return None
            unit, crashed = pending[0]
            unit[crashed] = True  # xdist reports it as failed ("worker crashed while ...")
            self.workqueue.update((scope, unit) for scope, unit in workload.items()
                                  if not all(unit.values()))
            for other in self.assigned_work:
                self._reschedule(other)
            return crashed

    return CheckpointScheduling(config, log)


class XdistHooks:
    """Registered only when pytest-xdist is installed."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(optionalhook=True)
    def pytest_handlecrashitem(self, crashitem: str, report: pytest.TestReport,
                               sched: Any) -> None:
        """A claim whose worker died gets an error record, so the results name it."""
        from interp_assert.drivers.pytest_session import session_of

        path = PurePosixPath(crashitem.partition("::")[0])
        if any(path.match(pattern) for pattern in claim_patterns(self.config)):
            session_of(self.config).crashed(
                crashitem, f"the process evaluating it died ({report.longrepr})")

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """Add a finished worker's phase times to the run's (printed with ``-v``)."""
        phases = getattr(node, "workeroutput", {}).get("interp_phases")
        if phases is None:
            return
        from interp_assert.drivers.pytest_session import session_of

        session = session_of(self.config)
        session.runner.options.progress.add(phases["seconds"], phases["passes"],
                                            phases["samples"])
        session.workers += 1

    @pytest.hookimpl(optionalhook=True, tryfirst=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        dist = config.getoption("dist")
        if dist == "loadgroup" or (dist == "load" and not dist_chosen(config)):
            return make_scheduler(config, log)
        return None
