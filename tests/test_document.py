"""The living-documentation report: every claim, its hypothesis and its plot, self-contained;
checked in a real headless browser when Debian's chromium is installed."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from interp_assert.drivers.cli import main
from interp_assert.run.runner import load_claim_file

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "specs" / "gates.claims.yaml"  # a quick claim file: tables only, no model


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
        assert f'id="{entry.id}"' in text
        if entry.why:
            assert entry.why.split("\n")[0][:40].replace('"', "&quot;") in text
    images = re.findall(r'<img alt="plot of ([^"]+)" src="data:image/png;base64,', text)
    assert sorted(images) == sorted(e.id for e in claim_file.claims)
    assert "http://" not in text and "https://" not in text and "<script" not in text


def test_markdown_report_links_plots(report: Path, tmp_path: Path) -> None:
    output = tmp_path / "report.md"
    assert main(["report", str(SPEC), "-o", str(output), "--format", "markdown",
                 "--artifacts", str(tmp_path / "artifacts")]) == 0
    markdown = output.read_text()
    links = re.findall(r"!\[plot of [^\]]+\]\(([^)]+)\)", markdown)
    assert len(links) == len(load_claim_file(SPEC).claims)
    assert all((tmp_path / link).exists() for link in links)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                                              "(apt-get install chromium)")
def test_every_image_loads_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    # a test copy of the page with a probe script; the product HTML has no script
    probe = ("<script>window.addEventListener('load', () => {const imgs = [...document.images];"
             "document.body.setAttribute('data-loaded', imgs.filter(i => i.complete && "
             "i.naturalWidth > 0).length + '/' + imgs.length);});</script></body>")
    page = tmp_path / "probe.html"
    page.write_text(report.read_text(encoding="utf-8").replace("</body>", probe),
                    encoding="utf-8")
    out = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120)
    match = re.search(r'data-loaded="(\d+)/(\d+)"', out.stdout)
    assert match, out.stderr[-2000:]
    loaded, total = map(int, match.groups())
    assert total == len(load_claim_file(SPEC).claims)
    assert loaded == total
