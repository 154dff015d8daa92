"""The always-valid confidence sequence: a normal-mixture SPRT on a difference of means.

Johari et al. (2017, "Peeking at A/B tests") test ``theta = 0`` with the mixture
likelihood ratio of a normal estimate ``d ~ N(theta, v)`` against ``theta = 0``, the
alternative mixed over ``theta ~ N(0, tau2)``; in closed form

    Lambda = sqrt(v / (v + tau2)) * exp(tau2 * d**2 / (2 * v * (v + tau2)))

Under the null Lambda is a nonnegative martingale, so by Ville's inequality it ever
crosses ``1 / alpha`` with probability at most alpha, however often one looks. The
values of theta the test does not reject form the confidence sequence
``d +- halfwidth`` (valid at every n at once). With ``v`` and the mixing variance both
estimated from the data (``tau2 = n * rho2 * v``, i.e. ``rho2`` in units of the
per-observation variance) it is the asymptotic confidence sequence of Waudby-Smith et
al. (2023, "Time-uniform central limit theory") and Howard et al. (2021); ``rho2`` is
chosen as Howard et al. (2021) and Waudby-Smith et al. (2023) do, to make the sequence tightest at
``target_n`` observations.

>>> seq = MixtureSequence(alpha=0.05, target_n=10_000)
>>> round(seq.halfwidth(variance=0.25 / 5_000, n=10_000), 4)
0.0215
>>> seq.log_likelihood_ratio(0.03, 0.25 / 5_000, 10_000) > math.log(1 / 0.05)
True

"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["MixtureSequence", "mixture_halfwidth", "mixture_log_lr", "optimal_rho2"]


def optimal_rho2(target_n: float, alpha: float) -> float:
    """The mixing variance (per-observation units) that makes the two-sided sequence
    tightest after `target_n` observations (Howard et al. 2021)."""
    if target_n <= 0:
        raise ValueError(f"target_n must be positive, not {target_n!r}")
    a = -2.0 * math.log(alpha) + math.log(-2.0 * math.log(alpha) + 1.0)
    return a / target_n


def mixture_log_lr(estimate: Any, variance: Any, tau2: Any) -> Any:
    """log of the mixture likelihood ratio of ``N(theta, variance)`` at `estimate`,
    theta mixed over ``N(0, tau2)``, against theta = 0 (numpy arrays broadcast)."""
    v, t = np.asarray(variance, dtype=float), np.asarray(tau2, dtype=float)
    d = np.asarray(estimate, dtype=float)
    return 0.5 * np.log(v / (v + t)) + t * d * d / (2.0 * v * (v + t))


def mixture_halfwidth(variance: Any, tau2: Any, alpha: float) -> Any:
    """Half the width of the confidence sequence: the thetas whose mixture ratio stays
    below ``1 / alpha`` are ``estimate +- halfwidth`` (numpy arrays broadcast)."""
    v, t = np.asarray(variance, dtype=float), np.asarray(tau2, dtype=float)
    bound = math.log(1.0 / alpha) + 0.5 * np.log((v + t) / v)
    return np.sqrt(2.0 * v * (v + t) / t * bound)


class MixtureSequence:
    """The mixture SPRT's confidence sequence at level `alpha`.

    `tau` fixes the mixing standard deviation in the metric's own units (Johari et al.'s
    mSPRT as Optimizely runs it: pick it near the lifts you care about); without it the
    mixing variance scales with the data's variance and is tuned to `target_n`
    observations (the asymptotic sequence: no unit to guess).
    """

    def __init__(
        self, alpha: float = 0.05, target_n: float = 10_000, tau: float | None = None
    ) -> None:
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), not {alpha!r}")
        if tau is not None and tau <= 0:
            raise ValueError(f"tau must be positive, not {tau!r}")
        self.alpha = alpha
        self.target_n = target_n
        self.tau = tau
        self.rho2 = optimal_rho2(target_n, alpha)

    def tau2(self, variance: Any, n: Any) -> Any:
        """The mixing variance for an estimate of `variance` over `n` observations."""
        if self.tau is not None:
            return np.broadcast_to(self.tau**2, np.shape(variance)) + 0.0
        return np.asarray(n, dtype=float) * self.rho2 * np.asarray(variance, dtype=float)

    def halfwidth(self, variance: Any, n: Any) -> Any:
        """Half the width at `n` observations whose estimate has `variance`."""
        out = mixture_halfwidth(variance, self.tau2(variance, n), self.alpha)
        return float(out) if np.ndim(out) == 0 else out

    def log_likelihood_ratio(self, estimate: Any, variance: Any, n: Any) -> Any:
        """log Lambda of theta = 0; above ``log(1 / alpha)`` the test rejects."""
        out = mixture_log_lr(estimate, variance, self.tau2(variance, n))
        return float(out) if np.ndim(out) == 0 else out
