"""The README's CI recipes work as written: their commands run in a copy of the project, and
every path they upload exists (the plots included), with JUnit attachments that GitLab shows
(paths relative to the project folder, inside the uploaded artifacts)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def recipes() -> dict[str, dict[str, Any]]:
    """The GitHub Actions and GitLab CI recipes: their commands and what they upload."""
    found: dict[str, dict[str, Any]] = {}
    for block in re.findall(r"```yaml\n(.*?)```", README, re.DOTALL):
        data = yaml.safe_load(block)
        if not isinstance(data, dict):
            continue
        if "jobs" in data:  # GitHub Actions
            steps = [s for job in data["jobs"].values() for s in job["steps"]]
            (upload,) = [s["with"] for s in steps
                         if s.get("uses", "").startswith("actions/upload-artifact")]
            found["github"] = {"commands": [s["run"] for s in steps if "run" in s],
                               "paths": upload["path"].split(),
                               "hidden": upload.get("include-hidden-files") is True}
        jobs = [job for job in data.values() if isinstance(job, dict) and "script" in job]
        if jobs:  # GitLab CI
            (job,) = jobs
            found["gitlab"] = {"commands": job["script"], "paths": job["artifacts"]["paths"],
                               "junit": job["artifacts"]["reports"]["junit"], "hidden": True}
    return found


def test_readme_has_both_recipes() -> None:
    found = recipes()
    assert set(found) == {"github", "gitlab"}
    for recipe in found.values():
        hidden = [p for p in recipe["paths"] if any(part.startswith(".")
                                                    for part in Path(p).parts)]
        assert not hidden or recipe["hidden"], "hidden folders are skipped without " \
                                               "include-hidden-files: true"


def command_line(command: str) -> list[str] | None:
    """A recipe's command as run here (None for the install step, already done)."""
    words = shlex.split(command)
    if words[:2] == ["pip", "install"]:
        return None
    assert words[0] == "pytest", command
    return [sys.executable, "-m", "pytest", *words[1:]]


def test_recipe_commands_upload_existing_files(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "pyproject.toml", project)  # the rootdir, as in a checkout
    shutil.copytree(ROOT / "specs", project / "specs")
    (project / "examples").symlink_to(ROOT / "examples", target_is_directory=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    found = recipes()
    commands: list[list[str]] = []
    for recipe in found.values():  # the same commands in both recipes run once
        for command in recipe["commands"]:
            line = command_line(command)
            if line is not None and line not in commands:
                commands.append(line)
    assert commands
    for line in commands:
        done = subprocess.run(line, cwd=project, env=env, capture_output=True, text=True,
                              timeout=900)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for name, recipe in found.items():
        for upload in recipe["paths"]:
            path = project / upload
            assert path.exists() and any(path.iterdir()), f"{name} uploads {upload}: missing"
    plots = sorted((project / ".interp-assert" / "plots").rglob("*.png"))
    assert plots  # the report implies a plot for every claim
    assert {p.name for p in (project / "reports").iterdir()} >= {
        "claims.json", "claims.html", "junit.xml"}
    attachments = re.findall(r"\[\[ATTACHMENT\|([^\]]+)\]\]",
                             (project / found["gitlab"]["junit"]).read_text(encoding="utf-8"))
    assert len(attachments) == len(plots)
    uploaded = [Path(p) for p in found["gitlab"]["paths"]]
    for attachment in attachments:
        assert not Path(attachment).is_absolute() and (project / attachment).is_file()
        assert any(Path(attachment).is_relative_to(folder) for folder in uploaded)
    cases = list(ET.parse(project / "reports" / "junit.xml").iter("testcase"))
    assert len(cases) == len(plots)
