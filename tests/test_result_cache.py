"""The result cache across runs: a second run reuses every forward pass and reports the same
JSON, byte for byte; a changed checkpoint or dataset is recomputed; corrupt entries are
removed; the size bound evicts the least recently used entries; nothing is pickled."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from interp_assert.drivers.cli import main
from interp_assert.evaluate import cache_config, forward, result_cache
from interp_assert.evaluate.streaming import StreamingStats
from interp_assert.labels import Axis, Labelled
from interp_assert.loading.subject import clear_subjects

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = ROOT / "examples/induction/checkpoints/induction.pt"

CLAIMS = """\
subject: {{checkpoint: model.pt, loader: "examples.tiny_transformer:load", python_path: "{root}"}}
data:
  repeats: {{generate: "examples.induction.data:generate", n: {n}, seed: {seed}, batch_size: 20}}
  clean: {{generate: "examples.induction.corrupt:generate", n: 40, seed: 3}}
  corrupted: {{generate: "examples.induction.corrupt:generate", n: 40, seed: 3,
              args: {{corrupt: true}}}}
quantities:
  pattern1: {{activation: blocks.1.attn.hook_pattern}}
  resid: {{distribution: blocks.0.hook_resid_post, thresholds: [0.5]}}
  loss-repeated: {{metric: loss, mask: repeated, average: tokens}}
  loss-first: {{metric: loss, mask: not repeated, average: tokens}}
  advantage: {{expr: loss-first - loss-repeated}}
claims:
  - id: induction
    claim: L1H2 attends to the token after the previous occurrence ≥ 0.5
  - id: resid
    claim: mean(resid) > -100
  - id: loss
    claim: loss-repeated < 5 nats
  - id: too-strict
    claim: loss-repeated < 0.0001 nats
  - id: ablation
    claim: "ablate L1H0, L1H1, L1H2, L1H3 (mean): advantage drops by ≥ 0.1 nats"
  - id: patching
    claim: "patch L1H0, L1H1, L1H2, L1H3 from clean into corrupted: loss-repeated recovers ≥ 10%"
