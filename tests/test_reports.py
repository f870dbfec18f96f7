"""Results and reports: the JSON results file, JUnit XML properties and attachments, the plots
in pytest-html's report, and the terminal summary."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import save_checkpoint
from test_sweeps import warm_heavy_modules

from interp_assert.loading.subject import clear_subjects

ROOT = Path(__file__).resolve().parents[1]
RUN = ("-p", "no:cacheprovider")

WEIGHTS = """\
subject:
  checkpoint: model.pt
quantities:
  readout: {weight: readout, axes: [digit], labels: {digit: 0..9}}
claims:
  - id: top
    claim: max(readout) >= 1.5
  - id: low
    claim: min(readout) > 0
  - id: broken
    claim: max(nothing) > 0
"""

BEHAVIOUR = f"""\
subject:
  checkpoint: adder.pt
  loader: examples.tiny_transformer:load
  python_path: {ROOT}
data:
  sums:
    generate: examples.adder.data:generate
    n: 40
    seed: 7
    batch_size: 40
    positions: X0..X9, +, Y0..Y9, =, A0..A10
quantities:
  exact-match: {{metric: exact_match, answer: A0..A10}}
claims:
  - id: em
    claim: exact-match <= 100%
"""


@pytest.fixture(scope="module", autouse=True)
def _heavy_modules(tmp_path_factory: pytest.TempPathFactory) -> None:
    import interp_assert as ia

    folder = tmp_path_factory.mktemp("warm")
    warm_heavy_modules(folder)
    save_random_adder(folder / "adder.pt")  # a forward pass and its statistics, too
    (folder / "b.claims.yaml").write_text(BEHAVIOUR, encoding="utf-8")
    (result,) = ia.load(folder / "b.claims.yaml").run()
    assert result.error is None, result.error


@pytest.fixture
def weights(pytester: pytest.Pytester) -> Path:
    save_checkpoint(pytester.path / "model.pt")
    (pytester.path / "w.claims.yaml").write_text(WEIGHTS, encoding="utf-8")
    return pytester.path


def save_random_adder(path: Path) -> None:
    """An untrained one-layer model with the adder's vocabulary and context."""
    import torch

    from examples.tiny_transformer import TinyConfig, TinyTransformer, save_checkpoint

    torch.manual_seed(0)
    config = TinyConfig(n_layers=1, d_model=16, n_heads=2, d_head=8, d_mlp=None, d_vocab=12,
                        n_ctx=33)
    save_checkpoint(path, TinyTransformer(config))


def test_json_results_are_complete_and_byte_identical(pytester: pytest.Pytester) -> None:
    save_random_adder(pytester.path / "adder.pt")
    (pytester.path / "b.claims.yaml").write_text(BEHAVIOUR, encoding="utf-8")
    save_checkpoint(pytester.path / "model.pt")
    (pytester.path / "w.claims.yaml").write_text(WEIGHTS, encoding="utf-8")
    result = pytester.runpytest(*RUN, "--interp-json", "one.json")
    result.assert_outcomes(passed=2, failed=1, errors=1)
    clear_subjects()
    pytester.runpytest(*RUN, "--interp-json", "two.json")
    one = (pytester.path / "one.json").read_bytes()
    assert one == (pytester.path / "two.json").read_bytes()
    data = json.loads(one)
    assert data["schema"] == "interp-assert/results/3"
    assert {"python", "interp-assert", "torch", "numpy"} <= set(data["versions"])
    assert data["summary"] == {"holds": 2, "fails": 1, "error": 1}
    by_name = {(r["file"], r["name"]): r for r in data["results"]}
    assert [r["name"] for r in data["results"]] == ["em", "broken", "low", "top"]
    em = by_name["b.claims.yaml", "em"]
    assert em["verdict"] == "holds" and 0 <= em["value"] <= 1
    assert em["expected"] == "<= 1" and len(em["interval"]) == 2
    assert "seed=7" in em["context"]["dataset"]
    assert em["checkpoint"] == "adder.pt" and len(em["sha256"]) == 64
    low = by_name["w.claims.yaml", "low"]
    assert low["verdict"] == "fails" and low["value"] == -1.0
    assert low["measured"] == "-1" and low["expected"] == "> 0"
    assert low["plot"] == ".interp-assert/plots/w.claims/low.png"
    broken = by_name["w.claims.yaml", "broken"]
    assert broken["verdict"] == "error" and "nothing" in broken["error"]
    assert broken["sha256"] == low["sha256"]  # the identity also when a claim errs


