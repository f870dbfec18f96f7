"""Devices, dtypes, derived batch sizes and xdist workers sharing a host: options in their order
of precedence, devices this machine lacks refused by name, bfloat16 runs within the documented
tolerance of float32 with float64 reductions, and workers x threads <= cores."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

import interp_assert
from interp_assert.errors import SpecError
from interp_assert.loading import devices
from interp_assert.loading.devices import (
    DeviceError,
    check_device,
    check_dtype,
    device_override,
    pinned,
    resolve_device,
    worker_threads,
)
from interp_assert.run.runner import Runner, RunOptions, builtin_kinds, load_claim_file

ROOT = Path(__file__).resolve().parents[1]
ADDER = ROOT / "examples" / "adder" / "checkpoints" / "adder.pt"
#: documented in docs/definitions.md ("Devices and precision"): a bfloat16 run's values are
#: within this relative (and, near zero, absolute) distance of the float32 run's
BF16_RELATIVE, BF16_ABSOLUTE = 0.01, 1e-3

PROBE = """\
import os

import torch


def load():
    log = os.environ.get("INTERP_THREADS_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as out:
            out.write(f"{os.getpid()} {torch.get_num_threads()}\\n")
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))


def data(n, seed):
    generator = torch.Generator().manual_seed(seed)
    return {"tokens": torch.randn(n, 4, generator=generator)}


def dtype(model):
    return torch.tensor([float(p.dtype == torch.bfloat16) for p in model.parameters()])
