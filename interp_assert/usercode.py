"""Importing and calling user code (loaders, callables, metrics) with errors trimmed to the
user's own frames."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from interp_assert.errors import InterpAssertError, SpecError, TimeLimitError, UserCodeError

_OUR_PACKAGES = (str(Path(__file__).resolve().parent),)


def project_root(start: Path) -> Path:
    """The nearest folder at or above ``start`` holding pyproject.toml, setup.cfg or .git."""
    for folder in (start, *start.parents):
        if any((folder / marker).exists() for marker in ("pyproject.toml", "setup.cfg", ".git")):
            return folder
    return start


def resolve_callable(reference: str, search_path: Sequence[Path], what: str) -> Callable:
    """Import ``package.module:function`` or ``path/to/file.py:function``.

    Modules are looked up on ``sys.path`` first, then in ``search_path`` (the claim file's
    folder and its project root by default).
    """
    module_name, sep, attribute = reference.rpartition(":")
    if not sep or not module_name or not attribute:
        raise SpecError(f"{what} '{reference}' must look like 'package.module:function' or "
                        "'path/to/file.py:function'")
    try:
        if module_name.endswith(".py"):
            module = _import_file(module_name, search_path)
        else:
            module = _import_module(module_name, search_path)
    except (UserCodeError, SpecError):  # e.g. file.py not found: a problem of the reference
        raise
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and not module_name.startswith(missing) and missing != module_name:
            # the user's module was found; something it imports was not
            raise SpecError(f"{what} '{reference}': module '{module_name}' imports "
                            f"'{missing}', which is not installed", hint=f"pip install the "
                            f"package that provides '{missing}'") from None
        raise SpecError(f"{what} '{reference}': module '{module_name}' not found ({exc})",
                        hint="install it, or put it next to the claim file or in the project "
                             "root") from None
    except Exception as exc:
        raise user_code_error(exc, f"importing {what} '{reference}' failed") from None
    try:
        target = module
        for part in attribute.split("."):
            target = getattr(target, part)
    except AttributeError:
        from interp_assert.errors import did_you_mean

        public = [n for n in dir(module) if not n.startswith("_")]
        raise SpecError(f"{what} '{reference}': '{module_name}' has no '{attribute}'"
                        + did_you_mean(attribute, public)) from None
    if not callable(target):
        raise SpecError(f"{what} '{reference}' is not callable")
    return target


def _import_module(name: str, search_path: Sequence[Path]) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not name.startswith(exc.name):
            raise  # a dependency of the user's module is missing: report it as is
    for folder in search_path:
        if (folder / Path(*name.split(".")[:1])).exists() or (
                folder / (name.split(".")[0] + ".py")).exists():
            if str(folder) not in sys.path:
                sys.path.insert(0, str(folder))
            return importlib.import_module(name)
    return importlib.import_module(name)


def _import_file(filename: str, search_path: Sequence[Path]) -> Any:
    for folder in search_path:
        path = (folder / filename).resolve()
        if path.exists():
            break
    else:
        raise SpecError(f"file '{filename}' not found (looked in "
                        + ", ".join(str(f) for f in search_path) + ")")
    module_name = "interp_assert_user." + "_".join(path.with_suffix("").parts[-3:])
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def is_user_frame(filename: str) -> bool:
    """Whether a traceback frame is the user's own code: not interp-assert, not an installed
    library, not the standard library (nor importlib's frozen frames)."""
    import site

    library = (*_OUR_PACKAGES, sys.prefix, sys.base_prefix, *site.getsitepackages())
    return not filename.startswith(library) and not filename.startswith("<") and (
        "importlib" not in filename)


def user_code_error(exc: BaseException, what: str) -> UserCodeError:
    """Wrap an exception from user code, keeping only the user's frames of the traceback."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if is_user_frame(f.filename)]
    trimmed = "".join(traceback.format_list(frames[-6:]))
    detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    error = UserCodeError(f"{what}: {detail}", hint="")
    error.user_traceback = trimmed  # type: ignore[attr-defined]
    if trimmed:
        error.message += "\n  user traceback (most recent call last):\n" + "\n".join(
            "    " + line for line in trimmed.rstrip().splitlines())
    return error


TIMEOUT_ENV = "INTERP_ASSERT_TIMEOUT"


def parse_timeout(value: object, source: str) -> float | None:
    """Seconds from ``60``, ``2.5`` or ``none``/``0`` (no limit); anything else is refused."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "0")):
        return None
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = float("nan")
    if isinstance(value, bool) or not 0 <= seconds < float("inf"):
        raise InterpAssertError(f"{source}: a time limit is a number of seconds, not {value!r}",
                                hint="write e.g. 60 (seconds), or none")
    return seconds or None


def default_timeout() -> float | None:
    """The time limit from the environment variable INTERP_ASSERT_TIMEOUT (None: no limit)."""
    return parse_timeout(os.environ.get(TIMEOUT_ENV), TIMEOUT_ENV)


class _Expired(BaseException):
    """Raised in user code by the watchdog; a BaseException, so that ``except Exception`` in
    user code does not swallow it."""


_LIMIT = threading.local()


@contextlib.contextmanager
def time_limit(seconds: float | None, what: str) -> Iterator[None]:
    """User code called inside (``call_user``: loaders, callables, metrics, generators) may run
    ``seconds`` in all, its calls added up (the library's own work does not count); past
    that it is stopped and raises :class:`TimeLimitError` with the time it ran.

    On POSIX, in the main thread, a ``SIGALRM`` watchdog (``signal.setitimer``) interrupts the
    user code; it takes effect between Python bytecodes, so a long call into C (one large
    tensor operation) ends first. Elsewhere (another thread, Windows) user code is not
    interrupted: a call that ran past the limit raises the error when it returns.
    """
    if seconds is None:
        yield
        return
    previous = getattr(_LIMIT, "current", None)
    _LIMIT.current = [0.0, seconds, what]  # seconds used so far, the limit, the claim
    try:
        yield
    finally:
        _LIMIT.current = previous


def _can_interrupt() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def _watchdog(remaining: float) -> Iterator[None]:
    """Raise :class:`_Expired` in this (main) thread after ``remaining`` seconds."""
    if not _can_interrupt() or getattr(_LIMIT, "armed", False):
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise _Expired()

    old_handler = signal.signal(signal.SIGALRM, expire)
    _LIMIT.armed = True
    try:
        signal.setitimer(signal.ITIMER_REAL, max(remaining, 1e-3))
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        _LIMIT.armed = False


def _time_limit_error(what: str) -> TimeLimitError:
    used, seconds, _ = _LIMIT.current
    return TimeLimitError(
        f"{what} was stopped: the claim's user code ran {used:.1f} s, over its time limit of "
        f"{seconds:g} s",
        hint="make it faster, or raise the limit: 'timeout:' on the claim, --interp-timeout "
             f"(pytest), --timeout (interp-assert check) or {TIMEOUT_ENV}")


def call_user(function: Callable, what: str, /, *args: Any, **kwargs: Any) -> Any:
    """Call user code, converting its exceptions to :class:`UserCodeError`, within the time
    limit of the claim being measured (:func:`time_limit`). A ``KeyboardInterrupt`` from it is
    let through: it stops the run as Ctrl-C does."""
    limit = getattr(_LIMIT, "current", None)
    if limit is None or getattr(_LIMIT, "inside", False):  # user code calling back
        return _call(function, what, *args, **kwargs)
    remaining = limit[1] - limit[0]
    if remaining <= 0:
        raise _time_limit_error(what)
    started, expired = time.monotonic(), False
    _LIMIT.inside = True
    try:
        with _watchdog(remaining):
            result = _call(function, what, *args, **kwargs)
    except _Expired:
        expired = True
    finally:
        _LIMIT.inside = False
        limit[0] += time.monotonic() - started
    if expired or limit[0] > limit[1]:  # not interrupted (another thread): when it returns
        raise _time_limit_error(what)
    return result


def _call(function: Callable, what: str, /, *args: Any, **kwargs: Any) -> Any:
    try:
        return function(*args, **kwargs)
    except (UserCodeError, _Expired):
        raise
    except SystemExit as exc:  # sys.exit() in user code ends that claim, never the run
        raise user_code_error(exc, f"{what} called sys.exit({exc.code!r})") from None
    except Exception as exc:
        raise user_code_error(exc, f"{what} raised") from None


def accepts(function: Callable, name: str) -> bool:
    """Whether ``function`` takes a parameter called ``name`` (or **kwargs)."""
    try:
        params = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