"""


def write_project(folder: Path, n: int = 40, seed: int = 7) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "model.pt").exists():
        shutil.copy(CHECKPOINT, folder / "model.pt")
    path = folder / "m.claims.yaml"
    path.write_text(CLAIMS.format(root=ROOT, n=n, seed=seed), encoding="utf-8")
    return path


def check(project: Path, json_name: str, *cache: str) -> tuple[int, bytes, int]:
    """A fresh ``interp-assert check`` in-process: (exit code, JSON results, passes run)."""
    clear_subjects()
    forward.FORWARD_PASSES.clear()
    code = main(["check", str(project / "m.claims.yaml"), "--plots", "never", "-q",
                 "--artifacts", str(project / "artifacts"),
                 "--json", str(project / json_name), *cache])
    return code, (project / json_name).read_bytes(), len(forward.FORWARD_PASSES)


def values(results: bytes) -> dict[str, object]:
    return {r["id"]: r.get("value") for r in json.loads(results)["results"]}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(cache_config.ENV_VAR, raising=False)
    monkeypatch.delenv(cache_config.SIZE_ENV_VAR, raising=False)
    write_project(tmp_path)
    return tmp_path


def entries(folder: Path) -> list[Path]:
    return sorted(folder.glob("entries/*/*.npz"))


def test_a_second_run_reuses_every_pass_with_the_same_results(project: Path) -> None:
    uncached = check(project, "plain.json", "--no-cache")
    assert uncached[2] > 0 and not (project / "artifacts/cache").exists()
    first = check(project, "first.json")  # on by default, in <artifacts>/cache
    second = check(project, "second.json")
    assert first[2] == uncached[2]  # activations, statistics, metrics, ablations, patching
    assert second[2] == 0
    assert first[0] == second[0] == uncached[0] == 1  # too-strict fails
    assert first[1] == second[1] == uncached[1]
    stored = entries(project / "artifacts/cache")
    assert len(stored) >= first[2]
    for path in stored:  # npz with a JSON manifest, nothing that needs a pickle
        with np.load(path, allow_pickle=False) as archive:
            manifest = json.loads(bytes(archive[result_cache.MANIFEST]))
            assert all(archive[name].dtype != object for name in archive.files)
        assert json.loads(manifest["key"])["subject"]["checkpoint"]


def test_the_environment_turns_the_cache_off_or_moves_it(project: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cache_config.ENV_VAR, "off")
    assert check(project, "off.json")[2] > 0
    assert not (project / "artifacts/cache").exists()
    monkeypatch.setenv(cache_config.ENV_VAR, str(project / "elsewhere"))
    check(project, "first.json")
    assert entries(project / "elsewhere") and not (project / "artifacts/cache").exists()
    assert check(project, "second.json")[2] == 0


def test_the_same_checkpoint_elsewhere_is_served_from_the_cache(project: Path,
                                                                 tmp_path_factory) -> None:
    cache = str(project / "cache")
    first = check(project, "first.json", "--cache", cache)
    other = write_project(tmp_path_factory.mktemp("copy")).parent
    again = check(other, "again.json", "--cache", cache)
    assert again[2] == 0 and values(again[1]) == values(first[1])


def test_a_changed_weight_is_never_served_stale(project: Path) -> None:
    import torch

    cache = str(project / "cache")
    first = check(project, "first.json", "--cache", cache)
    saved = torch.load(project / "model.pt", weights_only=True)
    state = saved["model_state_dict"]
    state["blocks.1.attn.W_Q"][2] *= 0.5  # the induction head L1H2
    torch.save(saved, project / "model.pt")
    changed = check(project, "changed.json", "--cache", cache)
    reference = check(project, "reference.json", "--no-cache")
    assert changed[2] == first[2]
    assert changed[1] == reference[1] != first[1]
    assert values(changed[1])["induction"] != values(first[1])["induction"]


@pytest.mark.parametrize("change", [{"seed": 8}, {"n": 30}])
def test_a_changed_dataset_is_never_served_stale(project: Path, change: dict) -> None:
    cache = str(project / "cache")
    first = check(project, "first.json", "--cache", cache)
    write_project(project, **change)
    changed = check(project, "changed.json", "--cache", cache)
    reference = check(project, "reference.json", "--no-cache")
    assert 0 < changed[2] < first[2]  # passes on 'clean' and 'corrupted' alone are reused
    assert changed[1] == reference[1]
    assert values(changed[1])["loss"] != values(first[1])["loss"]


def test_corrupt_entries_are_removed_and_recomputed(project: Path) -> None:
    cache = project / "cache"
    first = check(project, "first.json", "--cache", str(cache))
    stored = entries(cache)
    for number, path in enumerate(stored):
        data = path.read_bytes()
        if number % 2:
            path.write_bytes(data[: len(data) // 2])  # truncated
        else:  # one flipped byte inside an array: the zip's CRC no longer matches
            flipped = bytearray(data)
            flipped[len(data) // 3] ^= 0xFF
            path.write_bytes(bytes(flipped))
    again = check(project, "again.json", "--cache", str(cache))
    assert again[2] == first[2] and again[1] == first[1]
    for path in entries(cache):  # rewritten whole
        with zipfile.ZipFile(path) as archive:
            assert archive.testzip() is None


def test_an_entry_holding_another_key_is_not_served(tmp_path: Path) -> None:
    cache = result_cache.ResultCache(tmp_path)
    assert cache.put("key-a", np.arange(3.0))
    cache.path("key-b").parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(cache.path("key-a"), cache.path("key-b"))
    assert cache.get("key-b") is result_cache.MISS and not cache.path("key-b").exists()
    np.testing.assert_array_equal(cache.get("key-a"), np.arange(3.0))


def test_least_recently_used_entries_are_evicted_beyond_the_bound(tmp_path: Path) -> None:
    import os

    block = np.zeros(100_000)  # 800 kB
    cache = result_cache.ResultCache(tmp_path, max_bytes=2_500_000)
    for number, key in enumerate("abc"):
        assert cache.put(key, block + number)
        os.utime(cache.path(key), ns=(10**18 + number * 10**9,) * 2)  # a, then b, then c
    assert cache.get("a") is not result_cache.MISS  # a is now the most recent
    assert cache.put("d", block + 3)
    cache.evict()
    assert cache.get("b") is result_cache.MISS
    for number, key in ((0, "a"), (2, "c"), (3, "d")):
        np.testing.assert_array_equal(cache.get(key), block + number)
    assert cache.size() <= 2_500_000
    assert not result_cache.ResultCache(tmp_path, max_bytes=1000).put("big", block)


def test_streaming_statistics_round_trip_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    batches = [rng.normal(size=(300, 5)).astype(np.float32) for _ in range(3)]
    batches[1][4, 2] = np.nan
    stats = StreamingStats(5, bins=64, thresholds=(0.5, 1.0))
    for batch in batches:
        stats.update(batch)
    cache = result_cache.ResultCache(tmp_path)
    assert cache.put("stats", stats)
    back = cache.get("stats")
    assert type(back) is StreamingStats and back.n == 900 and back.exact
    everything = np.concatenate(batches)
    finite = np.where(np.isfinite(everything), everything, np.nan)
    np.testing.assert_allclose(back.mean(), np.nanmean(finite, axis=0), rtol=1e-12, atol=1e-7)
    np.testing.assert_allclose(back.var(), np.nanvar(finite, axis=0), rtol=1e-6)
    np.testing.assert_array_equal(back.samples(), everything.T)
    np.testing.assert_array_equal(back.counts, stats.counts)
    np.testing.assert_array_equal(back.below, stats.below)
    np.testing.assert_array_equal(back.kurtosis(), stats.kurtosis())
    assert back.thresholds == (0.5, 1.0) and back.nonfinite.tolist() == [0, 0, 1, 0, 0]


def test_metric_values_round_trip_with_their_meta(tmp_path: Path) -> None:
    value = Labelled(np.array([0.25, np.nan]), (Axis("answer", ("A0", "A1")),), "position_error",
                     {"successes": np.array([1, 0]), "trials": np.array([4, 0]),
                      "context": {"dataset": "sums (gen, n=4, seed=0)", "samples": 4},
                      "tokens": 8, "scale": np.float64(0.1) + 0.2, "pair": (1, "x")})
    cache = result_cache.ResultCache(tmp_path)
    assert cache.put("metric", value)
    back = cache.get("metric")
    np.testing.assert_array_equal(back.values, value.values)
    assert back.axes == value.axes and back.name == value.name
    assert back.meta["context"] == value.meta["context"] and back.meta["tokens"] == 8
    assert back.meta["scale"] == 0.30000000000000004 and type(back.meta["scale"]) is np.float64
    assert back.meta["pair"] == (1, "x")
    assert back.meta["trials"].dtype == value.meta["trials"].dtype


def histograms_only() -> StreamingStats:
    stats = StreamingStats(2, bins=8, keep_samples=False)  # as when the memory limit drops them
    stats.update(np.ones((4, 2)))
    return stats


@pytest.mark.parametrize("value", [np.array([object(), 1]), {"x": object()}, {1: 2},
                                   Labelled(np.zeros(2), meta={"callback": print}),
                                   histograms_only()])
def test_what_cannot_be_stored_without_a_pickle_is_not_cached(tmp_path: Path, value) -> None:
    cache = result_cache.ResultCache(tmp_path)
    assert not cache.put("k", value)
    assert cache.get("k") is result_cache.MISS and not entries(tmp_path)


def test_a_read_only_cache_folder_does_not_stop_the_run(project: Path) -> None:
    cache = project / "cache"
    cache.mkdir()
    (cache / "entries").write_text("not a folder")  # every store fails
    code, results, passes = check(project, "r.json", "--cache", str(cache))
    reference = check(project, "reference.json", "--no-cache")
    assert passes > 0 and results == reference[1] and code == reference[0]


@pytest.mark.usefixtures("heavy_modules_loaded")
def test_pytest_last_failed_and_report_after_pytest_reuse_every_pass(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(cache_config.ENV_VAR, raising=False)
    write_project(pytester.path)
    pytester.makeini("[pytest]\ninterp_assert_cache = .claims-cache\n")
    clear_subjects()
    forward.FORWARD_PASSES.clear()
    # every plot: the causal claims' plots ablate and patch each head, passes a report needs
    first = pytester.runpytest("-p", "no:randomly", "--interp-plots", "all")
    first.assert_outcomes(passed=5, failed=1)
    assert len(forward.FORWARD_PASSES) > 0 and entries(pytester.path / ".claims-cache")
    for args, outcomes in ((["--lf"], {"failed": 1}), (["-k", "loss"], {"passed": 1}),
                           ([], {"passed": 5, "failed": 1})):
        clear_subjects()
        forward.FORWARD_PASSES.clear()
        pytester.runpytest("-p", "no:randomly", *args).assert_outcomes(**outcomes)
        assert forward.FORWARD_PASSES == [], args
    clear_subjects()
    forward.FORWARD_PASSES.clear()
    code = main(["report", str(pytester.path / "m.claims.yaml"), "-o",
                 str(pytester.path / "report.md"), "--format", "markdown",
                 "--artifacts", str(pytester.path / "artifacts"),
                 "--cache", str(pytester.path / ".claims-cache")])
    assert code == 1 and forward.FORWARD_PASSES == []
    assert "too-strict" in (pytester.path / "report.md").read_text(encoding="utf-8")


@pytest.mark.usefixtures("heavy_modules_loaded")
def test_pytest_without_a_cache_option_stores_nothing(pytester: pytest.Pytester,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(cache_config.ENV_VAR, raising=False)
    write_project(pytester.path)
    clear_subjects()
    pytester.runpytest("-p", "no:randomly", "-k", "loss").assert_outcomes(passed=1)
    assert not list(pytester.path.rglob("*.npz"))


@pytest.mark.usefixtures("heavy_modules_loaded")
def test_bad_cache_sizes_are_refused(project: Path, pytester: pytest.Pytester,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["check", str(project / "m.claims.yaml"), "--cache-size", "lots"])
    assert "cannot read cache size 'lots'" in capsys.readouterr().err
    pytester.makeini("[pytest]\ninterp_assert_cache = c\ninterp_assert_cache_size = lots\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*interp_assert_cache_size * cannot read *'lots'*"])


WORKER = """
import sys
import numpy as np
from interp_assert.evaluate import result_cache

