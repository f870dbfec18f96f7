"""Run-level error control: Holm and Benjamini–Hochberg adjusted p-values against references,
and the same run-level verdicts through pytest, pytest -n 2, the CLI and the API."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from interp_assert.drivers import cli
from interp_assert.errors import InterpAssertError
from interp_assert.evaluate.pvalues import wilson_p
from interp_assert.judge.error_control import (
    ErrorControl,
    benjamini_hochberg,
    control,
    holm,
    parse_control,
)

RATES = """\
import numpy as np
from interp_assert.labels import Labelled


def load(*args, **kwargs):
    return {}


def rate(model, k, n):
    return Labelled(np.array(k / n), meta={"successes": np.array([k]), "trials": np.array([n])})
"""
# five confidence claims: four hold alone (p = 3e-9, 0.0042, 0.0102, 0.0226 < 0.025), one is
# an open hypothesis that does not hold (p = 0.98; it still counts in the family of five)
CLAIMS = """\
subject: {loader: rates.py:load}
quantities:
  a: {call: rates.py:rate, args: {k: 990, n: 1000}}
  b: {call: rates.py:rate, args: {k: 925, n: 1000}}
  c: {call: rates.py:rate, args: {k: 922, n: 1000}}
  d: {call: rates.py:rate, args: {k: 919, n: 1000}}
  e: {call: rates.py:rate, args: {k: 880, n: 1000}}
claims:
  - {id: a, claim: "a ≥ 95% with 95% confidence"}
  - {id: b, claim: "b ≥ 90% with 95% confidence"}
  - {id: c, claim: "c ≥ 90% with 95% confidence"}
  - {id: d, claim: "d ≥ 90% with 95% confidence"}
  - {id: e, claim: "e ≥ 90% with 95% confidence", status: open}
  - {id: plain, claim: "a ≥ 0.5"}
