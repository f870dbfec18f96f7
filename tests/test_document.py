"""The report: a dashboard (summary table, contents, sweeps) over living documentation (every
claim, its hypothesis, its evidence and its plot), self-contained, and checked in a real
headless browser (playwright) when one is installed."""

from __future__ import annotations

import html
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import claim_file_text, save_checkpoint, tiny_state_dict

from interp_assert.drivers.cli import main
from interp_assert.run.runner import load_claim_file

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "specs" / "gates.claims.yaml"  # a quick claim file: tables only, no model

CLAIMS = """
- id: holds
  claim: N0, N1, N3 cluster with cos > 0.9
  why: The three rows were built along one direction.
- id: fails
  claim: N0, N1, N4 cluster with cos > 0.9
  why: N4 is random, so this claim must not hold.
- id: errors
  claim: norm(nothing) > 0
"""

SWEEP = """\
title: A readout that grows
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
STEPS = (0, 1000, 2000)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Tiny weights, a claim file with a holding, a failing and an erroring claim, and a
    sweep over three checkpoints (mean(A·V) = 0.5 · step / 1000: holds from step 1000)."""
    root = tmp_path_factory.mktemp("project")
    state = tiny_state_dict()
    save_checkpoint(root / "model.pt", state)
    for step in STEPS:
        save_checkpoint(root / "ckpts" / f"step_{step}.pt",
                        {"readout": state["readout"] * step / 1000})
    (root / "weights.claims.yaml").write_text(claim_file_text(CLAIMS))
    (root / "sweep.claims.yaml").write_text(SWEEP)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setenv("MPLBACKEND", "Agg")
        code = main(["report", "weights.claims.yaml", "sweep.claims.yaml", "-o",
                     "out/report.html", "--artifacts", "ia", "--json", "out/results.json",
                     "--no-cache", "--title", "Tiny claims"])
        assert code == 2  # an error: exits like check
        yield root


def page_of(project: Path) -> str:
    return (project / "out" / "report.html").read_text(encoding="utf-8")


def test_summary_table_rows_link_to_unique_cards(project: Path) -> None:
    page = page_of(project)
    records = json.loads((project / "out" / "results.json").read_text())["results"]
    anchors = re.findall(r'\bid="([^"]+)"', page)
    assert len(anchors) == len(set(anchors))  # unique anchors
    summary = page.split('<table id="summary-table"')[1].split("</table>")[0]
    rows = re.findall(r'<tr data-verdict="([a-z]+)"[^>]*>.*?<a href="#([^"]+)">([^<]+)</a>',
                      summary, re.S)
    # one row per card: the sweep's latest checkpoint, and every single-checkpoint claim
    shown = {r["name"]: r["verdict"] for r in records if r.get("label") in (None, "step_2000")}
    assert {html.unescape(name): verdict for verdict, _, name in rows} == shown
    for _, anchor, _ in rows:
        assert f'<article class="card" id="{anchor}"' in page
    assert [verdict for verdict, _, _ in rows][:2] == ["fails", "error"]  # problems first


def test_failing_card_shows_the_evidence_pairs(project: Path) -> None:
    page = page_of(project)
    card = page.split('data-verdict="fails" style')[1].split("</article>")[0]
    assert "N4 is random" in card and "evidence:" in card
    w_out = tiny_state_dict()["blocks.0.mlp.W_out"].numpy().astype(np.float64)
    unit = w_out / np.linalg.norm(w_out, axis=1, keepdims=True)
    cosines = {(a, b): unit[a] @ unit[b] for a, b in ((0, 1), (0, 4), (1, 4))}
    failing = re.findall(r'<tr class="fails">(.*?)</tr>', card, re.S)
    assert len(failing) == sum(c <= 0.9 for c in cosines.values()) >= 1
    for (a, b), cos in cosines.items():
        cells = f"N{a}</td><td>N{b}</td>"
        assert cells in card
        row = card.split(cells)[1].split("</tr>")[0]
        number = float(re.search(r"-?\d+\.\d+(?:e-?\d+)?", row).group())
        assert number == pytest.approx(cos, abs=5e-4)
    assert card.index('class="evidence"') < card.index('class="figure"')
    assert re.search(r'<img src="data:image/[a-z]+;base64,[^"]+" alt="plot of fails">', card)


def test_sweep_table_and_trajectory(project: Path) -> None:
    page = page_of(project)
    sweep = page.split('<section class="sweep"')[1].split("</section>")[0]
    readout = tiny_state_dict()["readout"].numpy().astype(np.float64)
    for step in STEPS:
        assert f"<th scope=\"col\">step_{step}</th>" in sweep
        value = float(np.mean(readout * step / 1000))
        assert re.search(rf">{value:.4g}\s", sweep) or (step == 0 and ">0 " in sweep)
    assert "holds from step 1000" in sweep and "claimed from step 1000" in sweep
    assert re.search(r'<img src="data:image/[a-z]+;base64,[^"]+" alt="trajectory of grows">', sweep)


