"""pytest entry point of interp-assert (``pytest11``).

Only wires options and hooks. It imports nothing heavy: the library is imported when the
first claim file is collected, torch and matplotlib only when a claim is evaluated. The hooks
that run for every test only look for attributes that claim items set.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from interp_assert.drivers.pytest_keys import DEFAULT_PATTERNS, SESSION_KEY, claim_patterns
from interp_assert.drivers.pytest_sequential import add_sequential_options, set_sequential_options

if TYPE_CHECKING:
    from interp_assert.drivers.pytest_session import ClaimSession

#: plugin modules that own their own hooks (each imports nothing but pytest at start-up)
pytest_plugins = ["interp_assert.drivers.pytest_terminal",
                  "interp_assert.drivers.pytest_baselines", "interp_assert.drivers.pytest_fixtures",
                  "interp_assert.drivers.pytest_error_control"]
#: set when collection froze the objects it made (``resources.settle_gc``)
_SETTLED = pytest.StashKey[bool]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("interp-assert", "interpretability claims (interp-assert)")
    group.addoption("--interp-artifacts", metavar="DIR", default=None,
                    help="folder for plots and results (ini: interp_assert_artifacts; "
                         "default .interp-assert)")
    group.addoption("--interp-plots", choices=("failed", "all", "never"), default=None,
                    help="which claims get a diagnostic plot (ini: interp_assert_plots; "
                         "default failed)")
    group.addoption("--interp-json", metavar="FILE", default=None,
                    help="write every claim's result (per checkpoint) as JSON to FILE")
    group.addoption("--interp-checkpoint", metavar="PATH", default=None,
                    help="run every claim file against this checkpoint instead of its own "
                         "(env: INTERP_ASSERT_CHECKPOINT)")
    group.addoption("--interp-baseline", metavar="FILE", default=None,
                    help="judge claims against the values recorded in FILE (the name "
                         "'baseline' in a claim); a claim that uses it and has no recorded "
                         "value fails (ini: interp_assert_baseline)")
    group.addoption("--interp-baseline-update", action="store_true", default=False,
                    help="record the measured values of the claims that ran into the "
                         "--interp-baseline file (others are kept)")
    group.addoption("--interp-summary", action="store_true", default=False,
                    help="print a table of every claim's value and verdict at the end "
                         "(claims x checkpoints for sweeps)")
    group.addoption("--interp-report", metavar="FILE", default=None,
                    help="write the claims and their results as a document (HTML; Markdown "
                         "for *.md) to FILE; every claim gets a plot")
    group.addoption("--interp-memory-limit", metavar="SIZE", default=None,
                    help="fail a quantity early, with its estimate, when it would need more "
                         "memory than SIZE (512MB, 4GiB, 50%% of physical memory, none; ini: "
                         "interp_assert_memory_limit; env: INTERP_ASSERT_MEMORY_LIMIT; "
                         "default 50%%)")
    group.addoption("--interp-timeout", metavar="SECONDS", default=None,
                    help="stop a claim's user code (loaders, callables, metrics) after SECONDS "
                         "and report the claim as an error with the time it ran (ini: "
                         "interp_assert_timeout; env: INTERP_ASSERT_TIMEOUT; default none); a "
                         "claim's 'timeout:' wins")
    add_sequential_options(group, parser)
    group.addoption("--interp-cache", metavar="DIR", default=None,
                    help="reuse forward-pass results stored in DIR by earlier runs, and store "
                         "this run's ('off': none; ini: interp_assert_cache; env: "
                         "INTERP_ASSERT_CACHE; default off)")
    parser.addini("interp_assert_cache", "folder of the result cache (relative to the rootdir)",
                  default="")
    parser.addini("interp_assert_cache_size", "bound of the result cache (2GiB, 500MB, none)",
                  default="")
    group.addoption("--interp-ray", metavar="ADDRESS", default=None,
                    help="run each claim file and checkpoint as a task on the Ray cluster at "
                         "ADDRESS (host:6379, ray://host:10001); auto: the running one or a "
                         "new local one (pip install 'interp-assert[ray]')")
    group.addoption("--interp-device", metavar="DEVICE", default=None,
                    help="run every model on DEVICE: cpu, cuda, cuda:N, mps or auto (cuda, else "
                         "mps, else cpu); ini: interp_assert_device; env: INTERP_ASSERT_DEVICE; "
                         "default: the subject's 'device:', else cpu")
    group.addoption("--interp-dtype", metavar="DTYPE", default=None,
                    help="run every model in DTYPE: float32, bfloat16 or float16 (reductions "
                         "stay float64); ini: interp_assert_dtype; env: INTERP_ASSERT_DTYPE; "
                         "default: the subject's 'dtype:', else as loaded")
    parser.addini("interp_assert_device", "device of every model (cpu, cuda, cuda:N, mps, auto)",
                  default="")
    parser.addini("interp_assert_dtype", "dtype of every model (float32, bfloat16, float16)",
                  default="")
    parser.addini("interp_assert_timeout", "seconds the user code of one claim may run",
                  default="")
    parser.addini("interp_assert_memory_limit", "memory limit of one quantity (4GiB, 50%, none)",
                  default="")
    parser.addini("interp_assert_artifacts", "folder for interp-assert plots and results",
                  default=".interp-assert")
    parser.addini("interp_assert_plots", "failed, all or never", default="failed")
    parser.addini("interp_assert_patterns", "glob patterns of claim files", type="args",
                  default=DEFAULT_PATTERNS)
    parser.addini("interp_assert_baseline", "baseline file (relative to the rootdir)",
                  default="")
    parser.addini("interp_assert_attachments", "JUnit plot paths (plot property, "
                  "[[ATTACHMENT|...]]) relative to this folder (relative to the rootdir; "
                  "default the rootdir), or 'absolute'", default="")


def pytest_configure(config: pytest.Config) -> None:
    # before pytest's own: cleanups run last first, so this one follows its final collections
    config.add_cleanup(lambda: _unfreeze(config))
    config.addinivalue_line("markers", "interp_claim: an interp-assert claim (added to every "
                                       "claim item)")
    if config.getoption("interp_baseline_update") and not (
            config.getoption("interp_baseline") or config.getini("interp_assert_baseline")):
        raise pytest.UsageError("--interp-baseline-update needs --interp-baseline FILE")
    if config.getoption("interp_ray") and config.getoption("numprocesses", None):
        raise pytest.UsageError("--interp-ray distributes the claims itself: drop -n")
    _check_plots(config)
    _check_timeout(config)
    _set_memory_limit(config)
    set_sequential_options(config)
    _check_device(config)
    if _is_worker(config):  # threads and GPU shared among the workers of this host
        from interp_assert.loading.devices import set_worker

        worker = config.workerinput  # type: ignore[attr-defined]
        set_worker(int(str(worker["workerid"]).lstrip("gw") or 0), int(worker["workercount"]))
    _use_cache(config)
    if config.pluginmanager.hasplugin("xdist"):
        from interp_assert.drivers.pytest_xdist import XdistHooks

        config.pluginmanager.register(XdistHooks(config), "interp-assert-xdist")
    if not _is_worker(config):
        config.pluginmanager.register(_Reporting(config), "interp-assert-reporting")


def _session(config: pytest.Config) -> ClaimSession:
    from interp_assert.drivers.pytest_session import session_of

    return session_of(config)


def _check_plots(config: pytest.Config) -> None:
    plots = config.getoption("interp_plots") or config.getini("interp_assert_plots")
    if plots not in ("failed", "all", "never"):
        raise pytest.UsageError(f"interp_assert_plots must be failed, all or never, not "
                                f"{plots!r}")


def _check_timeout(config: pytest.Config) -> None:
    """Only a run that sets a time limit imports the library here (to refuse a bad value)."""
    value = config.getoption("interp_timeout") or config.getini("interp_assert_timeout")
    if not value:
        return
    from interp_assert.errors import InterpAssertError
    from interp_assert.usercode import parse_timeout

    try:
        parse_timeout(value, "--interp-timeout")
    except InterpAssertError as exc:
        raise pytest.UsageError(exc.message) from None


def _set_memory_limit(config: pytest.Config) -> None:
    """Only a run that sets a limit imports the library here (to refuse a bad value early)."""
    limit = config.getoption("interp_memory_limit") or config.getini("interp_assert_memory_limit")
    if not limit:
        return
    from interp_assert.resources import set_memory_limit

    try:
        set_memory_limit(limit)
    except ValueError as exc:
        raise pytest.UsageError(f"--interp-memory-limit: {exc}") from None
    config.add_cleanup(lambda: set_memory_limit(None))


def _check_device(config: pytest.Config) -> None:
    """A misspelt device or dtype (option, ini or environment) stops the run; a device this
    machine lacks too (only then is torch imported here)."""
    options = [config.getoption(f"interp_{key}") or config.getini(f"interp_assert_{key}")
               or None for key in ("device", "dtype")]
    if not any(options) and not any(map(os.environ.get, ("INTERP_ASSERT_DEVICE",
                                                         "INTERP_ASSERT_DTYPE"))):
        return
    from interp_assert.loading.devices import DeviceError, check_run_device

    try:
        check_run_device(config.getoption("interp_device"), config.getoption("interp_dtype"),
                         config.getini("interp_assert_device") or None,
                         config.getini("interp_assert_dtype") or None)
    except DeviceError as exc:
        raise pytest.UsageError(f"{exc.message}\n  hint: {exc.hint}") from None


def _use_cache(config: pytest.Config) -> None:
    """The result cache: --interp-cache (relative to the current folder), the ini option
    (relative to the rootdir), INTERP_ASSERT_CACHE; off otherwise."""
    from interp_assert.evaluate import cache_config

    option, ini = config.getoption("interp_cache"), config.getini("interp_assert_cache")
    folder = option or ini or os.environ.get(cache_config.ENV_VAR)
    if not folder:
        return
    if (option or ini) and not cache_config.is_off(folder):
        base = config.invocation_params.dir if option else config.rootpath
        folder = str(base / os.path.expandvars(folder))  # an absolute DIR stays as it is
    try:
        cache_config.configure(folder, config.getini("interp_assert_cache_size") or None)
    except ValueError as exc:
        raise pytest.UsageError(f"interp_assert_cache_size / {cache_config.SIZE_ENV_VAR}: "
                                f"{exc}") from None
    config.add_cleanup(cache_config.reset)


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> Any:
    patterns = claim_patterns(parent.config)
    if not any(file_path.match(pattern) for pattern in patterns):
        return None
    from interp_assert.drivers.pytest_items import ClaimFileCollector

    _session(parent.config)
    return ClaimFileCollector.from_parent(parent, path=file_path)


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Any:
    """pytest collects only regular files and folders: a claim file that is a FIFO, a device
    or a symbolic link loop would be skipped without a word. Each becomes a collector whose
    collection error says what it is."""
    report = yield
    if isinstance(collector, pytest.Directory) and report.passed:
        report.result.extend(_unreadable_claim_files(collector))
    return report


def _unreadable_claim_files(folder: pytest.Directory) -> list[Any]:
    patterns = claim_patterns(folder.config)
    found = []
    try:
        entries = list(os.scandir(folder.path))
    except OSError:
        return []
    for entry in entries:
        try:
            regular = entry.is_file() or entry.is_dir()
        except OSError:
            regular = False
        path = Path(entry.path)
        if regular or not any(path.match(pattern) for pattern in patterns):
            continue
        if folder.ihook.pytest_ignore_collect(collection_path=path, config=folder.config):
            continue
        from interp_assert.drivers.pytest_items import ClaimFileCollector

        _session(folder.config)
        found.append(ClaimFileCollector.from_parent(folder, path=path))
    return found


def pytest_collection_finish(session: pytest.Session) -> None:
    """Plan the forward passes of the claims that will run: after ``-k``, ``-m``, ``--lf``
    and every other deselection, so deselected claims register nothing."""
    claim_session = session.config.stash.get(SESSION_KEY, None)
    if claim_session is None:
        return
    checks = [item.check for item in session.items if hasattr(item, "interp_release")]
    if session.config.getoption("interp_ray") and not session.config.option.collectonly:
        claim_session.dispatch(checks, session.config.getoption("interp_ray"))
    else:
        claim_session.runner.prepare(checks)


@pytest.hookimpl(wrapper=True)
def pytest_collection(session: pytest.Session) -> Any:
    """Collect with the cyclic garbage collector paused; when claim files were collected,
    leave what was made out of later collections until the session ends (see
    ``resources.gc_paused`` and ``settle_gc``): a third of collecting 10,000 claims."""
    from interp_assert.resources import gc_paused, settle_gc

    with gc_paused():
        result = yield
        claim_session = session.config.stash.get(SESSION_KEY, None)
        if claim_session is not None:
            settle_gc()
            session.config.stash[_SETTLED] = True
            claim_session.settle_loads = True
    return result


def _unfreeze(config: pytest.Config) -> None:
    """Give what :func:`pytest_collection` kept out of collections back to the collector,
    so that a session run inside another (``pytester``) leaves it as it found it."""
    if config.stash.get(_SETTLED, False):
        import gc

        gc.unfreeze()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Attach a claim's record (and plot) to the report that concludes it, so that it reaches
    the reporting process also from an xdist worker."""
    outcome = yield
    record = getattr(item, "interp_record", None)
    if record is None:
        return
    report = outcome.get_result()
    plot = getattr(item, "interp_plot", None)
    if call.when == "call" or (call.when == "setup" and not report.passed):
        report.interp_result = record
        if plot is not None and _html_active(item.config):
            _add_html_plot(report, plot, record["name"])
    elif call.when == "teardown" and plot is not None:
        report.interp_plot = plot


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    release = getattr(item, "interp_release", None)
    if release is not None:
        release(nextitem)


