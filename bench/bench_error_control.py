"""Run-level error control by simulation: how often a run of many confidence claims passes a
false one, alone and after Holm / Benjamini–Hochberg.

Each run is a family of ``--claims`` rate claims ``rate ≥ 90% with 95% confidence`` on n = 1,000
samples. ``--null`` of them sit exactly on the bound (true rate 0.9: "holds" is a false
verdict), the others well above it (true rate 0.93). Per run, the Wilson p-values of
:mod:`interp_assert.evaluate.pvalues` are computed from seeded binomial draws, and the run's
records go through :func:`interp_assert.judge.error_control.control` as ``Runner.finish``
applies it. Reported over ``--runs`` seeded runs: the family-wise error (the fraction of runs in
which some false claim holds), the false-discovery proportion averaged over runs, and the
fraction of true claims that hold.

    python bench/bench_error_control.py [--runs 1000] [--claims 20] [--null 10] [--alpha 0.05]
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from interp_assert.evaluate.pvalues import wilson_p
from interp_assert.judge.error_control import ErrorControl, control

N, BOUND, TRUE_RATE, LEVEL = 1000, 0.9, 0.93, 0.95


def simulate(runs: int, claims: int, null: int, alpha: float, seed: int = 0
             ) -> dict[str, dict[str, float]]:
    """Family-wise error, mean false-discovery proportion and power per correction."""
    rng = np.random.default_rng(seed)
    rates = np.array([BOUND] * null + [TRUE_RATE] * (claims - null))
    methods: dict[str, ErrorControl | None] = {
        "alone": None, "holm": ErrorControl(alpha, "holm"), "bh": ErrorControl(alpha, "bh")}
    totals = {name: {"fwer": 0.0, "fdr": 0.0, "power": 0.0} for name in methods}
    for _ in range(runs):
        successes = rng.binomial(N, rates)
        p_values = [wilson_p(int(k), N, ">=", BOUND) for k in successes]
        for name, method in methods.items():
            records: list[dict[str, Any]] = [
                {"file": "sim", "name": f"c{i}", "p_value": p,
                 "verdict": "holds" if p <= (1 - LEVEL) / 2 else "fails", "reason": "",
                 "fails_run": p > (1 - LEVEL) / 2} for i, p in enumerate(p_values)]
            control(records, method)
            held = np.array([r["verdict"] == "holds" for r in records])
            false = int(held[:null].sum())
            totals[name]["fwer"] += false > 0
            totals[name]["fdr"] += false / max(1, int(held.sum()))
            totals[name]["power"] += held[null:].mean() if claims > null else 0.0
    return {name: {k: v / runs for k, v in t.items()} for name, t in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--claims", type=int, default=20)
    parser.add_argument("--null", type=int, default=10)
    parser.add_argument("--alpha", type=float, default=0.05)
    args = parser.parse_args()
    result = simulate(args.runs, args.claims, args.null, args.alpha)
    print(f"{args.runs} seeded runs of {args.claims} claims 'rate >= 90% with 95% confidence' "
          f"(n = {N}), {args.null} with true rate exactly 0.9, the rest {TRUE_RATE}; "
          f"alpha = {args.alpha}")
    print(f"{'':8} {'family-wise error':>18} {'mean FDP':>10} {'power':>8}")
    for name, numbers in result.items():
        print(f"{name:8} {numbers['fwer']:>18.3f} {numbers['fdr']:>10.3f} "
              f"{numbers['power']:>8.3f}")


if __name__ == "__main__":
    main()
