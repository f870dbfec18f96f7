"""Screenshots of the HTML report (the top, a failing card, a sweep) for docs/images/.

    python bench/report_screenshots.py REPORT.html [--out docs/images]

Needs playwright (the ``test`` extra) and a Chromium (playwright's, or chromium / google-chrome
on the PATH).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    args = parser.parse_args()
    for path in shoot(args.report, args.out):
        print(path)


if __name__ == "__main__":
    main()
