"""Tokenizer-aware sentence datasets: a list of sentences becomes padded token batches.

A dataset entry ``sentences: [...]`` (or ``sentences: file.txt``, one sentence per line) with
``tokenizer:`` (a local folder, or ``package.module:function`` returning a tokenizer or a
folder) and optional ``max_length:`` (truncation, special tokens kept) is tokenized once.
Every sample is right-padded to the longest one, so batches stack along the batch axis.

Fields (``tokens`` is the dataset's ``input:`` name):

* ``tokens`` (n, L) token ids, the pad id after each sentence's end;
* ``attention_mask`` (n, L) 1 on real tokens, 0 on padding (adapters pass it to the model;
  attention claims use it to leave padded queries out);
* ``token_type_ids`` (n, L) when the tokenizer makes them;
* ``length`` (n,) real tokens per sample; ``sentence`` (n,) the text;
  ``token_text`` (n, L) the token strings (the pad token on padding);
* ``position:[SEP]``, ``position:[CLS]``, ... (n,) for every special token that occurs: the
  index of its first occurrence in each sample, -1 where absent (:func:`sample_positions`).

Position labels: position ``i`` is labelled by its token where every sentence has the same
real token there (``[CLS]`` at 0; ``[SEP]`` too when all sentences have equal length; a token
aligned at several positions, or one spelled like a number, becomes ``tok@i``), else by the
number ``i``. Per-sample positions such as each sentence's ``[SEP]`` are the ``position:``
fields above.

Until the dataset spec carries ``sentences``/``tokenizer``/``max_length``, the same dataset is
available as a generator: ``generate: interp_assert.loading.text_data:sentences`` with
``args: {file: ..., tokenizer: ..., max_length: ...}`` (unlabelled positions).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from interp_assert.errors import SpecError
from interp_assert.loading.data import Dataset, DatasetSpec
from interp_assert.resources import gc_paused
from interp_assert.usercode import project_root, resolve_callable

INSTALL_HF = "pip install 'interp-assert[hf]'"
MASK_FIELD = "attention_mask"
POSITION_PREFIX = "position:"

_TOKENIZERS: dict[tuple[str, tuple[Path, ...]], Any] = {}
_TOKENIZER_LOCK = threading.Lock()
_BY_FOLDER: dict[tuple[Path, tuple[Any, ...]], Any] = {}
_FOLDER_LOCK = threading.Lock()


def position_field(label: str) -> str:
    """The field holding each sample's index of special token ``label`` (``position:[SEP]``)."""
    return POSITION_PREFIX + label


def sample_positions(dataset: Dataset, label: str) -> np.ndarray | None:
    """Per-sample index of ``label`` (-1 where absent), or None if the dataset has no such
    field. Attention claims use it for keys such as ``[SEP]`` that move from sample to sample."""
    value = dataset.fields.get(position_field(label))
    return None if value is None else np.asarray(value, dtype=np.int64)


def query_mask(dataset: Dataset) -> np.ndarray | None:
    """(n, L) booleans, True on real tokens; None when the dataset has no padding mask."""
    value = dataset.fields.get(MASK_FIELD)
    if value is None:
        return None
    array = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
    return array.astype(bool)


# ---- reading sentences and tokenizers -------------------------------------------------------
def read_sentences(path: Path) -> list[str]:
    """One sentence per line; blank lines and lines starting with ``#`` are skipped."""
    if not path.exists():
        raise SpecError(f"sentences file not found: {path}")
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _transformers() -> Any:
    try:
        import transformers
    except ImportError as exc:
        raise SpecError(f"tokenizer-aware datasets need Hugging Face transformers ({exc})",
                        hint=f"install the extra: {INSTALL_HF}") from None
    return transformers


