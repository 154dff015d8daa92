"""Seeded simulations of a split read after every outcome: how often the sequence
declares a winner that is not one (A/A), and how many outcomes a real lift needs.

Vectorised over experiments with numpy; both arms get one outcome per step, so after
step k each arm has k outcomes and the comparison is read with
:meth:`~monitors.comparison.sequence.MixtureSequence.halfwidth` exactly as
:class:`~monitors.comparison.difference.UnpairedDifference` reads it.

>>> run = simulate_split(0.85, 0.85, n_per_arm=2_000, experiments=50, seed=1)
>>> run.false_rate("challenger_better") <= 0.05
True

"""

from __future__ import annotations

import dataclasses

import numpy as np

from monitors.comparison.sequence import MixtureSequence

__all__ = ["SplitRun", "simulate_split"]


@dataclasses.dataclass(frozen=True)
class SplitRun:
    """Per experiment: the outcomes per arm at its first decision (0: none), and which."""

    first: np.ndarray
    sign: np.ndarray
    n_per_arm: int

    def false_rate(self, decision: str) -> float:
        """Share of experiments that ever reached `decision`, with continuous peeking."""
        want = 1 if decision == "challenger_better" else -1
        return float(np.mean(self.sign == want))

    def median_n(self) -> float:
        """Median outcomes per arm to the first decision, over the decided experiments."""
        decided = self.first[self.first > 0]
        return float(np.median(decided)) if decided.size else float("nan")

    def n_for_power(self, power: float) -> float:
        """Outcomes per arm by which a share `power` of all experiments has decided
        (NaN when fewer did within the run)."""
        if self.decided < power:
            return float("nan")
        never = np.where(self.first > 0, self.first, np.iinfo(np.int64).max)
        return float(np.quantile(never, power, method="higher"))

    @property
    def decided(self) -> float:
        return float(np.mean(self.first > 0))


def simulate_split(
    p_champion: float,
    p_challenger: float,
    n_per_arm: int = 10_000,
    experiments: int = 200,
    seed: int = 0,
    alpha: float = 0.05,
    target_n: float = 10_000,
    min_n: int = 30,
    chunk: int | None = None,
) -> SplitRun:
    """Bernoulli outcomes (a hit with the arm's accuracy), the comparison read after
    every pair of outcomes; `chunk` experiments at a time bound the memory (by default
    about two million outcomes per arm at once)."""
    chunk = chunk or max(1, 2_000_000 // n_per_arm)
    seq = MixtureSequence(alpha, target_n)
    rng = np.random.default_rng(seed)
    firsts, signs = [], []
    k = np.arange(1, n_per_arm + 1, dtype=float)
    for start in range(0, experiments, chunk):
        e = min(chunk, experiments - start)
        a = np.cumsum(rng.random((e, n_per_arm)) < p_champion, axis=1)
        b = np.cumsum(rng.random((e, n_per_arm)) < p_challenger, axis=1)
        ma, mb = a / k, b / k
        with np.errstate(divide="ignore", invalid="ignore"):
            # River's Var with ddof=1 on 0/1 values: p(1-p) k/(k-1).
            va = ma * (1 - ma) * k / (k - 1)
            vb = mb * (1 - mb) * k / (k - 1)
            variance = (va + vb) / k
            w = np.where(variance > 0, seq.halfwidth(variance, 2 * k), 0.0)
        lift = mb - ma
        ok = k >= max(min_n, 2)
        up = ok & (lift - w > 0)
        down = ok & (lift + w < 0)
        hit = up | down
        any_hit = hit.any(axis=1)
        idx = np.argmax(hit, axis=1)
        firsts.append(np.where(any_hit, idx + 1, 0))
        rows = np.arange(e)
        signs.append(np.where(any_hit, np.where(up[rows, idx], 1, -1), 0))
    return SplitRun(np.concatenate(firsts), np.concatenate(signs), n_per_arm)
