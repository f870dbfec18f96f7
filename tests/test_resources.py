"""The memory limit: a quantity that would not fit fails early with its estimate, and the other
claims of the file still run."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

import interp_assert
from interp_assert import Labelled, MemoryLimitError, QuantityError
from interp_assert.evaluate.evaluation import Evaluation
from interp_assert.evaluate.forward import CaptureSink
from interp_assert.evaluate.quantities.functions import apply_function
from interp_assert.language import parse_expression
from interp_assert.resources import (
    ENV_VAR,
    check_size,
    memory_limit,
    parse_size,
    physical_memory,
    set_memory_limit,
)

ROOT = Path(__file__).parents[1]
N_HEADS, N_CTX, D_MLP, SAMPLES, BATCH = 2, 33, 32, 200, 50
POSITIONS = "X0..X9, +, Y0..Y9, =, A0..A10"


@pytest.fixture(autouse=True)
def _no_configured_limit(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.delenv(ENV_VAR, raising=False)
    set_memory_limit(None)
    yield
    set_memory_limit(None)


@pytest.mark.parametrize(("text", "expected"), [
    ("512MB", 512 * 10**6), ("4GiB", 4 * 2**30), ("1.5G", 1_500_000_000), ("100 kib", 102400),
    ("2048", 2048), (" 3 mb ", 3 * 10**6), ("none", None), ("off", None), (4096, 4096),
])
def test_parse_size(text: Any, expected: int | None) -> None:
    assert parse_size(text) == expected


def test_percent_of_physical_memory() -> None:
    total = physical_memory()
    if total is None:
        pytest.skip("the platform does not report its physical memory")
    assert parse_size("25%") == total // 4
    assert memory_limit() == total // 2  # the default


@pytest.mark.parametrize("text", ["lots", "4 parsecs", "-1GB", "1e3", "", "MB", 0, -5])
def test_bad_sizes(text: Any) -> None:
    with pytest.raises(ValueError, match="memory limit"):
        parse_size(text)


def test_setting_beats_environment_beats_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "2MiB")
    assert memory_limit() == 2 * 2**20
    set_memory_limit("1KB")
    assert memory_limit() == 1000
    set_memory_limit(None)
    monkeypatch.setenv(ENV_VAR, "plenty")
    with pytest.raises(QuantityError, match=f"{ENV_VAR}: cannot read memory limit 'plenty'"):
        memory_limit()


def test_check_size_names_the_estimate_and_the_fix() -> None:
    set_memory_limit("1MiB")
    check_size(2**20, "exactly the limit")
    with pytest.raises(MemoryLimitError) as info:
        check_size(3 * 2**20, "'big'", hint="use less")
    assert info.value.message == ("'big' would need about 3.0 MiB, over the memory limit of "
                                  "1.0 MiB")
    assert info.value.hint.startswith("use less; or raise the limit with --interp-memory-limit")


# ---- expressions ------------------------------------------------------------------------------
def _evaluate(expression: str, shape: tuple[int, int]) -> Labelled:
    python_subject = interp_assert.subject(quantities={"W": np.ones(shape)})
    return Evaluation(python_subject.claim_file, None).value(parse_expression(expression))


@pytest.mark.parametrize(("expression", "rows", "cols"), [
    ("W @ W.T", 600, 600), ("W.T @ W", 40, 40), ("W * W", 600, 40)])
def test_expression_results_over_the_limit_fail_before_computing(
        monkeypatch: pytest.MonkeyPatch, expression: str, rows: int, cols: int) -> None:
    limit = rows * cols * 8 - 1  # one byte short of the float64 result
    set_memory_limit(limit)
    monkeypatch.setattr(np, "matmul", _never)
    message = f"'({expression})' would need about {rows * cols * 8:,} bytes, over the memory "
    with pytest.raises(MemoryLimitError, match=re.escape(message)):
        _evaluate(expression, (600, 40))
    set_memory_limit(limit + 1)
    monkeypatch.undo()
    assert _evaluate(expression, (600, 40)).shape == (rows, cols)


def _never(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("computed although it would not fit")


def test_pairwise_cosine_table() -> None:
    rows = Labelled(np.ones((300, 4)))
    set_memory_limit(300 * 300 * 8 - 1)
    with pytest.raises(MemoryLimitError, match=r"cos\(\) of 300 x 300 rows"):
        apply_function("cos", [rows])
    set_memory_limit(300 * 300 * 8)
    assert apply_function("cos", [rows]).shape == (300, 300)


def test_a_tensor_quantity_is_estimated_before_its_float64_copy() -> None:
    import torch

    from interp_assert.labels import as_labelled

    set_memory_limit(1000 * 40 * 8 - 1)
    with pytest.raises(MemoryLimitError, match=r"quantity 'W' \(a tensor of shape \(1000, 40\)"):
        as_labelled(torch.ones(1000, 40), "W")
    set_memory_limit(1000 * 40 * 8)
    assert as_labelled(torch.ones(1000, 40), "W").values.dtype == np.float64


# ---- activations kept by the forward pass -----------------------------------------------------
@pytest.fixture(scope="module")
def model_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    saved = list(sys.path)
    sys.path.insert(0, str(ROOT))
    try:
        from examples import tiny_transformer as tiny
    finally:
        sys.path[:] = saved
    torch.manual_seed(0)
    config = tiny.TinyConfig(n_layers=1, d_model=16, n_heads=N_HEADS, d_head=8, d_mlp=D_MLP,
                             d_vocab=16, n_ctx=N_CTX)
    folder = tmp_path_factory.mktemp("memory")
    tiny.save_checkpoint(folder / "model.pt", tiny.TinyTransformer(config))
    return folder


def _activation_file(folder: Path, name: str) -> Path:
    text = yaml.safe_dump({
        "subject": {"checkpoint": "model.pt", "loader": "examples.tiny_transformer:load",
                    "python_path": str(ROOT)},
        "data": {"sums": {"generate": "examples.adder.data:generate", "n": SAMPLES, "seed": 1,
                          "batch_size": BATCH, "positions": POSITIONS}},
        "quantities": {"pattern": {"activation": "blocks.0.attn.hook_pattern"},
                       "post": {"distribution": "blocks.0.mlp.hook_post"},
                       "loss": {"metric": "loss", "answer": "A0..A10"},
                       "broken": {"metric": "loss"}},
        "claims": [{"id": "kept", "claim": "mean(pattern) > 0"},
                   {"id": "streamed", "claim": "all of post >= -1000"},
                   {"id": "metric", "claim": "loss >= 0"},
                   {"id": "broken", "claim": "broken >= 0"}]}, sort_keys=False)
    path = folder / f"{name}.claims.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_kept_activation_over_the_limit_fails_after_one_batch(
        model_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    batches: list[int] = []
    update = CaptureSink.update
    monkeypatch.setattr(CaptureSink, "update",
                        lambda self, value, batch: batches.append(1) or update(self, value, batch))
    # the pattern keeps samples x heads x query x key float32 values, then concatenates them
    need = 2 * SAMPLES * N_HEADS * N_CTX * N_CTX * 4
    histograms = D_MLP * 1024 * 8  # the distribution's counts: fixed, whatever the samples
    set_memory_limit("1MiB")
    results = {r.claim_id: r for r in interp_assert.load(
        _activation_file(model_folder, "over")).run()}
    error = results["kept"].error
    assert isinstance(error, MemoryLimitError)
    assert error.message == (
        f"claim 'kept': keeping blocks.0.attn.hook_pattern on dataset 'sums' ({SAMPLES} samples) "
        f"would need about {need / 2**20:.1f} MiB, over the memory limit of 1.0 MiB (the whole "
        f"pass: {(need + histograms) / 2**20:.1f} MiB)")
    assert "'distribution:' quantity" in error.hint and "--interp-memory-limit" in error.hint
    assert len(batches) == 1  # dropped after the first batch, not after the whole pass
    # the streamed distribution and the metric share the pass and still pass
    assert results["streamed"].status == "holds", results["streamed"].error
    assert results["metric"].status == "holds", results["metric"].error


def test_under_the_limit_everything_runs(model_folder: Path) -> None:
    set_memory_limit(2 * SAMPLES * N_HEADS * N_CTX * N_CTX * 4 + 10**6)
    results = interp_assert.load(_activation_file(model_folder, "under")).run()
    assert [r.status for r in results] == ["holds"] * 3 + ["error"], [str(r.error)
                                                                     for r in results]
    # a metric with bad options breaks its own claim, not the pass that the others share
    assert "metric 'loss' needs 'answer:' positions" in str(results[-1].error)


def test_pytest_option(pytester: pytest.Pytester, model_folder: Path) -> None:
    import shutil

    shutil.copy(model_folder / "model.pt", pytester.path / "model.pt")
    _activation_file(pytester.path, "over")
    result = pytester.runpytest("--interp-memory-limit=1MiB", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=2)
    result.stdout.fnmatch_lines(["*keeping blocks.0.attn.hook_pattern on dataset 'sums'*"
                                 "over the memory limit of 1.0 MiB*"])
    bad = pytester.runpytest("--interp-memory-limit=lots")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--interp-memory-limit: cannot read memory limit 'lots'*"])


def test_cli_option(capsys: pytest.CaptureFixture[str]) -> None:
    from interp_assert.drivers.cli import main

    with pytest.raises(SystemExit) as info:
        main(["check", "--memory-limit", "lots", "specs"])
    assert info.value.code == 2
    assert "cannot read memory limit 'lots'" in capsys.readouterr().err
