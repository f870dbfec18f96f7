"""Runs on a Ray cluster (``--ray``, ``--interp-ray``): the same verdicts and byte-identical JSON
as the serial run, and a task whose process dies is retried once, then reported on its claims.

One local cluster (``ray.init(num_cpus=2)``) serves the whole module: Ray starts slowly.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import claim_file_text, save_checkpoint, tiny_state_dict

from interp_assert.drivers import cli
from interp_assert.drivers.ray_runs import connect, groups
from interp_assert.errors import InterpAssertError
from interp_assert.loading.subject import clear_subjects
from interp_assert.run.runner import Runner, RunOptions

pytestmark = pytest.mark.usefixtures("heavy_modules_loaded")

REPO = Path(__file__).resolve().parents[1]
#: Ray's token for the local cluster (pytester gives its subprocesses another home folder)
TOKEN = Path.home() / ".ray" / "auth_token"


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A local Ray cluster with two CPUs; its address, for other processes to connect to."""
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def run_cli(folder: Path, *args: str) -> int:
    """``interp-assert`` in this process (the Ray driver), started in ``folder``."""
    here = os.getcwd()
    os.chdir(folder)
    try:
        return cli.main(list(args))
    finally:
        os.chdir(here)


def test_induction_sweep_on_ray_writes_the_serial_json(cluster: str, tmp_path: Path) -> None:
    """The 12 induction checkpoints, one Ray task each: the JSON results are byte-identical
    to the serial run's (values, verdicts, sha256s, plots and trajectories)."""
    spec = "specs/induction_sweep.claims.yaml"
    common = ["check", spec, "-q", "--artifacts", str(tmp_path / "ia")]
    assert run_cli(REPO, *common, "--json", str(tmp_path / "serial.json")) == 0
    assert run_cli(REPO, *common, "--json", str(tmp_path / "ray.json"), "--ray") == 0
    serial = json.loads((tmp_path / "serial.json").read_text())
    assert len(serial["results"]) == 24
    assert serial["summary"] == {"holds": 11, "xfail": 13}
    assert (tmp_path / "ray.json").read_bytes() == (tmp_path / "serial.json").read_bytes()


SMALL = """
- id: holds
  claim: N0, N1, N3 cluster with cos > 0.9
- id: fails
  claim: N0, N1, N4 cluster with cos > 0.9
- id: errors
  claim: norm(nothing) > 0
- id: needs-fails
  claim: N0, N1, N3 cluster with cos > 0.9
  requires: fails
- id: open-fails
  claim: N0, N1, N4 cluster with cos > 0.9
  status: open
- id: open-holds
  claim: N0, N1, N3 cluster with cos > 0.9
  status: open
- id: too-big
  claim: mean(big) >= 0
"""

SWEEP = """\
subject:
  checkpoints: ckpts/step_*.pt
quantities:
  A·V:
    weight: readout
    axes: [digit]
    labels: {digit: 0..9}
claims:
  - id: grows
    claim: mean(A·V) > 0.4
    holds_from: 1000
"""


def small_project(root: Path) -> None:
    """Two claim files over tiny checkpoints: every verdict, a sweep, a memory refusal."""
    import torch

    state = tiny_state_dict()
    save_checkpoint(root / "model.pt", {**state, "big": torch.zeros(64, 64)})
    for step in (0, 1000, 2000):  # mean(A·V) is 0.5 * step / 1000: holds from step 1000
        save_checkpoint(root / "ckpts" / f"step_{step}.pt",
                        {"readout": state["readout"] * step / 1000})
    quantities = claim_file_text("[]").split("quantities:\n")[1].split("claims:")[0]
    extra = "  big:\n    weight: big\n"
    (root / "weights.claims.yaml").write_text(
        claim_file_text(SMALL, quantities="quantities:\n" + quantities + extra))
    (root / "sweep.claims.yaml").write_text(SWEEP)


