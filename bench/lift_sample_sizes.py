"""How many outcomes the sequential comparison needs to decide a lift, beside the
sample size of a fixed-n test with the same power.

For accuracy lifts of 1, 2 and 5 points over a champion at 85 %, seeded simulations of a
50/50 split read after every pair of outcomes (monitors.comparison.simulation) give the
median outcomes per arm to a ``challenger_better`` decision and the outcomes by which 80 %
of the experiments have decided; statsmodels' power analysis of a two-proportion z-test
(Cohen's h) gives what a test that is looked at once needs for 80 % power. The
sequential test may be read at every outcome and stops as soon as the evidence is there;
the fixed-n test must wait for its n and be read once.

    python bench/lift_sample_sizes.py [--experiments 200] [--base 0.85]

:func:`lift_sample_sizes` returns the rows (``bench/actions.py`` prints them too).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from typing import Any

from monitors.comparison.simulation import simulate_split

__all__ = ["fixed_n_per_arm", "format_rows", "lift_sample_sizes", "main"]


def fixed_n_per_arm(base: float, lift: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Outcomes per arm a two-sided two-proportion z-test needs (statsmodels)."""
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    effect = proportion_effectsize(base + lift, base)
    n = NormalIndPower().solve_power(effect, alpha=alpha, power=power, ratio=1.0)
    return math.ceil(n)


def lift_sample_sizes(
    lifts: Sequence[float] = (0.01, 0.02, 0.05),
    base: float = 0.85,
    alpha: float = 0.05,
    power: float = 0.8,
    experiments: int = 200,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One row per lift: the sequential test's outcomes per arm (median and at `power`)
    and the fixed-n test's, for the same alpha and power."""
    rows = []
    for i, lift in enumerate(lifts):
        fixed = fixed_n_per_arm(base, lift, alpha, power)
        # Long enough streams that nearly every experiment decides within them.
        run = simulate_split(
            base,
            base + lift,
            n_per_arm=6 * fixed,
            experiments=experiments,
            seed=seed + i,
            alpha=alpha,
        )
        rows.append(
            {
                "lift": lift,
                "champion": base,
                "challenger": base + lift,
                "sequential_median": run.median_n(),
                f"sequential_p{round(power * 100)}": run.n_for_power(power),
                "fixed_n": fixed,
                "decided": run.decided,
                "wrong_way": run.false_rate("champion_better"),
                "experiments": experiments,
            }
        )
    return rows


def format_rows(rows: Sequence[dict[str, Any]]) -> str:
    """The table ``main`` prints: outcomes per arm."""
    head = f"{'lift':>6} {'accuracy':>13} {'seq. median':>12} {'seq. p80':>10} {'fixed n':>9}"
    lines = [
        "outcomes per arm to decide (sequential: always-valid, read after every outcome;",
        "fixed n: two-proportion z-test read once, same alpha, power 0.8)",
        head,
    ]
    for r in rows:
        p80 = next(v for k, v in r.items() if k.startswith("sequential_p"))
        lines.append(
            f"{r['lift'] * 100:>5.0f}pt {r['champion']:.2f} -> {r['challenger']:.2f} "
            f"{r['sequential_median']:>12,.0f} {p80:>10,.0f} {r['fixed_n']:>9,}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=200)
    parser.add_argument("--base", type=float, default=0.85)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    rows = lift_sample_sizes(
        base=args.base, alpha=args.alpha, experiments=args.experiments, seed=args.seed
    )
    print(format_rows(rows))
    print(f"({args.experiments} simulated experiments per lift, {time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
