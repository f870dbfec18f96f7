"""Per-run state of the pytest plugin: options, artifacts folder and collected results."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

    from interp_assert.engine import ClaimResult


@dataclass
class ClaimSession:
    """Options of this run and the results of the claims it evaluated."""

    artifacts: Path
    plots: str
    rootpath: Path
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
        return cls(artifacts, plots, config.rootpath)

    def plot_dir(self, claim_file: Path) -> Path:
        """Plots of one claim file go to <artifacts>/plots/<path relative to rootdir>/."""
        try:
            relative = claim_file.resolve().relative_to(self.rootpath.resolve())
        except ValueError:
            relative = Path(claim_file.name)
        stem = str(relative).replace("/", "__").removesuffix(".yaml").removesuffix(".yml")
        return self.artifacts / "plots" / stem
