"""Reading the files a claim file names (and claim files themselves) safely: only regular
files (a FIFO would block forever, a device never end, a symlink loop never resolve), within a
size limit, as UTF-8 text; each refusal names the file and what it is instead."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from interp_assert.errors import InterpAssertError, Location, SpecError
from interp_assert.resources import MAX_FILE_BYTES, format_bytes

_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"),
         (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16"))


def safe_resolve(path: Path) -> Path:
    """``path.resolve()``, or the absolute path when it cannot be resolved (a symlink loop
    raises RuntimeError before Python 3.13): the file is refused by name when it is read."""
    try:
        return path.resolve()
    except (RuntimeError, OSError):
        return Path(os.path.abspath(path))


def not_a_file(path: Path) -> str | None:
    """Why ``path`` is not a regular file (or a link to one) we can read, or None."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "is a symbolic link loop (it links back to itself)"
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return "does not exist"
        return f"cannot be read: {exc.strerror}"
    except (RuntimeError, ValueError) as exc:  # e.g. a NUL byte in the name
        return f"cannot be read: {exc}"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a folder, not a file"
    if stat.S_ISFIFO(mode):
        return "is a FIFO (named pipe), not a regular file; reading it could block forever"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device, not a regular file"
    if stat.S_ISSOCK(mode):
        return "is a socket, not a regular file"
    return "is not a regular file"


def check_regular(path: Path, what: str, error: type[InterpAssertError] = SpecError,
                  hint: str = "") -> None:
    """Raise ``error`` naming ``what`` and ``path`` unless it is a regular file."""
    reason = not_a_file(path)
    if reason == "does not exist":
        raise error(f"cannot read {what} {path}: it does not exist", hint="check the path")
    if reason is not None:
        raise error(f"{what} {path} {reason}", hint=hint)


def read_text(path: Path, what: str, limit: int = MAX_FILE_BYTES) -> str:
    """The UTF-8 text of the regular file ``path`` (a UTF-8 byte order mark is dropped);
    anything else raises :class:`SpecError` naming ``what`` and the file."""
    check_regular(path, what, hint=f"a {what} must be a regular file (or a link to one); "
                                   "replace or remove this one")
    size = os.stat(path).st_size
    if size > limit:
        raise SpecError(f"{what} {path} is {format_bytes(size)}, over the limit of "
                        f"{format_bytes(limit)}", hint="split it into several files")
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise SpecError(f"cannot read {what} {path}: {exc.strerror}") from None
    if len(data) > limit:  # it grew after the size was taken
        raise SpecError(f"{what} {path} is over the limit of {format_bytes(limit)}")
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            raise SpecError(f"{what} {path} is {encoding} text, not UTF-8",
                            hint="save it as UTF-8 (most editors: 'Save with encoding')")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        looks = "a binary file" if b"\x00" in data[:8192] else "text that is not UTF-8"
        raise SpecError(f"{what} {path} is {looks}: byte 0x{data[exc.start]:02x} at line "
                        f"{line}, column {column} is not UTF-8", Location(str(path), line, column),
                        hint=f"a {what} is UTF-8 text; save it as UTF-8") from None
