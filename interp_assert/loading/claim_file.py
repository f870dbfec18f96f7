"""Claim files: YAML with a subject, quantities and claims, read with line numbers kept."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interp_assert.errors import (
    ClaimSyntaxError,
    InterpAssertError,
    Location,
    SpecError,
    did_you_mean,
)
from interp_assert.language.ast import referenced_names
from interp_assert.language.parser import ParsedClaim, parse_claim
from interp_assert.loading.circuits import parse_circuits
from interp_assert.loading.claim_names import (  # noqa: F401
    check_names,
    declared_names,
    normalize_name,
)
from interp_assert.loading.devices import subject_device
from interp_assert.loading.layout_rules import parse_attention
from interp_assert.loading.paths import expand_reference, resolve_path
from interp_assert.loading.quantity_def import QuantityDef
from interp_assert.loading.source_files import read_text
from interp_assert.loading.subject import SubjectSpec
from interp_assert.loading.yaml_source import (
    LocatedMap,
    YamlProblem,
    check_keys,
    column_location,
    find_problem,
    key_location,
    mark_location,
    read_yaml,
    sentence_location,
)
from interp_assert.resources import MAX_CLAIMS
from interp_assert.usercode import project_root

SUFFIXES = (".claims.yaml", ".claims.yml")
TOP_LEVEL_KEYS = frozenset({"subject", "quantities", "claims", "data", "description", "title",
                            "defaults", "baseline", "metrics", "layout", "circuits"})
SUBJECT_KEYS = frozenset({"checkpoint", "checkpoints", "loader", "allow_pickle", "python_path",
                          "device", "dtype", "description"})
CLAIM_KEYS = frozenset({"id", "claim", "why", "tags", "status", "requires", "data", "on",
                        "plot", "skip", "holds_from", "strategies", "max_examples",
                        "exhaustive", "timeout"})
STATUSES = ("holds", "open")


@dataclass
class ClaimEntry:
    """One claim of a file: its text, documentation, place, and parse result or error."""

    id: str
    text: str
    why: str
    location: Location
    tags: list[str] = field(default_factory=list)
    status: str = "holds"
    requires: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    parsed: ParsedClaim | None = None
    error: InterpAssertError | None = None

    @property
    def uses_baseline(self) -> bool:
        """Whether the sentence refers to ``baseline`` (its recorded value)."""
        return self.parsed is not None and any(
            "baseline" in referenced_names(node) for node in self.parsed.claim.expressions())


@dataclass
class ClaimFile:
    """A parsed claim file. File-level problems raise; claim-level ones stay on the claim."""

    path: Path
    subject: SubjectSpec | None
    quantities: dict[str, Any]
    claims: list[ClaimEntry]
    quantity_errors: dict[str, InterpAssertError] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    title: str = ""
    description: str = ""
    datasets: dict[str, Any] = field(default_factory=dict)
    #: a sweep (``subject: checkpoints:``) in natural order; ``subject.checkpoint`` is its last
    checkpoints: tuple[Path, ...] = ()
    #: the ``circuits:`` section: name -> Circuit, or the error that circuit holds
    circuits: dict[str, Any] = field(default_factory=dict)

    @property
    def search_path(self) -> tuple[Path, ...]:
        return self.subject.search_path if self.subject else default_search_path(self.path)

    def label_owners(self) -> dict[str, list[str]]:
        """Declared label -> quantities that declare it."""
        owners: dict[str, list[str]] = {}
        for name, definition in self.quantities.items():
            for label in definition.known_labels():
                owners.setdefault(label, []).append(name)
        return owners


def default_search_path(path: Path) -> tuple[Path, ...]:
    folder = path.resolve().parent
    root = project_root(folder)
    return (folder, root) if root != folder else (folder,)


@dataclass(frozen=True)
class Kinds:
    """The claim kinds (grammar rule -> class) and quantity kinds (YAML key -> class) a claim
    file may use. The runner hands them in: loading never imports the kinds themselves."""

    claims: Mapping[str, type]
    quantities: Mapping[str, type]


def load_claim_file(path: str | Path, kinds: Kinds) -> ClaimFile:
    """Read and parse a claim file. Raises :class:`SpecError` for problems with the whole file;
    a broken claim or quantity keeps its error and the others stay usable."""
    path = Path(path)
    shown = str(path)
    try:
        text = read_text(path, "claim file")
    except SpecError as exc:
        raise exc.at(Location(shown, 1)) from None
    raw = read_yaml(text, shown)
    if not isinstance(raw, Mapping):
        raise SpecError("a claim file must be a mapping with 'subject', 'quantities' and "
                        "'claims'", Location(shown, 1))
    file_location = Location(shown, 1)
    check_keys(raw, TOP_LEVEL_KEYS, "the claim file", file_location)
    for key in TOP_LEVEL_KEYS - {"claims", "quantities"}:  # a problem there: the whole file
        if (problem := find_problem(raw.get(key))) is not None:
            raise problem.error.copy()
    sweep = _sweep(raw, path, shown)
    subject = _subject(raw, path, shown, sweep[-1] if sweep else None)
    quantities: dict[str, Any] = {}
    quantity_errors: dict[str, InterpAssertError] = {}
    raw_quantities = raw.get("quantities") or {}
    if not isinstance(raw_quantities, Mapping):
        raise SpecError("'quantities' must be a mapping of name -> definition",
                        key_location(shown, raw, "quantities"))
    for name, definition in raw_quantities.items():
        where = key_location(shown, raw_quantities, name)
        try:
            if (problem := find_problem([name, definition])) is not None:
                raise problem.error.copy()
            quantities[str(name)] = QuantityDef.from_yaml(str(name), definition, where,
                                                          kinds.quantities)
        except InterpAssertError as exc:
            quantity_errors[str(name)] = exc.at(where)
    from interp_assert.loading.data import parse_datasets

    search_path = subject.search_path if subject else default_search_path(path)
    datasets = parse_datasets(raw.get("data"), path.resolve().parent, search_path, shown)
    claim_file = ClaimFile(path, subject, quantities, [], quantity_errors, dict(raw),
                           _text(raw, "title", shown), _text(raw, "description", shown),
                           datasets, sweep, parse_circuits(raw.get("circuits"), shown, raw))
    _check_cycles(claim_file)
    claim_file.claims = _claims(raw, shown, claim_file, kinds)
    return claim_file


def _text(raw: Mapping, key: str, shown: str) -> str:
    """A top-level text (``title``, ``description``): text or a number, nothing nested."""
    value = raw.get(key)
    if value is None:
        return ""
    if isinstance(value, list | dict):
        what = "list" if isinstance(value, list) else "mapping"
        raise SpecError(f"'{key}' must be text, not a {what}", key_location(shown, raw, key))
    return str(value)


def _subject(raw: Mapping, path: Path, shown: str,
             last: Path | None = None) -> SubjectSpec | None:
    spec = raw.get("subject")
    where = key_location(shown, raw, "subject")
    if spec is None:
        return None
    if isinstance(spec, str):
        spec = {"checkpoint": spec}
    if not isinstance(spec, Mapping):
        raise SpecError("'subject' must be a checkpoint path or a mapping", where)
    check_keys(spec, SUBJECT_KEYS, "'subject'", where)
    base = path.resolve().parent
    search = list(default_search_path(path))
    extra = spec.get("python_path", [])
    for entry in [extra] if isinstance(extra, str) else extra:
        search.insert(0, resolve_path(str(entry), base, "'subject: python_path'", where))
    checkpoint = spec.get("checkpoint")
    if checkpoint is not None and not isinstance(checkpoint, str):
        raise SpecError("'subject: checkpoint' must be a path", where)
    if spec.get("checkpoints") is not None:
        if checkpoint is not None:
            raise SpecError("'subject' has both 'checkpoint' and 'checkpoints'", where,
                            hint="keep 'checkpoints:' for a sweep, 'checkpoint:' for one file")
        checkpoint = str(last)
    allow_pickle = spec.get("allow_pickle", False)
    if not isinstance(allow_pickle, bool):
        raise SpecError("'subject: allow_pickle' must be true or false", where)
    device, dtype = subject_device(spec, where)
    layout = raw.get("layout")
    attention = (parse_attention(layout.get("attention"), layout.get("n_heads"),
                                 key_location(shown, raw, "layout"))
                 if isinstance(layout, Mapping) else None)
    return SubjectSpec(
        checkpoint=(resolve_path(checkpoint, base, "'subject: checkpoint'",
                                 key_location(shown, spec, "checkpoint") or where)
                    if checkpoint else None),
        loader=spec.get("loader"), allow_pickle=allow_pickle, search_path=tuple(search),
        device=device, dtype=dtype, attention=attention, location=where)



def _sweep(raw: Mapping, path: Path, shown: str) -> tuple[Path, ...]:
    """The checkpoints of ``subject: checkpoints:`` (paths or globs), naturally ordered."""
    from interp_assert.loading.targets import expand_checkpoints

    spec = raw.get("subject")
    value = spec.get("checkpoints") if isinstance(spec, Mapping) else None
    if value is None:
        return ()
    where = key_location(shown, spec, "checkpoints")
    patterns = [value] if isinstance(value, str) else value
    if not isinstance(patterns, list) or not patterns or not all(
            isinstance(p, str) for p in patterns):
        raise SpecError("'subject: checkpoints' must be a glob or a list of paths", where)
    base = path.resolve().parent
    patterns = [expand_reference(p, "'subject: checkpoints'", where) for p in patterns]
    try:
        return expand_checkpoints(patterns, base)
    except ValueError as exc:
        raise SpecError(str(exc), where, hint="paths and globs are relative to the claim "
                                              "file's folder") from None


def _check_cycles(claim_file: ClaimFile) -> None:
    """Quantities defined in terms of each other get an error naming the cycle."""
    graph = {name: q.kind.references() & set(claim_file.quantities)
             for name, q in claim_file.quantities.items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = [*trail[trail.index(nxt):], nxt] if nxt in trail else [node, nxt]
                for member in cycle:
                    claim_file.quantity_errors.setdefault(member, SpecError(
                        "circular quantity definition: " + " -> ".join(cycle),
                        claim_file.quantities[member].location,
                        hint="define one of them without referring back"))
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [name])


def slugify(text: str) -> str:
    normalized = unicodedata.normalize("NFKD", text).replace("·", "").replace("≥", " ge ")
    normalized = normalized.replace("≤", " le ").replace(">=", " ge ").replace("<=", " le ")
    slug = re.sub(r"[^A-Za-z0-9]+", "-", normalized).strip("-").lower()
    return slug[:60] or "claim"


def _claims(raw: Mapping, shown: str, claim_file: ClaimFile, kinds: Kinds) -> list[ClaimEntry]:
    items = raw.get("claims")
    where = key_location(shown, raw, "claims")
    if items is None:
        raise SpecError("the claim file has no 'claims'", Location(shown, 1),
                        hint="add a 'claims:' list of '- id: ..., claim: ..., why: ...'")
    if isinstance(items, Mapping):
        items = [_from_mapping_form(key, value, items) for key, value in items.items()]
    if not isinstance(items, list):
        raise SpecError("'claims' must be a list", where)
    if len(items) > MAX_CLAIMS:
        raise SpecError(f"the claim file has {len(items):,} claims, over the limit of "
                        f"{MAX_CLAIMS:,}", where, hint="split it into several claim files")
    entries: list[ClaimEntry] = []
    seen: dict[str, Location] = {}
    names = declared_names(claim_file)
    for position, item in enumerate(items):
        entry = _claim_entry(item, position, shown, where, claim_file, kinds, names)
        if entry.id in seen:
            entry.error = SpecError(f"duplicate claim id '{entry.id}' (first at {seen[entry.id]})",
                                    entry.location, hint="give every claim a unique 'id'")
            entry.id = f"{entry.id}~{position}"
        seen.setdefault(entry.id, entry.location)
        entries.append(entry)
    for entry in entries:
        unknown = [r for r in entry.requires if r not in seen]
        if unknown and entry.error is None:
            entry.error = SpecError(
                f"claim '{entry.id}' requires '{unknown[0]}', which is not a claim of "
                f"{Path(shown).name}" + did_you_mean(unknown[0], seen), entry.location,
                hint="'requires' names other claims of the same file by their 'id'")
    return entries


def _from_mapping_form(key: Any, value: Any, parent: Any) -> Any:
    """``claims: {my-id: sentence}`` or ``{my-id: {claim: ..., why: ...}}`` as list items."""
    if isinstance(value, str):
        item = LocatedMap(id=key, claim=value)
        item.key_marks, item.mark = {}, parent.key_marks[key]
        item.value_nodes = {"claim": parent.value_nodes[key]}
        return item
    if isinstance(value, LocatedMap) and "id" not in value:
        item = LocatedMap(id=key, **value)
        item.key_marks, item.value_nodes, item.mark = value.key_marks, value.value_nodes, value.mark
        return item
    return value


def _claim_entry(item: Any, position: int, shown: str, where: Location | None,
                 claim_file: ClaimFile, kinds: Kinds,
                 names: tuple[dict[str, list[str]], set[str]] | None = None) -> ClaimEntry:
    if (problem := find_problem(item)) is not None:  # only this claim: the others still run
        claim_id = str(item.get("id")) if isinstance(item, Mapping) and isinstance(
            item.get("id"), str | int) and not isinstance(item.get("id"), YamlProblem) \
            else f"claim-{position + 1}"
        error = problem.error.copy()
        error.message = f"claim '{claim_id}': {error.message}"
        entry = ClaimEntry(claim_id, str(item)[:200], "", error.location or Location(shown, 1))
        entry.error = error
        return entry
    if isinstance(item, str):
        item = {"claim": item}
    if not isinstance(item, Mapping) or "claim" not in item:
        location = mark_location(shown, getattr(item, "mark", None)) or where or Location(shown, 1)
        text = str(item)
        claim_id = str(item.get("id") or f"claim-{position + 1}") if isinstance(
            item, Mapping) else f"claim-{position + 1}"
        entry = ClaimEntry(claim_id, text, "", location)
        entry.error = SpecError(f"claim '{claim_id}' has no 'claim:' sentence", location,
                                hint="write '- id: my-claim\\n  claim: exact-match >= 99%'")
        misspelt = [key for key in item if key not in CLAIM_KEYS
                    and did_you_mean(str(key), ["claim"])] if isinstance(item, Mapping) else []
        if misspelt:  # 'clam:' for 'claim:'
            entry.error = SpecError(
                f"unknown key '{misspelt[0]}' in claim '{claim_id}'; did you mean 'claim'?",
                key_location(shown, item, misspelt[0]) or location,
                hint="allowed keys: " + ", ".join(sorted(CLAIM_KEYS)))
        return entry
    nodes = getattr(item, "value_nodes", {})
    text = item["claim"]
    location = sentence_location(shown, nodes.get("claim"), mark_location(
        shown, getattr(item, "mark", None)))
    claim_id = str(item.get("id") or slugify(str(text)))
    entry = ClaimEntry(claim_id, str(text), str(item.get("why", "") or "").strip(), location)
    try:
        check_keys(item, CLAIM_KEYS, f"claim '{claim_id}'", location)
        entry.tags = _string_list(item.get("tags"), "tags", claim_id, location)
        entry.requires = _string_list(item.get("requires"), "requires", claim_id, location)
        entry.status = str(item.get("status", "holds"))
        if entry.status not in STATUSES:
            raise SpecError(f"claim '{claim_id}': status must be one of {STATUSES}"
                            + did_you_mean(entry.status, STATUSES), location)
        entry.options = {k: v for k, v in item.items()
                         if k in ("data", "on", "plot", "skip", "holds_from", "strategies",
                                   "max_examples", "exhaustive", "timeout")}
        timeout = entry.options.get("timeout")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(
                timeout, int | float) or not 0 < timeout < float("inf")):
            raise SpecError(f"claim '{claim_id}': 'timeout' must be a number of seconds above "
                            f"0, not {timeout!r}", location, hint="write e.g. 'timeout: 60'")
        holds_from = entry.options.get("holds_from")
        if holds_from is not None and (isinstance(holds_from, bool)
                                       or not isinstance(holds_from, int)):
            raise SpecError(f"claim '{claim_id}': 'holds_from' must be a step number", location)
        if not isinstance(text, str):
            raise SpecError(f"claim '{claim_id}': the sentence must be text", location)
        entry.parsed = parse_claim(text, kinds.claims)
        check_names(entry.parsed, claim_file, names)
    except ClaimSyntaxError as exc:
        if exc.location is None:  # in the sentence (not in a quantity it uses)
            exc.location = column_location(shown, nodes.get("claim"), text, exc.column,
                                            location)
        exc.message = f"claim '{claim_id}': {exc.message}"
        entry.error = exc
    except InterpAssertError as exc:
        entry.error = exc.at(location)
        if f"claim '{claim_id}'" not in exc.message:
            exc.message = f"claim '{claim_id}': {exc.message}"
    return entry


def _string_list(value: Any, key: str, claim_id: str, location: Location) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str | int) for v in value):
        return [str(v) for v in value]
    raise SpecError(f"claim '{claim_id}': '{key}' must be a name or a list of names", location)