"""


def probe_claims(extra: str = "", n: int = 40, batch: str = "") -> str:
    """A claim file over the probe model; ``extra``: more ``subject:`` lines (indented)."""
    return (f"subject:\n  loader: probe.py:load\n{extra}\n"
            f"data:\n  x: {{generate: probe.py:data, n: {n}{batch}}}\n"
            "quantities:\n  hidden: {distribution: \"1\"}\n  bf16: {call: probe.py:dtype}\n"
            "claims:\n  - {id: relu, claim: \"min(hidden) >= 0\"}\n")


@pytest.fixture
def probe(tmp_path: Path) -> Path:
    (tmp_path / "probe.py").write_text(PROBE, encoding="utf-8")
    return tmp_path


# ---- spelling, resolution and precedence ---------------------------------------------------------
@pytest.mark.parametrize("text", ["cpu", "cuda", "cuda:0", "cuda:3", "mps", "auto", " CUDA "])
def test_accepted_devices(text: str) -> None:
    assert check_device(text) == text.strip().lower()


def test_meta_and_misspelt_devices_are_refused_with_the_fix() -> None:
    with pytest.raises(DeviceError, match="'meta' holds no values") as meta:
        check_device("meta", "--interp-device")
    assert "cpu, cuda, cuda:N, mps or auto" in meta.value.hint
    with pytest.raises(DeviceError, match="unknown device 'cdua'; did you mean 'cuda'"):
        check_device("cdua")
    for bad in ("gpu", "cuda:", "cuda:x", "cpu:0"):
        with pytest.raises(DeviceError, match="unknown device"):
            check_device(bad)
    with pytest.raises(DeviceError, match="unknown dtype 'bf16'"):
        check_dtype("bf16")
    assert [check_dtype(d) for d in ("float32", "BFloat16", "float16")] == [
        "float32", "bfloat16", "float16"]


def test_auto_resolves_to_what_the_machine_has_and_absent_gpus_are_refused() -> None:
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    assert resolve_device("auto") == ("cuda" if gpus else "mps" if mps else "cpu")
    assert resolve_device("cpu") == "cpu"
    if not gpus:
        with pytest.raises(DeviceError, match=r"CUDA is not available on this machine") as err:
            resolve_device("cuda")
        assert "cpu" in err.value.hint
    if gpus:
        with pytest.raises(DeviceError, match=rf"this machine has {gpus} CUDA GPU"):
            resolve_device(f"cuda:{gpus}")
    if not mps:
        with pytest.raises(DeviceError, match="MPS"):
            resolve_device("mps")


def test_precedence_option_then_ini_then_environment_then_claim_file(
        probe: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(devices.DEVICE_ENV, raising=False)
    assert device_override(None, None) is None
    assert device_override(None, "auto") == "auto"
    monkeypatch.setenv(devices.DEVICE_ENV, "mps")
    assert device_override(None, None) == "mps"
    assert device_override(None, "cuda:1") == "cuda:1"
    assert device_override("cpu", "cuda:1") == "cpu"
    monkeypatch.setenv(devices.DEVICE_ENV, "tpu")
    with pytest.raises(DeviceError, match=f"{devices.DEVICE_ENV}: unknown device 'tpu'"):
        device_override(None, None)

    path = probe / "p.claims.yaml"
    path.write_text(probe_claims("  device: auto\n  dtype: float16"), encoding="utf-8")
    claim_file = load_claim_file(path)
    monkeypatch.delenv(devices.DEVICE_ENV)

    def spec_of(options: RunOptions) -> tuple[str, str | None]:
        spec = Runner(options, builtin_kinds()).checks(claim_file)[0].target.spec
        return spec.device, spec.dtype

    assert spec_of(RunOptions()) == ("auto", "float16")  # the claim file's own
    monkeypatch.setenv(devices.DEVICE_ENV, "cuda:1")
    monkeypatch.setenv(devices.DTYPE_ENV, "bfloat16")
    assert spec_of(RunOptions()) == ("cuda:1", "bfloat16")  # the environment over the file
    assert spec_of(RunOptions(device="cpu", dtype="float32")) == ("cpu", "float32")


def test_claim_file_device_and_dtype_are_checked_with_their_place(probe: Path) -> None:
    path = probe / "p.claims.yaml"
    path.write_text(probe_claims("  device: meta"), encoding="utf-8")
    with pytest.raises(SpecError, match=r"p.claims.yaml:1:1: 'subject: device': 'meta'"):
        load_claim_file(path)
    path.write_text(probe_claims("  dtype: float64"), encoding="utf-8")
    with pytest.raises(SpecError, match=r"'subject: dtype': unknown dtype 'float64'"):
        load_claim_file(path)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_a_claim_file_on_cuda_without_cuda_errors_each_claim_with_the_fix(probe: Path) -> None:
    path = probe / "p.claims.yaml"
    path.write_text(probe_claims("  device: cuda"), encoding="utf-8")
    [result] = interp_assert.load(path).run()
    assert result.verdict.value == "error"
    message = str(result.error)
    assert "p.claims.yaml:1:1" in message and "CUDA is not available" in message
    assert "hint:" in message


def test_the_dtype_reaches_the_model(probe: Path) -> None:
    path = probe / "p.claims.yaml"
    text = probe_claims("  dtype: bfloat16") + "  - {id: bf, claim: \"min(bf16) == 1\"}\n"
    path.write_text(text, encoding="utf-8")
    results = {r.claim_id: r for r in interp_assert.load(path).run()}
    assert results["bf"].verdict.value == "holds", results["bf"].error
    assert results["relu"].verdict.value == "holds", results["relu"].error


# ---- precision ----------------------------------------------------------------------------------
def adder_values(folder: Path, dtype: str) -> dict[str, float]:
    quantities = {"acc": {"metric": "token_accuracy", "answer": "A0..A10"},
                  "loss": {"metric": "loss", "answer": "A0..A10"},
                  "post": {"distribution": "blocks.1.mlp.hook_post"},
                  "pattern": {"activation": "blocks.0.attn.hook_pattern"}}
    claims = [{"id": "acc", "claim": "acc >= 0"}, {"id": "loss", "claim": "loss >= 0"},
              {"id": "mean", "claim": "mean(post) > -100"},
              {"id": "std", "claim": "post[L1N44] has std in [0, 1000]"},
              {"id": "head", "claim": "L0H0: A4 attends to X5, Y5 >= 0"}]
    text = yaml.safe_dump({
        "subject": {"checkpoint": str(ADDER), "loader": "examples.tiny_transformer:load",
                    "python_path": [str(ROOT)], "dtype": dtype},
        "data": {"sums": {"generate": "examples.adder.data:generate", "n": 100, "seed": 1234,
                          "positions": "X0..X9, +, Y0..Y9, =, A0..A10"}},
        "quantities": quantities, "claims": claims}, sort_keys=False)
    path = folder / f"{dtype}.claims.yaml"
    path.write_text(text, encoding="utf-8")
    values = {}
    for result in interp_assert.load(path).run():
        assert result.outcome is not None, result.error
        values[result.claim_id] = float(result.outcome.value)
    return values


def test_bfloat16_values_are_within_the_documented_tolerance_of_float32(tmp_path: Path) -> None:
    full, half = adder_values(tmp_path, "float32"), adder_values(tmp_path, "bfloat16")
    assert full.keys() == half.keys()
    for name, value in full.items():
        assert abs(half[name] - value) <= BF16_RELATIVE * abs(value) + BF16_ABSOLUTE, name
    # the model did run in bfloat16: its values are not the float32 ones
    assert any(half[name] != value for name, value in full.items() if name != "acc")


def test_reductions_of_bfloat16_activations_accumulate_in_float64() -> None:
    import torch

    from interp_assert.evaluate.distribution_sink import DistributionSink
    from interp_assert.evaluate.metrics import LogitDifference
    from interp_assert.loading.data import Dataset, DatasetSpec

    generator = torch.Generator().manual_seed(0)
    acts = (torch.randn(64, 10, 32, generator=generator) * 3 + 1000).to(torch.bfloat16)
    sink = DistributionSink("h")
    for part in acts.split(16):
        sink.update(part, {})
    stats = sink.result()
    exact = acts.double().numpy().reshape(-1, 32)
    assert stats.power_sums.dtype == np.float64 and stats.mean().dtype == np.float64
    # float32 batches are centred in float32 and summed in float64 (docs/definitions.md)
    np.testing.assert_allclose(stats.mean(), exact.mean(axis=0), rtol=1e-7)
    np.testing.assert_allclose(stats.std(), exact.std(axis=0), rtol=1e-5)

    logits = torch.randn(40, 3, 7, generator=generator).to(torch.bfloat16)
    correct, incorrect = torch.randint(0, 7, (40,)), torch.randint(0, 7, (40,))
    spec = DatasetSpec("d", generate="x", positions=("P0", "P1", "P2"))
    fields = {"tokens": torch.zeros(40, 3), "c": correct, "i": incorrect}
    metric = LogitDifference({"position": "P1", "correct": "c", "incorrect": "i"},
                             Dataset(spec, fields, 40))
    for start in range(0, 40, 8):
        metric.update(logits[start:start + 8], {k: v[start:start + 8] for k, v in fields.items()})
    value = metric.result()
    reference = logits.double().numpy()[np.arange(40), 1]
    reference = reference[np.arange(40), correct.numpy()] - reference[np.arange(40),
                                                                       incorrect.numpy()]
    assert value.values.dtype == np.float64 and value.meta["samples"].dtype == np.float64
    assert float(value.values) == pytest.approx(reference.mean(), rel=1e-12, abs=1e-12)


# ---- batch sizes -------------------------------------------------------------------------------
def batch_sizes(folder: Path, n: int, batch: str = "", passes: int = 1) -> list[list[int]]:
    """The batches of ``passes`` passes over the probe model (a sink records their sizes)."""
    from interp_assert.evaluate.forward import Sink, run_forward
    from interp_assert.loading.data import load_dataset
    from interp_assert.loading.subject import clear_subjects, get_subject

    class Sizes(Sink):
        hook = "0"

        def __init__(self) -> None:
            self.sizes: list[int] = []

        def update(self, value: Any, batch: dict[str, Any]) -> None:
            self.sizes.append(int(value.shape[0]))

        def result(self) -> list[int]:
            return self.sizes

    path = folder / f"b{n}{len(batch)}.claims.yaml"
    path.write_text(probe_claims(n=n, batch=batch), encoding="utf-8")
    claim_file = load_claim_file(path)
    clear_subjects()
    subject, found = get_subject(claim_file.subject), []
    for _ in range(passes):
        sink, seen = Sizes(), []
        run_forward(subject, load_dataset(claim_file.datasets["x"]), [sink],
                    progress=lambda done, total, seen=seen: seen.append((done, total)))
        assert seen[-1] == (n, n) and [d for d, _ in seen] == list(np.cumsum(sink.sizes))
        found.append(sink.sizes)
    return found


def test_batch_size_is_derived_from_the_memory_limit(probe: Path) -> None:
    from interp_assert.resources import set_memory_limit

    # one sample through Linear(4, 8), ReLU, Linear(8, 3) and the Sequential holding them:
    # 8 + 8 + 3 + 3 float32 outputs
    per_sample = 4 * (8 + 8 + 3 + 3)
    try:
        set_memory_limit(2 * per_sample * 10 + 5)  # room for 10 samples at headroom 2
        # the first batch (one sample) is measured; a later pass uses the size found
        assert batch_sizes(probe, 35, passes=2) == [[1, 10, 10, 10, 4], [10, 10, 10, 5]]
        set_memory_limit(100)  # not even one sample fits: one at a time
        assert batch_sizes(probe, 3) == [[1, 1, 1]]
        set_memory_limit("none")  # no limit: the physical memory; at most 512 per batch
        assert batch_sizes(probe, 1030) == [[1, 512, 512, 5]]
        set_memory_limit(2 * per_sample * 10)
        assert batch_sizes(probe, 35, ", batch_size: 16") == [[16, 16, 3]]  # given: kept
    finally:
        set_memory_limit(None)


# ---- xdist workers ------------------------------------------------------------------------------
def test_gpu_pinning_of_xdist_workers() -> None:
    assert [pinned("cuda", k, 4) for k in range(6)] == [
        "cuda:0", "cuda:1", "cuda:2", "cuda:3", "cuda:0", "cuda:1"]
    assert [pinned("auto", k, 2) for k in range(3)] == ["cuda:0", "cuda:1", "cuda:0"]
    assert pinned("auto", 3, 0) == "auto"  # no GPU: auto picks mps or cpu
    assert pinned("cuda", 1, 0) == "cuda"  # refused later, by name
    assert [pinned(d, 5, 4) for d in ("cuda:2", "cpu", "mps")] == ["cuda:2", "cpu", "mps"]


def test_threads_per_worker() -> None:
    assert [worker_threads(16, w) for w in (1, 2, 3, 4, 16, 32)] == [16, 8, 5, 4, 1, 1]
    assert worker_threads(1, 0) == 1
    for cores in range(1, 20):
        for workers in range(1, 20):
            threads = worker_threads(cores, workers)
            assert threads >= 1 and (threads == 1 or threads * workers <= cores)


def test_xdist_workers_share_the_cores(probe: Path, pytester: pytest.Pytester,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("xdist")
    for name in ("a", "b"):
        (pytester.path / f"{name}.claims.yaml").write_text(probe_claims(), encoding="utf-8")
    (pytester.path / "probe.py").write_text(PROBE, encoding="utf-8")
    log = pytester.path / "threads.log"
    monkeypatch.setenv("INTERP_THREADS_LOG", str(log))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider", "-p",
                                           "no:randomly", "-v")
    result.assert_outcomes(passed=2)
    seen = [line.split() for line in log.read_text(encoding="utf-8").splitlines()]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert len({pid for pid, _ in seen}) == 2  # one claim file per worker
    assert {int(threads) for _, threads in seen} == {max(1, (cores or 1) // 2)}
    # -v: the phase times, added up over the workers
    assert any("time per phase: load" in line and "summed over 2 xdist workers" in line
               for line in result.outlines), result.outlines