cache = result_cache.ResultCache(sys.argv[1], max_bytes=1_000_000)
rng = np.random.default_rng(int(sys.argv[2]))
served = 0
for step in range(150):
    number = int(rng.integers(10))
    found = cache.get(f"k{number}")
    if found is result_cache.MISS:
        cache.put(f"k{number}", np.full(20_000, number, dtype=np.float64))
        cache.evict()
    else:
        assert found.shape == (20_000,) and (found == number).all(), (number, found[:3])
        served += 1
print(served)
"""


def test_processes_sharing_one_cache_never_read_a_wrong_or_partial_entry(tmp_path: Path) -> None:
    """Two processes (as xdist workers do) storing, reading and evicting the same entries
    under a bound that keeps about 6 of the 10: every read is the stored value or a miss."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path), str(seed)],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
               for seed in range(2)]
    outputs = [worker.communicate(timeout=300) for worker in workers]
    for worker, (out, err) in zip(workers, outputs):
        assert worker.returncode == 0, err
        assert int(out) > 0  # some reads were served
    assert result_cache.ResultCache(tmp_path).size() <= 1_000_000
    assert not list((tmp_path / "tmp").glob("*"))  # no temporary file left behind


def test_xdist_workers_share_one_cache(pytester: pytest.Pytester,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Two xdist workers store into one folder; a second ``-n 2`` run reads what they stored
    and writes the same JSON results, and so does a serial run."""
    pytest.importorskip("xdist")
    monkeypatch.delenv(cache_config.ENV_VAR, raising=False)
    write_project(pytester.path)
    pytester.makeini("[pytest]\ninterp_assert_cache = shared-cache\n")
    runs = {}
    for name, args in (("first", ["-n", "2"]), ("second", ["-n", "2"]), ("serial", [])):
        result = pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider",
                                               "--interp-json", f"{name}.json", *args)
        result.assert_outcomes(passed=5, failed=1)
        runs[name] = (pytester.path / f"{name}.json").read_bytes()
        if name == "first":
            stored = {p: p.stat().st_ino for p in entries(pytester.path / "shared-cache")}
    assert runs["first"] == runs["second"] == runs["serial"]
    # a store replaces the file (a new inode); every entry is the one the first run wrote
    assert stored and {p: p.stat().st_ino
                       for p in entries(pytester.path / "shared-cache")} == stored


def test_a_ray_task_uses_its_drivers_cache(project: Path) -> None:
    """run_group (the body of a Ray task, called here in-process) reads and fills the cache
    the driver resolved, and leaves the process's own setting as it found it."""
    from interp_assert.drivers.ray_runs import run_group
    from interp_assert.run.runner import RunOptions

    folder = project / "shared-cache"
    cache_config.configure(folder)
    chosen = cache_config.setting()
    cache_config.reset()
    options = RunOptions(plots="never", root=project, artifacts=project / "artifacts")
    path = str(project / "m.claims.yaml")
    ids = ["loss", "resid"]
    runs = []
    for _ in range(2):
        clear_subjects()
        forward.FORWARD_PASSES.clear()
        returned = run_group(options, str(project), None, chosen, path, 0, ids, {})
        runs.append((len(forward.FORWARD_PASSES), [record for record, _, _ in returned]))
    assert runs[0][0] > 0 and runs[1][0] == 0
    assert runs[0][1] == runs[1][1]
    assert entries(folder)
    assert cache_config.setting() is None  # the task's setting did not leak
