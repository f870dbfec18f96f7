"""Per-run state of the pytest plugin: options, artifacts folder and collected results."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest

    from interp_assert.engine import ClaimResult


@dataclass
class ClaimSession:
    """Options of this run and the results of the claims it evaluated."""

    artifacts: Path
    plots: str
    rootpath: Path
    json_path: Path | None = None
    checkpoint: Path | None = None
    summary: bool = False
    results: list[ClaimResult] = field(default_factory=list)

    @classmethod
    def from_config(cls, config: pytest.Config) -> ClaimSession:
        folder = config.getoption("interp_artifacts") or config.getini("interp_assert_artifacts")
        plots = config.getoption("interp_plots") or config.getini("interp_assert_plots")
        if plots not in ("failed", "all", "never"):
            raise ValueError(f"interp_assert_plots must be failed, all or never, not {plots!r}")
        artifacts = Path(folder)
        if not artifacts.is_absolute():
            artifacts = config.rootpath / artifacts
        json_path = config.getoption("interp_json")
        checkpoint = config.getoption("interp_checkpoint") or os.environ.get(
            "INTERP_ASSERT_CHECKPOINT")
        return cls(artifacts, plots, config.rootpath,
                   Path(json_path).resolve() if json_path else None,
                   Path(checkpoint).resolve() if checkpoint else None,
                   bool(config.getoption("interp_summary")))

    def subject_for(self, claim_file: Any) -> Any:
        """The claim file's subject, or the --interp-checkpoint override."""
        from dataclasses import replace

        spec = claim_file.subject
        if spec is not None and self.checkpoint is not None:
            spec = replace(spec, checkpoint=self.checkpoint)
        return spec

    def finish(self, terminal: Any) -> None:
        """Write the JSON results and, if asked, print the summary table."""
        if not self.results:
            return
        if self.json_path is not None:
            from interp_assert.results import write_results

            write_results(self.json_path, self.results, self.rootpath)
            terminal.write_line(f"interp-assert: results written to {self.json_path}")
        if self.summary:
            from interp_assert.report import summary_table

            terminal.section("interp-assert claims")
            terminal.write_line(summary_table(self.results))

    def plot_dir(self, claim_file: Path) -> Path:
        """Plots of one claim file go to <artifacts>/plots/<path relative to rootdir>/."""
        try:
            relative = claim_file.resolve().relative_to(self.rootpath.resolve())
        except ValueError:
            relative = Path(claim_file.name)
        stem = str(relative).replace("/", "__").removesuffix(".yaml").removesuffix(".yml")
        return self.artifacts / "plots" / stem