"""
P = {"a": wilson_p(990, 1000, ">=", 0.95), "b": wilson_p(925, 1000, ">=", 0.9),
     "c": wilson_p(922, 1000, ">=", 0.9), "d": wilson_p(919, 1000, ">=", 0.9),
     "e": wilson_p(880, 1000, ">=", 0.9)}


def hand_holm(p: list[float]) -> list[float]:
    """Holm written out: sorted ascending, (m - i + 1) p_(i), running maximum, capped at 1."""
    m = len(p)
    order = np.argsort(p, kind="stable")
    out, running = [0.0] * m, 0.0
    for i, index in enumerate(order, start=1):
        running = max(running, min(1.0, (m - i + 1) * p[index]))
        out[index] = running
    return out


@pytest.mark.parametrize("seed", range(6))
def test_adjusted_p_values_match_references(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = list(rng.uniform(0, 0.2, int(rng.integers(1, 30))) ** 2)
    if len(p) > 3:
        p[1] = p[2]  # ties
    assert holm(p) == pytest.approx(hand_holm(p), abs=1e-15)
    assert benjamini_hochberg(p) == pytest.approx(
        list(scipy_stats.false_discovery_control(p, method="bh")), abs=1e-15)


def test_holm_by_hand_on_the_test_family() -> None:
    p = [P[k] for k in "abcde"]  # sorted a < b < c < d < e
    assert holm(p) == pytest.approx([5 * P["a"], 4 * P["b"], 3 * P["c"],
                                     max(3 * P["c"], 2 * P["d"]), P["e"]], rel=1e-12)


def record(name: str, verdict: str, p: float | None) -> dict:
    return {"file": "f.claims.yaml", "name": name, "verdict": verdict, "reason": "",
            "fails_run": verdict in ("fails", "error"), "p_value": p}


def test_control_demotes_only_claims_that_hold_and_is_idempotent() -> None:
    records = [record("a", "holds", 0.001), record("b", "holds", 0.02),
               record("c", "fails", 0.04), record("x", "error", None),
               record("s", "skipped", None), record("n", "holds", float("nan")),
               record("plain", "holds", None)]
    holm_005 = ErrorControl(0.05, "holm")
    control(records, holm_005)
    again = json.loads(json.dumps(records))
    control(again, holm_005)
    assert again == json.loads(json.dumps(records))
    verdicts = {r["name"]: r["verdict"] for r in records}
    # family a, b, c, n (NaN counts as 1): holm 4 * 0.001, max(., 3 * 0.02), max(., 2 * 0.04), 1
    assert verdicts == {"a": "holds", "b": "fails", "c": "fails", "x": "error", "s": "skipped",
                        "n": "fails", "plain": "holds"}
    b = next(r for r in records if r["name"] == "b")
    assert b["error_control"]["adjusted_p"] == pytest.approx(0.06)
    assert b["reason"] == ("does not survive Holm at α = 0.05 (adjusted p = 0.06, 4 confidence "
                           "claims)") and b["fails_run"]
    assert not next(r for r in records if r["name"] == "c")["error_control"]["survives"]
    control(records, None)  # turned off: the verdicts alone come back
    assert [r["verdict"] for r in records] == ["holds", "holds", "fails", "error", "skipped",
                                               "holds", "holds"]
    assert not any("error_control" in r for r in records)


def test_parse_control(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INTERP_ASSERT_ALPHA", raising=False)
    monkeypatch.delenv("INTERP_ASSERT_ERROR_CONTROL", raising=False)
    assert parse_control(None, None) is None
    assert parse_control("0.01", None) == ErrorControl(0.01, "holm")
    assert parse_control(None, "bh") == ErrorControl(0.05, "bh")
    assert parse_control("off", "bh") is None
    monkeypatch.setenv("INTERP_ASSERT_ALPHA", "0.1")
    monkeypatch.setenv("INTERP_ASSERT_ERROR_CONTROL", "bh")
    assert parse_control(None, None) == ErrorControl(0.1, "bh")
    assert parse_control("0.2", "holm") == ErrorControl(0.2, "holm")  # options win
    with pytest.raises(InterpAssertError, match="between 0 and 1"):
        parse_control("5", None)
    with pytest.raises(InterpAssertError, match="not a number"):
        parse_control("five percent", None)
    with pytest.raises(InterpAssertError, match="unknown error control 'bonferroni'"):
        parse_control("0.05", "bonferroni")


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("INTERP_ASSERT_ALPHA", raising=False)
    monkeypatch.delenv("INTERP_ASSERT_ERROR_CONTROL", raising=False)
    (pytester.path / "rates.py").write_text(RATES, encoding="utf-8")
    (pytester.path / "many.claims.yaml").write_text(CLAIMS, encoding="utf-8")
    return pytester.path


def verdicts(path: Path) -> dict[str, str]:
    return {r["name"]: r["verdict"] for r in json.loads(path.read_text())["results"]}


ALONE = {"a": "holds", "b": "holds", "c": "holds", "d": "holds", "e": "xfail",
         "plain": "holds"}


@pytest.mark.parametrize(("method", "demoted"), [("holm", {"c", "d"}), ("bh", {"d"})])
def test_pytest_run_reports_survivors(project: Path, pytester: pytest.Pytester, method: str,
                                      demoted: set[str]) -> None:
    report = ("--interp-report", "report.md") if method == "bh" else ()
    result = pytester.runpytest("-p", "no:randomly", "--interp-alpha", "0.02",
                                "--interp-error-control", method, "--interp-json", "out.json",
                                "--junitxml", "out.xml", *report)
    # each item shows its claim alone; the run fails because some do not survive
    result.assert_outcomes(passed=5, xfailed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    name = {"holm": "Holm", "bh": "Benjamini–Hochberg"}[method]
    result.stdout.fnmatch_lines([
        "*interp-assert error control*",
        f"run-level error control ({name} at α = 0.02, 5 confidence claims): "
        f"{4 - len(demoted)} of 4 that hold alone survive",
        "*many.claims.yaml::a: p = 3.24e-09, adjusted p = *: survives"])
    expected = {k: ("fails" if k in demoted else v) for k, v in ALONE.items()}
    assert verdicts(project / "out.json") == expected
    records = {r["name"]: r for r in json.loads((project / "out.json").read_text())["results"]}
    reference = (hand_holm if method == "holm" else lambda p: list(
        scipy_stats.false_discovery_control(p, method="bh")))([P[k] for k in "abcde"])
    for key, adjusted in zip("abcde", reference):
        entry = records[key]["error_control"]
        assert entry["p_value"] == pytest.approx(P[key], rel=1e-12)
        assert entry["adjusted_p"] == pytest.approx(adjusted, rel=1e-12)
        assert entry["survives"] == (key not in demoted and key != "e")
    assert "error_control" not in records["plain"]
    for key in demoted:
        assert records[key]["reason"].startswith(f"does not survive {name} at α = 0.02")
        # the family's plot, unless the claim has one of its own (a report plots every claim)
        assert records[key]["plot"] == (f".interp-assert/plots/many.claims/{key}.png" if report
                                        else ".interp-assert/error-control.png")
    assert (project / ".interp-assert" / "error-control.png").stat().st_size > 1000
    suite = ET.parse(project / "out.xml").getroot().find("testsuite")
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert {n for n, case in cases.items() if case.find("failure") is not None} == demoted
    assert suite.get("failures") == str(len(demoted))
    if report:  # the Markdown document: the reason, and each member's adjusted p-value
        markdown = (project / "report.md").read_text(encoding="utf-8")
        assert "*does not survive Benjamini–Hochberg at α = 0.02 (adjusted p = 0.0283" in markdown
        assert ("run-level error control (Benjamini–Hochberg at α = 0.02, 5 confidence claims): "
                "p = 0.0102, adjusted p = 0.017: survives") in markdown
    props = {p.get("name"): p.get("value") for p in cases["d"].iter("property")}
    assert float(props["adjusted_p"]) == pytest.approx(records["d"]["error_control"]
                                                       ["adjusted_p"], rel=1e-12)


def test_surviving_run_passes_and_the_report_shows_adjusted_p(
        project: Path, pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("-p", "no:randomly", "--interp-error-control", "holm",
                                "--interp-report", "report.html", "--interp-plots", "never")
    result.assert_outcomes(passed=5, xfailed=1)
    assert result.ret == pytest.ExitCode.OK  # at α = 0.05 all four survive Holm
    html = (project / "report.html").read_text(encoding="utf-8")
    assert "run-level error control" in html and "adjusted p = 0.0452" in html


def test_bad_alpha_is_a_usage_error(project: Path, pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--interp-alpha", "1.5")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "alpha must lie between 0 and 1" in result.stderr.str()


def test_cli_xdist_and_api_give_the_pytest_verdicts(project: Path, pytester: pytest.Pytester,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("xdist")
    monkeypatch.chdir(project)
    pytester.runpytest("-p", "no:randomly", "--interp-alpha", "0.02", "--interp-json",
                       "serial.json")
    expected = {k: ("fails" if k in "cd" else v) for k, v in ALONE.items()}
    assert verdicts(project / "serial.json") == expected
    code = cli.main(["check", "many.claims.yaml", "-q", "--alpha", "0.02", "--json", "cli.json",
                     "--plots", "never", "--no-cache"])
    assert code == 1
    out = capsys.readouterr().out
    assert "many.claims.yaml::c: p = 0.0102, adjusted p = 0.0306: does not survive" in out
    monkeypatch.setenv("INTERP_ASSERT_ALPHA", "0.02")  # the environment, through xdist
    quiet = [arg for name in ("randomly", "cacheprovider", "hypothesispytest", "typeguard",
                              "jaxtyping", "anyio") for arg in ("-p", f"no:{name}")]
    result = pytester.runpytest_subprocess("-n", "2", *quiet, "--interp-json", "xdist.json")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    serial, via_cli, xdist = (json.loads((project / f"{n}.json").read_text())["results"]
                              for n in ("serial", "cli", "xdist"))
    strip = ("plot",)  # plots differ: the CLI run draws none
    assert [{k: v for k, v in r.items() if k not in strip} for r in via_cli] == [
        {k: v for k, v in r.items() if k not in strip} for r in serial]
    assert xdist == serial

    import interp_assert

    results = interp_assert.load(project / "many.claims.yaml").run(alpha=0.02)
    assert {r.claim_id: r.status for r in results} == expected
    c = next(r for r in results if r.claim_id == "c")
    assert c.judgement.reason.startswith("does not survive Holm at α = 0.02 (adjusted p = 0.0306")


def test_simulated_family_wise_error_stays_below_alpha_with_holm() -> None:
    """bench/bench_error_control.py: 20 claims whose true rate sits exactly on the bound,
    1,000 seeded runs. Alone, a run passes some false claim about a third of the time; after
    Holm (and BH, which equals it when every claim is null) at most α = 5% of the time."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from bench_error_control import simulate

    result = simulate(runs=1000, claims=20, null=20, alpha=0.05)
    assert result["alone"]["fwer"] > 0.3
    assert result["holm"]["fwer"] <= 0.05 and result["bh"]["fwer"] <= 0.05
    mixed = simulate(runs=300, claims=20, null=10, alpha=0.05)
    assert mixed["holm"]["fwer"] <= 0.05 and mixed["bh"]["fdr"] <= 0.05
    assert mixed["bh"]["power"] >= mixed["holm"]["power"]  # BH keeps more true claims


def test_an_open_claim_that_holds_but_does_not_survive_becomes_an_expected_failure() -> None:
    records = [record("open", "xpass", 0.03), record("a", "holds", 0.001)]
    records[0]["fails_run"] = True  # strict: 'status: open' claims that hold fail the run
    control(records, ErrorControl(0.05, "bh"))  # BH: 0.03 * 2 / 2 = 0.03 <= 0.05 survives
    assert records[0]["verdict"] == "xpass" and records[0]["error_control"]["survives"]
    control(records, ErrorControl(0.05, "holm"))  # Holm: max(0.002, 0.03) survives too
    assert records[0]["verdict"] == "xpass"
    control(records, ErrorControl(0.02, "holm"))
    assert records[0]["verdict"] == "xfail" and not records[0]["fails_run"]
    assert records[0]["reason"].startswith("does not survive Holm at α = 0.02 (adjusted p = 0.03")