def _html_active(config: pytest.Config) -> bool:
    return config.pluginmanager.hasplugin("html") and bool(config.getoption("htmlpath", None))


def _add_html_plot(report: pytest.TestReport, plot: str, name: str) -> None:
    """The plot inline in pytest-html's report (pytest-html 4 ``extras``)."""
    import base64

    try:
        from pytest_html import extras
    except ImportError:  # pragma: no cover - hasplugin said it is there
        return
    try:
        content = base64.b64encode(Path(plot).read_bytes()).decode("ascii")
    except OSError:
        return
    report.extras = [*getattr(report, "extras", []), extras.png(content, name=f"{name} plot")]


class _Reporting:
    """Gathers claim records from test reports in the reporting process (registered per
    config: ``pytest_runtest_logreport`` does not receive the config)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record = getattr(report, "interp_result", None)
        if record is not None:
            _session(self.config).add(report.nodeid, record)
        plot = getattr(report, "interp_plot", None)
        if plot is not None:
            from interp_assert.drivers.pytest_items import attachment_path

            # JUnit attachment: junitxml writes a report's captured stdout sections into the
            # testcase's system-out (with junit_logging = system-out or all), where Jenkins,
            # GitLab and Azure read [[ATTACHMENT|path]] lines
            report.sections.append(("Captured stdout interp-assert",
                                    f"[[ATTACHMENT|{attachment_path(self.config, plot)}]]\n"))


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _is_worker(session.config):
        claim_session = session.config.stash.get(SESSION_KEY, None)
        if claim_session is not None:  # the controller adds up the workers' phase times
            progress = claim_session.runner.options.progress
            session.config.workeroutput["interp_phases"] = {  # type: ignore[attr-defined]
                "seconds": progress.seconds, "passes": progress.passes,
                "samples": progress.samples}
        return
    claim_session = session.config.stash.get(SESSION_KEY, None)
    if claim_session is not None:
        written = claim_session.finish(interrupted=exitstatus == pytest.ExitCode.INTERRUPTED)
        from interp_assert.drivers.pytest_error_control import after_control

        after_control(session, claim_session)  # claims not surviving Holm/BH fail the run
        if not written and session.exitstatus in (pytest.ExitCode.OK,
                                                  pytest.ExitCode.TESTS_FAILED):
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR  # a file was not written


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        session.runner.options.progress.close()
        session.report(terminalreporter)
        if config.option.verbose > 0 and session.records:
            terminalreporter.write_line(session.phase_times())