def load_tokenizer(reference: Any, search_path: Sequence[Path] = ()) -> Any:
    """A tokenizer from a local folder (relative to ``search_path``, then the working folder),
    from ``package.module:function`` (returning a tokenizer or a folder), or as given."""
    if not isinstance(reference, str | Path):
        return reference
    key = (str(reference), tuple(search_path))
    with _TOKENIZER_LOCK:
        if key not in _TOKENIZERS:
            with gc_paused():
                _TOKENIZERS[key] = _load_tokenizer(str(reference), search_path)
        return _TOKENIZERS[key]


def _load_tokenizer(reference: str, search_path: Sequence[Path]) -> Any:
    folder = _find_path(reference, search_path)
    if folder is None and ":" in reference:
        search = (*search_path, Path.cwd(), project_root(Path.cwd()))
        made = resolve_callable(reference, search, "tokenizer")()
        if not isinstance(made, str | Path):
            return made
        folder = Path(made)
    if folder is None or not folder.is_dir():
        raise SpecError(f"tokenizer '{reference}' is neither a local folder nor "
                        "'package.module:function'",
                        hint="models are never downloaded: name a folder holding "
                             "tokenizer files, relative to the claim file")
    try:
        return tokenizer_from_folder(folder)
    except (OSError, ValueError) as exc:
        raise SpecError(f"no tokenizer could be read from {folder}: {exc}") from None


def tokenizer_from_folder(folder: Path) -> Any:
    """``AutoTokenizer.from_pretrained(folder)`` (local files only), read once per folder and
    state of its files: a dataset and the model loaded from the same folder share it."""
    folder = Path(folder).resolve()
    stamp = tuple(sorted((f.name, (info := f.stat()).st_mtime_ns, info.st_size)
                         for f in folder.iterdir() if f.is_file()))
    key = (folder, stamp)
    with _FOLDER_LOCK:
        if key not in _BY_FOLDER:
            with gc_paused():
                _BY_FOLDER[key] = _transformers().AutoTokenizer.from_pretrained(
                    str(folder), local_files_only=True)
        return _BY_FOLDER[key]


def _find_path(reference: str, search_path: Sequence[Path]) -> Path | None:
    path = Path(reference)
    if path.is_absolute():
        return path if path.exists() else None
    for folder in (*search_path, Path.cwd(), project_root(Path.cwd())):
        if (folder / path).exists():
            return (folder / path).resolve()
    return None


# ---- tokenizing -----------------------------------------------------------------------------
def tokenize(sentences: Sequence[str], tokenizer: Any, max_length: int | None = None,
             input_name: str = "tokens") -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """Fields (see the module docstring) and position labels for ``sentences``."""
    if not sentences:
        raise SpecError("a sentence dataset needs at least one sentence")
    kwargs: dict[str, Any] = {"add_special_tokens": True}
    if max_length is not None:
        kwargs.update(truncation=True, max_length=int(max_length))
    encoded = tokenizer(list(sentences), **kwargs)
    ids: list[list[int]] = [list(map(int, row)) for row in encoded["input_ids"]]
    lengths = np.array([len(row) for row in ids], dtype=np.int64)
    n, width = len(ids), int(lengths.max())
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        pad_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    pad_text = tokenizer.pad_token or ""
    tokens = np.full((n, width), pad_id, dtype=np.int64)
    mask = np.zeros((n, width), dtype=np.int64)
    texts = [[pad_text] * width for _ in range(n)]
    strings = [list(tokenizer.convert_ids_to_tokens(row)) for row in ids]
    for i, row in enumerate(ids):
        tokens[i, :len(row)] = row
        mask[i, :len(row)] = 1
        texts[i][:len(row)] = strings[i]
    fields: dict[str, np.ndarray] = {input_name: tokens, MASK_FIELD: mask}
    if "token_type_ids" in encoded:
        types = np.zeros((n, width), dtype=np.int64)
        for i, row in enumerate(encoded["token_type_ids"]):
            types[i, :len(row)] = list(row)
        fields["token_type_ids"] = types
    fields["length"] = lengths
    fields["sentence"] = np.array([str(s) for s in sentences], dtype=str)
    fields["token_text"] = np.array(texts, dtype=str)
    special = [t for t in getattr(tokenizer, "all_special_tokens", []) if t != pad_text]
    for label in special:
        where = np.array([row.index(label) if label in row else -1 for row in strings],
                         dtype=np.int64)
        if (where >= 0).any():
            fields[position_field(label)] = where
    return fields, position_labels(strings, width)