def test_pytest_on_ray_gives_the_serial_outcomes(cluster: str, pytester: pytest.Pytester,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """``pytest --interp-ray=auto`` (connecting to the running cluster through RAY_ADDRESS)
    gives every claim the serial run's outcome, and the same JSON results. The memory limit
    the driver sees reaches the workers (they were started without it)."""
    small_project(pytester.path)
    monkeypatch.setenv("INTERP_ASSERT_MEMORY_LIMIT", "16KB")  # 'big' needs 32 KiB
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("RAY_ADDRESS", cluster)
    if TOKEN.exists():
        monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(TOKEN))
    args = ["-p", "no:cacheprovider", "-rsxX", "--interp-artifacts=.ia", "--interp-plots=all"]
    serial = pytester.runpytest(*args, "--interp-json=serial.json")  # in this process
    outcomes = {"passed": 3, "failed": 2, "errors": 2, "skipped": 1, "xfailed": 2}
    serial.assert_outcomes(**outcomes)
    clear_subjects()  # nothing it loaded is reused below
    remote = pytester.runpytest_subprocess(*args, "--interp-json=ray.json", "--interp-ray=auto")
    remote.assert_outcomes(**outcomes)
    records = json.loads((pytester.path / "serial.json").read_text())["results"]
    verdicts = {r["name"]: r["verdict"] for r in records}
    assert verdicts == {
        "holds": "holds", "fails": "fails", "errors": "error", "needs-fails": "skipped",
        "open-fails": "xfail", "open-holds": "xpass", "too-big": "error",
        "grows[step_0]": "xfail", "grows[step_1000]": "holds", "grows[step_2000]": "holds"}
    too_big = next(r for r in records if r["id"] == "too-big")
    assert "memory limit" in too_big["error"]
    assert (pytester.path / "ray.json").read_bytes() == (pytester.path / "serial.json").read_bytes()
    # interp-assert report on Ray: the same records, and a document with every claim's plot
    assert run_cli(pytester.path, "report", "weights.claims.yaml", "sweep.claims.yaml",
                   "--all-checkpoints", "--artifacts", ".ia", "-o", "report.html", "--json",
                   "report.json", "--ray") == 2
    assert (pytester.path / "report.json").read_bytes() == (
        pytester.path / "serial.json").read_bytes()
    page = (pytester.path / "report.html").read_text(encoding="utf-8")
    assert page.count('<article class="card"') == len(records)
    # the terminal's reports (errors, failures, the summary of skips and xfails) are the same
    assert reports(remote.outlines) == reports(serial.outlines)
    remote.stdout.fnmatch_lines(["*XPASS(strict)*status: open, but the claim now holds*",
                                 "*interp-assert: results written to*ray.json"])


def reports(lines: list[str]) -> list[str]:
    """pytest's report sections: from ERRORS to the closing tally (which holds times)."""
    start = next(i for i, line in enumerate(lines) if "= ERRORS =" in line)
    return [line for line in lines[start:-1] if "results written to" not in line]


