"""How much does the interp-assert pytest plugin add to a test run that has no claim files?

Creates a temporary project with ~20 trivial test functions and no claim files, then times
``python -m pytest -q -p no:cacheprovider`` with the plugin enabled and disabled
(``-p no:interp_assert``), interleaving the two so that machine noise hits both alike, and
reports medians, the difference and the ratio. It also measures the import time of the plugin
module alone with ``python -X importtime``.

    python bench/bench_plugin_overhead.py [--repeat 15] [--tests 20] [--no-other-plugins]

``--no-other-plugins`` sets PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 and loads only this plugin
(``-p interp_assert.drivers.pytest_plugin``): a smaller, less noisy baseline.

Goal: under 20 ms added per pytest run. This script only reports; it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_MS = 20.0
PLUGIN_MODULE = "interp_assert.drivers.pytest_plugin"


def make_project(folder: Path, n_tests: int) -> None:
    """``n_tests`` trivial tests and an empty pytest.ini (so no outer config is picked up)."""
    (folder / "pytest.ini").write_text("[pytest]\n")
    body = "\n\n".join(f"def test_{i}():\n    assert {i} + 1 == {i + 1}" for i in range(n_tests))
    (folder / "test_trivial.py").write_text(body + "\n")


def clean_env() -> dict[str, str]:
    env = dict(os.environ)
    # PYTHONDONTWRITEBYTECODE would make pytest re-do the assertion rewriting of the plugin
    # module on every run; users normally have the cached, rewritten .pyc
    for key in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD",
                "PYTHONDONTWRITEBYTECODE"):
        env.pop(key, None)
    return env


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def noise_ms(a: list[float], b: list[float]) -> float:
    """Two standard errors of the difference of two medians (ms): smaller differences are
    not distinguishable from noise."""
    def se_median(xs: list[float]) -> float:
        return 1.2533 * statistics.stdev(xs) / len(xs) ** 0.5 if len(xs) > 1 else 0.0

    return 2 * (se_median(a) ** 2 + se_median(b) ** 2) ** 0.5 * 1000


def time_pytest(folder: Path, extra: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one pytest run (which must pass)."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra]
    cpu = _children_cpu()
    start = time.perf_counter()
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    cpu = _children_cpu() - cpu
    if done.returncode != 0:
        raise SystemExit(f"pytest failed ({' '.join(extra) or 'plugin enabled'}):\n"
                         f"{done.stdout}\n{done.stderr}")
    return elapsed, cpu


def plugin_active(folder: Path, extra: list[str], env: dict[str, str]) -> bool:
    """Whether the plugin is really loaded when not disabled (so the comparison means
    something)."""
    done = subprocess.run([sys.executable, "-m", "pytest", *extra, "--help"], cwd=folder,
                          env=env, capture_output=True, text=True)
    return "--interp-artifacts" in done.stdout


def import_times_us(setup: str, env: dict[str, str]) -> dict[str, int]:
    """Cumulative import time (µs) of every module imported after ``setup``."""
    code = f"{setup}; import {PLUGIN_MODULE}"
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code], env=env,
                          capture_output=True, text=True, check=True)
    times: dict[str, int] = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        try:
            _, cumulative, name = (part.strip() for part in line[len("import time:"):].split("|"))
            times[name] = int(cumulative)
        except ValueError:  # the header line
            continue
    return times


def plugin_import_ms(setup: str, env: dict[str, str], repeat: int) -> float:
    """Median cumulative import time of the plugin module (ms), with ``setup`` done first."""
    samples = []
    for _ in range(repeat):
        times = import_times_us(setup, env)
        top_level = PLUGIN_MODULE.split(".")[0]
        # the package's own import includes the module's when it is imported first
        samples.append(max(times.get(top_level, 0), times.get(PLUGIN_MODULE, 0)) / 1000)
    return statistics.median(samples)


def table(rows: list[tuple[str, str]]) -> str:
    width = max(len(name) for name, _ in rows)
    rule = "-" * (width + 2 + max(len(value) for _, value in rows))
    lines = [rule] + [f"{name.ljust(width)}  {value}" for name, value in rows] + [rule]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15, help="runs of each variant")
    parser.add_argument("--tests", type=int, default=20, help="trivial tests in the project")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs of each variant")
    parser.add_argument("--no-other-plugins", action="store_true",
                        help="disable plugin autoloading; load only interp-assert's plugin")
    args = parser.parse_args(argv)

    env = clean_env()
    if args.no_other_plugins:
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        variants = {"enabled": ["-p", PLUGIN_MODULE], "disabled": []}
    else:
        variants = {"enabled": [], "disabled": ["-p", "no:interp_assert"]}
    with tempfile.TemporaryDirectory(prefix="interp-bench-") as tmp:
        folder = Path(tmp)
        make_project(folder, args.tests)
        if not plugin_active(folder, variants["enabled"], env):
            print("warning: the interp-assert plugin is not registered (is the project "
                  "installed in this environment?); the comparison measures nothing",
                  file=sys.stderr)
        for _ in range(args.warmup):
            for extra in variants.values():
                time_pytest(folder, extra, env)
        samples: dict[str, list[float]] = {name: [] for name in variants}
        cpu: dict[str, list[float]] = {name: [] for name in variants}
        for i in range(args.repeat):
            order = list(variants.items())
            if i % 2:  # alternate which variant goes first
                order.reverse()
            for name, extra in order:
                wall, used = time_pytest(folder, extra, env)
                samples[name].append(wall)
                cpu[name].append(used)

    enabled = statistics.median(samples["enabled"]) * 1000
    disabled = statistics.median(samples["disabled"]) * 1000
    added = enabled - disabled
    cpu_enabled = statistics.median(cpu["enabled"]) * 1000
    cpu_disabled = statistics.median(cpu["disabled"]) * 1000
    spread = {name: (min(v) * 1000, max(v) * 1000) for name, v in samples.items()}
    noise = noise_ms(samples["enabled"], samples["disabled"])
    standalone = plugin_import_ms("pass", env, max(3, args.repeat // 3))
    after_pytest = plugin_import_ms("import pytest", env, max(3, args.repeat // 3))

    others = "other plugins disabled" if args.no_other_plugins else "all installed plugins"
    print(f"pytest -q -p no:cacheprovider on {args.tests} trivial tests, no claim files, "
          f"{others}, {args.repeat} interleaved runs each (after {args.warmup} warm-up "
          "runs)\n")
    print(table([
        ("plugin enabled (median)", f"{enabled:8.1f} ms   (min {spread['enabled'][0]:.1f}, "
                                    f"max {spread['enabled'][1]:.1f})"),
        ("plugin disabled (median)", f"{disabled:8.1f} ms   (min {spread['disabled'][0]:.1f}, "
                                     f"max {spread['disabled'][1]:.1f})"),
        ("added by the plugin (wall)", f"{added:8.1f} ms   (noise: ±{noise:.1f} ms)"),
        ("ratio enabled / disabled (wall)", f"{enabled / disabled:8.3f}"),
        ("CPU enabled / disabled (median)", f"{cpu_enabled:8.1f} ms / {cpu_disabled:.1f} ms"),
        ("added by the plugin (CPU)", f"{cpu_enabled - cpu_disabled:8.1f} ms"),
        ("import of the plugin module", f"{standalone:8.1f} ms   (python -X importtime, "
                                        "includes importing pytest)"),
        ("  ... with pytest already imported", f"{after_pytest:8.1f} ms"),
    ]))
    verdict = "met" if added < GOAL_MS else "NOT met"
    if abs(added) < noise:
        verdict += f" (but the difference is within the noise of ±{noise:.0f} ms: rerun on a " \
                   "quiet machine, with a larger --repeat or --no-other-plugins)"
    print(f"\ngoal: under {GOAL_MS:.0f} ms added per run -> {verdict}; measured "
          f"{added:.1f} ms wall, {cpu_enabled - cpu_disabled:.1f} ms CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
