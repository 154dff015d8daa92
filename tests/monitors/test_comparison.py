"""The comparison's statistics against reference implementations: the mixture SPRT's
closed form against numerical integration, its confidence sequence against the
fixed-n intervals of statsmodels, the per-arm metrics against scikit-learn."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from scipy import integrate, optimize, stats
from sklearn import metrics as skm
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from monitors.comparison import (
    MixtureSequence,
    Outcomes,
    PairedDifference,
    UnpairedDifference,
    compare_paired,
    compare_split,
)
from monitors.comparison.monitor import ComparisonMonitor
from monitors.comparison.sequence import mixture_halfwidth, mixture_log_lr


@pytest.mark.parametrize(
    ("d", "v", "tau2"), [(0.0, 1e-4, 1e-3), (0.02, 5e-5, 4e-4), (-0.5, 0.04, 0.25), (1.3, 1.0, 2.0)]
)
def test_mixture_ratio_closed_form_matches_the_integral(d: float, v: float, tau2: float) -> None:
    # Lambda = int N(d; theta, v) / N(d; 0, v) dN(theta; 0, tau2), straight from the definition.
    def integrand(theta: float) -> float:
        ratio = stats.norm.pdf(d, theta, math.sqrt(v)) / stats.norm.pdf(d, 0.0, math.sqrt(v))
        return ratio * stats.norm.pdf(theta, 0.0, math.sqrt(tau2))

    sd = math.sqrt(tau2)
    value, _ = integrate.quad(integrand, -12 * sd, 12 * sd, points=[0.0, d], limit=200)
    assert float(mixture_log_lr(d, v, tau2)) == pytest.approx(math.log(value), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize(("v", "tau2", "alpha"), [(1e-4, 1e-3, 0.05), (0.04, 0.01, 0.01)])
def test_halfwidth_is_where_the_ratio_crosses_one_over_alpha(
    v: float, tau2: float, alpha: float
) -> None:
    # The sequence is {theta: Lambda(d - theta) < 1/alpha}: its edge solves Lambda = 1/alpha.
    edge = optimize.brentq(lambda x: mixture_log_lr(x, v, tau2) - math.log(1 / alpha), 0, 100)
    assert float(mixture_halfwidth(v, tau2, alpha)) == pytest.approx(edge, rel=1e-9)


def test_unpaired_sequence_contains_the_fixed_n_welch_interval() -> None:
    rng = np.random.default_rng(3)
    champion = rng.normal(1.0, 2.0, 3_000)
    challenger = rng.normal(1.1, 1.5, 2_000)
    diff = UnpairedDifference(higher_is_better=True)
    diff.update_many("champion", champion)
    diff.update_many("challenger", challenger)
    cm = CompareMeans(DescrStatsW(challenger), DescrStatsW(champion))
    lo, hi = cm.zconfint_diff(alpha=0.05, usevar="unequal")
    assert diff.lift == pytest.approx((lo + hi) / 2, rel=1e-9)
    z = stats.norm.ppf(0.975)
    se = (hi - lo) / (2 * z)
    assert se == pytest.approx(cm.std_meandiff_separatevar, rel=1e-9)
    assert diff.lower < lo and diff.upper > hi
    # Same standard error, a wider multiplier: the price of peeking (1.2-2x here).
    assert 1.2 < (diff.upper - diff.lift) / (hi - (lo + hi) / 2) < 2.0
    assert diff.upper - diff.lift == pytest.approx(MixtureSequence().halfwidth(se**2, 5_000))


def test_paired_sequence_contains_the_fixed_n_interval_of_the_differences() -> None:
    rng = np.random.default_rng(4)
    difficulty = rng.normal(0, 3, 4_000)  # shared by both models: pairing cancels it
    champion = difficulty + rng.normal(0, 0.5, 4_000)
    shadow = difficulty + rng.normal(-0.05, 0.5, 4_000)
    pair = PairedDifference(higher_is_better=False)
    pair.update_many(champion, shadow)
    lo, hi = DescrStatsW(shadow - champion).zconfint_mean(alpha=0.05)
    assert -pair.lift == pytest.approx((lo + hi) / 2, rel=1e-9)
    assert -pair.upper < lo and -pair.lower > hi
    split = UnpairedDifference(higher_is_better=False)
    split.update_many("champion", champion)
    split.update_many("challenger", shadow)
    assert pair.upper - pair.lower < (split.upper - split.lower) / 3


def test_loss_lift_is_positive_when_the_challenger_is_lower() -> None:
    diff = UnpairedDifference(higher_is_better=False, min_n=2)
    diff.update_many("champion", [2.0, 3.0, 2.5, 3.5] * 100)
    diff.update_many("challenger", [1.0, 1.5, 1.2, 0.8] * 100)
    assert diff.lift == pytest.approx(2.75 - 1.125)
    assert diff.decision == "challenger_better"
    diff2 = UnpairedDifference(higher_is_better=False, min_n=2)
    diff2.update_many("champion", [1.0, 1.5, 1.2, 0.8] * 100)
    diff2.update_many("challenger", [2.0, 3.0, 2.5, 3.5] * 100)
    assert diff2.lift < 0 and diff2.decision == "champion_better"


def test_no_decision_before_min_n_and_unknown_arm_is_an_error() -> None:
    diff = UnpairedDifference(min_n=30)
    diff.update_many("champion", [0.0] * 29)
    diff.update_many("challenger", [1.0] * 29)
    assert diff.decision == "undecided" and diff.lower == -math.inf and diff.upper == math.inf
    diff.update("champion", 0.0)
    diff.update("challenger", 1.0)
    assert diff.decision == "challenger_better"
    with pytest.raises(ValueError, match="arm must be"):
        diff.update("shadow", 1.0)
    with pytest.raises(ValueError, match="alpha"):
        MixtureSequence(alpha=1.5)


def _classifier_arm(rng: np.random.Generator, n: int, skill: float) -> Outcomes:
    y = rng.random(n) < 0.4
    # Scores from a logit that separates the classes by `skill` (calibrated enough that
    # more skill is also a lower log loss).
    score = 1.0 / (1.0 + np.exp(-(skill * np.where(y, 1.0, -1.0) + rng.normal(0, 1.0, n))))
    return Outcomes("champion", 1, y, None, score)


def test_per_arm_metrics_match_scikit_learn() -> None:
    rng = np.random.default_rng(5)
    arm = _classifier_arm(rng, 2_000, 0.8)
    y, s = arm.y_true, arm.score
    assert arm.point("accuracy") == pytest.approx(skm.accuracy_score(y, s >= 0.5))
    assert arm.point("log_loss") == pytest.approx(skm.log_loss(y, s), rel=1e-9)
    assert arm.point("roc_auc") == pytest.approx(skm.roc_auc_score(y, s), rel=1e-12)
    ties = np.round(s, 1)  # ties count half, as scikit-learn counts them
    assert Outcomes("c", 1, y, None, ties).point("roc_auc") == pytest.approx(
        skm.roc_auc_score(y, ties), rel=1e-12
    )
    truth, pred = rng.normal(10, 3, 1_000), rng.normal(10, 3, 1_000)
    reg = Outcomes("champion", 1, truth, pred)
    assert reg.point("mae") == pytest.approx(skm.mean_absolute_error(truth, pred))
    assert reg.point("rmse") == pytest.approx(skm.root_mean_squared_error(truth, pred))


def test_comparison_of_auc_is_decided_on_log_loss_and_rmse_on_mse() -> None:
    rng = np.random.default_rng(6)
    champion, challenger = _classifier_arm(rng, 6_000, 0.3), _classifier_arm(rng, 6_000, 1.0)
    challenger.variant, challenger.version = "challenger", 2
    c = compare_split("churn", champion, challenger, metric="roc_auc")
    d = c.to_dict()
    assert d["decided_on"] == "log_loss" and d["decision"] == "challenger_better"
    assert d["arms"][1]["value"] > d["arms"][0]["value"]
    expected = skm.log_loss(champion.y_true, champion.score) - skm.log_loss(
        challenger.y_true, challenger.score
    )
    assert d["lift"] == pytest.approx(expected, rel=1e-9)
    assert set(d) >= {"model", "metric", "arms", "lift", "lower", "upper", "alpha", "decision"}
    assert set(d["arms"][0]) == {"variant", "version", "n", "value"}
    truth = rng.normal(0, 1, 2_000)
    a = Outcomes("champion", 1, truth, truth + rng.normal(0, 1.0, 2_000))
    b = Outcomes("shadow", 2, truth, truth + rng.normal(0, 0.8, 2_000))
    r = compare_paired("price", a, b, metric="rmse")
    assert r.decided_on == "mse" and r.decision == "challenger_better" and r.paired
    mse = skm.mean_squared_error(a.y_true, a.y_pred) - skm.mean_squared_error(b.y_true, b.y_pred)
    assert r.lift == pytest.approx(mse, rel=1e-9)
    assert r.arms[0].value == pytest.approx(skm.root_mean_squared_error(a.y_true, a.y_pred))


def test_an_empty_arm_is_undecided_with_null_bounds() -> None:
    rng = np.random.default_rng(7)
    c = compare_split("churn", _classifier_arm(rng, 100, 0.5), Outcomes("challenger", 2, []))
    d = c.to_dict()
    assert d["decision"] == "undecided" and d["lift"] is None and d["lower"] is None
    assert d["arms"][1] == {"variant": "challenger", "version": 2, "n": 0, "value": None}


def test_monitor_pairs_shadow_outcomes_by_request_and_survives_pickle() -> None:
    mon = ComparisonMonitor(min_n=30, target_n=1_000)
    rng = np.random.default_rng(8)
    for i in range(400):
        truth = bool(rng.random() < 0.5)
        champ_right, shadow_right = rng.random() < 0.7, rng.random() < 0.9
        rid = f"r{i}"
        mon.update("m", "champion", "1", "classification", rid, truth, truth == champ_right)
        mon.update("m", "shadow", "2", "classification", rid, truth, truth == shadow_right)
        if i % 50 == 49:
            mon.end_batch()
            mon = pickle.loads(pickle.dumps(mon))
    out = {(m.metric, m.segment): m for m in mon.collect(0.0, 60.0)}
    assert out[("comparison_decision", "variant=shadow")].value == 1.0
    assert out[("lift", "variant=shadow")].n == 400
    assert out[("lift", "variant=shadow")].version == "2"
    # No challenger: no split comparison; a fallback is never compared.
    assert ("lift", None) not in out
    mon.update("m", "fallback", "0", "classification", "x", True, False)
    assert mon.collect(60.0, 120.0) == []


def test_monitor_new_challenger_version_starts_afresh() -> None:
    mon = ComparisonMonitor(min_n=2, target_n=100)
    for i in range(100):
        mon.update("m", "champion", "1", "classification", f"a{i}", True, i % 2 == 0)
        mon.update("m", "challenger", "2", "classification", f"b{i}", True, True)
    first = {m.metric: m for m in mon.collect(0, 60)}
    assert first["comparison_decision"].value == 1.0 and first["lift"].n == 200
    for i in range(10):
        mon.update("m", "challenger", "3", "classification", f"c{i}", True, False)
    second = {m.metric: m for m in mon.collect(60, 120)}
    assert second["lift"].version == "3" and second["lift"].n == 110
    assert second["lift"].value == pytest.approx(-0.5)
