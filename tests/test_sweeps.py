"""Sweeps: ``subject: checkpoints:``, one item per claim and checkpoint, ``holds_from``,
``--interp-checkpoint`` / INTERP_ASSERT_CHECKPOINT, and trajectories."""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

import pytest

from interp_assert.errors import SpecError
from interp_assert.loading.subject import clear_subjects
from interp_assert.loading.targets import (
    expand_checkpoints,
    natural_key,
    step_of,
    sweep_labels,
    targets,
)
from interp_assert.run.runner import load_claim_file

STEPS = (0, 200, 1000, 2000, 5000)
RUN = ("-p", "no:cacheprovider", "--interp-plots", "never")

SWEEP = """\
subject:
  checkpoints: ckpts/step_*.pt
quantities:
  w: {weight: w, axes: [i], labels: {i: [a, b]}}
claims:
  - id: grows
    claim: w at a >= 0.3
    holds_from: 2000
  - id: positive
    claim: w at b > 0
"""


def save_sweep(folder: Path, steps: tuple[int, ...] = STEPS, name: str = "step_{}.pt") -> None:
    """Tiny checkpoints whose ``w[0]`` grows with the step (0.4 at step 2000)."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    for step in steps:
        torch.save({"w": torch.tensor([step / 5000.0, 1.0])}, folder / name.format(step))


_WARM: list[bool] = []


def warm_heavy_modules(folder: Path) -> None:
    """Import (by using them) everything a claim run imports, once, outside inline pytester
    runs: those drop the modules they imported, and re-importing torch crashes the process."""
    if _WARM:
        return
    _WARM.append(True)
    import base64  # noqa: F401
    import xml.etree.ElementTree  # noqa: F401

    import hypothesis  # noqa: F401  (its pytest plugin imports it at the end of every run)

    from interp_assert.drivers import pytest_items, pytest_session  # noqa: F401
    from interp_assert.output.results import summary_text, write_records
    from interp_assert.output.text import format_result
    from interp_assert.output.trajectories import draw_trajectories
    from interp_assert.run.runner import Runner, RunOptions

    save_sweep(folder / "ckpts", (0, 2000))
    path = folder / "w.claims.yaml"
    path.write_text(SWEEP.replace("holds_from: 2000", "holds_from: 1"), encoding="utf-8")
    runner = Runner(RunOptions(root=folder, plots="all", artifacts=folder,
                               baseline=folder / "b.json", record_command=lambda check: "x"))
    records = []
    for result in runner.run(runner.checks(runner.load(path))):
        format_result(result)
        records.append({"file": "w", "id": result.claim_id, "name": result.name,
                        "label": result.label, "step": result.step, "claim": "",
                        "value": 0.5, "verdict": "holds"})
    draw_trajectories(records, folder)
    summary_text(records)
    write_records(folder / "r.json", records)
    with contextlib.suppress(ImportError):
        import xdist.scheduler  # noqa: F401

        from interp_assert.drivers import pytest_xdist  # noqa: F401
    with contextlib.suppress(ImportError):
        import pytest_html.extras  # noqa: F401


@pytest.fixture(scope="module", autouse=True)
def _heavy_modules(tmp_path_factory: pytest.TempPathFactory) -> None:
    warm_heavy_modules(tmp_path_factory.mktemp("warm"))


@pytest.fixture
def sweep_project(pytester: pytest.Pytester) -> Path:
    save_sweep(pytester.path / "ckpts")
    (pytester.path / "sweep.claims.yaml").write_text(SWEEP, encoding="utf-8")
    return pytester.path


# -- path helpers ----------------------------------------------------------------------------
def test_natural_order_and_steps(tmp_path: Path) -> None:
    for name in ("step_1000.pt", "step_200.pt", "step_30.pt", "final.pt"):
        (tmp_path / name).write_bytes(b"")
    found = expand_checkpoints(["step_*.pt", "final.pt", "step_200.pt"], tmp_path)
    assert [p.name for p in found] == ["final.pt", "step_30.pt", "step_200.pt", "step_1000.pt"]
    assert natural_key("step_200") < natural_key("step_1000")
    assert step_of("step_0200") == 200 and step_of("run2_step_5000") == 5000
    assert step_of("final") is None
    with pytest.raises(ValueError, match="matches no files"):
        expand_checkpoints(["nope_*.pt"], tmp_path)


def test_labels_are_stems_unless_they_repeat(tmp_path: Path) -> None:
    paths = [tmp_path / "a" / "model.pt", tmp_path / "b" / "model.pt"]
    assert sweep_labels(paths, tmp_path) == ["a/model", "b/model"]
    assert sweep_labels([tmp_path / "x.safetensors"], tmp_path) == ["x"]


def test_claim_file_sweep_list_glob_and_errors(tmp_path: Path) -> None:
    save_sweep(tmp_path / "ckpts", (0, 1000, 200))
    path = tmp_path / "s.claims.yaml"
    path.write_text(SWEEP, encoding="utf-8")
    claim_file = load_claim_file(path)
    assert [p.name for p in claim_file.checkpoints] == ["step_0.pt", "step_200.pt",
                                                        "step_1000.pt"]
    assert claim_file.subject is not None
    assert claim_file.subject.checkpoint == claim_file.checkpoints[-1]  # the API's default
    found = targets(claim_file)
    assert [(t.label, t.step) for t in found] == [("step_0", 0), ("step_200", 200),
                                                  ("step_1000", 1000)]
    assert found[0].expects_failure(claim_file.claims[0])
    assert not found[0].expects_failure(claim_file.claims[1])
    override = targets(claim_file, tmp_path / "ckpts" / "step_1000.pt")
    assert len(override) == 1 and override[0].label is None and override[0].step == 1000

    path.write_text(SWEEP.replace("ckpts/step_*.pt", "[ckpts/step_1000.pt, ckpts/step_0.pt]"),
                    encoding="utf-8")
    assert [p.name for p in load_claim_file(path).checkpoints] == ["step_0.pt", "step_1000.pt"]
    path.write_text(SWEEP.replace("ckpts/step_*", "nothing/step_*"), encoding="utf-8")
    with pytest.raises(SpecError, match="matches no files"):
        load_claim_file(path)
    path.write_text(SWEEP.replace("  checkpoints:", "  checkpoint: a.pt\n  checkpoints:"),
                    encoding="utf-8")
    with pytest.raises(SpecError, match="both 'checkpoint' and 'checkpoints'"):
        load_claim_file(path)
    path.write_text(SWEEP.replace("holds_from: 2000", "holds_from: soon"), encoding="utf-8")
    assert "'holds_from' must be a step number" in str(load_claim_file(path).claims[0].error)


# -- pytest items ----------------------------------------------------------------------------
def test_one_item_per_claim_and_checkpoint_in_step_order(sweep_project: Path,
                                                         pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--collect-only", "-q", *RUN)
    ids = [line for line in result.outlines if "::" in line]
    expected = [f"sweep.claims.yaml::{claim}[step_{step}]" for step in STEPS
                for claim in ("grows", "positive")]
    assert ids == expected


def test_holds_from_expects_failure_before_and_passing_after(sweep_project: Path,
                                                             pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("-p", "no:cacheprovider", "-rxXf", "--interp-json", "r.json",
                                "--interp-summary", "--interp-plots", "all")
    result.assert_outcomes(passed=7, xfailed=3)
    result.stdout.fnmatch_lines(["*claim*step_0*step_200*step_1000*step_2000*step_5000*holds from*",
                                 "grows*0 ✗ xfail*0.4 ✓*1 ✓*2000",
                                 "*XFAIL sweep.claims.yaml::grows[[]step_0[]]*claimed to hold "
                                 "from step 2000; this is step 0*"])
    data = json.loads((sweep_project / "r.json").read_text())
    by_name = {r["name"]: r for r in data["results"]}
    assert by_name["grows[step_1000]"]["verdict"] == "xfail"
    assert by_name["grows[step_2000]"]["verdict"] == "holds"
    digest = hashlib.sha256((sweep_project / "ckpts" / "step_200.pt").read_bytes()).hexdigest()
    assert by_name["positive[step_200]"]["sha256"] == digest
    assert by_name["positive[step_200]"]["checkpoint"] == "step_200.pt"
    assert by_name["positive[step_200]"]["step"] == 200
    (grows,) = [t for t in data["trajectories"] if t["id"] == "grows"]
    assert grows["steps"] == list(STEPS) and grows["holds_from_observed"] == 2000
    assert grows["plot"] == ".interp-assert/trajectories/sweep.claims/grows.png"
    png = sweep_project / grows["plot"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_claim_failing_after_its_step_fails(sweep_project: Path,
                                            pytester: pytest.Pytester) -> None:
    text = SWEEP.replace("holds_from: 2000", "holds_from: 1000")
    (sweep_project / "sweep.claims.yaml").write_text(text, encoding="utf-8")
    result = pytester.runpytest(*RUN)
    result.assert_outcomes(passed=7, failed=1, xfailed=2)
    result.stdout.fnmatch_lines(["FAILED sweep.claims.yaml::grows[[]step_1000[]]*"])
    assert not (sweep_project / ".interp-assert" / "trajectories").exists()


def test_trajectories_drawn_by_default_only_for_claims_failing_the_run(
        sweep_project: Path, pytester: pytest.Pytester) -> None:
    """With the default plot policy (``failed``) a sweep that went as claimed (holds, or an
    expected failure before ``holds_from``) is not drawn; a claim with a failing step is."""
    trajectories = sweep_project / ".interp-assert" / "trajectories" / "sweep.claims"
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=7, xfailed=3)
    assert not trajectories.exists()
    text = SWEEP.replace("holds_from: 2000", "holds_from: 1000")
    (sweep_project / "sweep.claims.yaml").write_text(text, encoding="utf-8")
    result = pytester.runpytest("-p", "no:cacheprovider", "--interp-json", "r.json")
    result.assert_outcomes(passed=7, failed=1, xfailed=2)
    assert sorted(p.name for p in trajectories.iterdir()) == ["grows.png"]
    data = json.loads((sweep_project / "r.json").read_text())
    plots = {t["id"]: t["plot"] for t in data["trajectories"]}
    assert plots == {"grows": ".interp-assert/trajectories/sweep.claims/grows.png",
                     "positive": None}


def test_interp_checkpoint_option_and_environment(sweep_project: Path,
                                                  pytester: pytest.Pytester,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    save_sweep(sweep_project / "other", (100,), name="late_{}.pt")
    result = pytester.runpytest(*RUN, "-v", "--interp-checkpoint", "other/late_100.pt")
    result.assert_outcomes(passed=1, xfailed=1)  # the file's sweep is replaced
    result.stdout.fnmatch_lines(["*sweep.claims.yaml::positive PASSED*"])
    clear_subjects()
    monkeypatch.setenv("INTERP_ASSERT_CHECKPOINT", "ckpts/step_5000.pt")
    result = pytester.runpytest(*RUN, "--interp-json", "env.json")
    result.assert_outcomes(passed=2)
    records = json.loads((sweep_project / "env.json").read_text())["results"]
    assert {r["checkpoint"] for r in records} == {"step_5000.pt"}
    assert {r["label"] for r in records} == {None}


def test_one_checkpoint_in_memory_at_a_time(sweep_project: Path,
                                           pytester: pytest.Pytester) -> None:
    pytester.makeconftest("""
        import sys

        SEEN = []

        def pytest_runtest_call(item):
            pool = sys.modules["interp_assert.loading.subject"]._POOL
            SEEN.append(sorted(s.checkpoint.path.name for s in pool.values()
                               if s._checkpoint is not None))

        def pytest_sessionfinish(session):
            print("LOADED", SEEN)
    """)
    result = pytester.runpytest(*RUN, "-s")
    result.assert_outcomes(passed=7, xfailed=3)
    (line,) = [line for line in result.outlines if "LOADED " in line]
    loaded = json.loads(line.split("LOADED ", 1)[1].replace("'", '"'))
    assert all(len(names) == 1 for names in loaded)
    assert [names[0] for names in loaded[::2]] == [f"step_{step}.pt" for step in STEPS]
