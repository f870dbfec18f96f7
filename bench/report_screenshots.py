"""Screenshots of the HTML report (the top, a failing card, a sweep) for docs/images/.

    python bench/report_screenshots.py [REPORT.html] [--out docs/images]

Without REPORT.html it writes one first, in a temporary copy of the project: the bundled
induction claims gated on an early checkpoint (step_1000, before the induction head formed,
so some claims fail), the induction sweep and the gates tables. Needs playwright (the
``test`` extra) and a Chromium (playwright's, or chromium / google-chrome on the PATH).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def chromium_path() -> str | None:
    """A Chromium executable: playwright's own, else one on the PATH (None when none)."""
    try:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            path = Path(p.chromium.executable_path)
            if path.exists():
                return str(path)
    except Exception:  # playwright missing, or its browsers not installed
        pass
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def shoot(report: Path, out: Path) -> list[Path]:
    """Write dashboard-top.png, failing-card.png and sweep.png of ``report`` into ``out``."""
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    written = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(report.resolve().as_uri())
        page.screenshot(path=out / "dashboard-top.png")
        written.append(out / "dashboard-top.png")
        contents = page.locator("#contents")
        contents.screenshot(path=out / "dashboard-contents.png")
        written.append(out / "dashboard-contents.png")
        failing = page.locator('article.card[data-verdict="fails"]').first
        if failing.count():
            failing.screenshot(path=out / "failing-card.png")
            written.append(out / "failing-card.png")
        sweep = page.locator("section.sweep").first
        if sweep.count():
            sweep.screenshot(path=out / "sweep.png")
            written.append(out / "sweep.png")
        browser.close()
    return written


def write_report(folder: Path) -> Path:
    """The bundled example report in ``folder`` (a copy of specs/, the candidate on step_1000)."""
    shutil.copytree(ROOT / "specs", folder / "specs")
    (folder / "examples").symlink_to(ROOT / "examples", target_is_directory=True)
    spec = folder / "specs" / "induction.claims.yaml"
    text = spec.read_text(encoding="utf-8")
    spec.write_text(text.replace("checkpoints/induction.pt", "checkpoints/step_1000.pt")
                    .replace("title: An induction head", "title: Candidate step_1000, an "
                             "induction head", 1), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    subprocess.run([sys.executable, "-m", "interp_assert.drivers.cli", "report",
                    "specs/induction.claims.yaml", "specs/induction_sweep.claims.yaml",
                    "specs/gates.claims.yaml", "-o", "report.html", "--title",
                    "Bundled claims", "--no-cache"], cwd=folder, env=env, check=False)
    return folder / "report.html"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("report", type=Path, nargs="?")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        report = args.report or write_report(Path(folder))
        print(f"{report}: {report.stat().st_size / 1e6:.2f} MB")
        for path in shoot(report, args.out):
            print(path)


if __name__ == "__main__":
    main()