def test_no_absolute_paths_or_network(project: Path) -> None:
    page = page_of(project)
    assert str(project) not in page and str(project.resolve()) not in page
    assert not re.search(r'(src|href)="(https?:)?//', page)
    links = re.findall(r'<a href="([^"#][^"]*)"', page)  # full-size plots, next to the report
    assert links and all((project / "out" / link).is_file() for link in links)


def test_report_exits_like_check(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    common = ["report", "weights.claims.yaml", "-o", "out/one.html", "--artifacts", "ia"]
    assert main([*common, "--select", "fails", "--select", "holds"]) == 1
    assert main([*common, "--select", "holds", "--checkpoint", "model.pt"]) == 0
    # a claim that does not read 'baseline' keeps its own verdict; the report says the
    # baseline file has no value for it
    assert main([*common, "--select", "holds", "--baseline", "missing.json"]) == 0
    assert "no recorded value" in (project / "out" / "one.html").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("report")
    output = folder / "report.html"
    assert main(["report", str(SPEC), "-o", str(output), "--artifacts",
                 str(folder / "artifacts"), "--title", "Bundled claims"]) == 0
    return output


def test_report_has_every_claim_hypothesis_and_plot(report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    claim_file = load_claim_file(SPEC)
    for entry in claim_file.claims:
        assert f'<article class="card" id="gates-claims--{entry.id}"' in text
        if entry.why:
            assert entry.why.split("\n")[0][:40] in html.unescape(text)
    images = re.findall(r'<img src="data:image/[a-z]+;base64,([^"]+)" alt="plot of ([^"]+)"', text)
    assert sorted(name for _, name in images) == sorted(e.id for e in claim_file.claims)
    assert all(len(data) < 60_000 for data, _ in images)  # downscaled palette PNGs
    assert claim_file.title in text and "Contents" in text
    assert "http://" not in text and "https://" not in text


def test_markdown_report_links_plots(report: Path, tmp_path: Path) -> None:
    output = tmp_path / "report.md"
    assert main(["report", str(SPEC), "-o", str(output), "--format", "markdown",
                 "--artifacts", str(tmp_path / "artifacts")]) == 0
    markdown = output.read_text()
    links = re.findall(r"!\[plot of [^\]]+\]\(([^)]+)\)", markdown)
    assert len(links) == len(load_claim_file(SPEC).claims)
    assert all((tmp_path / link).exists() for link in links)


def chromium() -> str | None:
    """A Chromium for playwright: its own download, else one on the PATH."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    try:
        with sync_playwright() as p:
            own = Path(p.chromium.executable_path)
            if own.is_file():
                return str(own)
    except Exception:  # playwright's driver could not start: try the system's browser
        pass
    names = ("chromium", "chromium-browser", "google-chrome")
    return next((found for found in map(shutil.which, names) if found), None)


def test_dashboard_in_headless_chromium(project: Path) -> None:
    """Every image loads, the summary's links reach their cards, the filter hides the rows
    that hold, and no request leaves the page."""
    pytest.importorskip("playwright", reason="playwright is not installed "
                                             "(pip install -e '.[test]')")
    executable = chromium()
    if executable is None:
        pytest.skip("no Chromium: run 'playwright install chromium' or install chromium")
    from playwright.sync_api import sync_playwright

    page_path = project / "out" / "report.html"
    outside: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        page = browser.new_page()

        def route(request_route, request) -> None:
            if request.url.startswith(("file:", "data:")):
                request_route.continue_()
            else:
                outside.append(request.url)
                request_route.abort()

        page.route("**/*", route)
        page.on("request", lambda r: None if r.url.startswith(("file:", "data:"))
                else outside.append(r.url))
        page.goto(page_path.as_uri())
        page.wait_for_load_state("load")
        images = page.eval_on_selector_all(
            "img", "imgs => imgs.map(i => [i.alt, i.complete && i.naturalWidth > 0])")
        assert len(images) >= 4 and all(ok for _, ok in images), images
        links = page.locator("#summary-table tbody a")
        assert links.count() == 4
        for index in range(links.count()):
            link = links.nth(index)
            target = link.get_attribute("href")
            link.click()
            assert page.evaluate("location.hash") == target
            card = page.locator(f'article[id="{target[1:]}"]')
            assert card.is_visible() and link.inner_text() in card.inner_text()
            top = card.evaluate("e => e.getBoundingClientRect().top")
            assert -1 <= top < page.evaluate("innerHeight")  # scrolled to the card
        rows = page.locator("#summary-table tbody tr")
        page.select_option("#status-filter", "not-holds")
        hidden = [rows.nth(i).get_attribute("data-verdict") for i in range(rows.count())
                  if not rows.nth(i).is_visible()]
        assert sorted(hidden) == ["holds", "holds"]
        assert page.locator("#shown-count").inner_text() == "2 of 4 shown"
        page.select_option("#status-filter", "all")
        page.fill("#text-filter", "grows")
        assert [rows.nth(i).is_visible() for i in range(rows.count())].count(True) == 1
        page.locator("#summary-table th", has_text="measured").click()
        browser.close()
    assert outside == []
