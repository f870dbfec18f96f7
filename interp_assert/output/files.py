"""Files the tool writes: atomically (a temp file renamed into place), under names derived
from claim files and claim ids, with paths shown relative to the run's root."""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from interp_assert.errors import OutputError


def relative(path: Path | str, root: Path | None) -> str:
    """``path`` relative to ``root`` when inside it, as a POSIX string."""
    if root is None:
        return Path(path).as_posix()
    return _relative(str(path), str(root), os.getcwd())


@functools.lru_cache(maxsize=1024)
def _relative(path: str, root: str, cwd: str) -> str:
    """:func:`relative`, resolved once per path, root and working folder (every record of a
    claim file names the same file)."""
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return Path(path).as_posix()


def write_atomically(path: Path, fill: Callable[[BinaryIO], object]) -> None:
    """Write a file atomically: ``fill`` writes into a temp file in the same folder, which is
    then renamed over ``path``.

    An interrupted or failed write (Ctrl-C, a full disk, a killed process before the rename)
    leaves the earlier file as it was, and no temp file behind. The file gets the permissions
    of a plain ``open(path, "w")`` (0o666 less the umask), not mkstemp's 0o600.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = os.open(tmp, flags, 0o666)
    except OSError as exc:
        raise write_error(path, exc) from None
    try:
        with os.fdopen(handle, "wb") as stream:
            fill(stream)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, OutputError):
            raise write_error(path, exc) from None
        raise


_ADVICE = {errno.ENOSPC: "the disk is full; free some space or write elsewhere",
           errno.EDQUOT: "the disk quota is used up; free some space or write elsewhere",
           errno.EROFS: "the file system is read-only; write elsewhere",
           errno.EACCES: "the folder is not writable; write elsewhere or fix its permissions",
           errno.EPERM: "the folder is not writable; write elsewhere or fix its permissions",
           errno.ENOENT: "its folder does not exist and could not be made",
           errno.ENOTDIR: "write elsewhere, or replace that file by a folder",
           errno.EISDIR: "that path is a folder"}


def write_error(path: Path, exc: OSError) -> OutputError:
    """The error for a file that could not be written, naming it (not the temp file)."""
    reason, code = exc.strerror or str(exc), exc.errno or 0
    blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:  # mkdir says "File exists" for a file where a folder should be
        reason, code = f"{blocking} is a file, not a folder", errno.ENOTDIR
    error = OutputError(f"cannot write {path}: {reason}",
                        hint=_ADVICE.get(code, "check the path and the disk"))
    error.errno = exc.errno
    return error


def write_text(path: Path, text: str) -> None:
    """Write UTF-8 ``text`` atomically (see :func:`write_atomically`)."""
    write_atomically(path, lambda stream: stream.write(text.encode("utf-8")))


def save_figure(figure: Any, path: Path) -> Path:
    """Save a matplotlib figure as PNG atomically (see :func:`write_atomically`)."""
    write_atomically(path, lambda stream: figure.savefig(stream, format="png"))
    return path


def write_json(path: Path, payload: Any) -> None:
    """Write JSON atomically (see :func:`write_text`), sorted and indented."""
    write_text(path, json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def file_stem(file: str) -> str:
    """Folder name for a claim file's artifacts: its relative path with '/' as '__'."""
    return file.replace("/", "__").removesuffix(".yaml").removesuffix(".yml")


def safe_name(name: str) -> str:
    """A claim id as a file name."""
    return re.sub(r"[^A-Za-z0-9_.\-\[\]=]+", "_", name)