def position_labels(tokens: Sequence[Sequence[str]], width: int) -> tuple[str, ...]:
    """Label ``i`` by the token every sample has there, else by the number ``i``."""
    aligned: list[str | None] = []
    for i in range(width):
        column = {row[i] for row in tokens if i < len(row)}
        full = all(i < len(row) for row in tokens)
        aligned.append(next(iter(column)) if full and len(column) == 1 else None)
    counts = Counter(token for token in aligned if token is not None)
    labels = []
    for i, token in enumerate(aligned):
        if token is None:
            labels.append(str(i))
        elif counts[token] > 1 or token.lstrip("-").isdigit() or not token.strip():
            labels.append(f"{token}@{i}")
        else:
            labels.append(token)
    return tuple(labels)


# ---- datasets -------------------------------------------------------------------------------
@dataclass
class TextDataset(Dataset):
    """A :class:`Dataset` whose positions are labelled from its tokens."""

    token_labels: tuple[str, ...] = ()

    @property
    def positions(self) -> tuple[str, ...] | None:
        return self.spec.positions if self.spec.positions is not None else self.token_labels


def make_text_dataset(spec: DatasetSpec) -> TextDataset:
    """The dataset of a ``sentences:`` entry (``data.py`` dispatches here)."""
    source: Any = getattr(spec, "sentences", None)
    reference: Any = getattr(spec, "tokenizer", None)
    max_length: Any = getattr(spec, "max_length", None)
    where = spec.location
    if source is None:
        raise SpecError(f"dataset '{spec.name}' has no 'sentences'", where)
    if reference is None:
        raise SpecError(f"dataset '{spec.name}': 'sentences' need a 'tokenizer'", where,
                        hint="a local tokenizer folder, or 'package.module:function'")
    try:
        if isinstance(source, str | Path):
            texts = read_sentences(_find_path(str(source), spec.search_path) or Path(source))
        else:
            texts = [str(s) for s in source]
        if spec.n is not None:
            texts = texts[:spec.n]
        tokenizer = load_tokenizer(reference, spec.search_path)
        fields, labels = tokenize(texts, tokenizer, max_length, spec.input)
    except SpecError as exc:
        exc.message = f"dataset '{spec.name}': {exc.message}"
        raise exc.at(where) from None
    width = fields[spec.input].shape[1]
    if spec.positions is not None and len(spec.positions) != width:
        raise SpecError(f"dataset '{spec.name}' has {width} token positions but "
                        f"{len(spec.positions)} 'positions' labels", where,
                        hint="leave 'positions' out to label positions by token: "
                             + ", ".join(labels[:8]))
    return TextDataset(spec, dict(fields), len(texts), labels)


def sentences(seed: int = 0, *, tokenizer: str, file: str | None = None,
              text: str | None = None, max_length: int | None = None,
              n: int | None = None) -> dict[str, np.ndarray]:
    """Generator form: ``generate: interp_assert.loading.text_data:sentences`` with ``args:`` giving
    ``tokenizer`` and ``file`` (relative to the working folder or the project root) or
    ``text`` (one sentence per line). ``seed`` is unused: the order is the file's."""
    del seed
    if (file is None) == (text is None):
        raise SpecError("give exactly one of 'file' or 'text' in the dataset's 'args'")
    if file is not None:
        path = _find_path(file, ())
        if path is None:
            raise SpecError(f"sentences file not found: {file}",
                            hint="relative paths start at the working folder or the project "
                                 "root")
        texts = read_sentences(path)
    else:
        texts = [line.strip() for line in str(text).splitlines() if line.strip()]
    if n is not None:
        texts = texts[:n]
    return tokenize(texts, load_tokenizer(tokenizer), max_length)[0]