def test_junit_properties_and_attachments(weights: Path, pytester: pytest.Pytester) -> None:
    pytester.runpytest(*RUN, "--interp-plots", "all", "--junitxml", "junit.xml")
    cases = {case.get("name"): case for case in ET.parse(weights / "junit.xml").iter("testcase")}
    top = cases["top"]
    properties = {p.get("name"): p.get("value") for p in top.iter("property")}
    assert properties["value"] == "2.0" and properties["expected"] == ">= 1.5"
    assert properties["checkpoint"] == "model.pt" and len(properties["sha256"]) == 64
    plot = weights / ".interp-assert" / "plots" / "w.claims" / "top.png"
    # relative to the rootdir: GitLab shows attachments only relative to the project folder
    assert properties["plot"] == ".interp-assert/plots/w.claims/top.png"
    assert plot.exists() and (pytester.path / properties["plot"]).samefile(plot)
    assert cases["low"].find("failure") is not None
    # attachments travel in the testcase's system-out, which junitxml writes from the
    # report's captured-output sections with junit_logging = system-out (pytest's public way)
    assert top.find("system-out") is None
    pytester.runpytest(*RUN, "--interp-plots", "all", "--junitxml", "junit2.xml",
                       "-o", "junit_logging=system-out")
    cases = {c.get("name"): c for c in ET.parse(weights / "junit2.xml").iter("testcase")}
    (out,) = cases["top"].iter("system-out")
    assert "[[ATTACHMENT|.interp-assert/plots/w.claims/top.png]]" in out.text
    assert "[[ATTACHMENT|" in cases["low"].find("system-out").text
    # the ini option: absolute paths, or relative to another folder
    for setting, shown in (("absolute", str(plot.resolve())),
                           (".interp-assert", "plots/w.claims/top.png")):
        pytester.runpytest(*RUN, "--interp-plots", "all", "--junitxml", "junit3.xml",
                           "-o", "junit_logging=system-out",
                           "-o", f"interp_assert_attachments={setting}")
        top = {c.get("name"): c for c in ET.parse(weights / "junit3.xml").iter("testcase")}["top"]
        assert f"[[ATTACHMENT|{shown}]]" in next(top.iter("system-out")).text
        assert {p.get("name"): p.get("value") for p in top.iter("property")}["plot"] == shown


def test_plots_inline_in_the_html_report(weights: Path, pytester: pytest.Pytester) -> None:
    pytest.importorskip("pytest_html")
    pytester.runpytest(*RUN, "--html", "report.html")
    assets = sorted(p.name for p in (weights / "assets").glob("*.png"))
    assert len(assets) == 1 and "low" in assets[0]  # only the failing claim has a plot
    assert assets[0] in (weights / "report.html").read_text(encoding="utf-8")


def test_summary_table(weights: Path, pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(*RUN, "--interp-plots", "never", "--interp-summary")
    result.stdout.fnmatch_lines(["*= interp-assert claims =*",
                                 "file*claim*checkpoint*value*verdict",
                                 "w.claims.yaml*broken*model.pt*n/a*ERROR",
                                 "w.claims.yaml*low*model.pt*-1*FAILS",
                                 "w.claims.yaml*top*model.pt*2*holds"])
    result = pytester.runpytest(*RUN, "--interp-plots", "never")
    assert "interp-assert claims" not in result.stdout.str()