def test_pytest_refuses_ray_with_xdist(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2",
                                           "--interp-ray=auto")
    result.stderr.fnmatch_lines(["*--interp-ray distributes the claims itself: drop -n*"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR


DIES = """\
import os
from pathlib import Path


def die(model):
    with Path("attempts.txt").open("a") as log:
        log.write(f"{os.getpid()}\\n")
    os._exit(7)
"""


def test_a_task_whose_process_dies_is_retried_once_then_reported(cluster: str,
                                                                 tmp_path: Path) -> None:
    """User code that kills its worker (``os._exit``): the task runs twice (two processes),
    then each of its claims runs alone: the one that kills its process is an error that says
    so, the others hold; the other claim file's task is not affected, and the run ends."""
    save_checkpoint(tmp_path / "model.pt")
    (tmp_path / "users.py").write_text(DIES)
    extra = "  doom:\n    call: users.py:die\n"
    quantities = claim_file_text("[]").split("quantities:\n")[1].split("claims:")[0]
    (tmp_path / "dies.claims.yaml").write_text(claim_file_text("""
        - id: kills
          claim: doom > 0
        - id: innocent
          claim: N0, N1, N3 cluster with cos > 0.9
    """, quantities="quantities:\n" + quantities + extra))
    (tmp_path / "fine.claims.yaml").write_text(claim_file_text("""
        - id: fine
          claim: N0, N1, N3 cluster with cos > 0.9
    """))
    code = run_cli(tmp_path, "check", "dies.claims.yaml", "fine.claims.yaml", "-q",
                   "--json", "out.json", "--ray")
    assert code == 2  # errors
    attempts = (tmp_path / "attempts.txt").read_text().split()
    assert len(attempts) == 3 and len(set(attempts)) == 3  # retried once, then alone
    records = {r["name"]: r for r in json.loads((tmp_path / "out.json").read_text())["results"]}
    assert records["fine"]["verdict"] == "holds"
    assert records["innocent"]["verdict"] == "holds"
    rows = tiny_state_dict()["blocks.0.mlp.W_out"].double().numpy()[[0, 1, 3]]
    unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    expected = (unit @ unit.T)[np.triu_indices(3, 1)].min()  # min pairwise cosine, by hand
    assert records["innocent"]["value"] == pytest.approx(expected, rel=1e-12)
    assert records["innocent"]["value"] == records["fine"]["value"]
    assert records["kills"]["verdict"] == "error"
    assert ("the Ray task running dies.claims.yaml died twice (the second time retried), then "
            "again with this claim alone (WorkerCrashedError") in records["kills"]["error"]


def test_gpus_are_requested_for_cuda_subjects_on_clusters_with_gpus(tmp_path: Path) -> None:
    """One GPU per task when the subject's device is cuda, cuda:N or auto and the cluster has
    a GPU; none for cpu subjects or on a cluster without GPUs. One task per (file, target)."""
    save_checkpoint(tmp_path / "model.pt")
    for step in (0, 1000):
        save_checkpoint(tmp_path / "ckpts" / f"step_{step}.pt")
    runner = Runner(RunOptions(root=tmp_path))
    checks = []
    for device in ("cpu", "cuda", "cuda:1", "auto"):
        path = tmp_path / f"{device.replace(':', '')}.claims.yaml"
        path.write_text(claim_file_text("- N0, N1, N3 cluster with cos > 0.9\n"
                                        "- N0, N1, N4 cluster with cos > 0.9",
                                        subject_extra=f"  device: '{device}'\n"))
        checks += runner.checks(runner.load(path))
    (tmp_path / "sweep.claims.yaml").write_text(SWEEP.replace(
        "  checkpoints: ckpts/step_*.pt\n", "  checkpoints: ckpts/step_*.pt\n  device: cuda\n"))
    checks += runner.checks(runner.load(tmp_path / "sweep.claims.yaml"))
    with_gpus = groups(runner, checks, cluster_gpus=2)
    assert [(Path(g.path).name, g.target, len(g.checks), g.gpus) for g in with_gpus] == [
        ("cpu.claims.yaml", 0, 2, 0.0), ("cuda.claims.yaml", 0, 2, 1.0),
        ("cuda1.claims.yaml", 0, 2, 1.0), ("auto.claims.yaml", 0, 2, 1.0),
        ("sweep.claims.yaml", 0, 1, 1.0), ("sweep.claims.yaml", 1, 1, 1.0)]
    assert all(g.gpus == 0 for g in groups(runner, checks, cluster_gpus=0))


def test_without_ray_installed_the_error_says_how_to_install_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(InterpAssertError, match="needs the 'ray' package") as caught:
        connect("auto")
    assert caught.value.hint == "pip install 'interp-assert[ray]'"
    save_checkpoint(tmp_path / "model.pt")
    (tmp_path / "m.claims.yaml").write_text(claim_file_text("- N0, N1 cluster with cos > 0.9"))
    assert run_cli(tmp_path, "check", "m.claims.yaml", "-q", "--ray") == 2
    assert "pip install 'interp-assert[ray]'" in capsys.readouterr().err


def test_baseline_update_on_ray_records_the_serial_values(cluster: str, tmp_path: Path) -> None:
    """``--baseline-update`` with ``--ray``: the workers only measure; the driver records the
    values once, into the same file a serial run writes."""
    small_project(tmp_path)
    files = ["weights.claims.yaml", "sweep.claims.yaml", "-q"]
    for name, extra in (("serial", []), ("ray", ["--ray"])):
        run_cli(tmp_path, "check", *files, "--baseline", f"{name}.json", "--baseline-update",
                "--json", f"{name}-results.json", *extra)
    assert (tmp_path / "ray.json").read_bytes() == (tmp_path / "serial.json").read_bytes()
    assert (tmp_path / "ray-results.json").read_bytes() == (
        tmp_path / "serial-results.json").read_bytes()
    recorded = json.loads((tmp_path / "ray.json").read_text())["files"]["sweep.claims.yaml"]
    readout = tiny_state_dict()["readout"].double().numpy()
    for step in (0, 1000, 2000):  # mean(A·V) at each step, by hand
        assert recorded[f"grows[step_{step}]"]["value"] == pytest.approx(
            readout.mean() * step / 1000, rel=1e-12, abs=1e-15)
