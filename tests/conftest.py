"""Shared helpers for the interp-assert test suite.

Checkpoints are tiny (a few small tensors from a fixed seed) so that every test stays fast.
"""

from __future__ import annotations

import os
import sys
import tempfile
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from interp_assert.loading.subject import clear_subjects

# the parse trees the suite's runs store (language/tree_store.py) stay out of the user's cache
os.environ.setdefault("INTERP_ASSERT_PARSE_CACHE", tempfile.mkdtemp(prefix="interp-parse-"))

N_NEURONS = 16
D_MODEL = 4


#: the costliest test files, roughly by CPU time (most start Ray, xdist or pytest/CLI processes,
#: each importing torch anew), run first so that pytest-xdist's workers finish together; the
#: other files follow in their usual order. A new heavy file belongs here.
COSTLIEST_FIRST = (
    "test_ray.py", "test_xdist.py", "test_interrupts.py", "test_consistency.py",
    "test_readme.py", "test_hardening.py", "test_result_cache.py", "test_bundled_specs.py",
    "test_adapters_hf.py", "test_fault_isolation.py", "test_devices.py",
    "test_subject_loading.py", "test_attention.py", "test_bench_scale.py", "test_fuzz.py",
    "test_adapters_tl.py", "test_causal.py", "test_circuits.py", "test_transformer_lens.py",
    "test_notebooks.py", "test_sweeps.py", "test_baseline_concurrency.py", "test_api.py",
    "test_failure_reports_toolkit.py",
    "test_confidence_claims.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run :data:`COSTLIEST_FIRST` first (a stable sort: a file's tests keep their order)."""
    rank = {name: i for i, name in enumerate(COSTLIEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.hookimpl(optionalhook=True, wrapper=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """With ``-n``: interp-assert's scheduler (xdist's loadscope), with each test file one work
    unit handed out in collection order. A file's module fixtures (a Ray cluster, a trained
    model, a loaded subject) are then built by one worker only, not by every worker that
    happens to run one of its tests."""
    scheduler = yield
    split = getattr(scheduler, "_split_scope", None)
    if split is not None and type(scheduler).__name__ == "CheckpointScheduling":
        def scope(nodeid: str) -> str:
            path = nodeid.partition("::")[0]
            return f"file {path}" if path.endswith(".py") else split(nodeid)

        scheduler._split_scope = scope
        config.option.loadscopereorder = False  # keep the order above, not largest-first
    return scheduler


def tiny_state_dict(seed: int = 0) -> dict[str, Any]:
    """A small "model": an MLP output matrix, a readout over digits and an unembedding."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    w_out = torch.randn(N_NEURONS, D_MODEL, generator=generator)
    # N0, N1, N3 point in almost the same direction; the other rows stay random
    base = torch.tensor([1.0, 2.0, -1.0, 0.5])
    for row, scale in ((0, 1.0), (1, 1.5), (3, 0.8)):
        w_out[row] = scale * base + 0.05 * torch.randn(D_MODEL, generator=generator)
    return {
        "blocks.0.mlp.W_out": w_out,
        "readout": torch.linspace(-1.0, 2.0, 10),
        "unembed.W_U": torch.randn(D_MODEL, 3, generator=generator),
    }


def save_checkpoint(path: Path, tensors: Mapping[str, Any] | None = None, seed: int = 0,
                    wrap: str | None = None, **metadata: Any) -> Path:
    """torch.save a state dict (optionally under ``wrap`` with extra metadata keys)."""
    import torch

    state = dict(tensors) if tensors is not None else tiny_state_dict(seed)
    obj: Any = state if wrap is None else {wrap: state, **metadata}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path)
    return path


def write_claims(path: Path, text: str) -> Path:
    """Write a claim file (the text is dedented) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


QUANTITIES = """\
quantities:
  neurons:
    weight: blocks.0.mlp.W_out
    axes: [neuron, d_model]
    labels: {neuron: N0..N15}
  A·V:
    weight: readout
    axes: [digit]
    labels: {digit: 0..9}
"""


def claim_file_text(claims: str, checkpoint: str = "model.pt", quantities: str = QUANTITIES,
                    subject_extra: str = "") -> str:
    """A claim file over :func:`tiny_state_dict` with ``claims`` (a YAML list, unindented)."""
    body = "\n".join("  " + line if line else line
                     for line in textwrap.dedent(claims).strip("\n").splitlines())
    return (f"subject:\n  checkpoint: {checkpoint}\n{subject_extra}{quantities}"
            f"claims:\n{body}\n")


@pytest.fixture
def make_project(tmp_path: Path):
    """``make_project(claims, name=..., checkpoint=...)`` writes a checkpoint (once) and a
    claim file into ``tmp_path`` and returns the claim file's path."""

    def make(claims: str, name: str = "model.claims.yaml", checkpoint: str = "model.pt",
             quantities: str = QUANTITIES, seed: int = 0, folder: Path | None = None,
             subject_extra: str = "") -> Path:
        where = folder or tmp_path
        if checkpoint and not (tmp_path / checkpoint).exists():
            save_checkpoint(tmp_path / checkpoint, seed=seed)
        return write_claims(where / name, claim_file_text(claims, checkpoint, quantities,
                                                          subject_extra))

    return make


@pytest.fixture(autouse=True)
def _fresh_subjects() -> Iterator[None]:
    """Every test starts and ends with an empty process-wide subject pool."""
    clear_subjects()
    yield
    clear_subjects()


@pytest.fixture
def isolated_imports() -> Iterator[None]:
    """Undo the sys.path entries and modules that user-code imports add during a test."""
    saved_path = list(sys.path)
    saved_modules = set(sys.modules)
    yield
    sys.path[:] = saved_path
    for name in set(sys.modules) - saved_modules:
        if name.startswith("interp_assert_user") or name.startswith("usermod_"):
            del sys.modules[name]


@pytest.fixture(scope="session")
def heavy_modules_loaded(tmp_path_factory) -> None:
    """Inline pytester runs drop the modules they imported afterwards; torch and matplotlib
    must not be imported (and dropped) there, re-importing them crashes the process. So
    evaluate and plot one claim here first: everything a claim run imports stays loaded."""
    import interp_assert as ia

    folder = tmp_path_factory.mktemp("warm")
    save_checkpoint(folder / "model.pt")
    (folder / "w.claims.yaml").write_text(claim_file_text("""
        - N0, N1, N4 cluster with cos > 0.9
        - all of N0, N1 norm > 100
    """))
    results = ia.load(folder / "w.claims.yaml").run(plot_dir=folder / "plots", plots="all")
    assert all(r.plot is not None for r in results)
    ia.format_result(results[0])
    # hypothesis' pytest plugin imports the package at the end of every run; it belongs to a
    # pytest11 distribution, so each fresh import is assertion-rewritten (seconds)
    import hypothesis.internal.observability  # noqa: F401

    import interp_assert.drivers.pytest_items
    import interp_assert.drivers.pytest_session  # noqa: F401


def import_examples() -> tuple[Any, Any]:
    """The repo's ``examples.tiny_transformer`` and ``examples.induction.data`` modules."""
    import sys

    saved = list(sys.path)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    try:
        from examples import tiny_transformer
        from examples.induction import data
    finally:
        sys.path[:] = saved
    return tiny_transformer, data


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread (and do not fight other processes for cores)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def run_entries(claim_file: Any, entries: Any = None, subject: Any = None,
                plot_dir: Path | None = None, plots: str = "failed") -> dict[str, Any]:
    """Results by claim id of ``entries`` (default: every claim of the file) on the file's
    target, or on ``subject`` (a SubjectSpec), through the runner as every driver does."""
    from interp_assert.loading.targets import Target
    from interp_assert.run.runner import Check, Runner, RunOptions

    options = RunOptions(plots=plots if plot_dir is not None else "never",
                         plot_folder=plot_dir, flat_plots=True)
    runner = Runner(options)
    target = Target(subject or claim_file.subject)
    checks = [Check(claim_file, entry, target) for entry in (entries or claim_file.claims)]
    return {result.claim_id: result for result in runner.run(checks)}


def run_plotting_pass_fail(claim_file: Any, plot_dir: Path | None) -> dict[str, Any]:
    """Every claim's result; only ``*-pass`` / ``*-fail`` claims draw their plot."""
    shown = [e for e in claim_file.claims if e.id.endswith(("-pass", "-fail"))]
    rest = [e for e in claim_file.claims if e not in shown]
    results = run_entries(claim_file, shown, plot_dir=plot_dir, plots="all") if shown else {}
    if rest:
        results.update(run_entries(claim_file, rest))
    return {e.id: results[e.id] for e in claim_file.claims}
