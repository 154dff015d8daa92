"""A/A experiments read after every outcome keep the false win rate at or below alpha;
a real 2-point accuracy lift is decided. Seeded, synthetic, vectorised: no broker."""

from __future__ import annotations

import numpy as np
import pytest

from monitors.comparison import PairedDifference, UnpairedDifference
from monitors.comparison.simulation import simulate_split

ALPHA = 0.05


def test_simulation_reads_the_split_as_the_comparison_does() -> None:
    # One experiment, replayed outcome by outcome through UnpairedDifference.
    run = simulate_split(0.85, 0.9, n_per_arm=3_000, experiments=1, seed=11, chunk=1)
    rng = np.random.default_rng(11)
    a = rng.random((1, 3_000)) < 0.85
    b = rng.random((1, 3_000)) < 0.9
    diff = UnpairedDifference(higher_is_better=True)
    first, sign = 0, 0
    for k in range(3_000):
        diff.update("champion", float(a[0, k]))
        diff.update("challenger", float(b[0, k]))
        if diff.decision != "undecided":
            first, sign = k + 1, 1 if diff.decision == "challenger_better" else -1
            break
    assert first > 0 and (run.first[0], run.sign[0]) == (first, sign)


def test_aa_split_with_continuous_peeking_keeps_false_wins_below_alpha() -> None:
    # 1,000 experiments x 10,000 outcomes per arm, read after every pair: the binomial
    # standard error of the rate at alpha is 0.007, so a leaky test (a fixed-n z-test
    # peeked at this often declares a winner in about half of them) cannot pass.
    run = simulate_split(0.85, 0.85, n_per_arm=10_000, experiments=1_000, seed=2024)
    assert run.false_rate("challenger_better") <= ALPHA
    assert run.false_rate("challenger_better") + run.false_rate("champion_better") <= ALPHA


def test_fixed_n_interval_peeked_at_as_often_does_inflate_the_rate() -> None:
    # The control: the same streams, a 95% z-interval read after every pair.
    rng = np.random.default_rng(2024)
    a = np.cumsum(rng.random((300, 5_000)) < 0.85, axis=1)
    b = np.cumsum(rng.random((300, 5_000)) < 0.85, axis=1)
    k = np.arange(1, 5_001)
    ma, mb = a / k, b / k
    se = np.sqrt((ma * (1 - ma) + mb * (1 - mb)) / k)
    with np.errstate(divide="ignore", invalid="ignore"):
        hit = (k >= 30) & (np.abs(mb - ma) > 1.96 * se)
    assert hit.any(axis=1).mean() > 3 * ALPHA


def test_aa_paired_with_continuous_peeking_keeps_false_wins_below_alpha() -> None:
    # Champion and shadow on the same requests, equally good, their hits correlated.
    rng = np.random.default_rng(7)
    experiments, n = 200, 4_000
    easy = rng.random((experiments, n)) < 0.7  # requests both get right
    a = easy | (rng.random((experiments, n)) < 0.5)
    b = easy | (rng.random((experiments, n)) < 0.5)
    wins = 0
    for e in range(experiments):
        pair = PairedDifference(higher_is_better=True)
        for start in range(0, n, 100):  # peek every 100 requests
            pair.update_many(a[e, start : start + 100], b[e, start : start + 100])
            if pair.decision == "challenger_better":
                wins += 1
                break
    assert wins / experiments <= ALPHA


def test_a_two_point_accuracy_lift_is_decided() -> None:
    run = simulate_split(0.85, 0.87, n_per_arm=30_000, experiments=200, seed=5)
    assert run.false_rate("champion_better") == 0.0
    assert run.decided >= 0.95
    # The README's figure: about 4,400 outcomes per arm (median over seeds).
    assert run.median_n() == pytest.approx(4_400, rel=0.25)


def test_bench_fixed_n_is_the_textbook_two_proportion_sample_size() -> None:
    import math
    from pathlib import Path

    from by_path import load
    from scipy import stats

    bench = load(Path("bench/lift_sample_sizes.py"))
    h = 2 * math.asin(math.sqrt(0.87)) - 2 * math.asin(math.sqrt(0.85))  # Cohen's h
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    # 2 arcsin(sqrt(p)) of n outcomes has variance 1 / n: the difference of two, 2 / n.
    assert bench.fixed_n_per_arm(0.85, 0.02) == math.ceil(2 * (z / h) ** 2)
    rows = bench.lift_sample_sizes(lifts=(0.05,), experiments=40, seed=3)
    assert rows[0]["decided"] >= 0.9 and rows[0]["wrong_way"] == 0.0
    assert rows[0]["sequential_median"] <= rows[0]["sequential_p80"]
    assert "5pt 0.85 -> 0.90" in bench.format_rows(rows)
